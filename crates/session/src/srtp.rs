//! SRTP for SIP calls: fresh SDES keys for each call and the negotiated
//! keys handed to the call's media. A leaf module: the manager (offers and
//! answers) and the call task (answers that arrive later, re-INVITEs) use
//! it.
//!
//! Keys come from aws-lc-rs's generator (AWS-LC's DRBG seeded from the
//! operating system), never from the manager's injectable `rng` (a test
//! seeds that one), and are never logged: only the suite is.

use callbridge_rtp::srtp::{SrtpKey, SrtpKeys, SrtpSuite};
use callbridge_sip::sdp::{CryptoSuite, KeyMaterial, NegotiatedSrtp};

/// One fresh key per suite we speak, in our preference order
/// (AES_CM_128_HMAC_SHA1_80, _32, AEAD_AES_128_GCM); empty if the
/// generator fails (then no SRTP is offered, and a call that requires it
/// is refused).
pub(crate) fn fresh_keys() -> Vec<(CryptoSuite, KeyMaterial)> {
    let mut out = Vec::with_capacity(CryptoSuite::ALL.len());
    for suite in CryptoSuite::ALL {
        let mut buf = zeroize::Zeroizing::new([0u8; 32]);
        let bytes = &mut buf[..suite.master_len()];
        if aws_lc_rs::rand::fill(bytes).is_err() {
            return Vec::new();
        }
        out.push((suite, KeyMaterial::new(bytes)));
    }
    out
}

/// The media's keys for what SDP negotiated; `None` when they cannot be
/// used (a length the suite does not take: never for keys that parsed).
pub(crate) fn media_keys(n: &NegotiatedSrtp) -> Option<SrtpKeys> {
    let suite = match n.suite {
        CryptoSuite::AesCm128HmacSha1_80 => SrtpSuite::AesCm128HmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32 => SrtpSuite::AesCm128HmacSha1_32,
        CryptoSuite::AeadAes128Gcm => SrtpSuite::AeadAes128Gcm,
        _ => return None,
    };
    let local = SrtpKey::new(suite, n.local.as_bytes()).ok()?;
    let remote = SrtpKey::new(suite, n.remote.as_bytes()).ok()?;
    SrtpKeys::new(local, remote).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_differ_per_call_and_fit_their_suites() {
        let a = fresh_keys();
        let b = fresh_keys();
        assert_eq!(a.len(), 3);
        for ((sa, ka), (sb, kb)) in a.iter().zip(&b) {
            assert_eq!(sa, sb);
            assert_eq!(ka.as_bytes().len(), sa.master_len());
            assert_ne!(ka, kb, "a key repeated across calls");
            assert!(ka.as_bytes().iter().any(|&x| x != 0));
        }
    }

    #[test]
    fn negotiated_keys_become_media_keys_of_the_same_suite() {
        for suite in CryptoSuite::ALL {
            let n = NegotiatedSrtp {
                suite,
                local: KeyMaterial::new(&vec![1; suite.master_len()]),
                remote: KeyMaterial::new(&vec![2; suite.master_len()]),
            };
            let k = media_keys(&n).unwrap();
            assert_eq!(k.suite().master_len(), suite.master_len());
        }
    }
}
