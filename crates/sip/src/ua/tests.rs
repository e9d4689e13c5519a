//! User-agent tests: two sans-IO cores over a simulated link (loss, delay,
//! reordering) with a fake clock, and one core against a scripted raw peer.

use super::*;
use crate::auth::Credentials;
use crate::random::seeded_rng;
use crate::status::StatusCode as S;
use crate::uri::Uri;

pub(crate) const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ua(port: u16, seed: u64) -> UserAgent {
    let mut cfg = Config::new(addr(port));
    cfg.ring_timeout = Duration::from_secs(20);
    UserAgent::new(cfg, seeded_rng(seed))
}

fn uri(s: &'static str) -> Uri {
    Uri::parse(&Bytes::from_static(s.as_bytes())).unwrap()
}

fn originate(target: SocketAddr) -> Originate {
    Originate {
        to: uri("sip:bob@127.0.0.1:5062"),
        from: NameAddr::new(uri("sip:alice@127.0.0.1:5061")),
        target,
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        extra_headers: Vec::new(),
    }
}

type Loss = Box<dyn FnMut(usize, &[u8]) -> Option<Duration>>;

/// Two user agents, A (port 5061) and B (port 5062), and the link between.
/// `link` returns `None` to drop datagram number n, else its delay.
pub(crate) struct Pair {
    pub t0: Instant,
    pub now: Instant,
    pub a: UserAgent,
    pub b: UserAgent,
    flight: Vec<(Instant, usize, SocketAddr, SocketAddr, Bytes)>,
    link: Loss,
    n: usize,
    pub a_events: Vec<Event>,
    pub b_events: Vec<Event>,
    pub wire: Vec<(Duration, bool, String)>,
}

impl Pair {
    pub fn new(link: Loss) -> Pair {
        let t0 = Instant::now();
        Pair {
            t0,
            now: t0,
            a: ua(5061, 1),
            b: ua(5062, 2),
            flight: Vec::new(),
            link,
            n: 0,
            a_events: Vec::new(),
            b_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    fn lossless() -> Pair {
        Pair::new(Box::new(|_, _| Some(Duration::from_millis(10))))
    }

    fn pump(&mut self) {
        for from_a in [true, false] {
            loop {
                let (src, t) = if from_a {
                    (addr(5061), self.a.poll_transmit())
                } else {
                    (addr(5062), self.b.poll_transmit())
                };
                let Some(t) = t else { break };
                let first_line = t.data.split(|&c| c == b'\r').next().unwrap_or(&[]);
                let label = String::from_utf8_lossy(first_line).into_owned();
                self.wire.push((self.now - self.t0, from_a, label));
                let n = self.n;
                self.n += 1;
                if let Some(delay) = (self.link)(n, &t.data) {
                    self.flight.push((self.now + delay, n, src, t.dest, t.data));
                }
            }
            let events = if from_a {
                &mut self.a_events
            } else {
                &mut self.b_events
            };
            let ua = if from_a { &mut self.a } else { &mut self.b };
            events.extend(std::iter::from_fn(|| ua.poll_event()));
        }
    }

    /// Run the simulation for `d` of simulated time.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next_flight = self.flight.iter().map(|f| f.0).min();
            let next = [next_flight, self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&n| n <= end) else {
                self.now = end;
                break;
            };
            self.now = self.now.max(next);
            let now = self.now;
            self.flight.sort_by_key(|f| (f.0, f.1));
            let due: Vec<_> = self.flight.iter().filter(|f| f.0 <= now).cloned().collect();
            self.flight.retain(|f| f.0 > now);
            for (_, _, src, dst, data) in due {
                if dst == addr(5061) {
                    self.a.handle_datagram(now, src, data);
                } else if dst == addr(5062) {
                    self.b.handle_datagram(now, src, data);
                }
            }
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
        }
    }

    fn sent_by(&self, from_a: bool, prefix: &str) -> usize {
        self.wire
            .iter()
            .filter(|(_, a, l)| *a == from_a && l.starts_with(prefix))
            .count()
    }
}

fn incoming(events: &[Event]) -> Vec<CallRef> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IncomingCall(c) => Some(c.call),
            _ => None,
        })
        .collect()
}

