//! REGISTER to a registrar located by RFC 3263 (section 4.3 with RFC 3261
//! section 10): on to the next target on a 503, on Timer F and on a
//! connection that cannot be made, as a new transaction (new branch, CSeq
//! one higher, Via and Contact of the target's transport); a challenge
//! answered to the target that sent it; a new location before every
//! refresh and retry; a round with every target failed retried after a
//! doubling backoff. One core against scripted registrars writing raw
//! SIP, fake clock.

use super::tests_auth::{branch, reply};
use super::tests_raw::{Raw, challenge};
use super::*;
use crate::Method;
use crate::auth::Credentials;
use crate::locate::Target;
use crate::uri::Uri;

const FIRST: &str = "127.0.0.1:5070";
const SECOND: &str = "127.0.0.1:5080";
const THIRD: &str = "127.0.0.1:5090";

fn target(transport: Transport, addr: &str) -> Target {
    Target {
        transport,
        addr: addr.parse().unwrap(),
    }
}

fn peer(transport: Transport, addr: &str) -> Peer {
    Peer::new(transport, addr.parse().unwrap())
}

fn spec(credentials: Option<Credentials>) -> Register {
    let uri = |s: &'static str| Uri::parse(&Bytes::from_static(s.as_bytes())).unwrap();
    Register {
        registrar: uri("sip:trunk.example"),
        // Not used: the location replaces it.
        target: "192.0.2.1:5060".parse().unwrap(),
        aor: NameAddr::new(uri("sip:agent@trunk.example")),
        expires: 120,
        credentials,
    }
}

fn config() -> Config {
    let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
    cfg.tcp_addr = Some("127.0.0.1:5072".parse().unwrap());
    cfg
}

/// The REGISTERs sent since the last look, with their destination.
fn registers(r: &mut Raw) -> Vec<(Peer, Request)> {
    std::iter::from_fn(|| r.ua.poll_transmit())
        .filter_map(|t| match Message::parse(t.data.clone()).unwrap() {
            Message::Request(req) if req.method() == &Method::Register => Some((t.peer(), req)),
            _ => None,
        })
        .collect()
}

fn only_register(r: &mut Raw) -> (Peer, Request) {
    let mut sent = registers(r);
    assert_eq!(sent.len(), 1, "{sent:?}");
    sent.remove(0)
}

/// `text` arriving from `from`.
fn answer(r: &mut Raw, from: Peer, text: &str) {
    r.ua.handle_message(r.now, from, Bytes::from(text.to_string()));
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
}

/// Start a located registration, taking its first events.
fn start(r: &mut Raw, spec: Register, targets: Vec<Target>) -> RegistrationId {
    let id = r.ua.register_located(r.now, spec, targets).unwrap();
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
    id
}

/// Answer the core's [`Event::LocateRegistrar`], taking the events.
fn located(r: &mut Raw, id: RegistrationId, targets: Vec<Target>) {
    r.ua.registration_located(r.now, id, targets).unwrap();
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
}

fn ok(req: &Request) -> String {
    reply(req, 200, "", "").replace("Content-Length: 0", "Expires: 120\r\nContent-Length: 0")
}

fn states(r: &Raw) -> Vec<RegistrationState> {
    r.events
        .iter()
        .filter_map(|e| match e {
            Event::Registration { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

fn locate_asked(r: &Raw) -> usize {
    r.events
        .iter()
        .filter(|e| matches!(e, Event::LocateRegistrar { .. }))
        .count()
}

fn cseq(req: &Request) -> u32 {
    req.headers().cseq().unwrap().seq
}

#[test]
fn a_503_sends_the_register_to_the_next_target_as_a_new_transaction() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Tcp, SECOND),
    ];
    let id = start(&mut r, spec(None), route);
    let (to, first) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Udp, FIRST));
    answer(&mut r, to, &reply(&first, 503, "", ""));
    assert!(
        states(&r).is_empty(),
        "no failure reported while a target is left"
    );
    let (to, second) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Tcp, SECOND));
    assert_ne!(branch(&second), branch(&first));
    assert_eq!(cseq(&second), cseq(&first) + 1);
    let h = second.headers();
    assert_eq!(h.call_id().unwrap(), first.headers().call_id().unwrap());
    assert_eq!(second.uri().to_string(), "sip:trunk.example");
    assert_eq!(&h.top_via().unwrap().transport()[..], b"TCP");
    assert_eq!(
        h.contacts().unwrap()[0].uri().to_string(),
        "sip:127.0.0.1:5072;transport=tcp"
    );
    assert_eq!(r.ua.stats().register_failovers, 1);
    answer(&mut r, to, &ok(&second));
    assert_eq!(
        r.events.last().map(|e| matches!(e, Event::Registration { id: i, state: RegistrationState::Registered { expires: 120 } } if *i == id)),
        Some(true)
    );
    assert_eq!(r.ua.stats().register_failures, 0);
}

