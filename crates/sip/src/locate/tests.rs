//! RFC 3263 location against scripted DNS answers, and RFC 2782 ordering.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port,
        target: target.into(),
    }
}

fn naptr(order: u16, preference: u16, service: &str, replacement: &str) -> NaptrRecord {
    NaptrRecord {
        order,
        preference,
        flags: "s".into(),
        service: service.into(),
        replacement: replacement.into(),
    }
}

/// A zone: answers by query; anything else has no records.
#[derive(Default)]
struct Zone(HashMap<Query, Answer>);

impl Zone {
    fn with(mut self, q: Query, a: Answer) -> Zone {
        self.0.insert(q, a);
        self
    }

    /// Runs the locator to the end: the queries made and the targets.
    fn run(&self, mut l: Locator) -> (Vec<Query>, Vec<Target>) {
        let mut asked = Vec::new();
        loop {
            match l.poll() {
                Step::Query(q) => {
                    asked.push(q.clone());
                    assert!(asked.len() <= MAX_QUERIES + 1, "runaway: {asked:?}");
                    l.answer(self.0.get(&q).cloned().unwrap_or(Answer::None));
                }
                Step::Done(t) => return (asked, t),
            }
        }
    }
}

fn t(transport: Transport, addr: &str) -> Target {
    Target {
        transport,
        addr: addr.parse().unwrap(),
    }
}

#[test]
fn a_numeric_host_needs_no_dns() {
    let (asked, targets) = Zone::default().run(Locator::new("192.0.2.1", None, None, false));
    assert!(asked.is_empty());
    assert_eq!(targets, [t(Transport::Udp, "192.0.2.1:5060")]);
    let (_, targets) = Zone::default().run(Locator::new("[2001:db8::1]", Some(5070), None, true));
    assert_eq!(targets, [t(Transport::Tls, "[2001:db8::1]:5070")]);
}

#[test]
fn a_port_means_addresses_only() {
    let zone = Zone::default().with(
        Query::Addrs("pbx.example".into()),
        Answer::Addrs(vec![ip("192.0.2.5"), ip("2001:db8::5")]),
    );
    let (asked, targets) = zone.run(Locator::new("PBX.example.", Some(5080), None, false));
    assert_eq!(asked, [Query::Addrs("pbx.example".into())]);
    assert_eq!(
        targets,
        [
            t(Transport::Udp, "192.0.2.5:5080"),
            t(Transport::Udp, "[2001:db8::5]:5080")
        ]
    );
}

#[test]
fn naptr_then_srv_by_priority_then_addresses() {
    let zone = Zone::default()
        .with(
            Query::Naptr("trunk.example".into()),
            Answer::Naptr(vec![
                naptr(50, 50, "SIP+D2U", "_sip._udp.trunk.example."),
                naptr(90, 50, "SIP+D2T", "_sip._tcp.trunk.example."),
                naptr(10, 50, "SIPS+D2T", "_sips._tcp.trunk.example."),
                naptr(5, 50, "SIP+D2X", "_sip._sctp.trunk.example."),
            ]),
        )
        .with(
            Query::Srv("_sips._tcp.trunk.example".into()),
            Answer::Srv(vec![
                srv(20, 0, 5061, "b.trunk.example."),
                srv(10, 0, 5061, "a.trunk.example."),
            ]),
        )
        .with(
            Query::Srv("_sip._udp.trunk.example".into()),
            Answer::Srv(vec![srv(10, 0, 5060, "a.trunk.example.")]),
        )
        .with(
            Query::Addrs("a.trunk.example".into()),
            Answer::Addrs(vec![ip("192.0.2.10")]),
        )
        .with(
            Query::Addrs("b.trunk.example".into()),
            Answer::Addrs(vec![ip("192.0.2.11")]),
        );
    let (asked, targets) = zone.run(Locator::new("trunk.example", None, None, false));
    assert_eq!(
        asked[..4],
        [
            Query::Naptr("trunk.example".into()),
            Query::Srv("_sips._tcp.trunk.example".into()),
            Query::Srv("_sip._udp.trunk.example".into()),
            Query::Srv("_sip._tcp.trunk.example".into()),
        ]
    );
    assert_eq!(
        targets,
        [
            t(Transport::Tls, "192.0.2.10:5061"),
            t(Transport::Tls, "192.0.2.11:5061"),
            t(Transport::Udp, "192.0.2.10:5060"),
        ]
    );
}

#[test]
fn sips_uses_only_tls_services() {
    let zone = Zone::default()
        .with(
            Query::Naptr("trunk.example".into()),
            Answer::Naptr(vec![naptr(10, 10, "SIP+D2U", "_sip._udp.trunk.example")]),
        )
        .with(
            Query::Srv("_sips._tcp.trunk.example".into()),
            Answer::Srv(vec![srv(1, 1, 5062, "tls.trunk.example")]),
        )
        .with(
            Query::Addrs("tls.trunk.example".into()),
            Answer::Addrs(vec![ip("192.0.2.20")]),
        );
    let (asked, targets) = zone.run(Locator::new("trunk.example", None, None, true));
    // The UDP NAPTR is not for sips:, so the TLS SRV name is tried.
    assert_eq!(asked[1], Query::Srv("_sips._tcp.trunk.example".into()));
    assert_eq!(targets, [t(Transport::Tls, "192.0.2.20:5062")]);
}