fn answer_all(p: &mut Pair) {
    let now = p.now;
    for call in incoming(&p.b_events) {
        let _ = p.b.ring(now, call);
        let _ = p.b.answer(now, call, Bytes::from_static(SDP.as_bytes()));
    }
}

#[test]
fn outbound_call_is_answered_acked_and_ended_by_bye() {
    let mut p = Pair::lossless();
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    let inbound = incoming(&p.b_events);
    assert_eq!(inbound.len(), 1);
    answer_all(&mut p);
    p.run(Duration::from_millis(100));
    assert!(
        matches!(p.a_events[..], [Event::Progress { status: S::RINGING, .. }, Event::Answered { call: c, .. }] if c == call)
    );
    assert!(matches!(
        p.b_events[..],
        [Event::IncomingCall(_), Event::Confirmed { .. }]
    ));
    p.a.hangup(p.now, call).unwrap();
    p.run(Duration::from_millis(100));
    assert!(matches!(
        p.a_events.last(),
        Some(Event::Ended {
            reason: EndReason::LocalHangup,
            ..
        })
    ));
    assert!(matches!(
        p.b_events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
    assert_eq!((p.a.call_count(), p.b.call_count()), (0, 0));
    assert_eq!(
        p.sent_by(false, "SIP/2.0 200"),
        2,
        "one 200 for INVITE, one for BYE"
    );
}

#[test]
fn originated_call_id_is_known_and_transactions_are_gone_after_timer_j() {
    let mut p = Pair::lossless();
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    let ours = p.a.call_id(call).cloned();
    p.run(Duration::from_millis(50));
    let theirs = p.b_events.iter().find_map(|e| match e {
        Event::IncomingCall(c) => Some(c.call_id.clone()),
        _ => None,
    });
    assert!(ours.is_some());
    assert_eq!(ours, theirs, "the INVITE carried the Call-ID we report");
    answer_all(&mut p);
    p.run(Duration::from_millis(100));
    p.a.hangup(p.now, call).unwrap();
    p.run(Duration::from_millis(100));
    assert_eq!(p.a.call_id(call), None, "gone with the call");
    assert!(
        p.b.transaction_count() > 0,
        "the BYE's server transaction lingers"
    );
    p.run(Duration::from_secs(33));
    assert_eq!((p.a.transaction_count(), p.b.transaction_count()), (0, 0));
}

#[test]
fn a_retransmitted_invite_never_makes_a_second_call() {
    // Drop everything B sends for the first 2 seconds: A retransmits the
    // INVITE at 0.5 s and 1.5 s; B absorbs both.
    let mut p = Pair::new(Box::new(|_, d| {
        let from_b = d.starts_with(b"SIP/2.0");
        (!from_b).then_some(Duration::from_millis(5))
    }));
    p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_secs(2));
    assert_eq!(p.sent_by(true, "INVITE"), 3);
    assert_eq!(incoming(&p.b_events).len(), 1);
    assert_eq!(p.b.stats().retransmissions_absorbed, 2);
}

#[test]
fn a_lost_ack_makes_the_uas_retransmit_its_200_and_the_uac_ack_again() {
    let mut dropped = false;
    let mut p = Pair::new(Box::new(move |_, d| {
        if d.starts_with(b"ACK") && !dropped {
            dropped = true;
            return None;
        }
        Some(Duration::from_millis(5))
    }));
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(20));
    answer_all(&mut p);
    p.run(Duration::from_secs(3));
    assert_eq!(
        p.sent_by(false, "SIP/2.0 200"),
        2,
        "200 at 0 s and once at T1"
    );
    assert_eq!(p.sent_by(true, "ACK"), 2);
    let answered = p
        .a_events
        .iter()
        .filter(|e| matches!(e, Event::Answered { .. }))
        .count();
    assert_eq!(answered, 1);
    assert!(matches!(p.b_events.last(), Some(Event::Confirmed { .. })));
    let _ = call;
}

#[test]
fn cancel_before_answer_gets_487_and_both_sides_end_once() {
    let mut p = Pair::lossless();
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    let inbound = incoming(&p.b_events)[0];
    p.b.ring(p.now, inbound).unwrap();
    p.run(Duration::from_millis(50));
    p.a.hangup(p.now, call).unwrap();
    p.run(Duration::from_millis(100));
    assert_eq!(p.sent_by(true, "CANCEL"), 1);
    assert_eq!(p.sent_by(false, "SIP/2.0 487"), 1);
    assert!(matches!(
        p.a_events.last(),
        Some(Event::Failed {
            outcome: Outcome::Cancelled,
            ..
        })
    ));
    assert!(matches!(
        p.b_events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteCancel,
            ..
        })
    ));
    assert_eq!(
        p.b.answer(p.now, inbound, Bytes::new()),
        Err(UaError::UnknownCall)
    );
    assert_eq!((p.a.call_count(), p.b.call_count()), (0, 0));
}

