//! SRTP vectors, round trips, and the bounds against forged packets.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 3711 Appendix B.3's master key and salt, the key of libsrtp's
/// reference packets (`srtp_driver`'s AES_CM_128_HMAC_SHA1 vectors).
const RFC3711_KEY_SALT: &str = "e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6";

/// libsrtp's reference plaintext: an RTP header (PT 15, seq 0x1234,
/// SSRC 0xcafebabe) and 16 bytes of 0xab.
const PLAIN: &str = "800f1234decafbadcafebabe abababababababababababababababab";

fn session(suite: SrtpSuite, local: &[u8], remote: &[u8]) -> SrtpSession {
    let keys = SrtpKeys::new(
        SrtpKey::new(suite, local).unwrap(),
        SrtpKey::new(suite, remote).unwrap(),
    )
    .unwrap();
    SrtpSession::new(&keys).unwrap()
}

fn check_vector(suite: SrtpSuite, key: &[u8], cipher: &[u8]) {
    let plain = hex(PLAIN);
    let mut s = session(suite, key, key);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = s.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], cipher, "{suite:?} protect");
    let mut out = [0u8; 128];
    let m = s.unprotect_rtp(cipher, &mut out).unwrap();
    assert_eq!(&out[..m], &plain[..], "{suite:?} unprotect");
}

#[test]
fn aes_cm_128_hmac_sha1_80_matches_the_reference_packet() {
    let cipher =
        hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    check_vector(
        SrtpSuite::AesCm128HmacSha1_80,
        &hex(RFC3711_KEY_SALT),
        &cipher,
    );
}

#[test]
fn aes_cm_128_hmac_sha1_32_is_the_same_packet_with_a_32_bit_tag() {
    let cipher = hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc");
    check_vector(
        SrtpSuite::AesCm128HmacSha1_32,
        &hex(RFC3711_KEY_SALT),
        &cipher,
    );
}

#[test]
fn aead_aes_128_gcm_matches_the_reference_packet() {
    let key = hex("000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab");
    let cipher = hex(
        "800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06e d2976826f796b201df3131a127e8a392",
    );
    check_vector(SrtpSuite::AeadAes128Gcm, &key, &cipher);
}

fn rtp(seq: u16, ssrc: u32, payload: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(payload, 160));
    p
}

fn pair(suite: SrtpSuite) -> (SrtpSession, SrtpSession) {
    let a: Vec<u8> = (0..suite.master_len() as u8).collect();
    let b: Vec<u8> = (0..suite.master_len() as u8).map(|x| x ^ 0x5a).collect();
    (session(suite, &a, &b), session(suite, &b, &a))
}

fn protect(s: &mut SrtpSession, p: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; MAX_SRTP_PACKET];
    buf[..p.len()].copy_from_slice(p);
    let n = s.protect_rtp(&mut buf, p.len()).unwrap();
    buf[..n].to_vec()
}

#[test]
fn every_suite_round_trips_rtp_across_the_sequence_wrap() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        // 65530..65535 then 0..5: the rollover counter goes to 1 on both
        // sides, so the packets after the wrap still decrypt.
        for i in 0..12u16 {
            let seq = 65530u16.wrapping_add(i);
            let clear = rtp(seq, 0x1234, i as u8);
            let sealed = protect(&mut alice, &clear);
            assert_eq!(sealed.len(), clear.len() + suite.rtp_overhead());
            assert_ne!(
                &sealed[12..172],
                &clear[12..],
                "{suite:?}: payload encrypted"
            );
            let mut out = [0u8; MAX_SRTP_PACKET];
            let n = bob.unprotect_rtp(&sealed, &mut out).unwrap();
            assert_eq!(&out[..n], &clear[..], "{suite:?} seq {seq}");
        }
    }
}

fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

#[test]
fn every_suite_round_trips_rtcp_and_refuses_its_replay() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        for _ in 0..3 {
            let clear = rtcp_rr(0x77);
            let mut buf = [0u8; 64];
            buf[..clear.len()].copy_from_slice(&clear);
            let n = alice.protect_rtcp(&mut buf, clear.len()).unwrap();
            let mut out = [0u8; 64];
            let m = bob.unprotect_rtcp(&buf[..n], &mut out).unwrap();
            assert_eq!(&out[..m], &clear[..], "{suite:?}");
            assert_eq!(
                bob.unprotect_rtcp(&buf[..n], &mut out),
                Err(SrtpError::Replay),
                "{suite:?}"
            );
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_fails_authentication() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let sealed = protect(&mut alice, &rtp(10, 1, 0x55));
        for bit in [0usize, 8 * 20, 8 * (sealed.len() - 1)] {
            let mut forged = sealed.clone();
            forged[bit / 8] ^= 1 << (bit % 8);
            let mut out = [0u8; MAX_SRTP_PACKET];
            assert!(
                bob.unprotect_rtp(&forged, &mut out).is_err(),
                "{suite:?} bit {bit}"
            );
        }
        // The genuine packet still passes after the forgeries.
        let mut out = [0u8; MAX_SRTP_PACKET];
        assert!(bob.unprotect_rtp(&sealed, &mut out).is_ok());
    }
}

