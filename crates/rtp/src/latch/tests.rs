use super::*;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The caller's SDP address, on the signalling IP.
const CALLER: &str = "127.0.0.1:4000";

fn rules(policy: LatchPolicy) -> LatchRules {
    LatchRules::new(
        policy,
        Some("127.0.0.1".parse().unwrap()),
        vec![net("127.0.0.1/32")],
    )
}

#[test]
fn decision_table_rows_in_order() {
    let r = rules(LatchPolicy::SignallingIp);
    let peer = Some(a(CALLER));
    let fresh = LatchView {
        peer,
        peer_heard: false,
        latched: None,
        open: true,
    };
    let latched = LatchView {
        latched: Some(a("127.0.0.1:5000")),
        ..fresh
    };
    let heard = LatchView {
        peer_heard: true,
        ..fresh
    };
    let closed = LatchView {
        open: false,
        ..fresh
    };
    use LatchDecision::*;
    use RejectReason::{BeforeAnswer, NotPeer, OutsideAllowedPeers};
    let cases: [(&str, LatchRules, LatchView, &str, LatchDecision); 11] = [
        ("1 peer", r.clone(), fresh, CALLER, Accept),
        (
            "1 peer before the answer",
            r.clone(),
            closed,
            CALLER,
            Accept,
        ),
        (
            "1 peer returns",
            r.clone(),
            latched,
            CALLER,
            Returned(a(CALLER)),
        ),
        (
            "2 outside",
            r.clone(),
            fresh,
            "127.0.0.2:4000",
            Reject(OutsideAllowedPeers),
        ),
        (
            "2 outside v6",
            r.clone(),
            fresh,
            "[::1]:4000",
            Reject(OutsideAllowedPeers),
        ),
        ("3 latched", r.clone(), latched, "127.0.0.1:5000", Accept),
        (
            "4 other after latch",
            r.clone(),
            latched,
            "127.0.0.1:6000",
            Reject(NotPeer),
        ),
        (
            "4 other after peer",
            r.clone(),
            heard,
            "127.0.0.1:5000",
            Reject(NotPeer),
        ),
        (
            "5 strict",
            rules(LatchPolicy::Strict),
            fresh,
            "127.0.0.1:5000",
            Reject(RejectReason::LatchPolicy),
        ),
        (
            "6 before answer",
            r.clone(),
            closed,
            "127.0.0.1:5000",
            Reject(BeforeAnswer),
        ),
        (
            "7 nat",
            r.clone(),
            fresh,
            "127.0.0.1:5000",
            Latched(a("127.0.0.1:5000")),
        ),
    ];
    for (row, rules, view, src, want) in cases {
        assert_eq!(decide(&rules, &view, a(src)), want, "row {row}");
    }
}

#[test]
fn signalling_ip_policy_refuses_another_ip_inside_the_allowlist() {
    let r = LatchRules::new(
        LatchPolicy::SignallingIp,
        Some("10.0.0.1".parse().unwrap()),
        vec![net("10.0.0.0/8")],
    );
    let view = LatchView {
        open: true,
        ..LatchView::default()
    };
    assert_eq!(
        decide(&r, &view, a("10.0.0.2:7000")),
        LatchDecision::Reject(RejectReason::LatchPolicy)
    );
    assert_eq!(
        decide(&r, &view, a("10.0.0.1:7000")),
        LatchDecision::Latched(a("10.0.0.1:7000"))
    );
    let r = LatchRules {
        policy: LatchPolicy::AllowedPeers,
        ..r
    };
    assert_eq!(
        decide(&r, &view, a("10.0.0.2:7000")),
        LatchDecision::Latched(a("10.0.0.2:7000"))
    );
    assert_eq!(
        decide(&r, &view, a("192.0.2.1:7000")),
        LatchDecision::Reject(RejectReason::OutsideAllowedPeers)
    );
}

