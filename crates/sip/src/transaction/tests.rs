//! Transaction tests with simulated time: every retransmission and timeout
//! is counted at its exact instant (T1 = 500 ms, T2 = 4 s, T4 = 5 s).

use super::*;
use crate::header::{NameAddr, Via};
use crate::ids::{CallId, Tag};
use crate::uri::SipUri;
use crate::{Message, StatusCode as S};
use std::time::Duration;

const PEER: &str = "192.0.2.9:5060";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

fn request(method: Method, branch: &str) -> Request {
    let uri = SipUri::new(Host::domain("example.com")).with_user("bob");
    Request::builder(method, uri.clone())
        .via(&Via::new(
            "UDP",
            Host::Ipv4([192, 0, 2, 1].into()),
            Some(5060),
            &Branch::new(branch.to_string()),
        ))
        .from_addr(
            &NameAddr::new(SipUri::new(Host::domain("example.org"))).with_tag(&Tag::from("a1")),
        )
        .to_addr(&NameAddr::new(uri))
        .call_id(&CallId::from("c1"))
        .cseq(1)
        .build()
        .unwrap()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Advance to each deadline up to `end`, firing timers; returns the
/// offsets (from `t0`) at which datagrams were sent, and the events.
fn run(tx: &mut Transactions, t0: Instant, end: Duration) -> (Vec<Duration>, Vec<TxEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(at) = tx.poll_timeout() {
        if at > t0 + end {
            break;
        }
        tx.handle_timeout(at);
        while let Some(t) = tx.poll_transmit() {
            assert_eq!(t.dest, peer());
            assert_eq!(
                t.transport,
                Transport::Udp,
                "only the TCP tests send nothing"
            );
            sent.push(at - t0);
        }
        events.extend(std::iter::from_fn(|| tx.poll_event()));
    }
    (sent, events)
}

fn table() -> Transactions {
    Transactions::new(TimerConfig::default(), 8)
}

#[test]
fn invite_client_retransmits_until_timer_b() {
    let t0 = Instant::now();
    let mut tx = table();
    tx.send_request(t0, request(Method::Invite, "z9hG4bKa"), peer())
        .unwrap();
    assert!(tx.poll_transmit().is_some());
    let (sent, events) = run(&mut tx, t0, secs(100.0));
    // Timer A: T1, 2T1, 4T1, ... until Timer B at 64*T1 = 32 s.
    let expect: Vec<Duration> = [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
        .into_iter()
        .map(secs)
        .collect();
    assert_eq!(sent, expect);
    assert!(matches!(&events[..], [TxEvent::ClientTimeout { .. }]));
    assert!(tx.is_empty());
}

#[test]
fn non_invite_client_retransmits_capped_at_t2_until_timer_f() {
    let t0 = Instant::now();
    let mut tx = table();
    tx.send_request(t0, request(Method::Bye, "z9hG4bKb"), peer())
        .unwrap();
    tx.poll_transmit();
    let (sent, events) = run(&mut tx, t0, secs(100.0));
    let expect: Vec<Duration> = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        .into_iter()
        .map(secs)
        .collect();
    assert_eq!(sent, expect);
    assert!(matches!(&events[..], [TxEvent::ClientTimeout { .. }]));
}

#[test]
fn non_invite_client_retransmits_every_t2_after_a_provisional() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Options, "z9hG4bKc");
    tx.send_request(t0, req.clone(), peer()).unwrap();
    tx.poll_transmit();
    assert!(tx.route_response(t0, req.make_response(S::TRYING, None)));
    assert!(matches!(tx.poll_event(), Some(TxEvent::Response { .. })));
    let (sent, _) = run(&mut tx, t0, secs(9.0));
    // The first E (armed at T1) still fires, then every T2.
    assert_eq!(sent, vec![secs(0.5), secs(4.5), secs(8.5)]);
}

