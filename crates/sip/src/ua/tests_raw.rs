//! One user-agent core against a scripted peer that writes raw SIP text,
//! with a fake clock: exact retransmission counts, status codes and
//! headers for the UAS paths, digest retries and REGISTER refreshes.

use super::tests::SDP;
use super::*;
use crate::Method;
use crate::digest::{Algorithm, request_digest};
use crate::encode::Encode;
use crate::filter::{Rejection, SourceFilter};
use crate::random::seeded_rng;
use crate::uri::Uri;

const PEER: &str = "127.0.0.1:5070";

pub(super) struct Raw {
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) ua: UserAgent,
    pub(super) events: Vec<Event>,
}

pub(super) fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

impl Raw {
    pub(super) fn new() -> Raw {
        Raw::with(Config::new("127.0.0.1:5062".parse().unwrap()))
    }

    pub(super) fn with(cfg: Config) -> Raw {
        let t0 = Instant::now();
        Raw {
            t0,
            now: t0,
            ua: UserAgent::new(cfg, seeded_rng(3)),
            events: Vec::new(),
        }
    }

    pub(super) fn send_from(&mut self, from: SocketAddr, text: &str) {
        self.ua
            .handle_datagram(self.now, from, Bytes::from(text.to_string()));
        self.events
            .extend(std::iter::from_fn(|| self.ua.poll_event()));
    }

    pub(super) fn send(&mut self, text: &str) {
        self.send_from(peer(), text);
    }

    /// Everything the UA sent, parsed, with its destination.
    pub(super) fn out(&mut self) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| self.ua.poll_transmit())
            .map(|t| (t.dest, Message::parse(t.data).unwrap()))
            .collect()
    }

    /// Advance to `at` (from t0), firing timers; returns (offset, message).
    pub(super) fn advance(&mut self, at: Duration) -> Vec<(Duration, Message)> {
        let mut sent = Vec::new();
        while let Some(next) = self.ua.poll_timeout() {
            if next > self.t0 + at {
                break;
            }
            self.now = self.now.max(next);
            self.ua.handle_timeout(self.now);
            for (_, m) in self.out() {
                sent.push((self.now - self.t0, m));
            }
            self.events
                .extend(std::iter::from_fn(|| self.ua.poll_event()));
        }
        self.now = self.t0 + at;
        sent
    }
}

pub(super) fn status(m: &Message) -> u16 {
    match m {
        Message::Response(r) => r.status().as_u16(),
        Message::Request(_) => 0,
    }
}

pub(super) fn statuses(out: &[(SocketAddr, Message)]) -> Vec<u16> {
    out.iter().map(|(_, m)| status(m)).collect()
}

