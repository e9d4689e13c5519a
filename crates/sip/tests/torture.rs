//! Our own RFC 4475-style corpus (`testdata/torture/`): every valid message
//! must parse with the values asserted here, every invalid one must get the
//! disposition its file name starts with (`400-`, `505-` or `drop-`), and
//! every parsed message must survive parse -> serialize -> parse unchanged.

use bytes::Bytes;
use callbridge_sip::{
    Branch, CallId, Disposition, Encode, HeaderName, Host, Message, Method, StatusCode, Tag, Uri,
};
use std::path::PathBuf;

fn dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/torture")
        .join(kind)
}

fn files(kind: &str) -> Vec<(String, Bytes)> {
    let mut out: Vec<_> = std::fs::read_dir(dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, Bytes::from(std::fs::read(&p).unwrap()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn host(s: &'static str) -> Host {
    Host::domain(Bytes::from_static(s.as_bytes()))
}

/// The values each valid file must parse to.
fn check_valid(name: &str, m: &Message) {
    let h = m.headers();
    match name {
        "ws-fold-compact" => {
            let Message::Request(r) = m else {
                panic!("request")
            };
            assert_eq!(r.method(), &Method::Invite);
            let via = h.top_via().unwrap();
            assert_eq!(via.branch(), Some(Branch::from("z9hG4bKws1")));
            assert_eq!(via.rport(), Some(None));
            let from = h.from_addr().unwrap();
            assert_eq!(
                from.display_name().as_deref(),
                Some(&b"Alice \"A\" Liddell"[..])
            );
            assert_eq!(from.tag(), Some(Tag::from("a1")));
            assert_eq!(
                h.to_addr().unwrap().display_name().as_deref(),
                Some(&b"Bob"[..])
            );
            assert_eq!(h.call_id().unwrap(), CallId::from("ws1@192.0.2.10"));
            assert_eq!(h.cseq().unwrap().seq, 42);
            assert_eq!(h.max_forwards().unwrap(), Some(70));
            assert_eq!(h.contacts().unwrap()[0].expires(), Some(300));
            assert_eq!(
                h.supported().unwrap(),
                vec![Bytes::from("timer"), Bytes::from("100rel")]
            );
            let folded = HeaderName::from_bytes(b"x-folded");
            assert_eq!(h.get(&folded).unwrap(), &Bytes::from("one two three"));
            assert!(
                m.body().starts_with(b"v=0\r\n") && m.body().ends_with(b"telephone-event/8000\r\n")
            );
        }
        "ipv6" => {
            let Message::Request(r) = m else {
                panic!("request")
            };
            let uri = r.uri().as_sip().unwrap();
            assert_eq!(uri.host(), &Host::Ipv6("2001:db8::10".parse().unwrap()));
            assert_eq!(uri.port(), Some(5070));
            let via = h.top_via().unwrap();
            assert_eq!(via.host(), &Host::Ipv6("2001:db8::1".parse().unwrap()));
            assert_eq!(via.received(), Some("2001:db8::99".parse().unwrap()));
            assert_eq!(via.rport(), Some(Some(5061)));
        }
        "uri-escapes" => {
            let Message::Request(r) = m else {
                panic!("request")
            };
            let uri = r.uri().as_sip().unwrap();
            assert_eq!(uri.user_unescaped().as_deref(), Some(&b"bob"[..]));
            assert_eq!(
                uri.params().get("maddr"),
                Some(Some(Bytes::from("192.0.2.1")))
            );
            let from = h.from_addr().unwrap();
            let fu = from.uri().as_sip().unwrap();
            assert!(fu.is_secure());
            assert_eq!(fu.password().map(|p| &p[..]), Some(&b"pa%20ss"[..]));
            assert_eq!(
                fu.headers().map(|p| &p[..]),
                Some(&b"subject=hi%20there&priority=urgent"[..])
            );
            assert_eq!(from.tag(), Some(Tag::from("ue")));
            let to = h.to_addr().unwrap();
            let Uri::Tel(tel) = to.uri() else {
                panic!("tel URI")
            };
            assert_eq!(&tel.number()[..], b"+1-201-555-0123");
            let ct = h.content_type().unwrap().unwrap();
            assert_eq!(
                ct.params().get("charset"),
                Some(Some(Bytes::from("\"utf-8\"")))
            );
            assert_eq!(m.body(), &Bytes::from("hello"));
        }
        "multi-values" => {
            let branches: Vec<_> = h.vias().map(|v| v.unwrap().branch().unwrap()).collect();
            assert_eq!(
                branches,
                vec![
                    Branch::from("z9hG4bKmv1"),
                    Branch::from("z9hG4bKmv2"),
                    Branch::from("z9hG4bKmv3")
                ]
            );
            let rr = h.record_routes().unwrap();
            assert_eq!(rr.len(), 2);
            assert_eq!(rr[1].display_name().as_deref(), Some(&b"Proxy, Two"[..]));
            let routes = h.routes().unwrap();
            assert_eq!(routes.len(), 2);
            assert_eq!(
                routes[1].uri().as_sip().unwrap().host(),
                &host("p4.example.com")
            );
            assert_eq!(
                h.allow().unwrap(),
                vec![
                    Method::Invite,
                    Method::Ack,
                    Method::Bye,
                    Method::Cancel,
                    Method::Options,
                    Method::Info
                ]
            );
            assert_eq!(h.require().unwrap(), vec![Bytes::from("100rel")]);
            assert_eq!(h.contacts().unwrap().len(), 2);
        }
        "auth-headers" => {
            let a = &h.authorization().unwrap()[0];
            assert!(a.is_digest());
            assert_eq!(a.param("nonce"), Some(Bytes::from("a,b,c")));
            assert_eq!(a.param("nc"), Some(Bytes::from("00000001")));
            assert_eq!(
                h.proxy_authorization().unwrap()[0].param("realm"),
                Some(Bytes::from("proxy"))
            );
            assert_eq!(h.expires().unwrap(), Some(3600));
        }
        "challenge-response" => {
            let Message::Response(r) = m else {
                panic!("response")
            };
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            let c = h.www_authenticate().unwrap();
            assert_eq!(c.len(), 2);
            assert_eq!(c[0].param("qop"), Some(Bytes::from("auth,auth-int")));
            assert_eq!(c[1].param("algorithm"), Some(Bytes::from("SHA-256")));
            assert_eq!(h.to_addr().unwrap().tag(), Some(Tag::from("srv")));
        }
        "utf8-reason" => {
            let Message::Response(r) = m else {
                panic!("response")
            };
            assert_eq!(r.status(), StatusCode::BUSY_HERE);
            assert_eq!(std::str::from_utf8(r.reason()).unwrap(), "Занято здесь");
            let reasons = h.reason().unwrap();
            assert_eq!(reasons.len(), 2);
            assert_eq!(reasons[0].cause(), Some(486));
            assert_eq!(reasons[0].text().as_deref(), Some(&b"Busy \"here\""[..]));
            assert_eq!(&reasons[1].protocol()[..], b"Q.850");
        }
        "empty-reason" => {
            let Message::Response(r) = m else {
                panic!("response")
            };
            assert_eq!(r.status(), StatusCode::TRYING);
            assert!(r.reason().is_empty());
        }
        "trailing-bytes" => {
            assert!(m.body().is_empty());
            assert_eq!(h.to_addr().unwrap().tag(), Some(Tag::from("b1")));
        }
        "no-content-length" => {
            assert_eq!(h.content_length().unwrap(), None);
            assert_eq!(m.body(), &Bytes::from("Signal=5\r\nDuration=160\r\n"));
        }
        "leading-crlf-unknown" => {
            assert_eq!(
                h.get(&HeaderName::from_bytes(b"X-Weird")).unwrap(),
                &Bytes::from(";;,,;\"unbalanced")
            );
            assert_eq!(
                h.user_agent().unwrap(),
                &Bytes::from("callbridge-test/1.0 (torture)")
            );
        }
        "extension-method" => {
            let Message::Request(r) = m else {
                panic!("request")
            };
            assert_eq!(r.method().as_bytes(), b"X-FANCY.method_1");
            assert_eq!(h.cseq().unwrap().seq, 77);
        }
        "contact-star" => {
            assert!(h.contact_is_wildcard());
            assert_eq!(h.expires().unwrap(), Some(0));
            assert!(matches!(h.to_addr().unwrap().uri(), Uri::Other(_)));
        }
        "binary-body" => {
            assert_eq!(
                m.body(),
                &Bytes::from_static(b"\x00\x01\r\x02\xff\n\x00end")
            );
        }
        other => panic!("no expectations written for valid/{other}.sip"),
    }
}

#[test]
fn valid_corpus_parses_with_the_expected_values_and_round_trips() {
    let files = files("valid");
    assert!(files.len() >= 14);
    for (name, bytes) in files {
        let m = Message::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_valid(&name, &m);
        let again = Message::parse(m.to_bytes()).unwrap_or_else(|e| panic!("{name} re-parse: {e}"));
        assert_eq!(again, m, "{name} changed in a round trip");
    }
}

#[test]
fn invalid_corpus_is_rejected_with_the_disposition_in_its_name() {
    let files = files("invalid");
    assert!(files.len() >= 25);
    for (name, bytes) in files {
        let err = match Message::parse(bytes) {
            Ok(m) => panic!("{name} parsed: {m:?}"),
            Err(e) => e,
        };
        let expected = if name.starts_with("400-") {
            Disposition::Respond(StatusCode::BAD_REQUEST)
        } else if name.starts_with("505-") {
            Disposition::Respond(StatusCode::VERSION_NOT_SUPPORTED)
        } else if name.starts_with("drop-") {
            Disposition::Drop
        } else {
            panic!("{name}: file name must start with 400-, 505- or drop-")
        };
        assert_eq!(err.disposition(), expected, "{name}: {err}");
        if let Disposition::Respond(status) = expected {
            let resp = err.response(&Tag::from("t0")).unwrap();
            assert_eq!(resp.status(), status);
            // The answer copies the request's headers verbatim (even a bad
            // one, RFC 3261 section 8.2.6.2); its top Via must route it.
            resp.headers()
                .top_via()
                .unwrap_or_else(|e| panic!("{name} answer: {e}"));
            assert!(
                resp.to_bytes()
                    .starts_with(format!("SIP/2.0 {status} ").as_bytes())
            );
        } else {
            assert!(err.response(&Tag::from("t0")).is_none());
        }
    }
}
