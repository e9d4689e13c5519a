//! Delayed offer (RFC 3261 section 13.2.1), offerless re-INVITE (RFC 3264
//! section 8), UPDATE (RFC 3311) and session timers (RFC 4028), on the
//! fake clock: against a scripted raw peer, and between two cores.

use super::tests::{Pair, SDP};
use super::tests_raw::{Raw, answered_call, request, status, statuses};
use super::*;
use crate::Method;
use crate::random::seeded_rng;
use crate::uri::Uri;
use std::cell::Cell;
use std::rc::Rc;

/// An answer to the offer our tests answer with (PCMU on port 4002).
const ANSWER: &str = "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

fn incoming(r: &Raw) -> IncomingCall {
    match r.events.first() {
        Some(Event::IncomingCall(inc)) => (**inc).clone(),
        other => panic!("no call: {other:?}"),
    }
}

fn requests(out: &[(SocketAddr, Message)], method: Method) -> Vec<Request> {
    out.iter()
        .filter_map(|(_, m)| match m {
            Message::Request(q) if q.method() == &method => Some(q.clone()),
            _ => None,
        })
        .collect()
}

fn header(m: &Message, name: HeaderName) -> Option<String> {
    m.headers()
        .get(&name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn ended(events: &[Event]) -> Vec<EndReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ended { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// An INVITE without SDP answered with our offer; returns the call, our tag.
fn delayed_offer_call(r: &mut Raw) -> (CallRef, String) {
    r.send(&request("INVITE", "inv", "c1", None, 1, "", ""));
    let inc = incoming(r);
    assert!(inc.offer.is_empty());
    r.ua.answer(r.now, inc.call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    let out = r.out();
    assert_eq!(statuses(&out), vec![100, 200]);
    assert_eq!(out[1].1.body(), SDP.as_bytes(), "the 200 carries our offer");
    (inc.call, inc.dialog.local_tag.to_string())
}

#[test]
fn an_invite_without_sdp_gets_our_offer_and_the_ack_brings_the_answer() {
    let mut r = Raw::new();
    let (call, tag) = delayed_offer_call(&mut r);
    r.send(&request("ACK", "ack", "c1", Some(&tag), 1, "", ANSWER));
    assert!(
        matches!(&r.events[1..], [Event::AnswerInAck { call: c, answer }, Event::Confirmed { call: d }]
            if *c == call && *d == call && answer == ANSWER.as_bytes()),
        "{:?}",
        r.events
    );
    assert!(
        r.advance(Duration::from_secs(40)).is_empty(),
        "no 200 again, no BYE"
    );
}

#[test]
fn an_ack_without_a_usable_answer_ends_the_call_with_bye() {
    for body in ["", "v=0\r\nnot sdp\r\n"] {
        let mut r = Raw::new();
        let (call, tag) = delayed_offer_call(&mut r);
        r.send(&request("ACK", "ack", "c1", Some(&tag), 1, "", body));
        let out = r.out();
        assert_eq!(requests(&out, Method::Bye).len(), 1, "BYE after the ACK");
        assert_eq!(ended(&r.events), vec![EndReason::BadAnswerInAck]);
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e, Event::Confirmed { .. }))
        );
        // The peer answers the BYE: the call is gone, its end told once.
        let bye = &requests(&out, Method::Bye)[0];
        let ok = bye.make_response(crate::StatusCode::OK, None);
        r.send(std::str::from_utf8(&ok.to_bytes()).unwrap());
        assert_eq!(r.ua.call_count(), 0, "{call:?}");
        assert_eq!(ended(&r.events).len(), 1);
    }
}

#[test]
fn a_delayed_offer_never_acked_retransmits_the_200_then_ends_ack_timeout() {
    let mut r = Raw::new();
    delayed_offer_call(&mut r);
    let sent = r.advance(Duration::from_secs(33));
    let oks = sent.iter().filter(|(_, m)| status(m) == 200).count();
    assert_eq!(oks, 10, "T1 doubling to T2 until 64*T1");
    assert!(
        sent.iter()
            .filter(|(_, m)| status(m) == 200)
            .all(|(_, m)| m.body() == SDP.as_bytes())
    );
    assert_eq!(ended(&r.events), vec![EndReason::AckTimeout]);
}

#[test]
fn a_reinvite_without_sdp_gets_our_current_sdp_unchanged_and_the_ack_answers() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let before = r.events.len();
    r.send(&request("INVITE", "re1", "c1", Some(&tag), 2, "", ""));
    let out = r.out();
    assert_eq!(statuses(&out), vec![200]);
    assert_eq!(
        out[0].1.body(),
        SDP.as_bytes(),
        "the same SDP, o= version unchanged"
    );
    assert_eq!(r.events.len(), before, "the core answers it alone");
    // Retransmitted until the ACK, which carries the answer.
    assert_eq!(r.advance(Duration::from_millis(600)).len(), 1);
    r.send(&request("ACK", "reack", "c1", Some(&tag), 2, "", ANSWER));
    assert!(matches!(r.events.last(), Some(Event::AnswerInAck { call: c, .. }) if *c == call));
    assert!(r.advance(Duration::from_secs(40)).is_empty());
}

