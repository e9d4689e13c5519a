//! Outbound INVITEs through a server that challenges them (RFC 3261
//! section 22.2, RFC 2617 section 3.2.2, RFC 8760): the retried INVITE,
//! its digest, the bounds on retries, and CANCEL of a retried INVITE. One
//! user-agent core against a scripted peer writing raw SIP, fake clock.

use super::tests::SDP;
use super::tests_raw::{Raw, only_request, param, peer};
use super::*;
use crate::Method;
use crate::digest::{Algorithm, request_digest};
use crate::uri::Uri;
use proptest::prelude::*;

const TO: &str = "sip:+15550001@127.0.0.1:5070";

fn originate(credentials: Option<Credentials>) -> Originate {
    Originate {
        to: Uri::parse(&Bytes::from_static(TO.as_bytes())).unwrap(),
        from: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:agent@127.0.0.1")).unwrap()),
        target: peer(),
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials,
        extra_headers: Vec::new(),
    }
}

/// Places a call with `credentials`; returns it and the INVITE sent.
fn dial(r: &mut Raw, credentials: Option<Credentials>) -> (CallRef, Request) {
    let call = r.ua.originate(r.now, originate(credentials)).unwrap();
    (call, only_request(r.out(), Method::Invite))
}

/// Answers `req` with a `code` challenge carrying the `header` line.
fn challenge(r: &mut Raw, req: &Request, code: u16, header: &str) {
    r.send(&reply(req, code, header, ""));
}

fn text(req: &Request, name: HeaderName) -> String {
    String::from_utf8(req.headers().get(&name).unwrap().to_vec()).unwrap()
}

/// A response to `req` with `extra` header lines (each ending in CRLF).
pub(super) fn reply(req: &Request, code: u16, extra: &str, body: &str) -> String {
    let cseq = req.headers().cseq().unwrap();
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {code} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=srv\r\n\
         Call-ID: {}\r\nCSeq: {} {}\r\nContact: <sip:127.0.0.1:5070>\r\n{extra}{ctype}\
         Content-Length: {}\r\n\r\n{body}",
        text(req, HeaderName::Via),
        text(req, HeaderName::From),
        text(req, HeaderName::To),
        req.headers().call_id().unwrap(),
        cseq.seq,
        cseq.method,
        body.len()
    )
}

fn www(params: &str) -> String {
    format!("WWW-Authenticate: Digest {params}\r\n")
}

fn proxy(params: &str) -> String {
    format!("Proxy-Authenticate: Digest {params}\r\n")
}

pub(super) fn branch(req: &Request) -> String {
    req.headers()
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_string()
}

