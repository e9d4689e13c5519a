//! Property tests of the message parser: it never panics on arbitrary or
//! mutated input, and parse -> serialize -> parse gives an equal message for
//! generated requests and responses.

use bytes::Bytes;
use callbridge_sip::{
    Branch, CallId, Encode, HeaderName, Host, MediaType, Message, Method, NameAddr, Request,
    SipUri, StatusCode, Tag, Via,
};
use proptest::prelude::*;

const SAMPLE: &[u8] = b"INVITE sip:bob@example.net SIP/2.0\r\n\
v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport\r\n\
f: \"A \\\"B\\\"\" <sip:a@example.com>;tag=1\r\nt: <sip:bob@example.net>\r\ni: c@h\r\n\
CSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>;q=0.1\r\n\
WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nX-F: a\r\n b\r\nl: 3\r\n\r\nabcdef";

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[a-z]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z][a-z0-9]{0,5}){0,3}"
            .prop_map(|d| Host::domain(Bytes::from(d))),
        any::<[u8; 4]>().prop_map(|o| Host::Ipv4(o.into())),
        any::<[u16; 8]>().prop_map(|s| Host::Ipv6(s.into())),
    ]
}

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        host(),
        proptest::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}(%[0-9A-F]{2})?"),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(
            ("[a-z]{1,6}", proptest::option::of("[a-zA-Z0-9]{1,6}")),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(h, user, port, params, secure)| {
            let mut u = SipUri::new(h).with_secure(secure);
            if let Some(user) = user {
                u = u.with_user(user);
            }
            if let Some(p) = port {
                u = u.with_port(p);
            }
            for (n, v) in &params {
                u = u.with_param(n, v.as_deref().map(str::as_bytes));
            }
            u
        })
}

fn name_addr() -> impl Strategy<Value = NameAddr> {
    (
        sip_uri(),
        proptest::option::of("[ -~]{0,16}"),
        proptest::option::of(token()),
    )
        .prop_map(|(u, d, tag)| {
            let mut a = NameAddr::new(u);
            if let Some(d) = d {
                a = a.with_display_name(&d);
            }
            if let Some(t) = tag {
                a = a.with_tag(&Tag::new(t));
            }
            a
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Bye),
        Just(Method::Options),
        Just(Method::Register),
        "[A-Z]{3,9}".prop_map(|m| Method::from_token(m.as_bytes())),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        method(),
        sip_uri(),
        host(),
        token(),
        name_addr(),
        name_addr(),
        token(),
        any::<u32>(),
        proptest::collection::vec(("X-[A-Za-z]{1,8}", "[!-~]([ -~]{0,20}[!-~])?"), 0..4),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(m, uri, via_host, branch, from, to, call_id, seq, extra, body)| {
                let mut b = Request::builder(m, uri)
                    .via(&Via::new(
                        "UDP",
                        via_host,
                        Some(5060),
                        &Branch::new(format!("z9hG4bK{branch}")),
                    ))
                    .from_addr(&from)
                    .to_addr(&to)
                    .call_id(&CallId::new(call_id))
                    .cseq(seq);
                for (n, v) in extra {
                    b = b.header(HeaderName::from_bytes(n.as_bytes()), v);
                }
                if !body.is_empty() {
                    b = b.body(
                        MediaType::new("application", "octet-stream"),
                        Bytes::from(body),
                    );
                }
                b.build().unwrap()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = Message::parse(Bytes::from(data)) {
            let _ = e.response(&Tag::from("t"));
        }
    }

    #[test]
    fn mutated_messages_never_panic_and_what_parses_round_trips(
        edits in proptest::collection::vec((0..SAMPLE.len(), any::<u8>()), 1..6),
        cut in 0..SAMPLE.len() + 1,
    ) {
        let mut data = SAMPLE[..cut.max(1)].to_vec();
        for (at, b) in edits {
            if at < data.len() {
                data[at] = b;
            }
        }
        if let Ok(m) = Message::parse(Bytes::from(data)) {
            let again = Message::parse(m.to_bytes());
            prop_assert_eq!(again.as_ref().ok(), Some(&m));
        }
    }

    #[test]
    fn built_requests_round_trip(req in request()) {
        let bytes = req.to_bytes();
        let parsed = Message::parse(bytes.clone()).map_err(|e| TestCaseError::fail(format!("{e}: {bytes:?}")))?;
        prop_assert_eq!(&parsed, &Message::Request(req.clone()));
        prop_assert_eq!(parsed.to_bytes(), bytes);
        let resp = req.make_response(StatusCode::OK, Some(&Tag::from("x")));
        let parsed = Message::parse(resp.to_bytes()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(parsed, Message::Response(resp));
    }
}
