//! An outbound INVITE to the targets of an RFC 3263 location (section
//! 4.3): on to the next target on a 503, on Timer B and on a connection
//! that cannot be made, as a new transaction (new branch) with the Via
//! and Contact of the new target's transport; not after a provisional
//! response, and a failure at the last target fails the call. One core
//! against scripted peers writing raw SIP, fake clock.

use super::tests::SDP;
use super::tests_auth::{branch, reply};
use super::tests_raw::Raw;
use super::*;
use crate::Method;
use crate::locate::Target;
use crate::uri::Uri;

const FIRST: &str = "127.0.0.1:5070";
const SECOND: &str = "127.0.0.1:5080";

fn target(transport: Transport, addr: &str) -> Target {
    Target {
        transport,
        addr: addr.parse().unwrap(),
    }
}

fn originate() -> Originate {
    let uri = |s: &'static str| Uri::parse(&Bytes::from_static(s.as_bytes())).unwrap();
    Originate {
        to: uri("sip:+15550001@trunk.example"),
        from: NameAddr::new(uri("sip:agent@127.0.0.1")),
        // Not used: the route replaces it.
        target: "192.0.2.1:5060".parse().unwrap(),
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        extra_headers: Vec::new(),
    }
}

fn config() -> Config {
    let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
    cfg.tcp_addr = Some("127.0.0.1:5072".parse().unwrap());
    cfg.tls_addr = Some("127.0.0.1:5073".parse().unwrap());
    cfg
}

/// The INVITEs sent since the last look, with their destination.
fn invites(r: &mut Raw) -> Vec<(Peer, Request)> {
    std::iter::from_fn(|| r.ua.poll_transmit())
        .filter_map(|t| match Message::parse(t.data.clone()).unwrap() {
            Message::Request(req) if req.method() == &Method::Invite => Some((t.peer(), req)),
            _ => None,
        })
        .collect()
}

fn place(r: &mut Raw, route: Vec<Target>) -> (CallRef, Request) {
    let call = r.ua.originate_located(r.now, originate(), route).unwrap();
    let mut sent = invites(r);
    assert_eq!(sent.len(), 1);
    let (peer, invite) = sent.remove(0);
    assert_eq!(peer, Peer::new(Transport::Udp, FIRST.parse().unwrap()));
    (call, invite)
}

fn failed(r: &Raw) -> Option<Outcome> {
    r.events.iter().find_map(|e| match e {
        Event::Failed { outcome, .. } => Some(*outcome),
        _ => None,
    })
}

#[test]
fn a_503_sends_the_invite_to_the_next_target_as_a_new_transaction() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Tcp, SECOND),
    ];
    let (call, first) = place(&mut r, route);
    r.send(&reply(&first, 503, "", ""));
    assert_eq!(failed(&r), None);
    let sent = invites(&mut r);
    assert_eq!(sent.len(), 1);
    let (peer, second) = &sent[0];
    assert_eq!(*peer, Peer::new(Transport::Tcp, SECOND.parse().unwrap()));
    // A new transaction: another branch; the same call.
    assert_ne!(branch(second), branch(&first));
    let h = second.headers();
    assert_eq!(h.call_id().unwrap(), first.headers().call_id().unwrap());
    assert_eq!(h.cseq().unwrap().seq, first.headers().cseq().unwrap().seq);
    assert_eq!(second.uri().to_string(), first.uri().to_string());
    // Via and Contact of the new transport.
    assert_eq!(&h.top_via().unwrap().transport()[..], b"TCP");
    assert_eq!(
        h.contacts().unwrap()[0].uri().to_string(),
        "sip:127.0.0.1:5072;transport=tcp"
    );
    assert_eq!(r.ua.stats().failovers, 1);
    // The application learns where the call's signalling went.
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
    assert!(
        r.events.iter().any(|e| matches!(e,
        Event::FailedOver { call: c, target } if *c == call && *target == SECOND.parse().unwrap()))
    );
    // The second target answers: the call is established there.
    r.ua.handle_message(r.now, *peer, Bytes::from(reply(second, 200, "", SDP)));
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::Answered { call: c, .. } if *c == call))
    );
}

