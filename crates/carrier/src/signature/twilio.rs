//! Twilio's `X-Twilio-Signature`: base64 of HMAC-SHA1 (RFC 2104) keyed
//! with the account's auth token, over the URL and the sorted parameters
//! (see the parent module).

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq as _;

use super::{MAX_TOKEN, SignatureError};

/// Twilio's HMAC-SHA1 (aws-lc-rs) keyed with `auth_token`, fed the URL and
/// the sorted parameters.
fn twilio_mac(auth_token: &[u8], url: &str, params: &[(&str, &str)]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token);
    let mut mac = hmac::Context::with_key(&key);
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac.sign()
}

/// The Twilio signature of a request to `url` with (decoded) POST
/// parameters `params`, keyed with `auth_token`, base64.
///
/// ```
/// use callbridge_carrier::signature::twilio_signature;
/// // Twilio's documented example (auth token 12345).
/// let params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"),
///     ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")];
/// assert_eq!(
///     twilio_signature(b"12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
///     "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
/// );
/// ```
pub fn twilio_signature(auth_token: &[u8], url: &str, params: &[(&str, &str)]) -> String {
    B64.encode(twilio_mac(auth_token, url, params))
}

/// Verifies an `X-Twilio-Signature` header value.
///
/// # Errors
/// [`SignatureError::Missing`] (no header), [`SignatureError::Malformed`]
/// (not base64 of 20 bytes), [`SignatureError::Mismatch`].
pub fn verify_twilio(
    auth_token: &[u8],
    url: &str,
    params: &[(&str, &str)],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_TOKEN {
        return Err(SignatureError::Malformed);
    }
    let mut got = [0u8; 20];
    match B64.decode_slice(header.as_bytes(), &mut got) {
        Ok(20) => {}
        _ => return Err(SignatureError::Malformed),
    }
    // Compared in constant time (`subtle`).
    let ours = twilio_mac(auth_token, url, params);
    if bool::from(ours.as_ref().ct_eq(&got[..])) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Vectors computed independently with python3 (hmac, hashlib, base64):
    //   base64(hmac.new(token, url + "".join(k+v for sorted params), sha1))
    const TW_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const TW_PARAMS: [(&str, &str); 5] = [
        ("From", "+12349013030"),
        ("CallSid", "CA1234567890ABCDE"),
        ("To", "+18005551212"),
        ("Digits", "1234"),
        ("Caller", "+12349013030"),
    ];
    const TW_SIG: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    const TW_GET_URL: &str = "https://agent.example/twilio/voice?CallSid=CA1&From=%2B15551234567";
    const TW_GET_SIG: &str = "0+VMjtqedpEMzgXVve8qiE4TBao=";
    // The Media Streams upgrade: the stream's wss:// URL, no parameters.
    const TW_WS_URL: &str = "wss://agent.example/carrier/twilio/ws";
    const TW_WS_SIG: &str = "21hpo1E09NH3kYb6mvdY96m32qU=";

    #[test]
    fn twilio_known_vectors_verify_in_any_parameter_order() {
        assert_eq!(twilio_signature(b"12345", TW_URL, &TW_PARAMS), TW_SIG);
        assert_eq!(
            verify_twilio(b"12345", TW_URL, &TW_PARAMS, Some(TW_SIG)),
            Ok(())
        );
        assert_eq!(
            twilio_signature(b"secret-token", TW_GET_URL, &[]),
            TW_GET_SIG
        );
        assert_eq!(
            verify_twilio(b"secret-token", TW_GET_URL, &[], Some(TW_GET_SIG)),
            Ok(())
        );
    }

    #[test]
    fn twilio_websocket_upgrade_vector_signs_the_wss_url_alone() {
        assert_eq!(twilio_signature(b"secret-token", TW_WS_URL, &[]), TW_WS_SIG);
        assert_eq!(
            verify_twilio(b"secret-token", TW_WS_URL, &[], Some(TW_WS_SIG)),
            Ok(())
        );
        // The https:// form of the same address is another URL.
        assert_eq!(
            verify_twilio(
                b"secret-token",
                "https://agent.example/carrier/twilio/ws",
                &[],
                Some(TW_WS_SIG)
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_twilio(b"secret-token", TW_WS_URL, &[], None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn twilio_refuses_unsigned_tampered_or_wrong_key() {
        assert_eq!(
            verify_twilio(b"12345", TW_URL, &TW_PARAMS, None),
            Err(SignatureError::Missing)
        );
        let mut p = TW_PARAMS;
        p[3] = ("Digits", "1235");
        assert_eq!(
            verify_twilio(b"12345", TW_URL, &p, Some(TW_SIG)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_twilio(b"12346", TW_URL, &TW_PARAMS, Some(TW_SIG)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_twilio(
                b"12345",
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                &TW_PARAMS,
                Some(TW_SIG)
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_twilio(b"12345", TW_URL, &TW_PARAMS, Some("bm90IGEgc2ln")),
            Err(SignatureError::Malformed)
        );
    }

    proptest! {
        #[test]
        fn twilio_verify_never_panics(s in ".{0,100}") {
            let _ = verify_twilio(b"k", "https://x", &[("a", "b")], Some(&s));
        }
    }
}
