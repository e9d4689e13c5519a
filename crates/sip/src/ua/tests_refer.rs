//! Blind transfer (RFC 3515, RFC 5589): one core against a scripted
//! transferee that answers our REFER and sends its NOTIFYs, with a fake
//! clock; exact requests, statuses, events and timeouts.

use super::tests_raw::{Raw, answered_call, peer, request, statuses};
use super::*;
use crate::Method;
use crate::uri::Uri;

const TARGET: &str = "sip:carol@127.0.0.1:5080";

fn target() -> Uri {
    Uri::parse(&Bytes::from_static(TARGET.as_bytes())).unwrap()
}

/// Ask for the transfer of `call`; returns the one REFER sent.
fn refer_sent(r: &mut Raw, call: CallRef) -> Request {
    r.ua.refer(r.now, call, target()).unwrap();
    let out = r.out();
    assert_eq!(out.len(), 1, "{out:?}");
    match &out[0] {
        (dest, Message::Request(req)) if *dest == peer() => req.clone(),
        other => panic!("not a REFER to the peer: {other:?}"),
    }
}

/// The transferee's final response to our REFER.
fn respond(r: &mut Raw, refer: &Request, status: StatusCode) {
    let resp = refer.make_response(status, Some(&Tag::from("peer")));
    r.send(std::str::from_utf8(&resp.to_bytes()).unwrap());
}

fn notify(branch: &str, tag: &str, cseq: u32, state: &str, frag: &str) -> String {
    let extra = format!("Event: refer\r\nSubscription-State: {state}\r\n");
    request("NOTIFY", branch, "c1", Some(tag), cseq, &extra, frag)
}

fn transfer_events(r: &Raw) -> Vec<Event> {
    r.events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TransferAccepted { .. } | Event::TransferFailed { .. }
            )
        })
        .cloned()
        .collect()
}

fn header(req: &Request, name: HeaderName) -> String {
    let v = req.headers().get(&name).cloned().unwrap_or_default();
    String::from_utf8(v.to_vec()).unwrap()
}

#[test]
fn refer_goes_in_the_dialog_with_refer_to_referred_by_and_the_next_cseq() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let refer = refer_sent(&mut r, call);
    assert_eq!(refer.method(), &Method::Refer);
    assert_eq!(refer.uri().to_bytes(), &b"sip:alice@127.0.0.1:5070"[..]);
    let h = refer.headers();
    assert_eq!(header(&refer, HeaderName::ReferTo), format!("<{TARGET}>"));
    assert_eq!(
        header(&refer, HeaderName::ReferredBy),
        "<sip:bob@127.0.0.1:5062>"
    );
    assert_eq!(h.call_id().unwrap(), CallId::from("c1"));
    assert_eq!(h.from_addr().unwrap().tag().unwrap().to_string(), tag);
    assert_eq!(h.to_addr().unwrap().tag(), Some(Tag::from("peer")));
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, &cseq.method), (1, &Method::Refer));
    assert!(h.contacts().unwrap().len() == 1);
    // A second transfer while this one is pending is refused.
    assert_eq!(
        r.ua.refer(r.now, call, target()),
        Err(UaError::WrongState("a transfer is pending"))
    );
}

#[test]
fn refer_202_then_notify_100_and_200_sipfrag_is_one_transfer_accepted() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let refer = refer_sent(&mut r, call);
    respond(&mut r, &refer, StatusCode::ACCEPTED);
    assert!(transfer_events(&r).is_empty(), "202 alone decides nothing");
    r.send(&notify(
        "n1",
        &tag,
        2,
        "active;expires=60",
        "SIP/2.0 100 Trying\r\n",
    ));
    assert_eq!(statuses(&r.out()), vec![200]);
    assert!(transfer_events(&r).is_empty(), "100 is progress only");
    let done = notify(
        "n2",
        &tag,
        3,
        "terminated;reason=noresource",
        "SIP/2.0 200 OK\r\n",
    );
    r.send(&done);
    let first = r.out();
    assert_eq!(statuses(&first), vec![200]);
    r.send(&done);
    assert_eq!(r.out(), first, "the retransmission gets the same 200");
    assert!(matches!(
        transfer_events(&r)[..],
        [Event::TransferAccepted { call: c }] if c == call
    ));
    // The subscription is over: a later NOTIFY is for nothing.
    r.send(&notify("n3", &tag, 4, "terminated", "SIP/2.0 200 OK\r\n"));
    assert_eq!(statuses(&r.out()), vec![481]);
    r.advance(Duration::from_secs(200));
    assert_eq!(transfer_events(&r).len(), 1, "no timeout after the outcome");
    assert_eq!(r.ua.call_count(), 1, "the call itself goes on");
}

#[test]
fn refer_refused_403_is_transfer_failed_403() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let refer = refer_sent(&mut r, call);
    respond(&mut r, &refer, StatusCode::FORBIDDEN);
    assert!(matches!(
        transfer_events(&r)[..],
        [Event::TransferFailed { call: c, status: StatusCode::FORBIDDEN }] if c == call
    ));
    r.send(&notify("n1", &tag, 2, "active", "SIP/2.0 100 Trying\r\n"));
    assert_eq!(statuses(&r.out()), vec![481]);
    // The call can be transferred again.
    let again = refer_sent(&mut r, call);
    assert_eq!(again.headers().cseq().unwrap().seq, 2);
}

