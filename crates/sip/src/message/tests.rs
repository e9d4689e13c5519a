use super::*;
use crate::{Branch, CallId, Disposition, Error, Host, NameAddr, ParseError, SipUri, Via};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\r\nextra";

fn parse(b: &'static [u8]) -> Result<Message, ParseError> {
    Message::parse(Bytes::from_static(b))
}

fn request(b: &'static [u8]) -> Request {
    match parse(b) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn invite_parses_with_typed_headers_and_content_length_framing() {
    let r = request(INVITE);
    assert_eq!(r.method(), &Method::Invite);
    let h = r.headers();
    assert_eq!(
        h.call_id().unwrap(),
        CallId::from("a84b4c76e66710@pc33.atlanta.example.com")
    );
    assert_eq!(h.cseq().unwrap().seq, 314159);
    assert_eq!(
        h.top_via().unwrap().branch(),
        Some(Branch::from("z9hG4bK776asdhds"))
    );
    assert_eq!(h.top_via().unwrap().rport(), Some(None));
    assert_eq!(h.from_addr().unwrap().tag(), Some(Tag::from("1928301774")));
    assert_eq!(h.to_addr().unwrap().tag(), None);
    assert_eq!(h.max_forwards().unwrap(), Some(70));
    assert!(h.content_type().unwrap().unwrap().is_sdp());
    assert_eq!(r.body(), &Bytes::from_static(b"v=0\r"));
}

#[test]
fn body_shorter_than_content_length_is_answered_with_400() {
    let err = parse(
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 10\r\n\r\nabc",
    )
    .unwrap_err();
    assert_eq!(
        err.error(),
        &Error::BodyTruncated {
            declared: 10,
            available: 3
        }
    );
    assert_eq!(
        err.disposition(),
        Disposition::Respond(StatusCode::BAD_REQUEST)
    );
    let resp = err.response(&Tag::from("t")).unwrap();
    assert_eq!(
        &resp.to_bytes()[..],
        &b"SIP/2.0 400 Body Shorter Than Content-Length\r\n\
Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=t\r\n\
Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"[..]
    );
}

#[test]
fn unanswerable_garbage_is_dropped() {
    let err = parse(b"hello\r\n\r\n").unwrap_err();
    assert_eq!(err.disposition(), Disposition::Drop);
    let err = parse(b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n").unwrap_err();
    assert_eq!(err.disposition(), Disposition::Drop);
}

#[test]
fn make_response_copies_dialog_headers_and_adds_to_tag() {
    let r = request(INVITE);
    let resp = r.make_response(StatusCode::RINGING, Some(&Tag::from("as83kd9bs")));
    assert_eq!(
        &resp.to_bytes()[..],
        &b"SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=as83kd9bs\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n"[..]
    );
    let trying = r.make_response(StatusCode::TRYING, Some(&Tag::from("x")));
    assert_eq!(trying.headers().to_addr().unwrap().tag(), None);
}

#[test]
fn response_with_body_sets_type_and_length() {
    let r = request(INVITE);
    let mut resp = r.make_response(StatusCode::OK, Some(&Tag::from("a")));
    resp.set_body(&MediaType::sdp(), Bytes::from_static(b"v=0\r\n"));
    let again = match Message::parse(resp.to_bytes()) {
        Ok(Message::Response(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(again, resp);
    assert_eq!(again.headers().content_length().unwrap(), Some(5));
    assert_eq!(again.body(), &Bytes::from_static(b"v=0\r\n"));
}

#[test]
fn parse_serialize_parse_gives_an_equal_message() {
    let m = parse(INVITE).unwrap();
    let again = Message::parse(m.to_bytes()).unwrap();
    assert_eq!(m, again);
}

#[test]
fn builder_requires_mandatory_headers() {
    let uri = SipUri::new(Host::domain("example.com"));
    let err = Request::builder(Method::Bye, uri.clone())
        .cseq(1)
        .build()
        .unwrap_err();
    assert_eq!(err, Error::Build("no Via"));
    let req = Request::builder(Method::Bye, uri.clone())
        .via(&Via::new(
            "UDP",
            Host::domain("a.example"),
            None,
            &Branch::from("z9hG4bKq"),
        ))
        .from_addr(&NameAddr::new(uri.clone()).with_tag(&Tag::from("f")))
        .to_addr(&NameAddr::new(uri).with_tag(&Tag::from("t")))
        .call_id(&CallId::from("cid"))
        .cseq(2)
        .build()
        .unwrap();
    let again = Message::parse(req.to_bytes()).unwrap();
    assert_eq!(again, Message::Request(req));
}

#[test]
fn set_top_via_keeps_the_other_values_of_a_shared_line() {
    let mut r = request(
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1;rport, SIP/2.0/UDP h2;branch=z9hG4bK2\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let mut top = r.headers().top_via().unwrap();
    top.set_received("192.0.2.9".parse().unwrap());
    top.set_rport(5099);
    r.headers_mut().set_top_via(&top);
    let vias: Vec<_> = r.headers().vias().map(|v| v.unwrap()).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].rport(), Some(Some(5099)));
    assert_eq!(vias[0].received(), Some("192.0.2.9".parse().unwrap()));
    assert_eq!(vias[1].branch(), Some(Branch::from("z9hG4bK2")));
}

#[test]
fn dialog_creating_responses_copy_record_route() {
    let r = request(
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nRecord-Route: <sip:p1;lr>\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
    );
    let ok = r.make_response(StatusCode::OK, Some(&Tag::from("t")));
    assert_eq!(ok.headers().record_routes().unwrap().len(), 1);
    let busy = r.make_response(StatusCode::BUSY_HERE, Some(&Tag::from("t")));
    assert!(busy.headers().get(&HeaderName::RecordRoute).is_none());
}
