//! Property tests of SDP: parsing never panics, written sessions parse back
//! equal, and answers to any offer with G.711 pick a codec that was offered.

use callbridge_sip::sdp::{
    Address, Attribute, Codec, Connection, Direction, LocalMedia, Media, Origin, Session, answer,
    make_offer, process_answer,
};
use proptest::prelude::*;
use std::net::IpAddr;

fn tok() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9/._+-]{0,10}"
}

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Address::Ip(IpAddr::from(a))),
        any::<[u16; 8]>().prop_map(|a| Address::Ip(IpAddr::from(a))),
        "[a-z]{1,8}\\.example".prop_map(|h| Address::Other {
            addr_type: "IP4".into(),
            address: h
        }),
    ]
}

fn attribute() -> impl Strategy<Value = Attribute> {
    ("[a-z][a-z0-9-]{0,8}", proptest::option::of("[ -~]{0,20}"))
        .prop_map(|(name, value)| Attribute { name, value })
}

fn media() -> impl Strategy<Value = Media> {
    (
        "(audio|video|text)",
        any::<u16>(),
        proptest::collection::vec(0u8..128, 1..6),
        proptest::option::of(address()),
        proptest::collection::vec(attribute(), 0..5),
    )
        .prop_map(|(kind, port, pts, c, attributes)| Media {
            kind,
            port,
            port_count: None,
            protocol: "RTP/AVP".into(),
            formats: pts.iter().map(u8::to_string).collect(),
            connection: c.map(|address| Connection { address }),
            bandwidth: Vec::new(),
            other: Vec::new(),
            attributes,
        })
}