#[test]
fn a_replayed_packet_is_refused_and_a_late_one_in_the_window_is_not() {
    let (mut alice, mut bob) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let first = protect(&mut alice, &rtp(100, 9, 1));
    let second = protect(&mut alice, &rtp(101, 9, 2));
    let mut out = [0u8; MAX_SRTP_PACKET];
    bob.unprotect_rtp(&second, &mut out).unwrap();
    bob.unprotect_rtp(&first, &mut out).unwrap();
    assert_eq!(bob.unprotect_rtp(&first, &mut out), Err(SrtpError::Replay));
    assert_eq!(bob.unprotect_rtp(&second, &mut out), Err(SrtpError::Replay));
}

#[test]
fn the_wrong_key_fails_authentication() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let (mut alice, _) = pair(suite);
    let mut eve = session(suite, &[1; 30], &[2; 30]);
    let sealed = protect(&mut alice, &rtp(1, 5, 0));
    let mut out = [0u8; MAX_SRTP_PACKET];
    assert_eq!(eve.unprotect_rtp(&sealed, &mut out), Err(SrtpError::Auth));
}

#[test]
fn forged_packets_with_new_ssrcs_keep_the_state_bounded() {
    let (mut alice, mut bob) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut out = [0u8; MAX_SRTP_PACKET];
    for i in 0..(PROBE_FAILURES * 3) {
        let mut forged = rtp(1, 1000 + i, 0);
        forged.extend_from_slice(&[0; 10]);
        assert_eq!(bob.unprotect_rtp(&forged, &mut out), Err(SrtpError::Auth));
    }
    assert_eq!(bob.probe_rebuilds(), 3);
    assert!(bob.known.is_empty());
    // The real peer is heard afterwards.
    let sealed = protect(&mut alice, &rtp(1, 42, 7));
    assert!(bob.unprotect_rtp(&sealed, &mut out).is_ok());
    assert_eq!(bob.known, [42]);
}

#[test]
fn sources_past_the_limit_are_refused() {
    let (mut alice, mut bob) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut out = [0u8; MAX_SRTP_PACKET];
    for ssrc in 0..MAX_REMOTE_SSRCS as u32 {
        let sealed = protect(&mut alice, &rtp(1, ssrc, 0));
        bob.unprotect_rtp(&sealed, &mut out).unwrap();
    }
    let sealed = protect(&mut alice, &rtp(1, 99, 0));
    assert_eq!(
        bob.unprotect_rtp(&sealed, &mut out),
        Err(SrtpError::TooManySsrcs)
    );
}

#[test]
fn short_packets_and_bad_keys_are_errors_not_panics() {
    let (_, mut bob) = pair(SrtpSuite::AeadAes128Gcm);
    let mut out = [0u8; MAX_SRTP_PACKET];
    for len in 0..40 {
        let junk = vec![0x80; len];
        assert!(bob.unprotect_rtp(&junk, &mut out).is_err());
        assert!(bob.unprotect_rtcp(&junk, &mut out).is_err());
    }
    assert_eq!(
        SrtpKey::new(SrtpSuite::AesCm128HmacSha1_80, &[0; 29]),
        Err(SrtpError::KeyLength { need: 30, have: 29 })
    );
    let a = SrtpKey::new(SrtpSuite::AesCm128HmacSha1_80, &[0; 30]).unwrap();
    let b = SrtpKey::new(SrtpSuite::AeadAes128Gcm, &[0; 28]).unwrap();
    assert_eq!(SrtpKeys::new(a, b), Err(SrtpError::SuiteMismatch));
}

#[test]
fn keys_never_print() {
    let key = SrtpKey::new(SrtpSuite::AesCm128HmacSha1_80, &[0xab; 30]).unwrap();
    let keys = SrtpKeys::new(key.clone(), key.clone()).unwrap();
    let s = SrtpSession::new(&keys).unwrap();
    for text in [format!("{key:?}"), format!("{keys:?}"), format!("{s:?}")] {
        assert!(
            !text.contains("171") && !text.to_lowercase().contains("ab, "),
            "{text}"
        );
        assert!(!text.contains("abab"), "{text}");
    }
}

#[test]
fn a_too_small_output_buffer_is_an_error() {
    let (mut alice, _) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let clear = rtp(1, 1, 0);
    let mut buf = vec![0u8; clear.len()];
    buf.copy_from_slice(&clear);
    assert!(matches!(
        alice.protect_rtp(&mut buf, clear.len()),
        Err(SrtpError::BufferTooSmall { .. })
    ));
}