#[test]
fn no_answer_until_timer_b_moves_on_and_the_last_target_failing_fails_the_call() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    let (call, first) = place(&mut r, route);
    // Timer B is 64*T1 = 32 s: not before.
    r.advance(Duration::from_millis(31_999));
    assert!(invites(&mut r).is_empty());
    let retransmitted = r.advance(Duration::from_secs(32));
    let to_second: Vec<_> = retransmitted
        .iter()
        .filter_map(|(at, m)| match m {
            Message::Request(req) if branch(req) != branch(&first) => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(to_second, [Duration::from_secs(32)]);
    assert_eq!(failed(&r), None);
    // The second target is silent too: the call fails at its Timer B.
    r.advance(Duration::from_secs(64));
    assert_eq!(failed(&r), Some(Outcome::Unreachable));
    assert!(r.ua.call_id(call).is_none());
}

#[test]
fn a_503_after_a_ringing_is_final_and_not_sent_elsewhere() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    let (_, first) = place(&mut r, route);
    r.send(&reply(&first, 180, "", ""));
    r.send(&reply(&first, 503, "", ""));
    assert!(invites(&mut r).is_empty());
    assert_eq!(failed(&r), Some(Outcome::Unavailable));
    assert_eq!(r.ua.stats().failovers, 0);
}

#[test]
fn other_final_responses_are_not_sent_elsewhere() {
    for code in [404, 486, 500, 603] {
        let mut r = Raw::with(config());
        let route = vec![
            target(Transport::Udp, FIRST),
            target(Transport::Udp, SECOND),
        ];
        let (_, first) = place(&mut r, route);
        r.send(&reply(&first, code, "", ""));
        assert!(invites(&mut r).is_empty(), "{code}");
        assert!(failed(&r).is_some(), "{code}");
    }
}

#[test]
fn a_connection_that_cannot_be_made_moves_on_at_once() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Tcp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    let call = r.ua.originate_located(r.now, originate(), route).unwrap();
    let sent = invites(&mut r);
    assert!(r.ua.call_id(call).is_some());
    assert_eq!(sent[0].0, Peer::new(Transport::Tcp, FIRST.parse().unwrap()));
    // Another peer's failure is not this call's.
    r.ua.transport_failed(r.now, Peer::new(Transport::Tcp, SECOND.parse().unwrap()));
    assert!(invites(&mut r).is_empty());
    r.ua.transport_failed(r.now, sent[0].0);
    let next = invites(&mut r);
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].0,
        Peer::new(Transport::Udp, SECOND.parse().unwrap())
    );
    assert_eq!(
        &next[0].1.headers().top_via().unwrap().transport()[..],
        b"UDP"
    );
    // With no target left, a failed connection fails the call now.
    let mut r = Raw::with(config());
    let call2 =
        r.ua.originate_located(r.now, originate(), vec![target(Transport::Tcp, FIRST)])
            .unwrap();
    let sent = invites(&mut r);
    r.ua.transport_failed(r.now, sent[0].0);
    r.events.extend(std::iter::from_fn(|| r.ua.poll_event()));
    assert!(matches!(
        r.events.as_slice(),
        [Event::Failed { call: c, outcome: Outcome::Unreachable }] if *c == call2
    ));
    assert!(r.ua.call_id(call2).is_none());
}

#[test]
fn a_hung_up_call_is_not_sent_elsewhere() {
    let mut r = Raw::with(config());
    let route = vec![
        target(Transport::Udp, FIRST),
        target(Transport::Udp, SECOND),
    ];
    let (call, first) = place(&mut r, route);
    r.ua.hangup(r.now, call).unwrap();
    r.send(&reply(&first, 503, "", ""));
    assert!(invites(&mut r).is_empty());
    assert!(failed(&r).is_some());
}

#[test]
fn an_empty_route_is_a_plain_originate() {
    let mut r = Raw::with(config());
    let mut o = originate();
    o.target = FIRST.parse().unwrap();
    r.ua.originate_located(r.now, o, Vec::new()).unwrap();
    let sent = invites(&mut r);
    assert_eq!(sent[0].0, Peer::new(Transport::Udp, FIRST.parse().unwrap()));
    r.send(&reply(&sent[0].1, 503, "", ""));
    assert_eq!(failed(&r), Some(Outcome::Unavailable));
}
