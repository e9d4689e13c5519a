//! `a=crypto` parsing and writing, and `RTP/SAVP` offer/answer under each
//! SRTP policy.

use super::super::{Direction, LocalMedia, SdpError, Session, answer, make_offer, process_answer};
use super::*;

/// RFC 4568 section 4's example key (30 bytes).
const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

#[test]
fn parses_the_rfc_4568_example_with_lifetime() {
    let a =
        CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20")).unwrap();
    assert_eq!(a.tag, 1);
    assert_eq!(a.suite, CryptoSuite::AesCm128HmacSha1_80);
    assert_eq!(a.key.as_bytes(), STANDARD.decode(KEY).unwrap());
    assert_eq!(
        a.to_value(),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")
    );
    let again = CryptoAttribute::parse(&a.to_value()).unwrap();
    assert_eq!(again, a);
}

#[test]
fn refuses_what_it_cannot_use() {
    let cases = [
        ("", CryptoError::Syntax("no tag")),
        (
            "x AES_CM_128_HMAC_SHA1_80 inline:K",
            CryptoError::Syntax("tag"),
        ),
        (
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:K",
            CryptoError::Syntax("tag"),
        ),
        ("1", CryptoError::Syntax("no suite")),
        ("1 AES_CM_128_HMAC_SHA1_80", CryptoError::Syntax("no key")),
        ("1 F8_128_HMAC_SHA1_80 inline:K", CryptoError::UnknownSuite),
        (
            "1 AES_CM_128_HMAC_SHA1_80 uri:http://x",
            CryptoError::Unsupported("key method"),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:K|2^20|1:4",
            CryptoError::Unsupported("MKI"),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:K;inline:K",
            CryptoError::Unsupported("several keys"),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:K KDR=1",
            CryptoError::Unsupported("session parameter"),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
            CryptoError::Syntax("key is not base64"),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            CryptoError::Syntax("key length"),
        ),
        (
            "1 AEAD_AES_128_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            CryptoError::Syntax("key length"),
        ),
    ];
    for (text, want) in cases {
        let text = text.replace(":K", &format!(":{KEY}"));
        assert_eq!(CryptoAttribute::parse(&text), Err(want), "{text}");
    }
    assert_eq!(
        CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^x")),
        Err(CryptoError::Syntax("lifetime"))
    );
}

#[test]
fn key_material_never_prints() {
    let a = CryptoAttribute::parse(&format!("7 AES_CM_128_HMAC_SHA1_32 inline:{KEY}")).unwrap();
    let text = format!("{a:?}");
    assert!(!text.contains(KEY) && text.contains("redacted"), "{text}");
    let bytes = format!("{:?}", a.key.as_bytes());
    assert!(!text.contains(&bytes[1..20]), "{text}");
}

fn keys(fill: u8) -> Vec<(CryptoSuite, KeyMaterial)> {
    CryptoSuite::ALL
        .into_iter()
        .map(|s| (s, KeyMaterial::new(&vec![fill; s.master_len()])))
        .collect()
}

fn local(policy: SrtpPolicy, fill: u8) -> LocalMedia {
    let mut l = LocalMedia::new([192, 0, 2, 1].into(), 40000);
    l.srtp = policy;
    l.srtp_keys = keys(fill);
    l
}

fn offer(protocols: &[&str]) -> Session {
    let mut text = String::from(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\n",
    );
    for (i, p) in protocols.iter().enumerate() {
        text.push_str(&format!("m=audio {} {p} 0\r\n", 5000 + 2 * i));
        if *p == "RTP/SAVP" {
            text.push_str("a=crypto:1 AES_CM_128_HMAC_SHA1_99 inline:xx\r\n");
            text.push_str(&format!(
                "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\n"
            ));
            text.push_str(&format!(
                "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
            ));
        }
    }
    Session::parse(text.as_bytes()).unwrap()
}

#[test]
fn answers_savp_with_the_offerers_first_usable_line_and_our_key() {
    for policy in [SrtpPolicy::Offer, SrtpPolicy::Require] {
        let (ans, n) = answer(&offer(&["RTP/SAVP"]), &local(policy, 0x11)).unwrap();
        let m = &ans.media[0];
        assert_eq!(m.protocol, "RTP/SAVP");
        let lines = m.crypto();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].tag, lines[0].suite),
            (2, CryptoSuite::AesCm128HmacSha1_32)
        );
        assert_eq!(lines[0].key.as_bytes(), [0x11; 30]);
        let srtp = n.srtp.unwrap();
        assert_eq!(srtp.suite, CryptoSuite::AesCm128HmacSha1_32);
        assert_eq!(srtp.local.as_bytes(), [0x11; 30]);
        assert_eq!(srtp.remote.as_bytes(), STANDARD.decode(KEY).unwrap());
    }
}