#[test]
fn update_without_sdp_gets_200_and_with_sdp_is_an_offer_answered_once() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    r.send(&request("UPDATE", "u1", "c1", Some(&tag), 2, "", ""));
    let out = r.out();
    assert_eq!(statuses(&out), vec![200]);
    assert!(header(&out[0].1, HeaderName::Allow).is_some_and(|a| a.contains("UPDATE")));
    let hold = SDP.replace("a=sendrecv", "a=sendonly");
    r.send(&request("UPDATE", "u2", "c1", Some(&tag), 3, "", &hold));
    assert!(
        matches!(r.events.last(), Some(Event::Reinvite { call: c, hold: true, .. }) if *c == call)
    );
    assert!(r.out().is_empty(), "no 100 for a non-INVITE");
    // A second offer meanwhile: 491.
    r.send(&request("UPDATE", "u3", "c1", Some(&tag), 4, "", SDP));
    assert_eq!(statuses(&r.out()), vec![491]);
    r.ua.answer(r.now, call, Bytes::from_static(ANSWER.as_bytes()))
        .unwrap();
    let out = r.out();
    assert_eq!(statuses(&out), vec![200]);
    assert_eq!(out[0].1.body(), ANSWER.as_bytes());
    assert!(
        r.advance(Duration::from_secs(40)).is_empty(),
        "no ACK, no retransmission"
    );
    // A stale CSeq is refused.
    r.send(&request("UPDATE", "u4", "c1", Some(&tag), 2, "", ""));
    assert_eq!(statuses(&r.out()), vec![500]);
}

#[test]
fn a_session_interval_below_min_se_gets_422_with_our_min_se() {
    let mut r = Raw::new();
    let extra = "Supported: timer\r\nSession-Expires: 60\r\n";
    r.send(&request("INVITE", "inv", "c1", None, 1, extra, SDP));
    let out = r.out();
    assert_eq!(statuses(&out), vec![422]);
    assert_eq!(header(&out[0].1, HeaderName::MinSe).as_deref(), Some("90"));
    assert!(r.events.is_empty());
}

/// An INVITE with `extra` answered with our SDP and ACKed; returns the call,
/// our tag and our 200.
fn timed_call(r: &mut Raw, extra: &str) -> (CallRef, String, Message) {
    r.send(&request("INVITE", "inv", "c1", None, 1, extra, SDP));
    let inc = incoming(r);
    r.ua.answer(r.now, inc.call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    let out = r.out();
    let tag = inc.dialog.local_tag.to_string();
    r.send(&request("ACK", "ack", "c1", Some(&tag), 1, "", ""));
    (inc.call, tag, out[1].1.clone())
}

#[test]
fn the_peer_refreshes_and_a_missing_refresh_ends_the_call_with_bye() {
    let mut r = Raw::new();
    let extra = "Supported: timer\r\nSession-Expires: 120\r\nRequire: timer\r\n";
    let (call, tag, ok) = timed_call(&mut r, extra);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(header(&ok, HeaderName::Require).as_deref(), Some("timer"));
    // The caller refreshes at 60 s with UPDATE: the clock starts again.
    assert!(r.advance(Duration::from_secs(60)).is_empty());
    r.send(&request("UPDATE", "u1", "c1", Some(&tag), 2, extra, ""));
    let out = r.out();
    assert_eq!(statuses(&out), vec![200]);
    assert_eq!(
        header(&out[0].1, HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uac")
    );
    // 120 - min(32, 40) = 88 s after the refresh, nothing came: BYE.
    assert!(r.advance(Duration::from_secs(147)).is_empty());
    let sent = r.advance(Duration::from_secs(148));
    assert_eq!(sent.len(), 1);
    assert!(matches!(&sent[0].1, Message::Request(q) if q.method() == &Method::Bye));
    assert_eq!(
        ended(&r.events),
        vec![EndReason::SessionExpired],
        "{call:?}"
    );
}

#[test]
fn as_refresher_we_send_a_reinvite_with_our_sdp_at_half_the_interval() {
    let mut r = Raw::new();
    // The caller names us refresher and does not allow UPDATE.
    let extra = "Supported: timer\r\nSession-Expires: 100;refresher=uas\r\n";
    let (call, tag, ok) = timed_call(&mut r, extra);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("100;refresher=uas")
    );
    assert!(r.advance(Duration::from_secs(49)).is_empty());
    let sent = r.advance(Duration::from_secs(50));
    let Some((at, Message::Request(invite))) = sent.first() else {
        panic!("no refresh: {sent:?}")
    };
    assert_eq!(*at, Duration::from_secs(50));
    assert_eq!(invite.method(), &Method::Invite);
    assert_eq!(invite.body(), SDP.as_bytes(), "our SDP, version unchanged");
    assert_eq!(
        invite
            .headers()
            .get(&HeaderName::SessionExpires)
            .map(|v| v.to_vec()),
        Some(b"100;refresher=uac".to_vec())
    );
    // The peer's 200 (it keeps us refresher): we ACK; the application
    // hears nothing of it.
    let mut ok = invite.make_response(crate::StatusCode::OK, Some(&Tag::from("peer")));
    ok.headers_mut()
        .push(HeaderName::SessionExpires, "100;refresher=uac");
    let events = r.events.len();
    r.send(std::str::from_utf8(&ok.to_bytes()).unwrap());
    assert_eq!(requests(&r.out(), Method::Ack).len(), 1);
    assert_eq!(r.events.len(), events);
    // The next refresh is 50 s after that 200.
    let sent = r.advance(Duration::from_secs(100));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, Duration::from_secs(100));
    let _ = (call, tag);
}