#[test]
fn final_responses_map_to_typed_outcomes() {
    for (status, outcome) in [
        (S::BUSY_HERE, Outcome::Busy),
        (S::BUSY_EVERYWHERE, Outcome::Busy),
        (S::DECLINE, Outcome::Rejected),
        (S::TEMPORARILY_UNAVAILABLE, Outcome::Unavailable),
        (S::SERVICE_UNAVAILABLE, Outcome::Unavailable),
        (S::NOT_FOUND, Outcome::Failed(S::NOT_FOUND)),
    ] {
        let mut p = Pair::lossless();
        let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
        p.run(Duration::from_millis(50));
        p.b.reject(p.now, incoming(&p.b_events)[0], status).unwrap();
        p.run(Duration::from_millis(50));
        assert!(
            matches!(p.a_events.last(), Some(Event::Failed { call: c, outcome: o }) if *c == call && *o == outcome),
            "{status:?}: {:?}",
            p.a_events
        );
        assert_eq!(
            p.sent_by(true, "ACK"),
            1,
            "the transaction ACKs the {status:?}"
        );
        assert_eq!((p.a.call_count(), p.b.call_count()), (0, 0));
    }
}

#[test]
fn no_response_at_all_is_unreachable_after_timer_b() {
    let mut p = Pair::new(Box::new(|_, _| None));
    p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_secs(31));
    assert!(p.a_events.is_empty());
    p.run(Duration::from_secs(2));
    assert!(matches!(
        p.a_events[..],
        [Event::Failed {
            outcome: Outcome::Unreachable,
            ..
        }]
    ));
    assert_eq!(p.sent_by(true, "INVITE"), 7);
}

#[test]
fn ringing_past_the_ring_timeout_is_cancelled_as_no_answer() {
    let mut p = Pair::lossless();
    p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    p.b.ring(p.now, incoming(&p.b_events)[0]).unwrap();
    p.run(Duration::from_secs(21));
    assert_eq!(p.sent_by(true, "CANCEL"), 1);
    assert!(matches!(
        p.a_events.last(),
        Some(Event::Failed {
            outcome: Outcome::NoAnswer,
            ..
        })
    ));
}

#[test]
fn shutdown_refuses_new_invites_with_503_while_calls_end() {
    let mut p = Pair::lossless();
    let first = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    answer_all(&mut p);
    p.run(Duration::from_millis(50));
    p.b.shutdown();
    assert!(!p.b.is_drained());
    p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    assert!(matches!(
        p.a_events.last(),
        Some(Event::Failed {
            outcome: Outcome::Unavailable,
            ..
        })
    ));
    assert_eq!(p.b.stats().refused_shutting_down, 1);
    p.a.hangup(p.now, first).unwrap();
    p.run(Duration::from_millis(50));
    assert!(p.b.is_drained());
}

#[test]
fn a_407_without_a_usable_challenge_fails_as_auth_failed() {
    let mut p = Pair::lossless();
    let mut o = originate(addr(5062));
    o.credentials = Some(Credentials::new("alice", "pw"));
    let call = p.a.originate(p.now, o).unwrap();
    p.run(Duration::from_millis(50));
    let inbound = incoming(&p.b_events)[0];
    // B plays a proxy asking for credentials: answer the INVITE with 407.
    p.b.reject(p.now, inbound, S::PROXY_AUTHENTICATION_REQUIRED)
        .unwrap();
    p.run(Duration::from_millis(50));
    // Without a challenge header the 407 cannot be answered: auth failure.
    assert!(
        matches!(p.a_events.last(), Some(Event::Failed { call: c, outcome: Outcome::AuthFailed }) if *c == call)
    );
}

mod interleavings {
    use super::*;
    use proptest::prelude::*;

    fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
        events.iter().filter(|e| f(e)).count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Any pattern of loss and reordering over the first 40 datagrams,
        /// any answer and hangup times: B sees at most one call, A's call
        /// ends in exactly one terminal event, and every event matches the
        /// tables (no call left behind on A; B's live calls are exactly
        /// those offered and not ended).
        #[test]
        fn any_loss_and_timing_ends_in_one_terminal_state_and_never_a_second_call(
            drops in prop::collection::vec(prop::bool::weighted(0.3), 40),
            delays in prop::collection::vec(0u64..700, 40),
            answer_ms in 0u64..3000,
            hangup_ms in 0u64..6000,
        ) {
            let link: Loss = Box::new(move |n, _| {
                if n < drops.len() && drops[n] {
                    None
                } else {
                    Some(Duration::from_millis(delays.get(n).copied().unwrap_or(5)))
                }
            });
            let mut p = Pair::new(link);
            let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
            let mut actions = [(answer_ms, true), (hangup_ms, false)];
            actions.sort();
            let mut t = 0;
            for (at, is_answer) in actions {
                p.run(Duration::from_millis(at - t));
                t = at;
                if is_answer {
                    answer_all(&mut p);
                } else {
                    let _ = p.a.hangup(p.now, call);
                }
            }
            p.run(Duration::from_secs(200));
            let offered = incoming(&p.b_events).len();
            prop_assert!(offered <= 1, "second call: {:?}", p.wire);
            let a_terminal = count(&p.a_events, |e| matches!(e, Event::Failed { .. } | Event::Ended { .. }));
            prop_assert_eq!(a_terminal, 1, "A events {:?}", p.a_events);
            prop_assert_eq!(p.a.call_count(), 0);
            let b_ended = count(&p.b_events, |e| matches!(e, Event::Ended { .. }));
            prop_assert!(b_ended <= offered);
            prop_assert_eq!(p.b.call_count(), offered - b_ended);
            let answered = count(&p.a_events, |e| matches!(e, Event::Answered { .. }));
            prop_assert!(answered <= 1);
        }
    }
}