#[allow(clippy::too_many_arguments, reason = "test message template")]
pub(super) fn request(
    method: &str,
    branch: &str,
    call_id: &str,
    to_tag: Option<&str>,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() {
        String::new()
    } else if method == "INFO" {
        "Content-Type: application/dtmf-relay\r\n".to_string()
    } else if method == "NOTIFY" {
        "Content-Type: message/sipfrag\r\n".to_string()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    format!(
        "{method} sip:bob@127.0.0.1:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch};rport\r\n\
         From: <sip:alice@127.0.0.1:5070>;tag=peer\r\n\
         To: <sip:bob@127.0.0.1:5062>{to_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {cseq_method}\r\n\
         Contact: <sip:alice@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n{extra}{ctype}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Send an INVITE, answer it; returns the call and our tag.
pub(super) fn answered_call(r: &mut Raw, ack: bool) -> (CallRef, String) {
    r.send(&request("INVITE", "inv", "c1", None, 1, "", SDP));
    let Some(Event::IncomingCall(inc)) = r.events.first().cloned() else {
        panic!("no call: {:?}", r.events)
    };
    r.ua.answer(r.now, inc.call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    let out = r.out();
    assert_eq!(statuses(&out), vec![100, 200]);
    let tag = inc.dialog.local_tag.to_string();
    if ack {
        r.send(&request("ACK", "ack", "c1", Some(&tag), 1, "", ""));
    }
    (inc.call, tag)
}

#[test]
fn unacked_200_is_retransmitted_on_t1_doubling_to_t2_then_bye_at_64_t1() {
    let mut r = Raw::new();
    let (call, _) = answered_call(&mut r, false);
    let sent = r.advance(Duration::from_secs(32));
    let oks: Vec<Duration> = sent
        .iter()
        .filter(|(_, m)| status(m) == 200)
        .map(|(t, _)| *t)
        .collect();
    let expect: Vec<Duration> = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        .into_iter()
        .map(Duration::from_secs_f64)
        .collect();
    assert_eq!(oks, expect);
    let byes: Vec<_> = sent
        .iter()
        .filter(|(_, m)| matches!(m, Message::Request(q) if q.method() == &Method::Bye))
        .collect();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0, Duration::from_secs(32));
    // The call is over when the core gives up on the ACK, not when the
    // BYE completes (another 64*T1 when the peer is gone).
    let ended = |r: &Raw| {
        r.events
            .iter()
            .filter(|e| matches!(e, Event::Ended { call: c, reason: EndReason::AckTimeout } if *c == call))
            .count()
    };
    assert_eq!(ended(&r), 1, "Ended(AckTimeout) at Timer H: {:?}", r.events);
    // The peer never answers the BYE either: Timer F removes the call,
    // and the end is not reported twice.
    r.advance(Duration::from_secs(70));
    assert_eq!(ended(&r), 1);
    assert!(!r.events.iter().any(|e| matches!(
        e,
        Event::Ended {
            reason: EndReason::LocalHangup,
            ..
        }
    )));
    assert_eq!(r.ua.call_count(), 0);
}

#[test]
fn bye_is_answered_200_and_its_retransmission_gets_the_same_200_then_481_after() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    assert!(matches!(r.events.last(), Some(Event::Confirmed { call: c }) if *c == call));
    let bye = request("BYE", "bye1", "c1", Some(&tag), 2, "", "");
    r.send(&bye);
    let first = r.out();
    assert_eq!(statuses(&first), vec![200]);
    r.send(&bye);
    let again = r.out();
    assert_eq!(again, first, "the transaction answers the retransmission");
    let ended = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::Ended { .. }))
        .count();
    assert_eq!(ended, 1, "one teardown only");
    r.send(&request("BYE", "bye2", "c1", Some(&tag), 3, "", ""));
    assert_eq!(statuses(&r.out()), vec![481]);
}

#[test]
fn in_dialog_requests_for_unknown_dialogs_get_481() {
    let mut r = Raw::new();
    r.send(&request("BYE", "b", "nope", Some("x"), 2, "", ""));
    r.send(&request("INVITE", "i", "nope", Some("x"), 2, "", SDP));
    r.send(&request("CANCEL", "c", "nope", None, 1, "", ""));
    assert_eq!(statuses(&r.out()), vec![481, 481, 481]);
    assert!(r.events.is_empty());
}

#[test]
fn options_gets_200_with_allow_and_unknown_methods_get_405_with_allow() {
    let mut r = Raw::new();
    r.send(&request("OPTIONS", "o", "c2", None, 1, "", ""));
    r.send(&request("SUBSCRIBE", "s", "c3", None, 1, "", ""));
    let out = r.out();
    assert_eq!(statuses(&out), vec![200, 405]);
    for (dest, m) in &out {
        assert_eq!(*dest, peer());
        assert_eq!(m.headers().get(&HeaderName::Allow).unwrap(), ALLOW);
    }
}

#[test]
fn required_extensions_get_420_with_unsupported_and_foreign_uri_schemes_416() {
    let mut r = Raw::new();
    r.send(&request(
        "INVITE",
        "x1",
        "c7",
        None,
        1,
        "Require: 100rel\r\n",
        SDP,
    ));
    let out = r.out();
    assert_eq!(statuses(&out), vec![420]);
    assert_eq!(
        out[0].1.headers().get(&HeaderName::Unsupported).unwrap(),
        "100rel"
    );
    let mailto = request("OPTIONS", "x2", "c8", None, 1, "", "").replace(
        "OPTIONS sip:bob@127.0.0.1:5062",
        "OPTIONS mailto:bob@example.com",
    );
    r.send(&mailto);
    assert_eq!(statuses(&r.out()), vec![416]);
    assert!(r.events.is_empty());
}

#[test]
fn malformed_requests_are_answered_400_with_a_reason_or_dropped_and_counted() {
    let mut r = Raw::new();
    let bad_cseq = request("OPTIONS", "m", "c4", None, 1, "", "")
        .replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    r.send(&bad_cseq);
    // The answer copies the bad CSeq verbatim (RFC 3261 section 8.2.6.2).
    let out = r.ua.poll_transmit().unwrap();
    assert_eq!(out.dest, peer());
    assert!(out.data.starts_with(b"SIP/2.0 400 Bad CSeq\r\n"));
    assert!(r.ua.poll_transmit().is_none());
    r.send("garbage\r\n\r\n");
    assert!(r.out().is_empty());
    let s = r.ua.stats();
    assert_eq!((s.malformed_answered, s.malformed_dropped), (1, 1));
}