/// The attack of issue 14: a source on the signalling IP sprays our port
/// before the caller's first packet. It gets no latch before the answer,
/// at most the packets sent until the caller is heard after it, and
/// nothing once the caller was heard, however the two interleave.
#[test]
fn attacker_on_the_signalling_ip_sending_first_loses_the_latch_to_the_sdp_peer() {
    let caller = a(CALLER);
    let attacker = a("127.0.0.1:5000");
    let mut l = Latch::new(Some(caller), rules(LatchPolicy::SignallingIp), false);
    assert_eq!(l.remote(), Some(caller));
    // Before the answer nobody else can know our port.
    for _ in 0..50 {
        assert_eq!(
            l.check(attacker),
            LatchDecision::Reject(RejectReason::BeforeAnswer)
        );
        assert_eq!(l.remote(), Some(caller), "the attacker never gets media");
    }
    l.open();
    // Between the answer and the caller's first packet it may latch: it
    // is indistinguishable from the caller behind a NAT.
    assert_eq!(l.check(attacker), LatchDecision::Latched(attacker));
    assert_eq!(l.remote(), Some(attacker));
    // The caller's first packet takes the media back for good.
    assert_eq!(l.check(caller), LatchDecision::Returned(caller));
    assert_eq!(l.remote(), Some(caller));
    for _ in 0..500 {
        assert_eq!(
            l.check(attacker),
            LatchDecision::Reject(RejectReason::NotPeer)
        );
        assert_eq!(l.check(caller), LatchDecision::Accept);
        assert_eq!(l.remote(), Some(caller));
    }
}

#[test]
fn attacker_on_the_signalling_ip_after_the_caller_spoke_gets_nothing() {
    let caller = a(CALLER);
    let mut l = Latch::new(Some(caller), rules(LatchPolicy::SignallingIp), true);
    assert_eq!(l.check(caller), LatchDecision::Accept);
    for port in 5000..5100 {
        assert_eq!(
            l.check(a(&format!("127.0.0.1:{port}"))),
            LatchDecision::Reject(RejectReason::NotPeer)
        );
    }
    assert_eq!(l.remote(), Some(caller));
}

/// The attack of issue 14 from outside `sip.allowed_peers` (127.0.0.2, and
/// `::1` which was latched before): never taken, never served, under
/// every policy, before and after the caller is heard.
#[test]
fn attacker_outside_allowed_peers_is_never_latched_or_served() {
    let caller = a(CALLER);
    for policy in LatchPolicy::ALL {
        let mut l = Latch::new(Some(caller), rules(policy), true);
        for src in ["127.0.0.2:5000", "[::1]:5000", "[::ffff:127.0.0.2]:5000"] {
            assert_eq!(
                l.check(a(src)),
                LatchDecision::Reject(RejectReason::OutsideAllowedPeers),
                "{policy:?} {src}"
            );
            assert_eq!(l.remote(), Some(caller));
        }
        assert_eq!(l.check(caller), LatchDecision::Accept);
        assert_eq!(
            l.check(a("127.0.0.2:5000")),
            LatchDecision::Reject(RejectReason::OutsideAllowedPeers)
        );
    }
}

#[test]
fn strict_policy_hears_and_serves_only_the_sdp_peer() {
    let caller = a(CALLER);
    let mut l = Latch::new(Some(caller), rules(LatchPolicy::Strict), true);
    assert_eq!(
        l.check(a("127.0.0.1:5000")),
        LatchDecision::Reject(RejectReason::LatchPolicy)
    );
    assert_eq!(l.remote(), Some(caller));
    assert_eq!(l.check(caller), LatchDecision::Accept);
}

#[test]
fn caller_behind_a_nat_latches_from_the_signalling_ip_after_the_answer() {
    let sdp = a("127.0.0.1:4000");
    let nat = a("127.0.0.1:61000");
    let mut l = Latch::new(Some(sdp), rules(LatchPolicy::SignallingIp), false);
    l.open();
    assert_eq!(l.check(nat), LatchDecision::Latched(nat));
    for _ in 0..10 {
        assert_eq!(l.check(nat), LatchDecision::Accept);
    }
    assert_eq!(l.remote(), Some(nat));
}