#[test]
fn our_reinvite_holds_the_call_and_a_refused_one_leaves_it_up() {
    let mut p = Pair::lossless();
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    answer_all(&mut p);
    p.run(Duration::from_millis(50));
    let b_call = incoming(&p.b_events)[0];
    let hold = SDP.replace("a=sendrecv", "a=sendonly");
    p.a.reinvite(p.now, call, Bytes::from(hold)).unwrap();
    assert_eq!(
        p.a.reinvite(p.now, call, Bytes::new()),
        Err(UaError::WrongState(
            "not established, or a re-INVITE is pending"
        ))
    );
    p.run(Duration::from_millis(50));
    assert!(matches!(
        p.b_events.last(),
        Some(Event::Reinvite { hold: true, .. })
    ));
    p.b.answer(p.now, b_call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    p.run(Duration::from_secs(2));
    assert!(
        matches!(p.a_events.last(), Some(Event::ReinviteAnswered { call: c, .. }) if *c == call)
    );
    assert_eq!(
        p.sent_by(false, "SIP/2.0 200"),
        2,
        "the re-INVITE's 200 was ACKed"
    );
    p.a.reinvite(p.now, call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    p.run(Duration::from_millis(50));
    assert!(matches!(
        p.b_events.last(),
        Some(Event::Reinvite { hold: false, .. })
    ));
    p.b.reject(p.now, b_call, S::NOT_ACCEPTABLE_HERE).unwrap();
    p.run(Duration::from_millis(50));
    assert!(matches!(
        p.a_events.last(),
        Some(Event::ReinviteFailed {
            status: S::NOT_ACCEPTABLE_HERE,
            ..
        })
    ));
    p.a.hangup(p.now, call).unwrap();
    p.run(Duration::from_millis(50));
    assert!(matches!(
        p.b_events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
}

#[test]
fn a_200_crossing_our_cancel_is_acked_then_ended_with_bye() {
    let mut p = Pair::lossless();
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    let b_call = incoming(&p.b_events)[0];
    p.b.ring(p.now, b_call).unwrap();
    p.run(Duration::from_millis(50));
    // Same instant: A cancels, B answers; each message crosses the other.
    p.a.hangup(p.now, call).unwrap();
    p.b.answer(p.now, b_call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    p.run(Duration::from_millis(200));
    let a_sent: Vec<&str> = p
        .wire
        .iter()
        .filter(|(_, from_a, _)| *from_a)
        .map(|(_, _, l)| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(a_sent, vec!["INVITE", "CANCEL", "ACK", "BYE"]);
    assert!(matches!(
        p.a_events.last(),
        Some(Event::Failed {
            outcome: Outcome::Cancelled,
            ..
        })
    ));
    assert_eq!(
        p.a_events
            .iter()
            .filter(|e| matches!(e, Event::Ended { .. }))
            .count(),
        0,
        "the call's end is reported once, as Failed"
    );
    assert!(matches!(
        p.b_events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
    assert_eq!((p.a.call_count(), p.b.call_count()), (0, 0));
}

#[test]
fn refer_between_two_cores_is_refused_405_and_reported_as_transfer_failed_once() {
    let mut p = Pair::lossless();
    let call = p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    answer_all(&mut p);
    p.run(Duration::from_millis(100));
    p.a.refer(p.now, call, uri("sip:carol@127.0.0.1:5080"))
        .unwrap();
    p.run(Duration::from_secs(100));
    let transfers: Vec<_> = p
        .a_events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TransferAccepted { .. } | Event::TransferFailed { .. }
            )
        })
        .collect();
    assert!(matches!(
        transfers[..],
        [Event::TransferFailed { call: c, status: S::METHOD_NOT_ALLOWED }] if *c == call
    ));
    assert_eq!(p.sent_by(true, "REFER sip:"), 1);
    assert_eq!(
        (p.a.call_count(), p.b.call_count()),
        (1, 1),
        "the call goes on"
    );
}

#[test]
fn reject_warning_says_why_in_a_399_warning_header() {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let log = std::rc::Rc::clone(&seen);
    let mut p = Pair::new(Box::new(move |_, d| {
        log.borrow_mut()
            .push(String::from_utf8_lossy(d).into_owned());
        Some(Duration::from_millis(10))
    }));
    p.a.originate(p.now, originate(addr(5062))).unwrap();
    p.run(Duration::from_millis(50));
    let inbound = incoming(&p.b_events)[0];
    p.b.reject_warning(
        p.now,
        inbound,
        S::SERVICE_UNAVAILABLE,
        Some(Duration::from_secs(5)),
        "out of \"file\" descriptors",
    )
    .unwrap();
    p.run(Duration::from_millis(50));
    let resp = seen
        .borrow()
        .iter()
        .find(|m| m.starts_with("SIP/2.0 503"))
        .cloned()
        .unwrap();
    assert!(
        resp.contains("\r\nWarning: 399 callbridge \"out of file descriptors\"\r\n"),
        "{resp}"
    );
    assert!(resp.contains("\r\nRetry-After: 5\r\n"), "{resp}");
}

#[test]
fn reject_retry_after_sends_the_header_in_whole_seconds_and_plain_reject_none() {
    for (after, header) in [
        (
            Some(Duration::from_millis(29_500)),
            Some("Retry-After: 30\r\n"),
        ),
        (None, None),
    ] {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
        let log = std::rc::Rc::clone(&seen);
        let mut p = Pair::new(Box::new(move |_, d| {
            log.borrow_mut()
                .push(String::from_utf8_lossy(d).into_owned());
            Some(Duration::from_millis(10))
        }));
        p.a.originate(p.now, originate(addr(5062))).unwrap();
        p.run(Duration::from_millis(50));
        let inbound = incoming(&p.b_events)[0];
        match after {
            Some(d) => {
                p.b.reject_retry_after(p.now, inbound, S::SERVICE_UNAVAILABLE, d)
                    .unwrap()
            }
            None => p.b.reject(p.now, inbound, S::SERVICE_UNAVAILABLE).unwrap(),
        }
        p.run(Duration::from_millis(50));
        let resp = seen
            .borrow()
            .iter()
            .find(|m| m.starts_with("SIP/2.0 503"))
            .cloned()
            .unwrap();
        match header {
            Some(h) => assert!(resp.contains(&format!("\r\n{h}")), "{resp}"),
            None => assert!(!resp.contains("Retry-After"), "{resp}"),
        }
        assert!(matches!(
            p.a_events.last(),
            Some(Event::Failed {
                outcome: Outcome::Unavailable,
                ..
            })
        ));
    }
}