#[test]
fn sources_outside_the_allowlist_get_403_or_nothing_and_never_a_call() {
    for (rejection, expect) in [(Rejection::Forbidden, vec![403]), (Rejection::Drop, vec![])] {
        let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
        cfg.filter = SourceFilter::only(vec!["10.0.0.0/8".parse().unwrap()], rejection);
        let mut r = Raw::with(cfg);
        r.send(&request("INVITE", "f", "c5", None, 1, "", SDP));
        assert_eq!(statuses(&r.out()), expect);
        assert!(r.events.is_empty());
        assert_eq!(r.ua.stats().filtered, 1);
        assert_eq!(r.ua.call_count(), 0);
    }
}

#[test]
fn responses_follow_rport_and_carry_received() {
    let mut r = Raw::new();
    let nat: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    r.send_from(nat, &request("OPTIONS", "n", "c6", None, 1, "", ""));
    let out = r.out();
    assert_eq!(out[0].0, nat);
    let via = out[0].1.headers().top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(40000)));
    assert_eq!(via.received(), Some(nat.ip()));
}

#[test]
fn reinvite_to_hold_is_an_event_and_its_200_is_retransmitted_until_ack() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let hold_sdp = SDP.replace("a=sendrecv", "a=sendonly");
    r.send(&request(
        "INVITE",
        "re1",
        "c1",
        Some(&tag),
        2,
        "",
        &hold_sdp,
    ));
    assert!(
        matches!(r.events.last(), Some(Event::Reinvite { call: c, hold: true, .. }) if *c == call)
    );
    assert_eq!(statuses(&r.out()), vec![100]);
    // A second re-INVITE while the first is pending: 491.
    r.send(&request("INVITE", "re2", "c1", Some(&tag), 3, "", SDP));
    assert_eq!(statuses(&r.out()), vec![491]);
    // Its ACK (same branch) stops the 491's Timer G retransmissions.
    r.send(&request("ACK", "re2", "c1", Some(&tag), 3, "", ""));
    assert!(r.out().is_empty());
    r.ua.answer(r.now, call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    assert_eq!(statuses(&r.out()), vec![200]);
    let sent = r.advance(Duration::from_secs(2));
    let at: Vec<_> = sent.iter().map(|(t, m)| (*t, status(m))).collect();
    assert_eq!(sent.len(), 2, "200 again at 0.5 s and 1.5 s: {at:?}");
    r.send(&request("ACK", "reack", "c1", Some(&tag), 2, "", ""));
    assert!(r.advance(Duration::from_secs(10)).is_empty());
    r.send(&request("INVITE", "re3", "c1", Some(&tag), 4, "", SDP));
    assert!(matches!(
        r.events.last(),
        Some(Event::Reinvite { hold: false, .. })
    ));
}

#[test]
fn info_with_dtmf_relay_is_a_dtmf_event() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    r.send(&request(
        "INFO",
        "i1",
        "c1",
        Some(&tag),
        2,
        "",
        "Signal=7\r\nDuration=160\r\n",
    ));
    assert_eq!(statuses(&r.out()), vec![200]);
    assert!(
        matches!(r.events.last(), Some(Event::Dtmf { call: c, digit: '7', duration_ms: 160 }) if *c == call)
    );
}

#[test]
fn an_invite_reusing_a_live_call_id_on_a_new_branch_is_a_loop() {
    let mut r = Raw::new();
    answered_call(&mut r, true);
    r.send(&request("INVITE", "other", "c1", None, 1, "", SDP));
    assert_eq!(statuses(&r.out()), vec![482]);
    let calls = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::IncomingCall(_)))
        .count();
    assert_eq!(calls, 1);
}

pub(super) fn param(v: &crate::AuthValue, name: &str) -> String {
    String::from_utf8(v.param(name).unwrap().to_vec()).unwrap()
}