#[test]
fn a_refresh_answered_481_ends_the_call() {
    let mut r = Raw::new();
    let extra = "Supported: timer\r\nSession-Expires: 100;refresher=uas\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n";
    timed_call(&mut r, extra);
    let sent = r.advance(Duration::from_secs(50));
    let Some((_, Message::Request(update))) = sent.first() else {
        panic!("no refresh: {sent:?}")
    };
    assert_eq!(update.method(), &Method::Update, "the peer allows UPDATE");
    assert!(update.body().is_empty());
    let gone = update.make_response(crate::StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST, None);
    r.send(std::str::from_utf8(&gone.to_bytes()).unwrap());
    assert_eq!(requests(&r.out(), Method::Bye).len(), 1);
    assert_eq!(ended(&r.events), vec![EndReason::SessionExpired]);
}

#[test]
fn no_session_timer_without_the_peers_support() {
    let mut r = Raw::new();
    let (_, _, ok) = timed_call(&mut r, "");
    assert_eq!(header(&ok, HeaderName::SessionExpires), None);
    assert_eq!(header(&ok, HeaderName::Require), None);
    assert!(r.advance(Duration::from_secs(4000)).is_empty());
}

fn short_timer_ua(port: u16, seed: u64) -> UserAgent {
    let mut cfg = Config::new(SocketAddr::from(([127, 0, 0, 1], port)));
    cfg.session_timer = crate::session_timer::TimerSettings {
        session_expires: Duration::from_secs(4),
        min_se: Duration::from_secs(2),
    };
    UserAgent::new(cfg, seeded_rng(seed))
}

#[test]
fn two_cores_keep_a_timed_call_alive_by_update_and_end_it_when_refreshes_stop() {
    let cut = Rc::new(Cell::new(false));
    let cut_link = Rc::clone(&cut);
    let mut p = Pair::new(Box::new(move |_, data| {
        // Once cut, nothing from A (port 5061's requests) arrives.
        let from_a = String::from_utf8_lossy(data).contains("Via: SIP/2.0/UDP 127.0.0.1:5061");
        let request = !data.starts_with(b"SIP/2.0");
        if cut_link.get() && from_a && request {
            None
        } else {
            Some(Duration::from_millis(10))
        }
    }));
    p.a = short_timer_ua(5061, 1);
    p.b = short_timer_ua(5062, 2);
    let offer = Bytes::from_static(SDP.as_bytes());
    let call =
        p.a.originate(
            p.now,
            Originate {
                to: Uri::parse(&Bytes::from_static(b"sip:bob@127.0.0.1:5062")).unwrap(),
                from: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:a@127.0.0.1")).unwrap()),
                target: SocketAddr::from(([127, 0, 0, 1], 5062)),
                offer: offer.clone(),
                credentials: None,
                extra_headers: Vec::new(),
            },
        )
        .unwrap();
    p.run(Duration::from_millis(50));
    let Some(Event::IncomingCall(inc)) = p.b_events.first().cloned() else {
        panic!("{:?}", p.b_events)
    };
    p.b.answer(p.now, inc.call, offer).unwrap();
    p.run(Duration::from_secs(30));
    // A (the caller, refresher by B's choice) sent an UPDATE every 2 s.
    let updates = p
        .wire
        .iter()
        .filter(|(_, a, l)| *a && l.starts_with("UPDATE"))
        .count();
    assert!((14..=15).contains(&updates), "{updates} refreshes in 30 s");
    assert!(ended(&p.a_events).is_empty() && ended(&p.b_events).is_empty());
    // A's refreshes stop arriving: B ends the call 4 - min(32, 4/3) s
    // after the last one it answered.
    cut.set(true);
    p.run(Duration::from_secs(10));
    assert_eq!(ended(&p.b_events), vec![EndReason::SessionExpired]);
    assert_eq!(p.b.call_count(), 0);
    // B's BYE reaches A (only A's requests are lost).
    assert_eq!(ended(&p.a_events), vec![EndReason::RemoteBye], "{call:?}");
}