#[test]
fn no_answer_until_timer_f_moves_on() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    start(&mut r, spec(None), route);
    let (_, first) = only_register(&mut r);
    // Timer F is 64*T1 = 32 s: only retransmissions before it.
    let before = r.advance(Duration::from_millis(31_999));
    assert!(
        before
            .iter()
            .all(|(_, m)| matches!(m, Message::Request(q) if branch(q) == branch(&first)))
    );
    let at_f = r.advance(Duration::from_secs(32));
    let to_second: Vec<_> = at_f
        .iter()
        .filter_map(|(at, m)| match m {
            Message::Request(q) if branch(q) != branch(&first) => Some((*at, cseq(q))),
            _ => None,
        })
        .collect();
    assert_eq!(to_second, [(Duration::from_secs(32), cseq(&first) + 1)]);
    assert!(states(&r).is_empty());
    assert_eq!(r.ua.stats().register_failovers, 1);
}

#[test]
fn a_connection_that_cannot_be_made_moves_on_at_once() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Tcp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    start(&mut r, spec(None), route);
    let (to, first) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Tcp, FIRST));
    // Another peer's failure is not this registration's.
    r.ua.transport_failed(r.now, peer(Transport::Tcp, SECOND));
    assert!(registers(&mut r).is_empty());
    r.ua.transport_failed(r.now, to);
    let (to, second) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Udp, SECOND));
    assert_eq!(&second.headers().top_via().unwrap().transport()[..], b"UDP");
    assert_eq!(cseq(&second), cseq(&first) + 1);
    answer(&mut r, to, &ok(&second));
    // The first transaction timing out later changes nothing.
    r.advance(Duration::from_secs(33));
    assert!(matches!(
        states(&r).as_slice(),
        [RegistrationState::Registered { .. }]
    ));
}

#[test]
fn a_challenge_after_a_failover_is_answered_to_the_target_that_sent_it() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Udp, SECOND),
        target(Transport::Udp, THIRD),
    ];
    let creds = Credentials::new("agent", "pw");
    start(&mut r, spec(Some(creds)), route);
    let (to, first) = only_register(&mut r);
    answer(&mut r, to, &reply(&first, 503, "", ""));
    let (to, second) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Udp, SECOND));
    answer(
        &mut r,
        to,
        &challenge(&second, 401, "WWW-Authenticate", "MD5", "n1"),
    );
    let (to, third) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Udp, SECOND), "same target");
    assert_eq!(cseq(&third), cseq(&second) + 1);
    let auth = &third.headers().authorization().unwrap()[0];
    assert_eq!(super::tests_raw::param(auth, "nonce"), "n1");
    answer(&mut r, to, &ok(&third));
    assert!(matches!(
        states(&r).as_slice(),
        [RegistrationState::Registered { expires: 120 }]
    ));
}

#[test]
fn each_refresh_is_located_again_and_goes_to_the_new_first_target() {
    let mut r = Raw::with(config());
    let id = start(&mut r, spec(None), vec![target(Transport::Udp, FIRST)]);
    let (to, first) = only_register(&mut r);
    answer(&mut r, to, &ok(&first));
    assert_eq!(locate_asked(&r), 0);
    // Refresh at half of 120 s: first the location is asked for.
    assert!(r.advance(Duration::from_secs(59)).is_empty());
    r.advance(Duration::from_secs(60));
    assert_eq!(locate_asked(&r), 1);
    assert!(registers(&mut r).is_empty(), "nothing before the location");
    let zone = vec![target(Transport::Udp, THIRD), target(Transport::Udp, FIRST)];
    located(&mut r, id, zone);
    let (to, refresh) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Udp, THIRD));
    assert_eq!(cseq(&refresh), cseq(&first) + 1);
    assert_eq!(
        refresh.headers().call_id().unwrap(),
        first.headers().call_id().unwrap()
    );
    // A late second answer to the same question is ignored.
    located(&mut r, id, vec![target(Transport::Udp, SECOND)]);
    assert!(registers(&mut r).is_empty());
}