fn failed(r: &Raw) -> Vec<Outcome> {
    r.events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

fn invites(out: &[(SocketAddr, Message)]) -> Vec<Request> {
    out.iter()
        .filter_map(|(_, m)| match m {
            Message::Request(q) if q.method() == &Method::Invite => Some(q.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_401_with_qop_auth_is_answered_by_a_new_invite_in_the_same_call() {
    let mut r = Raw::new();
    let (call, first) = dial(&mut r, Some(Credentials::new("agent", "s3cret")));
    assert!(first.headers().authorization().unwrap().is_empty());
    challenge(
        &mut r,
        &first,
        401,
        &www(r#"realm="trunk.example", nonce="n1", qop="auth,auth-int", opaque="op4""#),
    );
    let out = r.out();
    // The 401 is ACKed on the first INVITE's branch and CSeq.
    let ack = only_request(out.clone(), Method::Ack);
    assert_eq!(branch(&ack), branch(&first));
    assert_eq!(ack.headers().cseq().unwrap().seq, 1);
    let retry = only_request(out, Method::Invite);
    assert_eq!(retry.headers().cseq().unwrap().seq, 2);
    assert_eq!(retry.headers().call_id(), first.headers().call_id());
    assert_eq!(
        text(&retry, HeaderName::From),
        text(&first, HeaderName::From)
    );
    assert_eq!(text(&retry, HeaderName::To), text(&first, HeaderName::To));
    assert_ne!(branch(&retry), branch(&first));
    assert_eq!(retry.body(), first.body());
    assert!(retry.headers().proxy_authorization().unwrap().is_empty());
    let auths = retry.headers().authorization().unwrap();
    assert_eq!(auths.len(), 1);
    let auth = &auths[0];
    assert_eq!(param(auth, "username"), "agent");
    assert_eq!(param(auth, "realm"), "trunk.example");
    assert_eq!(param(auth, "uri"), TO);
    assert_eq!(param(auth, "qop"), "auth");
    assert_eq!(param(auth, "nc"), "00000001");
    assert_eq!(param(auth, "opaque"), "op4");
    assert_eq!(param(auth, "algorithm"), "MD5");
    let cnonce = param(auth, "cnonce");
    assert!(cnonce.len() >= 8, "{cnonce}");
    let expect = request_digest(
        Algorithm::Md5,
        "agent",
        "trunk.example",
        "s3cret",
        "n1",
        "INVITE",
        TO,
        Some((1, &cnonce)),
    );
    assert_eq!(param(auth, "response"), expect);
    // The answer to the retried INVITE makes the call; its ACK has CSeq 2.
    r.send(&reply(&retry, 200, "", SDP));
    let ack = only_request(r.out(), Method::Ack);
    assert_eq!(ack.headers().cseq().unwrap().seq, 2);
    assert!(matches!(r.events.last(), Some(Event::Answered { call: c, .. }) if *c == call));
    assert!(failed(&r).is_empty());
}

#[test]
fn a_407_without_qop_gets_a_proxy_authorization_with_the_plain_rfc2069_digest() {
    let mut r = Raw::new();
    let (_, first) = dial(&mut r, Some(Credentials::new("agent", "pw")));
    challenge(
        &mut r,
        &first,
        407,
        &proxy(r#"realm="proxy", nonce="abc", algorithm=MD5"#),
    );
    let retry = only_request(r.out(), Method::Invite);
    assert!(retry.headers().authorization().unwrap().is_empty());
    let auth = &retry.headers().proxy_authorization().unwrap()[0];
    for absent in ["qop", "nc", "cnonce", "opaque"] {
        assert!(auth.param(absent).is_none(), "{absent} must be absent");
    }
    let expect = request_digest(
        Algorithm::Md5,
        "agent",
        "proxy",
        "pw",
        "abc",
        "INVITE",
        TO,
        None,
    );
    assert_eq!(param(auth, "response"), expect);
}

#[test]
fn a_stale_nonce_is_answered_once_more_then_the_call_is_answered() {
    let mut r = Raw::new();
    let (call, first) = dial(&mut r, Some(Credentials::new("agent", "pw")));
    challenge(
        &mut r,
        &first,
        401,
        &www(r#"realm="t", nonce="old", qop="auth""#),
    );
    let second = only_request(r.out(), Method::Invite);
    challenge(
        &mut r,
        &second,
        401,
        &www(r#"realm="t", nonce="new", qop="auth", stale=true"#),
    );
    let third = only_request(r.out(), Method::Invite);
    assert_eq!(third.headers().cseq().unwrap().seq, 3);
    assert_ne!(branch(&third), branch(&second));
    let auth = &third.headers().authorization().unwrap()[0];
    assert_eq!(param(auth, "nonce"), "new");
    assert_eq!(param(auth, "nc"), "00000001");
    r.send(&reply(&third, 200, "", SDP));
    assert!(matches!(r.events.last(), Some(Event::Answered { call: c, .. }) if *c == call));
}

#[test]
fn the_same_nonce_challenged_again_ends_the_call_auth_failed_without_a_third_invite() {
    let mut r = Raw::new();
    let (_, first) = dial(&mut r, Some(Credentials::new("agent", "wrong")));
    let same = www(r#"realm="t", nonce="n1", qop="auth""#);
    challenge(&mut r, &first, 401, &same);
    let second = only_request(r.out(), Method::Invite);
    challenge(&mut r, &second, 401, &same);
    let out = r.out();
    assert!(invites(&out).is_empty(), "no third INVITE");
    let ack = only_request(out, Method::Ack);
    assert_eq!(branch(&ack), branch(&second));
    assert_eq!(failed(&r), vec![Outcome::AuthFailed]);
    // Nothing more goes out, however long we wait.
    let later = r.advance(Duration::from_secs(64));
    assert!(
        later
            .iter()
            .all(|(_, m)| !matches!(m, Message::Request(q) if q.method() == &Method::Invite))
    );
}

#[test]
fn challenges_with_ever_new_nonces_are_answered_twice_then_the_call_fails() {
    let mut r = Raw::new();
    let (_, mut invite) = dial(&mut r, Some(Credentials::new("agent", "wrong")));
    let mut sent = 1;
    for n in 0..5 {
        challenge(
            &mut r,
            &invite,
            401,
            &www(&format!(r#"realm="t", nonce="n{n}""#)),
        );
        match invites(&r.out()).pop() {
            Some(next) => {
                sent += 1;
                invite = next;
            }
            None => break,
        }
    }
    assert_eq!(sent, 3, "the first INVITE and two answers");
    assert_eq!(failed(&r), vec![Outcome::AuthFailed]);
}

#[test]
fn a_proxy_challenge_then_a_far_end_challenge_are_both_answered() {
    let mut r = Raw::new();
    let (call, first) = dial(&mut r, Some(Credentials::new("agent", "pw")));
    challenge(&mut r, &first, 407, &proxy(r#"realm="proxy", nonce="p1""#));
    let second = only_request(r.out(), Method::Invite);
    assert_eq!(second.headers().proxy_authorization().unwrap().len(), 1);
    assert!(second.headers().authorization().unwrap().is_empty());
    challenge(
        &mut r,
        &second,
        401,
        &www(r#"realm="far", nonce="f1", qop="auth""#),
    );
    let third = only_request(r.out(), Method::Invite);
    assert_eq!(third.headers().cseq().unwrap().seq, 3);
    let pa = &third.headers().proxy_authorization().unwrap()[0];
    assert_eq!(
        (param(pa, "realm"), param(pa, "nonce")),
        ("proxy".into(), "p1".into())
    );
    let expect = request_digest(
        Algorithm::Md5,
        "agent",
        "proxy",
        "pw",
        "p1",
        "INVITE",
        TO,
        None,
    );
    assert_eq!(param(pa, "response"), expect);
    let wa = &third.headers().authorization().unwrap()[0];
    assert_eq!(
        (param(wa, "realm"), param(wa, "nonce"), param(wa, "nc")),
        ("far".into(), "f1".into(), "00000001".into())
    );
    r.send(&reply(&third, 200, "", SDP));
    assert!(matches!(r.events.last(), Some(Event::Answered { call: c, .. }) if *c == call));
}

#[test]
fn a_challenge_to_a_call_without_credentials_fails_auth_failed_at_once() {
    let mut r = Raw::new();
    let (_, first) = dial(&mut r, None);
    challenge(&mut r, &first, 407, &proxy(r#"realm="p", nonce="x""#));
    let out = r.out();
    assert!(invites(&out).is_empty());
    only_request(out, Method::Ack);
    assert_eq!(failed(&r), vec![Outcome::AuthFailed]);
}

#[test]
fn an_unusable_challenge_fails_auth_failed() {
    let mut r = Raw::new();
    let (_, first) = dial(&mut r, Some(Credentials::new("a", "b")));
    challenge(
        &mut r,
        &first,
        401,
        &www(r#"realm="t", nonce="x", qop="auth-int", algorithm=MD5"#),
    );
    assert!(invites(&r.out()).is_empty());
    assert_eq!(failed(&r), vec![Outcome::AuthFailed]);
}

#[test]
fn cancel_after_a_retry_uses_the_retried_invites_branch_and_cseq() {
    let mut r = Raw::new();
    let (call, first) = dial(&mut r, Some(Credentials::new("agent", "pw")));
    challenge(&mut r, &first, 407, &proxy(r#"realm="p", nonce="x""#));
    let retry = only_request(r.out(), Method::Invite);
    r.send(&reply(&retry, 180, "", ""));
    r.ua.hangup(r.now, call).unwrap();
    let cancel = only_request(r.out(), Method::Cancel);
    assert_eq!(branch(&cancel), branch(&retry));
    let cseq = cancel.headers().cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (2, Method::Cancel));
    assert_eq!(cancel.headers().call_id(), retry.headers().call_id());
    assert_eq!(cancel.uri(), retry.uri());
    r.send(&reply(&cancel, 200, "", ""));
    r.send(&reply(&retry, 487, "", ""));
    let ack = only_request(r.out(), Method::Ack);
    assert_eq!(branch(&ack), branch(&retry));
    assert_eq!(failed(&r), vec![Outcome::Cancelled]);
}

#[test]
fn a_challenge_after_hangup_is_not_answered_and_the_call_ends_cancelled() {
    let mut r = Raw::new();
    let (call, first) = dial(&mut r, Some(Credentials::new("agent", "pw")));
    // Hung up before any response: the CANCEL waits for a provisional.
    r.ua.hangup(r.now, call).unwrap();
    challenge(&mut r, &first, 401, &www(r#"realm="t", nonce="x""#));
    let out = r.out();
    assert!(invites(&out).is_empty());
    only_request(out, Method::Ack);
    assert_eq!(failed(&r), vec![Outcome::Cancelled]);
}

#[test]
fn credentials_never_show_in_debug_output() {
    let o = originate(Some(Credentials::new("agent", "hunter2-secret")));
    assert!(!format!("{o:?}").contains("hunter2"));
    assert!(!format!("{:?}", o.credentials).contains("hunter2"));
    let mut r = Raw::new();
    r.ua.originate(r.now, o).unwrap();
    assert!(!format!("{:?}", r.ua.calls).contains("hunter2"));
}

/// One response a challenging server may send to an INVITE.
#[derive(Debug, Clone)]
enum Step {
    /// 401 (`proxy` false) or 407 with nonce number `nonce`.
    Challenge { proxy: bool, nonce: u8, stale: bool },
    /// 200 OK with SDP.
    Answer,
    /// A final error.
    Reject(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..3, any::<bool>())
            .prop_map(|(proxy, nonce, stale)| Step::Challenge { proxy, nonce, stale }),
        1 => Just(Step::Answer),
        1 => prop::sample::select(vec![403u16, 404, 486, 503]).prop_map(Step::Reject),
    ]
}

proptest! {
    /// Whatever a server answers: every INVITE is a new transaction in the
    /// same call (CSeq +1, new branch, same Call-ID and From), at most three
    /// INVITEs go out, each challenged INVITE's retry carries the header
    /// matching the challenge, and the call ends exactly once.
    #[test]
    fn any_sequence_of_challenges_is_bounded_and_ends_the_call_once(
        steps in prop::collection::vec(step(), 1..8),
        creds in any::<bool>(),
    ) {
        let mut r = Raw::new();
        let credentials = creds.then(|| Credentials::new("agent", "pw"));
        r.ua.originate(r.now, originate(credentials)).unwrap();
        let mut sent = vec![only_request(r.out(), Method::Invite)];
        for s in &steps {
            let last = sent.last().unwrap().clone();
            let resp = match s {
                Step::Challenge { proxy: p, nonce, stale } => {
                    let params = format!(
                        r#"realm="t", nonce="n{nonce}", qop="auth"{}"#,
                        if *stale { ", stale=true" } else { "" }
                    );
                    let h = if *p { proxy(&params) } else { www(&params) };
                    reply(&last, if *p { 407 } else { 401 }, &h, "")
                }
                Step::Answer => reply(&last, 200, "", SDP),
                Step::Reject(code) => reply(&last, *code, "", ""),
            };
            r.send(&resp);
            let next = invites(&r.out());
            prop_assert!(next.len() <= 1);
            let Some(next) = next.into_iter().next() else { break };
            prop_assert!(creds, "no credentials, no retry");
            let challenged = matches!(s, Step::Challenge { .. });
            prop_assert!(challenged);
            if let Step::Challenge { proxy: p, .. } = s {
                // The challenged header is answered once; the other one
                // only if its realm challenged an earlier INVITE.
                let h = next.headers();
                let (proxies, fars) = (
                    h.proxy_authorization().unwrap().len(),
                    h.authorization().unwrap().len(),
                );
                prop_assert_eq!(if *p { proxies } else { fars }, 1);
                prop_assert!(proxies <= 1 && fars <= 1);
            }
            prop_assert_eq!(
                next.headers().cseq().unwrap().seq,
                last.headers().cseq().unwrap().seq + 1
            );
            prop_assert_eq!(next.headers().call_id(), last.headers().call_id());
            prop_assert_eq!(text(&next, HeaderName::From), text(&last, HeaderName::From));
            prop_assert!(sent.iter().all(|q| branch(q) != branch(&next)));
            sent.push(next);
        }
        prop_assert!(sent.len() <= 3, "{} INVITEs", sent.len());
        let ends = r
            .events
            .iter()
            .filter(|e| matches!(e, Event::Failed { .. } | Event::Answered { .. }))
            .count();
        // Every INVITE got its response unless the last step was answered
        // by a retry that the steps left pending.
        let finished = steps.len() >= sent.len();
        if finished {
            prop_assert_eq!(ends, 1, "{:?}", r.events);
        }
        prop_assert!(ends <= 1);
        if let (true, Some(Event::Failed { outcome, .. })) = (finished, r.events.last()) {
            let last_response = &steps[sent.len() - 1];
            if matches!(last_response, Step::Challenge { .. }) {
                prop_assert_eq!(*outcome, Outcome::AuthFailed);
            }
        }
    }
}