#[test]
fn each_policy_takes_or_refuses_each_kind_of_offer() {
    use SrtpPolicy::*;
    /// (policy, the offer's audio protocols, the answer's (audio index, SRTP)).
    type Case = (
        SrtpPolicy,
        &'static [&'static str],
        Result<(usize, bool), SdpError>,
    );
    let cases: [Case; 9] = [
        (Off, &["RTP/AVP"], Ok((0, false))),
        (Off, &["RTP/SAVP"], Err(SdpError::SrtpUnusable)),
        (Off, &["RTP/SAVP", "RTP/AVP"], Ok((1, false))),
        (Offer, &["RTP/AVP"], Ok((0, false))),
        (Offer, &["RTP/SAVP"], Ok((0, true))),
        (Offer, &["RTP/AVP", "RTP/SAVP"], Ok((1, true))),
        (Require, &["RTP/AVP"], Err(SdpError::SrtpRequired)),
        (Require, &["RTP/SAVP"], Ok((0, true))),
        (Require, &["RTP/AVP", "RTP/SAVP"], Ok((1, true))),
    ];
    for (policy, protocols, want) in cases {
        let got = answer(&offer(protocols), &local(policy, 1))
            .map(|(_, n)| (n.media_index, n.srtp.is_some()));
        assert_eq!(got, want, "{policy:?} {protocols:?}");
        if let Err(e) = got {
            assert_eq!(e.status().as_u16(), 488);
        }
    }
}

#[test]
fn savp_without_a_usable_line_is_refused_even_when_offered() {
    let text = "v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\n\
                m=audio 5000 RTP/SAVP 0\r\na=crypto:1 F8_128_HMAC_SHA1_80 inline:xx\r\n";
    let o = Session::parse(text.as_bytes()).unwrap();
    assert_eq!(
        answer(&o, &local(SrtpPolicy::Require, 1)).unwrap_err(),
        SdpError::SrtpUnusable
    );
}

#[test]
fn our_savp_offer_and_its_answer_give_both_sides_the_same_keys() {
    let alice = local(SrtpPolicy::Offer, 0xa1);
    let o = make_offer(&alice, Direction::SendRecv);
    let m = &o.media[0];
    assert_eq!(m.protocol, "RTP/SAVP");
    let tags: Vec<_> = m.crypto().iter().map(|c| (c.tag, c.suite)).collect();
    assert_eq!(
        tags,
        [
            (1, CryptoSuite::AesCm128HmacSha1_80),
            (2, CryptoSuite::AesCm128HmacSha1_32),
            (3, CryptoSuite::AeadAes128Gcm)
        ]
    );
    // The text goes over the wire and back.
    let o = Session::parse(o.to_text().as_bytes()).unwrap();
    let bob = local(SrtpPolicy::Require, 0xb0);
    let (a, at_bob) = answer(&o, &bob).unwrap();
    let a = Session::parse(a.to_text().as_bytes()).unwrap();
    let at_alice = process_answer(&o, &a).unwrap();
    let (sa, sb) = (at_alice.srtp.unwrap(), at_bob.srtp.unwrap());
    assert_eq!(sa.suite, CryptoSuite::AesCm128HmacSha1_80);
    assert_eq!(sa.local, sb.remote);
    assert_eq!(sa.remote, sb.local);
    assert_eq!(sa.local.as_bytes(), [0xa1; 30]);
}

#[test]
fn plain_offers_and_mismatched_answers() {
    let mut off = local(SrtpPolicy::Off, 1);
    assert_eq!(
        make_offer(&off, Direction::SendRecv).media[0].protocol,
        "RTP/AVP"
    );
    off.srtp = SrtpPolicy::Offer;
    off.srtp_keys.clear();
    assert_eq!(
        make_offer(&off, Direction::SendRecv).media[0].protocol,
        "RTP/AVP"
    );
    // A plain answer to our SAVP offer, and an answer whose crypto line
    // names a tag we did not offer, are refused.
    let o = make_offer(&local(SrtpPolicy::Offer, 2), Direction::SendRecv);
    assert_eq!(
        answer(&o, &local(SrtpPolicy::Off, 3)).unwrap_err(),
        SdpError::SrtpUnusable
    );
    let (plain, _) = answer(&offer(&["RTP/AVP"]), &local(SrtpPolicy::Off, 3)).unwrap();
    assert_eq!(
        process_answer(&o, &plain).unwrap_err(),
        SdpError::AnswerMismatch("transport protocol differs")
    );
    let (mut a, _) = answer(&o, &local(SrtpPolicy::Offer, 4)).unwrap();
    for attr in &mut a.media[0].attributes {
        if attr.name == "crypto" {
            attr.value = Some(format!("9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"));
        }
    }
    assert_eq!(process_answer(&o, &a).unwrap_err(), SdpError::SrtpUnusable);
}