#[test]
fn invite_client_acks_non_2xx_once_per_response_and_ends_after_timer_d() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Invite, "z9hG4bKd");
    tx.send_request(t0, req.clone(), peer()).unwrap();
    tx.poll_transmit();
    let busy = req.make_response(S::BUSY_HERE, Some(&Tag::from("b1")));
    assert!(tx.route_response(t0, busy.clone()));
    let ack = tx.poll_transmit().unwrap();
    let Ok(Message::Request(ack)) = Message::parse(ack.data) else {
        panic!("ACK expected")
    };
    assert_eq!(ack.method(), &Method::Ack);
    assert_eq!(ack.headers().cseq().unwrap().seq, 1);
    assert_eq!(
        ack.headers().to_addr().unwrap().tag(),
        Some(Tag::from("b1"))
    );
    assert_eq!(
        ack.headers().top_via().unwrap().branch(),
        Some(Branch::from("z9hG4bKd"))
    );
    // The TU sees the 486 once; its retransmit is ACKed again, not passed up.
    assert!(
        matches!(tx.poll_event(), Some(TxEvent::Response { response, .. }) if response.status() == S::BUSY_HERE)
    );
    assert!(tx.route_response(t0 + secs(1.0), busy));
    assert!(tx.poll_transmit().is_some());
    assert!(tx.poll_event().is_none());
    let (sent, events) = run(&mut tx, t0, secs(40.0));
    assert!(sent.is_empty() && events.is_empty());
    assert!(tx.is_empty(), "Timer D ended the transaction");
}

#[test]
fn invite_client_passes_2xx_retransmits_to_the_tu_until_timer_m() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Invite, "z9hG4bKe");
    tx.send_request(t0, req.clone(), peer()).unwrap();
    tx.poll_transmit();
    let ok = req.make_response(S::OK, Some(&Tag::from("b2")));
    assert!(tx.route_response(t0, ok.clone()));
    assert!(tx.route_response(t0 + secs(0.5), ok.clone()));
    assert_eq!(std::iter::from_fn(|| tx.poll_event()).count(), 2);
    assert!(tx.poll_transmit().is_none(), "2xx ACK is the TU's job");
    run(&mut tx, t0, secs(33.0));
    assert!(tx.is_empty());
    assert!(!tx.route_response(t0 + secs(33.0), ok));
}

#[test]
fn server_invite_absorbs_retransmits_and_resends_the_last_provisional() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Invite, "z9hG4bKf");
    let Ok(Routed::New(key)) = tx.route_request(t0, &req, peer()) else {
        panic!("new transaction expected")
    };
    // Before any response a retransmit is silent.
    assert_eq!(tx.route_request(t0, &req, peer()), Ok(Routed::Absorbed));
    assert!(tx.poll_transmit().is_none());
    let trying = req.make_response(S::TRYING, None);
    assert!(tx.respond(t0, &key, &trying));
    let first = tx.poll_transmit().unwrap();
    assert_eq!(tx.route_request(t0, &req, peer()), Ok(Routed::Absorbed));
    assert_eq!(tx.poll_transmit(), Some(first));
}

#[test]
fn server_invite_retransmits_non_2xx_on_timer_g_until_the_ack() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Invite, "z9hG4bKg");
    let Ok(Routed::New(key)) = tx.route_request(t0, &req, peer()) else {
        panic!()
    };
    let busy = req.make_response(S::BUSY_HERE, Some(&Tag::from("s1")));
    tx.respond(t0, &key, &busy);
    tx.poll_transmit();
    let (sent, _) = run(&mut tx, t0, secs(8.0));
    assert_eq!(sent, vec![secs(0.5), secs(1.5), secs(3.5), secs(7.5)]);
    let ack = ack_for(&req, busy.headers().get(&crate::HeaderName::To));
    assert_eq!(
        tx.route_request(t0 + secs(8.0), &ack, peer()),
        Ok(Routed::Absorbed)
    );
    // Confirmed: no more retransmits; a repeated ACK is absorbed; Timer I ends it.
    assert_eq!(
        tx.route_request(t0 + secs(8.1), &ack, peer()),
        Ok(Routed::Absorbed)
    );
    assert_eq!(tx.poll_timeout(), Some(t0 + secs(13.0)));
    let (sent, events) = run(&mut tx, t0, secs(60.0));
    assert!(sent.is_empty() && events.is_empty());
    assert!(tx.is_empty());
}

#[test]
fn server_invite_gives_up_on_timer_h_without_ack() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Invite, "z9hG4bKh");
    let Ok(Routed::New(key)) = tx.route_request(t0, &req, peer()) else {
        panic!()
    };
    tx.respond(
        t0,
        &key,
        &req.make_response(S::DECLINE, Some(&Tag::from("s"))),
    );
    tx.poll_transmit();
    let (sent, events) = run(&mut tx, t0, secs(60.0));
    assert_eq!(
        sent.len(),
        10,
        "G at 0.5, 1.5, 3.5, 7.5, then every T2 to 31.5"
    );
    assert_eq!(sent.last(), Some(&secs(31.5)));
    assert!(matches!(&events[..], [TxEvent::ServerTimeout { key: k }] if *k == key));
    assert!(tx.is_empty());
}