/// Media is never sent outside the allowlist: an SDP address outside it
/// is not used; a source the policy allows may latch, and then is served.
#[test]
fn sdp_peer_outside_the_allowlist_is_never_sent_to() {
    let outside = a("192.0.2.9:4000");
    let r = rules(LatchPolicy::SignallingIp);
    assert!(r.serviceable(Some(outside)));
    assert!(!rules(LatchPolicy::Strict).serviceable(Some(outside)));
    assert!(rules(LatchPolicy::Strict).serviceable(Some(a(CALLER))));
    let mut l = Latch::new(Some(outside), r, true);
    assert_eq!(l.remote(), None);
    assert_eq!(
        l.check(outside),
        LatchDecision::Reject(RejectReason::OutsideAllowedPeers)
    );
    assert_eq!(l.remote(), None);
    let nat = a("127.0.0.1:61000");
    assert_eq!(l.check(nat), LatchDecision::Latched(nat));
    assert_eq!(l.remote(), Some(nat));
}

#[test]
fn new_sdp_address_moves_the_peer_and_the_same_one_changes_nothing() {
    let caller = a(CALLER);
    let mut l = Latch::new(Some(caller), rules(LatchPolicy::SignallingIp), true);
    assert_eq!(l.check(caller), LatchDecision::Accept);
    // A session refresh with the same address keeps the peer pinned.
    l.set_signalled(Some(caller));
    assert_eq!(
        l.check(a("127.0.0.1:5000")),
        LatchDecision::Reject(RejectReason::NotPeer)
    );
    // A re-INVITE moving the media: the new address is the peer, the old
    // one is just another source now.
    let moved = a("127.0.0.1:4100");
    l.set_signalled(Some(moved));
    assert_eq!(l.remote(), Some(moved));
    assert_eq!(l.check(moved), LatchDecision::Accept);
    assert_eq!(
        l.check(caller),
        LatchDecision::Reject(RejectReason::NotPeer)
    );
    // Hold with no address: nothing is sent.
    l.set_signalled(None);
    assert_eq!(l.remote(), None);
}

#[test]
fn mapped_ipv6_source_is_the_ipv4_peer() {
    let caller = a(CALLER);
    let mut l = Latch::new(Some(caller), rules(LatchPolicy::Strict), true);
    assert_eq!(l.check(a("[::ffff:127.0.0.1]:4000")), LatchDecision::Accept);
}

#[test]
fn policy_spellings_round_trip() {
    for p in LatchPolicy::ALL {
        assert_eq!(LatchPolicy::parse(p.as_str()), Some(p));
    }
    assert_eq!(LatchPolicy::parse("any"), None);
    assert_eq!(LatchPolicy::default(), LatchPolicy::SignallingIp);
}

#[test]
fn rejected_counts_by_reason_and_differences() {
    let mut c = RejectedPackets::default();
    c.count(RejectReason::NotPeer);
    c.count(RejectReason::NotPeer);
    let before = c;
    c.count(RejectReason::OutsideAllowedPeers);
    assert_eq!(c.total(), 3);
    let d = c.since(&before);
    assert_eq!(d.get(RejectReason::OutsideAllowedPeers), 1);
    assert_eq!(d.get(RejectReason::NotPeer), 0);
}

/// An outbound call whose INVITE failed over from 127.0.0.1 to the
/// server at 127.0.0.2: media from that server's IP (not its SDP port)
/// latches once the signalling IP follows, and the first server's IP no
/// longer may.
#[test]
fn the_signalling_ip_follows_a_failover_to_another_server() {
    let mut r = rules(LatchPolicy::SignallingIp);
    r.allowed = vec![net("127.0.0.0/8")];
    let sdp = a("127.0.0.2:4000");
    let relay = a("127.0.0.2:61000");
    let first = a("127.0.0.1:61000");
    let mut l = Latch::new(Some(sdp), r, true);
    assert_eq!(
        l.peek(relay),
        LatchDecision::Reject(RejectReason::LatchPolicy),
        "the first server's IP is the signalling IP until told otherwise"
    );
    l.set_signalling_ip(Some("::ffff:127.0.0.2".parse().unwrap()));
    assert_eq!(
        l.peek(first),
        LatchDecision::Reject(RejectReason::LatchPolicy)
    );
    assert_eq!(l.check(relay), LatchDecision::Latched(relay));
    assert_eq!(l.remote(), Some(relay));
}