#[test]
fn notify_with_503_sipfrag_is_transfer_failed_503() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let refer = refer_sent(&mut r, call);
    respond(&mut r, &refer, StatusCode::ACCEPTED);
    r.send(&notify(
        "n1",
        &tag,
        2,
        "terminated;reason=noresource",
        "SIP/2.0 503 Service Unavailable\r\n",
    ));
    assert_eq!(statuses(&r.out()), vec![200]);
    assert!(matches!(
        transfer_events(&r)[..],
        [Event::TransferFailed { call: c, status: StatusCode::SERVICE_UNAVAILABLE }] if c == call
    ));
}

#[test]
fn a_notify_racing_ahead_of_the_202_still_decides_the_transfer_once() {
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    let refer = refer_sent(&mut r, call);
    let id = "Event: refer;id=1\r\nSubscription-State: terminated\r\n";
    r.send(&request(
        "NOTIFY",
        "n1",
        "c1",
        Some(&tag),
        2,
        id,
        "SIP/2.0 200 OK\r\n",
    ));
    assert_eq!(statuses(&r.out()), vec![200]);
    respond(&mut r, &refer, StatusCode::ACCEPTED);
    assert!(matches!(
        transfer_events(&r)[..],
        [Event::TransferAccepted { call: c }] if c == call
    ));
}

#[test]
fn no_outcome_is_transfer_failed_408_at_the_transfer_timeout_or_timer_f() {
    let mut r = Raw::new();
    let (call, _) = answered_call(&mut r, true);
    let refer = refer_sent(&mut r, call);
    respond(&mut r, &refer, StatusCode::ACCEPTED);
    r.advance(Duration::from_secs(89));
    assert!(transfer_events(&r).is_empty());
    r.advance(Duration::from_secs(91));
    assert!(matches!(
        transfer_events(&r)[..],
        [Event::TransferFailed { call: c, status: StatusCode::REQUEST_TIMEOUT }] if c == call
    ));
    // A REFER that gets no response at all: Timer F (64*T1 = 32 s).
    let mut r = Raw::new();
    let (call, _) = answered_call(&mut r, true);
    refer_sent(&mut r, call);
    let resent = r.advance(Duration::from_millis(31_900));
    assert!(
        resent
            .iter()
            .all(|(_, m)| matches!(m, Message::Request(q) if q.method() == &Method::Refer))
    );
    assert!(transfer_events(&r).is_empty());
    r.advance(Duration::from_secs(33));
    assert!(matches!(
        transfer_events(&r)[..],
        [Event::TransferFailed {
            status: StatusCode::REQUEST_TIMEOUT,
            ..
        }]
    ));
}

#[test]
fn refer_on_an_unknown_ended_or_unanswered_call_is_an_error() {
    let mut r = Raw::new();
    assert_eq!(
        r.ua.refer(r.now, CallRef(99), target()),
        Err(UaError::UnknownCall)
    );
    let (call, _) = answered_call(&mut r, false);
    assert_eq!(
        r.ua.refer(r.now, call, target()),
        Err(UaError::WrongState("not established"))
    );
    let mut r = Raw::new();
    let (call, tag) = answered_call(&mut r, true);
    r.send(&request("BYE", "bye", "c1", Some(&tag), 2, "", ""));
    assert_eq!(statuses(&r.out()), vec![200]);
    assert_eq!(r.ua.refer(r.now, call, target()), Err(UaError::UnknownCall));
    assert!(r.out().is_empty(), "nothing sent");
}

#[test]
fn stray_notifies_get_481_489_or_415_and_no_event() {
    let mut r = Raw::new();
    r.send(&notify("n0", "x", 1, "active", "SIP/2.0 200 OK\r\n"));
    let outside = request(
        "NOTIFY",
        "n00",
        "nope",
        None,
        1,
        "Event: refer\r\n",
        "SIP/2.0 200 OK\r\n",
    );
    r.send(&outside);
    assert_eq!(statuses(&r.out()), vec![481, 481], "outside any dialog");
    let (call, tag) = answered_call(&mut r, true);
    r.send(&notify("n1", &tag, 2, "active", "SIP/2.0 200 OK\r\n"));
    assert_eq!(statuses(&r.out()), vec![481], "no transfer in this dialog");
    let refer = refer_sent(&mut r, call);
    respond(&mut r, &refer, StatusCode::ACCEPTED);
    let presence = "Event: presence\r\nSubscription-State: active\r\n";
    r.send(&request("NOTIFY", "n2", "c1", Some(&tag), 3, presence, ""));
    let out = r.out();
    assert_eq!(statuses(&out), vec![489]);
    let Message::Response(bad_event) = &out[0].1 else {
        panic!()
    };
    assert_eq!(
        bad_event.headers().get(&HeaderName::AllowEvents).unwrap(),
        "refer"
    );
    let wrong_id = "Event: refer;id=7\r\nSubscription-State: active\r\n";
    r.send(&request("NOTIFY", "n3", "c1", Some(&tag), 4, wrong_id, ""));
    assert_eq!(
        statuses(&r.out()),
        vec![481],
        "another REFER's subscription"
    );
    let sdp_body = "Event: refer\r\nSubscription-State: active\r\n\
        Content-Type: application/sdp\r\n";
    let text = request("NOTIFY", "n4", "c1", Some(&tag), 5, sdp_body, "")
        .replace("Content-Length: 0\r\n\r\n", "Content-Length: 3\r\n\r\nv=0");
    r.send(&text);
    assert_eq!(statuses(&r.out()), vec![415]);
    r.send(&notify("n5", &tag, 4, "active", "SIP/2.0 200 OK\r\n"));
    assert_eq!(statuses(&r.out()), vec![500], "stale CSeq");
    assert!(transfer_events(&r).is_empty());
}