fn session() -> impl Strategy<Value = Session> {
    (
        tok(),
        any::<u64>(),
        any::<u64>(),
        address(),
        "[ -~]{1,12}",
        proptest::option::of(address()),
        proptest::collection::vec(attribute(), 0..4),
        proptest::collection::vec(media(), 0..4),
    )
        .prop_map(
            |(username, id, ver, addr, name, c, attributes, media)| Session {
                origin: Origin {
                    username,
                    session_id: id,
                    session_version: ver,
                    address: addr,
                },
                name,
                connection: c.map(|address| Connection { address }),
                bandwidth: vec!["AS:64".into()],
                timing: vec!["0 0".into()],
                other: Vec::new(),
                attributes,
                media,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(s) = Session::parse(&data) {
            let _ = answer(&s, &LocalMedia::new([127, 0, 0, 1].into(), 4000));
        }
    }

    #[test]
    fn line_shaped_input_never_panics(lines in proptest::collection::vec("[vosctmab]=[ -~]{0,30}", 0..12)) {
        let text = format!("v=0\r\n{}", lines.join("\r\n"));
        if let Ok(s) = Session::parse(text.as_bytes()) {
            let _ = answer(&s, &LocalMedia::new([127, 0, 0, 1].into(), 4000));
        }
    }

    #[test]
    fn written_sessions_parse_back_equal(s in session()) {
        let text = s.to_text();
        let parsed = Session::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        // Free-form lines come back grouped as the writer orders them.
        let mut expected = s.clone();
        expected.other.sort_by_key(|(c, _)| matches!(c, 'r' | 'z' | 'k'));
        prop_assert_eq!(&parsed, &expected);
        prop_assert_eq!(Session::parse(parsed.to_text().as_bytes()).ok(), Some(parsed));
    }

    #[test]
    fn parsed_sessions_with_lines_in_any_order_write_back_equal(
        lines in proptest::collection::vec(("[iueprzkab]", "[!-~][ -~]{0,10}"), 0..8),
    ) {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=x\r\nt=0 0\r\n");
        for (c, v) in &lines {
            text.push_str(&format!("{c}={v}\r\n"));
        }
        text.push_str("m=audio 4000 RTP/AVP 0\r\n");
        if let Ok(parsed) = Session::parse(text.as_bytes()) {
            prop_assert_eq!(Session::parse(parsed.to_text().as_bytes()).ok(), Some(parsed));
        }
    }

    #[test]
    fn answers_pick_an_offered_codec(pcmu in any::<bool>(), pcma in any::<bool>(), te in any::<bool>(), prefer_a in any::<bool>()) {
        let mut offerer = LocalMedia::new([198, 51, 100, 1].into(), 5000);
        offerer.codecs = [(pcmu, Codec::Pcmu), (pcma, Codec::Pcma)].into_iter().filter(|(on, _)| *on).map(|(_, c)| c).collect();
        offerer.telephone_event = te.then_some(101);
        let offer = make_offer(&offerer, Direction::SendRecv);
        let mut us = LocalMedia::new([192, 0, 2, 1].into(), 6000);
        if prefer_a {
            us.codecs = vec![Codec::Pcma, Codec::Pcmu];
        }
        match answer(&offer, &us) {
            Ok((ans, neg)) => {
                prop_assert!(offerer.codecs.contains(&neg.codec));
                prop_assert_eq!(neg.codec, *us.codecs.iter().find(|c| offerer.codecs.contains(c)).unwrap());
                prop_assert_eq!(neg.telephone_event.is_some(), te);
                let back = process_answer(&offer, &ans).unwrap();
                prop_assert_eq!(back.codec, neg.codec);
            }
            Err(_) => prop_assert!(offerer.codecs.is_empty()),
        }
    }
}

// --- trunk (issue 20): a=crypto (RFC 4568) ---

use callbridge_sip::sdp::{CryptoAttribute, CryptoSuite, KeyMaterial, SrtpPolicy};

fn crypto_line() -> impl Strategy<Value = CryptoAttribute> {
    (
        0u32..1_000_000_000,
        0usize..3,
        proptest::collection::vec(any::<u8>(), 30),
    )
        .prop_map(|(tag, s, key)| {
            let suite = CryptoSuite::ALL[s];
            CryptoAttribute {
                tag,
                suite,
                key: KeyMaterial::new(&key[..suite.master_len()]),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn crypto_values_never_panic(v in "[ -~]{0,80}") {
        let _ = CryptoAttribute::parse(&v);
    }

    #[test]
    fn crypto_shaped_values_never_panic(
        tag in "[0-9]{0,11}",
        suite in "(AES_CM_128_HMAC_SHA1_80|AES_CM_128_HMAC_SHA1_32|AEAD_AES_128_GCM|[A-Z_0-9]{0,12})",
        key in "[A-Za-z0-9+/=]{0,44}",
        rest in "(\\|[0-9^:|]{0,12})?( [A-Z=0-9]{0,8})?",
    ) {
        let _ = CryptoAttribute::parse(&format!("{tag} {suite} inline:{key}{rest}"));
    }

    #[test]
    fn written_crypto_lines_parse_back_equal(c in crypto_line()) {
        prop_assert_eq!(CryptoAttribute::parse(&c.to_value()), Ok(c));
    }

    #[test]
    fn savp_offers_are_answered_with_a_line_they_offered(
        lines in proptest::collection::vec(crypto_line(), 1..5),
        policy in 0usize..3,
    ) {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=x\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n");
        for l in &lines {
            text.push_str(&format!("a=crypto:{}\r\n", l.to_value()));
        }
        let offer = Session::parse(text.as_bytes()).unwrap();
        let mut us = LocalMedia::new([192, 0, 2, 9].into(), 6000);
        us.srtp = SrtpPolicy::ALL[policy];
        us.srtp_keys = CryptoSuite::ALL.into_iter().map(|s| (s, KeyMaterial::new(&vec![3; s.master_len()]))).collect();
        match answer(&offer, &us) {
            Ok((ans, neg)) => {
                let srtp = neg.srtp.expect("an SAVP answer has keys");
                let first = &lines[0];
                prop_assert_eq!(srtp.suite, first.suite);
                prop_assert_eq!(&srtp.remote, &first.key);
                let back = process_answer(&offer, &ans).unwrap().srtp.unwrap();
                prop_assert_eq!(back.remote, srtp.local);
            }
            Err(_) => prop_assert_eq!(us.srtp, SrtpPolicy::Off),
        }
    }
}