#[test]
fn server_invite_after_2xx_absorbs_invite_and_leaves_the_ack_to_the_dialog() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Invite, "z9hG4bKi");
    let Ok(Routed::New(key)) = tx.route_request(t0, &req, peer()) else {
        panic!()
    };
    tx.respond(t0, &key, &req.make_response(S::OK, Some(&Tag::from("s"))));
    tx.poll_transmit();
    assert_eq!(tx.route_request(t0, &req, peer()), Ok(Routed::Absorbed));
    assert!(
        tx.poll_transmit().is_none(),
        "2xx retransmission is the TU's"
    );
    let ack = ack_for(&req, None);
    assert_eq!(tx.route_request(t0, &ack, peer()), Ok(Routed::Ack));
    run(&mut tx, t0, secs(33.0));
    assert!(tx.is_empty(), "Timer L ended it");
}

#[test]
fn server_non_invite_answers_a_retransmitted_bye_with_the_same_200_until_timer_j() {
    let t0 = Instant::now();
    let mut tx = table();
    let bye = request(Method::Bye, "z9hG4bKj");
    let Ok(Routed::New(key)) = tx.route_request(t0, &bye, peer()) else {
        panic!()
    };
    tx.respond(t0, &key, &bye.make_response(S::OK, None));
    let first = tx.poll_transmit().unwrap();
    assert_eq!(
        tx.route_request(t0 + secs(1.0), &bye, peer()),
        Ok(Routed::Absorbed)
    );
    assert_eq!(tx.poll_transmit(), Some(first));
    assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
    run(&mut tx, t0, secs(32.0));
    assert!(tx.is_empty());
    assert!(matches!(
        tx.route_request(t0 + secs(33.0), &bye, peer()),
        Ok(Routed::New(_))
    ));
}

fn tcp() -> Peer {
    Peer::new(Transport::Tcp, peer())
}

#[test]
fn over_tcp_a_non_invite_is_sent_once_and_ends_with_its_final_response() {
    let t0 = Instant::now();
    let mut tx = table();
    let req = request(Method::Bye, "z9hG4bKt1");
    tx.send_request(t0, req.clone(), tcp()).unwrap();
    assert_eq!(tx.poll_transmit().map(|t| t.peer()), Some(tcp()));
    // Only Timer F is armed: no Timer E.
    assert_eq!(tx.poll_timeout(), Some(t0 + secs(32.0)));
    assert!(tx.route_response(t0 + secs(1.0), req.make_response(S::OK, None)));
    // Timer K is zero: the transaction ends at the next tick.
    let (sent, _) = run(&mut tx, t0, secs(1.0));
    assert!(sent.is_empty());
    assert!(tx.is_empty());
}

#[test]
fn over_tcp_an_unanswered_invite_is_never_retransmitted_and_times_out_on_timer_b() {
    let t0 = Instant::now();
    let mut tx = table();
    tx.send_request(t0, request(Method::Invite, "z9hG4bKt2"), tcp())
        .unwrap();
    tx.poll_transmit();
    let (sent, events) = run(&mut tx, t0, secs(100.0));
    assert!(sent.is_empty());
    assert!(matches!(&events[..], [TxEvent::ClientTimeout { .. }]));
}

#[test]
fn over_tcp_a_server_non_invite_ends_with_its_final_response() {
    let t0 = Instant::now();
    let mut tx = table();
    let bye = request(Method::Bye, "z9hG4bKt3");
    let Ok(Routed::New(key)) = tx.route_request(t0, &bye, tcp()) else {
        panic!()
    };
    tx.respond(t0, &key, &bye.make_response(S::OK, None));
    assert_eq!(
        tx.poll_transmit().map(|t| t.transport),
        Some(Transport::Tcp)
    );
    // Timer J is zero.
    assert_eq!(tx.poll_timeout(), Some(t0));
    run(&mut tx, t0, secs(0.0));
    assert!(tx.is_empty());
}

#[test]
fn cancel_key_points_at_its_invite() {
    let invite = request(Method::Invite, "z9hG4bKk");
    let cancel = request(Method::Cancel, "z9hG4bKk");
    let ik = ServerKey::of(&invite).unwrap();
    let ck = ServerKey::of(&cancel).unwrap();
    assert_ne!(ik, ck);
    assert_eq!(ck.invite(), ik);
}