#[test]
fn no_naptr_no_srv_falls_back_to_addresses_and_the_default_port() {
    let zone = Zone::default().with(
        Query::Addrs("pbx.example".into()),
        Answer::Addrs(vec![ip("192.0.2.30")]),
    );
    let (asked, targets) = zone.run(Locator::new("pbx.example", None, None, false));
    assert_eq!(
        asked,
        [
            Query::Naptr("pbx.example".into()),
            Query::Srv("_sips._tcp.pbx.example".into()),
            Query::Srv("_sip._tcp.pbx.example".into()),
            Query::Srv("_sip._udp.pbx.example".into()),
            Query::Addrs("pbx.example".into()),
        ]
    );
    assert_eq!(targets, [t(Transport::Udp, "192.0.2.30:5060")]);
    // With ;transport=tcp: that SRV only, then the host on 5060 over TCP.
    let (asked, targets) = zone.run(Locator::new(
        "pbx.example",
        None,
        Some(Transport::Tcp),
        false,
    ));
    assert_eq!(asked[0], Query::Srv("_sip._tcp.pbx.example".into()));
    assert_eq!(targets, [t(Transport::Tcp, "192.0.2.30:5060")]);
}

#[test]
fn a_name_that_resolves_to_nothing_gives_no_targets() {
    let (_, targets) = Zone::default().run(Locator::new("nowhere.example", None, None, false));
    assert!(targets.is_empty());
}

#[test]
fn srv_dot_targets_are_dropped() {
    let ordered = order_srv(
        &[srv(0, 0, 0, "."), srv(1, 0, 5060, "a.example")],
        &mut |n| n,
    );
    assert_eq!(ordered, [srv(1, 0, 5060, "a.example")]);
}

#[test]
fn srv_weights_share_the_first_place_in_proportion() {
    // 3:1 weights: over random draws 0..=4, the heavy one comes first
    // for draws 0..=3 (the running sum 3 >= draw) and the light one for 4.
    let records = [srv(10, 3, 1, "heavy"), srv(10, 1, 2, "light")];
    let mut first = HashMap::new();
    for draw in 0..=4 {
        let o = order_srv(&records, &mut |_| draw);
        *first.entry(o[0].target.clone()).or_insert(0) += 1;
    }
    assert_eq!(first["heavy"], 4);
    assert_eq!(first["light"], 1);
}

fn srv_strategy() -> impl Strategy<Value = SrvRecord> {
    (0u16..4, 0u16..100, 1u16..10, "[a-d]").prop_map(|(p, w, port, h)| srv(p, w, port, &h))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn srv_order_is_a_permutation_sorted_by_priority(
        records in proptest::collection::vec(srv_strategy(), 0..12),
        seed in any::<u64>(),
    ) {
        let mut x = seed;
        let mut random = move |n: u32| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if n == 0 { 0 } else { ((x >> 33) as u32) % (n + 1) }
        };
        let ordered = order_srv(&records, &mut random);
        prop_assert_eq!(ordered.len(), records.len());
        prop_assert!(ordered.windows(2).all(|w| w[0].priority <= w[1].priority));
        let mut a = records.clone();
        let mut b = ordered.clone();
        a.sort_by(|x, y| (x.priority, x.weight, x.port, &x.target).cmp(&(y.priority, y.weight, y.port, &y.target)));
        b.sort_by(|x, y| (x.priority, x.weight, x.port, &x.target).cmp(&(y.priority, y.weight, y.port, &y.target)));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn any_answers_end_in_bounded_targets(
        naptrs in proptest::collection::vec((0u16..5, 0u16..5, "(SIP\\+D2U|SIP\\+D2T|SIPS\\+D2T|X)", "[a-c]"), 0..6),
        srvs in proptest::collection::vec(srv_strategy(), 0..40),
        addrs in proptest::collection::vec(any::<[u8; 4]>(), 0..40),
        secure in any::<bool>(),
    ) {
        let mut l = Locator::new("example.test", None, None, secure);
        let mut steps = 0;
        let targets = loop {
            steps += 1;
            prop_assert!(steps <= MAX_QUERIES + 2);
            match l.poll() {
                Step::Query(Query::Naptr(_)) => l.answer(Answer::Naptr(
                    naptrs.iter().map(|(o, p, s, r)| naptr(*o, *p, s, r)).collect(),
                )),
                Step::Query(Query::Srv(_)) => l.answer(Answer::Srv(srvs.clone())),
                Step::Query(Query::Addrs(_)) => l.answer(Answer::Addrs(
                    addrs.iter().map(|a| IpAddr::from(*a)).collect(),
                )),
                Step::Done(t) => break t,
            }
        };
        prop_assert!(targets.len() <= MAX_TARGETS);
        if secure {
            prop_assert!(targets.iter().all(|t| t.transport == Transport::Tls));
        }
    }
}