pub(super) fn challenge(req: &Request, code: u16, header: &str, alg: &str, nonce: &str) -> String {
    let h = req.headers();
    let via = String::from_utf8(h.get(&HeaderName::Via).unwrap().to_vec()).unwrap();
    let from = String::from_utf8(h.get(&HeaderName::From).unwrap().to_vec()).unwrap();
    let to = String::from_utf8(h.get(&HeaderName::To).unwrap().to_vec()).unwrap();
    let cseq = h.cseq().unwrap();
    format!(
        "SIP/2.0 {code} Auth\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to};tag=srv\r\n\
         Call-ID: {}\r\nCSeq: {} {}\r\n\
         {header}: Digest realm=\"trunk\", nonce=\"{nonce}\", qop=\"auth\", algorithm={alg}\r\n\
         Content-Length: 0\r\n\r\n",
        h.call_id().unwrap(),
        cseq.seq,
        cseq.method
    )
}

pub(super) fn only_request(out: Vec<(SocketAddr, Message)>, method: Method) -> Request {
    let reqs: Vec<Request> = out
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Request(q) if q.method() == &method => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 1, "{method:?}");
    reqs.into_iter().next().unwrap()
}

#[test]
fn invite_answers_a_407_sha256_challenge_with_a_correct_digest() {
    let mut r = Raw::new();
    let o = Originate {
        to: Uri::parse(&Bytes::from_static(b"sip:+15550001@127.0.0.1:5070")).unwrap(),
        from: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:agent@127.0.0.1")).unwrap()),
        target: peer(),
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: Some(Credentials::new("agent", "s3cret")),
        extra_headers: Vec::new(),
    };
    r.ua.originate(r.now, o).unwrap();
    let invite = only_request(r.out(), Method::Invite);
    r.send(&challenge(
        &invite,
        407,
        "Proxy-Authenticate",
        "SHA-256",
        "n0nce",
    ));
    let out = r.out();
    only_request(out.clone(), Method::Ack);
    let retry = only_request(out, Method::Invite);
    assert_eq!(retry.headers().cseq().unwrap().seq, 2);
    assert_eq!(retry.headers().call_id(), invite.headers().call_id());
    assert_ne!(
        retry.headers().top_via().unwrap().branch(),
        invite.headers().top_via().unwrap().branch()
    );
    let auth = &retry.headers().proxy_authorization().unwrap()[0];
    assert_eq!(param(auth, "nc"), "00000001");
    let expect = request_digest(
        Algorithm::Sha256,
        "agent",
        "trunk",
        "s3cret",
        "n0nce",
        "INVITE",
        "sip:+15550001@127.0.0.1:5070",
        Some((1, &param(auth, "cnonce"))),
    );
    assert_eq!(param(auth, "response"), expect);
    // The same nonce challenged again: wrong password, AuthFailed.
    r.send(&challenge(
        &retry,
        407,
        "Proxy-Authenticate",
        "SHA-256",
        "n0nce",
    ));
    assert!(matches!(
        r.events.last(),
        Some(Event::Failed {
            outcome: Outcome::AuthFailed,
            ..
        })
    ));
}

#[test]
fn register_answers_a_401_then_refreshes_before_expiry_reusing_the_nonce() {
    let mut r = Raw::new();
    let spec = Register {
        registrar: Uri::parse(&Bytes::from_static(b"sip:127.0.0.1:5070")).unwrap(),
        target: peer(),
        aor: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:agent@127.0.0.1")).unwrap()),
        expires: 120,
        credentials: Some(Credentials::new("agent", "pw")),
    };
    let id = r.ua.register(r.now, spec).unwrap();
    let first = only_request(r.out(), Method::Register);
    assert!(first.headers().authorization().unwrap().is_empty());
    r.send(&challenge(&first, 401, "WWW-Authenticate", "MD5", "abc"));
    let second = only_request(r.out(), Method::Register);
    let auth = &second.headers().authorization().unwrap()[0];
    assert_eq!(param(auth, "nc"), "00000001");
    let ok = challenge(&second, 200, "X-Ignored", "MD5", "abc").replace(
        "Content-Length: 0",
        "Contact: <sip:127.0.0.1:5062>;expires=100\r\nContent-Length: 0",
    );
    r.send(&ok);
    assert!(
        matches!(r.events.last(), Some(Event::Registration { id: i, state: RegistrationState::Registered { expires: 100 } }) if *i == id)
    );
    assert!(r.advance(Duration::from_secs(49)).is_empty());
    let sent = r.advance(Duration::from_secs(50));
    let Some((at, Message::Request(refresh))) = sent.into_iter().next() else {
        panic!("no refresh")
    };
    assert_eq!(at, Duration::from_secs(50));
    assert_eq!(refresh.headers().cseq().unwrap().seq, 3);
    let auth = &refresh.headers().authorization().unwrap()[0];
    assert_eq!(
        param(auth, "nc"),
        "00000002",
        "nonce reused with the next count"
    );
}