#[test]
fn the_table_is_bounded() {
    let t0 = Instant::now();
    let mut tx = Transactions::new(TimerConfig::default(), 2);
    for b in ["z9hG4bK1", "z9hG4bK2"] {
        assert!(matches!(
            tx.route_request(t0, &request(Method::Options, b), peer()),
            Ok(Routed::New(_))
        ));
    }
    assert_eq!(
        tx.route_request(t0, &request(Method::Options, "z9hG4bK3"), peer()),
        Ok(Routed::Full)
    );
    assert_eq!(
        tx.send_request(t0, request(Method::Options, "z9hG4bK4"), peer()),
        Err(TooManyTransactions { limit: 2 })
    );
}

mod interleavings {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Input {
        /// A response with this status arrives (client side).
        Response(u16),
        /// The INVITE (or request) is retransmitted, or its ACK arrives.
        Retransmit,
        Ack,
        /// Time passes.
        Wait(u64),
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            prop::sample::select(vec![100u16, 180, 200, 486, 603]).prop_map(Input::Response),
            Just(Input::Retransmit),
            Just(Input::Ack),
            (0u64..40_000).prop_map(Input::Wait),
        ]
    }

    proptest! {
        /// A client INVITE transaction, whatever responses arrive and
        /// however time passes: the TU gets at most one non-2xx final and
        /// at most one timeout, never both, and the transaction ends.
        #[test]
        fn client_invite_reports_one_outcome_and_terminates(inputs in prop::collection::vec(input(), 0..30)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut tx = table();
            let req = request(Method::Invite, "z9hG4bKp");
            tx.send_request(now, req.clone(), peer()).unwrap();
            let (mut finals, mut timeouts) = (0, 0);
            let mut count = |tx: &mut Transactions| {
                while let Some(e) = tx.poll_event() {
                    match e {
                        TxEvent::Response { response, .. } if response.status().as_u16() >= 300 => finals += 1,
                        TxEvent::ClientTimeout { .. } => timeouts += 1,
                        _ => {}
                    }
                }
            };
            for i in inputs {
                match i {
                    Input::Response(code) => {
                        let s = S::new(code).unwrap();
                        tx.route_response(now, req.make_response(s, Some(&Tag::from("t"))));
                    }
                    Input::Wait(ms) => {
                        now += Duration::from_millis(ms);
                        tx.handle_timeout(now);
                    }
                    Input::Retransmit | Input::Ack => {}
                }
                count(&mut tx);
            }
            now += Duration::from_secs(100);
            tx.handle_timeout(now);
            count(&mut tx);
            prop_assert!(finals <= 1 && timeouts <= 1 && finals + timeouts <= 1);
            // Only a transaction stuck in Proceeding (1xx, no final) may live on:
            // Timer B does not run there (the TU cancels).
            let proceeding = tx.client_invite_has_response(&ClientKey { branch: Branch::from("z9hG4bKp"), method: Method::Invite });
            prop_assert!(tx.is_empty() || proceeding);
        }

        /// A server INVITE transaction after a non-2xx final: retransmits and
        /// ACKs in any order and timing end it, with at most one Timer H.
        #[test]
        fn server_invite_after_a_final_ends_with_at_most_one_timeout(inputs in prop::collection::vec(input(), 0..30)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut tx = table();
            let req = request(Method::Invite, "z9hG4bKq");
            let Ok(Routed::New(key)) = tx.route_request(now, &req, peer()) else {
                return Err(TestCaseError::fail("no transaction"));
            };
            let busy = req.make_response(S::BUSY_HERE, Some(&Tag::from("s")));
            tx.respond(now, &key, &busy);
            let ack = ack_for(&req, busy.headers().get(&crate::HeaderName::To));
            let mut timeouts = 0;
            for i in inputs {
                match i {
                    // Once Timer I or H ended the transaction a copy would be a
                    // new request (RFC 3261 section 17.2.3); the peer stops
                    // retransmitting long before that.
                    Input::Retransmit if !tx.is_empty() => {
                        let r = tx.route_request(now, &req, peer());
                        prop_assert_eq!(r, Ok(Routed::Absorbed));
                    }
                    Input::Ack => {
                        let _ = tx.route_request(now, &ack, peer());
                    }
                    Input::Wait(ms) => {
                        now += Duration::from_millis(ms);
                        tx.handle_timeout(now);
                    }
                    Input::Response(_) | Input::Retransmit => {}
                }
                while let Some(e) = tx.poll_event() {
                    if matches!(e, TxEvent::ServerTimeout { .. }) {
                        timeouts += 1;
                    }
                }
            }
            now += Duration::from_secs(100);
            tx.handle_timeout(now);
            timeouts += std::iter::from_fn(|| tx.poll_event()).count();
            prop_assert!(timeouts <= 1);
            prop_assert!(tx.is_empty());
        }
    }
}