mod interleavings {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Wait(u64),
        Update,
        ReinviteWithoutSdp,
        Ack { answer: bool },
        Bye,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..120).prop_map(Op::Wait),
            2 => Just(Op::Update),
            2 => Just(Op::ReinviteWithoutSdp),
            2 => any::<bool>().prop_map(|answer| Op::Ack { answer }),
            1 => Just(Op::Bye),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A timed call (120 s, the caller refreshes) under any order of
        /// refreshes, offerless re-INVITEs, ACKs with or without answers,
        /// BYE and waiting: the call ends at most once, a session expiry
        /// never comes before 88 s (120 - 32) after the last refresh we
        /// answered, and once ended the call is gone after Timer F.
        #[test]
        fn a_timed_call_ends_once_and_never_expires_early(ops in proptest::collection::vec(op(), 1..30)) {
            let mut r = Raw::new();
            let extra = "Supported: timer\r\nSession-Expires: 120\r\n";
            let (_, tag, _) = timed_call(&mut r, extra);
            let mut last_refresh = r.now;
            let mut seq = 2;
            for op in ops {
                let before = ended(&r.events).len();
                match op {
                    Op::Wait(s) => {
                        let at = r.now - r.t0 + Duration::from_secs(s);
                        let sent = r.advance(at);
                        let bye = sent.iter().find(|(_, m)| {
                            matches!(m, Message::Request(q) if q.method() == &Method::Bye)
                        });
                        if let Some((t, _)) = bye && before == 0 {
                            // Only the expiry sends BYE while time passes.
                            prop_assert!(r.t0 + *t >= last_refresh + Duration::from_secs(88));
                            prop_assert_eq!(ended(&r.events), vec![EndReason::SessionExpired]);
                        }
                    }
                    Op::Update | Op::ReinviteWithoutSdp => {
                        let method = if matches!(op, Op::Update) { "UPDATE" } else { "INVITE" };
                        r.send(&request(method, &format!("b{seq}"), "c1", Some(&tag), seq, extra, ""));
                        if r.out().iter().any(|(_, m)| status(m) == 200) {
                            last_refresh = r.now;
                        }
                        seq += 1;
                    }
                    Op::Ack { answer } => {
                        let body = if answer { ANSWER } else { "" };
                        r.send(&request("ACK", &format!("a{seq}"), "c1", Some(&tag), seq - 1, "", body));
                        r.out();
                    }
                    Op::Bye => {
                        r.send(&request("BYE", &format!("y{seq}"), "c1", Some(&tag), seq, "", ""));
                        r.out();
                        seq += 1;
                    }
                }
                let ends = ended(&r.events);
                prop_assert!(ends.len() <= 1, "{ends:?}");
            }
            let at = r.now - r.t0 + Duration::from_secs(300);
            r.advance(at);
            let ends = ended(&r.events);
            prop_assert_eq!(ends.len(), 1, "a call nobody refreshes expires: {:?}", ends);
            prop_assert_eq!(r.ua.call_count(), 0);
        }
    }
}

#[test]
fn an_outbound_invite_asks_for_our_session_timer() {
    let mut r = Raw::new();
    let o = Originate {
        to: Uri::parse(&Bytes::from_static(b"sip:bob@127.0.0.1:5070")).unwrap(),
        from: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:a@127.0.0.1")).unwrap()),
        target: super::tests_raw::peer(),
        offer: Bytes::from_static(SDP.as_bytes()),
        extra_headers: Vec::new(),
        credentials: None,
    };
    r.ua.originate(r.now, o).unwrap();
    let out = r.out();
    let invite = &requests(&out, Method::Invite)[0];
    let h = |n: HeaderName| {
        invite
            .headers()
            .get(&n)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(h(HeaderName::SessionExpires).as_deref(), Some("1800"));
    assert_eq!(h(HeaderName::MinSe).as_deref(), Some("90"));
    assert_eq!(h(HeaderName::Supported).as_deref(), Some("timer"));
    assert!(h(HeaderName::Allow).is_some_and(|a| a.contains("UPDATE")));
}
