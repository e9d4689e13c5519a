//! Fuzz the SIP message parser: never panic; whatever parses must serialize
//! and parse back to an equal message; every typed accessor must return
//! (Ok or Err) without panicking; an answerable error must build its answer.
#![no_main]

use bytes::Bytes;
use callbridge_sip::{Encode, Message, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Message::parse(Bytes::copy_from_slice(data)) {
        Ok(msg) => {
            let h = msg.headers();
            let _ = h.top_via();
            for v in h.vias() {
                if let Ok(v) = v {
                    let _ = (v.branch(), v.received(), v.rport());
                }
            }
            let _ = (h.from_addr(), h.to_addr(), h.call_id(), h.cseq(), h.contacts());
            let _ = (h.routes(), h.record_routes(), h.max_forwards(), h.content_type());
            let _ = (h.allow(), h.supported(), h.require(), h.expires(), h.reason());
            let _ = (h.www_authenticate(), h.proxy_authenticate(), h.authorization());
            if let Message::Request(r) = &msg {
                let resp = r.make_response(callbridge_sip::StatusCode::OK, Some(&Tag::from("t")));
                let again = Message::parse(resp.to_bytes()).expect("a response we build must parse");
                assert!(matches!(again, Message::Response(_)));
            }
            let bytes = msg.to_bytes();
            let again = Message::parse(bytes).expect("serialized message must parse");
            assert_eq!(again, msg, "round trip changed the message");
        }
        Err(e) => {
            let _ = e.disposition();
            if let Some(resp) = e.response(&Tag::from("t")) {
                let _ = resp.to_bytes();
            }
        }
    }
});