#[test]
fn an_inbound_call_the_application_ignores_gets_480_after_the_answer_timeout() {
    let mut r = Raw::new();
    r.send(&request("INVITE", "slow", "c9", None, 1, "", SDP));
    assert_eq!(statuses(&r.out()), vec![100]);
    assert!(r.advance(Duration::from_secs(119)).is_empty());
    let sent = r.advance(Duration::from_secs(120));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, Duration::from_secs(120));
    assert_eq!(status(&sent[0].1), 480);
    assert!(matches!(
        r.events.last(),
        Some(Event::Ended {
            reason: EndReason::Unanswered,
            ..
        })
    ));
    assert_eq!(r.ua.call_count(), 0);
}

#[test]
fn shutting_down_answers_new_invites_503_with_retry_after() {
    let mut r = Raw::new();
    r.ua.shutdown();
    assert!(r.ua.is_drained());
    r.send(&request("INVITE", "sd", "c10", None, 1, "", SDP));
    let out = r.out();
    assert_eq!(statuses(&out), vec![503]);
    assert_eq!(
        out[0].1.headers().get(&HeaderName::RetryAfter).unwrap(),
        "30"
    );
    assert!(r.events.is_empty());
}

#[test]
fn a_full_transaction_table_answers_503_statelessly_and_counts_it() {
    let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
    cfg.max_transactions = 1;
    let mut r = Raw::with(cfg);
    r.send(&request("OPTIONS", "t1", "c11", None, 1, "", ""));
    r.send(&request("INVITE", "t2", "c12", None, 1, "", SDP));
    assert_eq!(statuses(&r.out()), vec![200, 503]);
    assert_eq!(r.ua.stats().overloaded, 1);
    assert!(r.events.is_empty());
}

#[test]
fn a_reinvite_before_the_ack_of_the_initial_invite_gets_491() {
    let mut r = Raw::new();
    let (_, tag) = answered_call(&mut r, false);
    r.send(&request("INVITE", "early", "c1", Some(&tag), 2, "", SDP));
    assert_eq!(statuses(&r.out()), vec![491]);
}

#[test]
fn an_outbound_invite_carries_its_x_headers_and_nothing_injected() {
    let mut r = Raw::new();
    let h = |n: &'static str, v: &'static str| {
        (
            Bytes::from_static(n.as_bytes()),
            Bytes::from_static(v.as_bytes()),
        )
    };
    let o = Originate {
        to: Uri::parse(&Bytes::from_static(b"sip:+15550001@127.0.0.1:5070")).unwrap(),
        from: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:agent@127.0.0.1")).unwrap()),
        target: peer(),
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        extra_headers: vec![
            h("X-Campaign", "spring"),
            h("X-Evil", "a\r\nContact: <sip:evil@192.0.2.1>"),
            h("Contact", "<sip:evil@192.0.2.1>"),
            // A name that smuggles a header of its own ("X-A: b" would be
            // written as a line `X-A: b: v`): not a token, dropped.
            h("X-Spoof: <sip:evil@192.0.2.1>;x", "1"),
            h("X-Spoof Two", "1"),
        ],
    };
    r.ua.originate(r.now, o).unwrap();
    let invite = only_request(r.out(), Method::Invite);
    let x = crate::header::HeaderName::from_bytes(b"X-Campaign");
    assert_eq!(
        invite.headers().get(&x).map(|v| v.as_ref()),
        Some(&b"spring"[..])
    );
    let evil = crate::header::HeaderName::from_bytes(b"X-Evil");
    assert!(
        invite.headers().get(&evil).is_none(),
        "a value with CR/LF is dropped"
    );
    assert_eq!(
        invite.headers().contacts().unwrap().len(),
        1,
        "only X- names are written"
    );
    assert!(
        !invite.headers().contacts().unwrap()[0]
            .uri()
            .to_string()
            .contains("evil")
    );
    let text = String::from_utf8_lossy(&invite.to_bytes()).into_owned();
    assert!(
        !text.contains("X-Spoof"),
        "names that are not tokens are dropped: {text}"
    );
}