#[test]
fn every_target_failing_fails_once_and_retries_with_a_doubling_backoff() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    let id = start(&mut r, spec(None), route.clone());
    for _ in 0..2 {
        let (to, req) = only_register(&mut r);
        answer(&mut r, to, &reply(&req, 503, "", ""));
    }
    assert!(registers(&mut r).is_empty());
    assert_eq!(
        states(&r),
        [RegistrationState::Failed {
            status: StatusCode::SERVICE_UNAVAILABLE
        }],
        "reported once for the round"
    );
    assert_eq!(r.ua.stats().register_failures, 1);
    assert_eq!(r.ua.stats().register_failovers, 1);
    // register_retry (30 s) after the first failed round.
    r.advance(Duration::from_millis(29_999));
    assert_eq!(locate_asked(&r), 0);
    r.advance(Duration::from_secs(30));
    assert_eq!(locate_asked(&r), 1);
    // The second round fails at once (nothing found): 60 s to the third.
    located(&mut r, id, Vec::new());
    assert_eq!(r.ua.stats().register_failures, 2);
    assert!(matches!(
        states(&r).last(),
        Some(RegistrationState::Failed { status }) if *status == StatusCode::REQUEST_TIMEOUT
    ));
    r.advance(Duration::from_millis(89_999));
    assert_eq!(locate_asked(&r), 1);
    r.advance(Duration::from_secs(90));
    assert_eq!(locate_asked(&r), 2);
    // Success resets the backoff.
    located(&mut r, id, route);
    let (to, req) = only_register(&mut r);
    answer(&mut r, to, &ok(&req));
    assert!(matches!(
        states(&r).last(),
        Some(RegistrationState::Registered { .. })
    ));
}

#[test]
fn a_registrar_not_located_at_start_is_retried_with_backoff() {
    let mut r = Raw::with(config());
    let id = start(&mut r, spec(None), Vec::new());
    assert!(registers(&mut r).is_empty());
    assert_eq!(
        states(&r),
        [RegistrationState::Failed {
            status: StatusCode::REQUEST_TIMEOUT
        }]
    );
    r.advance(Duration::from_secs(30));
    assert_eq!(locate_asked(&r), 1);
    located(&mut r, id, vec![target(Transport::Udp, SECOND)]);
    let (to, req) = only_register(&mut r);
    assert_eq!(to, peer(Transport::Udp, SECOND));
    answer(&mut r, to, &ok(&req));
    assert!(matches!(
        states(&r).last(),
        Some(RegistrationState::Registered { expires: 120 })
    ));
}

#[test]
fn a_location_never_answered_fails_the_round_after_the_guard() {
    let mut r = Raw::with(config());
    let id = start(&mut r, spec(None), Vec::new());
    r.advance(Duration::from_secs(30));
    assert_eq!(locate_asked(&r), 1);
    r.advance(Duration::from_secs(30) + LOCATE_REGISTRAR_GUARD - Duration::from_millis(1));
    assert_eq!(r.ua.stats().register_failures, 1);
    r.advance(Duration::from_secs(30) + LOCATE_REGISTRAR_GUARD);
    assert_eq!(r.ua.stats().register_failures, 2);
    // The next round is asked for after the doubled backoff (60 s).
    r.advance(Duration::from_secs(119));
    assert_eq!(locate_asked(&r), 1);
    r.advance(Duration::from_secs(120));
    assert_eq!(locate_asked(&r), 2);
    // Unregistering one never located forgets it.
    r.ua.unregister(r.now, id).unwrap();
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
    assert!(matches!(
        states(&r).last(),
        Some(RegistrationState::Unregistered)
    ));
    assert!(r.ua.poll_timeout().is_none());
}
