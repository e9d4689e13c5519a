//! The user-agent core never panics, whatever datagrams arrive in whatever
//! order and however time passes, and its tables stay within their bounds.

use bytes::Bytes;
use callbridge_sip::random::seeded_rng;
use callbridge_sip::ua::{Config, Event, UserAgent};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const INVITE: &str = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";

fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        // Mutations of a valid INVITE reach deeper than random bytes.
        (0usize..INVITE.len(), any::<u8>()).prop_map(|(i, b)| {
            let mut v = INVITE.as_bytes().to_vec();
            v[i] = b;
            v
        }),
        Just(INVITE.as_bytes().to_vec()),
        Just(INVITE.replace("INVITE", "BYE").into_bytes()),
        Just(
            INVITE
                .replace("INVITE sip", "CANCEL sip")
                .replace("1 INVITE", "1 CANCEL")
                .into_bytes()
        ),
    ]
}

proptest! {
    #[test]
    fn the_core_never_panics_on_any_datagram_sequence(
        datagrams in prop::collection::vec((datagram(), 0u64..5000), 0..40)
    ) {
        let mut cfg = Config::new("127.0.0.1:5060".parse().unwrap());
        cfg.max_transactions = 8;
        cfg.max_calls = 2;
        let mut ua = UserAgent::new(cfg, seeded_rng(9));
        let mut now = Instant::now();
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        for (d, wait) in datagrams {
            ua.handle_datagram(now, src, Bytes::from(d));
            while let Some(e) = ua.poll_event() {
                if let Event::IncomingCall(c) = e {
                    let _ = ua.answer(now, c.call, Bytes::from_static(b"v=0\r\n"));
                }
            }
            while ua.poll_transmit().is_some() {}
            now += Duration::from_millis(wait);
            ua.handle_timeout(now);
            prop_assert!(ua.call_count() <= 2);
        }
    }
}
