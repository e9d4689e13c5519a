//! Webhook request signatures, so that only the carrier can start calls
//! on the agent or write call status into the store.
//!
//! - Twilio (`X-Twilio-Signature`): base64 (RFC 4648) of HMAC-SHA1
//!   (RFC 2104, FIPS 180-4) keyed with the account's auth token, over the
//!   full request URL followed by every POST parameter's name and value,
//!   sorted by name (for a GET, the URL with its query alone; for the Media
//!   Streams WebSocket upgrade, the stream's `wss://` URL alone).
//! - Vonage signed webhooks: `Authorization: Bearer <JWT>` (RFC 7519),
//!   signed HS256 (HMAC-SHA256, RFC 7515 / RFC 7518 section 3.2) with the
//!   account's signature secret; its `payload_hash` claim is the hex
//!   SHA-256 of the request body, and `iat` says when it was signed.
//!
//! Comparisons are constant-time. Secrets never appear in errors or logs.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest signature header or token looked at.
pub const MAX_TOKEN: usize = 4096;

/// Why a webhook's signature was refused (every one is a 403).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// No signature header (or an empty one).
    #[error("request is not signed")]
    Missing,
    /// The header or token is not of the documented shape.
    #[error("signature is malformed")]
    Malformed,
    /// The JWT names an algorithm other than HS256.
    #[error("signature algorithm not accepted")]
    Algorithm,
    /// The MAC does not match.
    #[error("signature does not match")]
    Mismatch,
    /// The JWT's `payload_hash` is not the body's SHA-256 (or is missing
    /// while the request has a body).
    #[error("payload hash does not match the body")]
    PayloadHash,
    /// The JWT's `iat` is further from now than allowed.
    #[error("signature is too old or from the future")]
    Stale,
}

/// HMAC of the concatenated `parts` under `key`, with the MAC type `M`
/// (`Hmac<Sha1>` for Twilio, `Hmac<Sha256>` for Vonage).
fn hmac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The Twilio signature of a request to `url` with (decoded) POST
/// parameters `params`, keyed with `auth_token`, base64.
///
/// ```
/// use callbridge_session::carrier::signature::twilio_signature;
/// // Twilio's documented example (auth token 12345).
/// let params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"),
///     ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")];
/// assert_eq!(
///     twilio_signature(b"12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
///     "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
/// );
/// ```
pub fn twilio_signature(auth_token: &[u8], url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let mut data = String::with_capacity(url.len() + 256);
    data.push_str(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    B64.encode(hmac::<Hmac<Sha1>>(auth_token, &[data.as_bytes()]))
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
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let mut data = String::with_capacity(url.len() + 256);
    data.push_str(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let want = hmac::<Hmac<Sha1>>(auth_token, &[data.as_bytes()]);
    if bool::from(want.ct_eq(&got)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The claims of a verified Vonage webhook JWT that the agent uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VonageClaims {
    /// Issued at (Unix seconds).
    #[serde(default)]
    pub iat: Option<i64>,
    /// Hex SHA-256 of the body.
    #[serde(default)]
    pub payload_hash: Option<String>,
    /// The application.
    #[serde(default)]
    pub application_id: Option<String>,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

/// How [`verify_vonage`] checks freshness and the body.
#[derive(Debug, Clone, Copy)]
pub struct VonageCheck<'a> {
    /// The request body; `Some` for requests that carry one (POST), whose
    /// hash must then be in `payload_hash`.
    pub body: Option<&'a [u8]>,
    /// Now, as Unix seconds.
    pub now_unix: i64,
    /// The largest allowed distance between `iat` and now (seconds);
    /// `None` skips the check.
    pub max_age_s: Option<u64>,
}

/// Verifies a Vonage signed webhook from its `Authorization` header value
/// (`Bearer <jwt>`) and the account's signature secret.
///
/// # Errors
/// Every [`SignatureError`] but nothing else: a token that is not three
/// base64url parts of JSON is `Malformed`.
pub fn verify_vonage(
    secret: &[u8],
    authorization: Option<&str>,
    check: &VonageCheck<'_>,
) -> Result<VonageClaims, SignatureError> {
    let auth = authorization
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    if auth.len() > MAX_TOKEN {
        return Err(SignatureError::Malformed);
    }
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(SignatureError::Malformed),
    };
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SignatureError::Malformed);
    };
    let header = B64URL.decode(h).map_err(|_| SignatureError::Malformed)?;
    let header: JwtHeader =
        serde_json::from_slice(&header).map_err(|_| SignatureError::Malformed)?;
    if header.alg != "HS256" {
        return Err(SignatureError::Algorithm);
    }
    let mut sig = [0u8; 32];
    match B64URL.decode_slice(s.as_bytes(), &mut sig) {
        Ok(32) => {}
        _ => return Err(SignatureError::Malformed),
    }
    let want = hmac::<Hmac<Sha256>>(secret, &[h.as_bytes(), b".", c.as_bytes()]);
    if !bool::from(want.ct_eq(&sig)) {
        return Err(SignatureError::Mismatch);
    }
    let claims = B64URL.decode(c).map_err(|_| SignatureError::Malformed)?;
    let claims: VonageClaims =
        serde_json::from_slice(&claims).map_err(|_| SignatureError::Malformed)?;
    if let Some(max) = check.max_age_s {
        let iat = claims.iat.ok_or(SignatureError::Stale)?;
        if check.now_unix.abs_diff(iat) > max {
            return Err(SignatureError::Stale);
        }
    }
    if let Some(body) = check.body {
        let hash = claims
            .payload_hash
            .as_deref()
            .ok_or(SignatureError::PayloadHash)?;
        if !hex_eq(&Sha256::digest(body), hash) {
            return Err(SignatureError::PayloadHash);
        }
    }
    Ok(claims)
}

/// Whether `hex` (either case) spells `bytes`, in constant time for equal
/// lengths.
fn hex_eq(bytes: &[u8], hex: &str) -> bool {
    let hex = hex.as_bytes();
    if hex.len() != bytes.len() * 2 {
        return false;
    }
    let mut diff = 0u8;
    for (b, pair) in bytes.iter().zip(hex.chunks_exact(2)) {
        let hi = nibble(pair[0]);
        let lo = nibble(pair[1]);
        match (hi, lo) {
            (Some(hi), Some(lo)) => diff |= (hi << 4 | lo) ^ b,
            _ => return false,
        }
    }
    diff == 0
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Signs claims as an HS256 JWT (for tests and fake carriers; the agent
/// only verifies).
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let h = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let c = B64URL.encode(claims.to_string());
    let s = B64URL.encode(hmac::<Hmac<Sha256>>(
        secret,
        &[h.as_bytes(), b".", c.as_bytes()],
    ));
    format!("{h}.{c}.{s}")
}

/// Hex SHA-256 of `body` (the `payload_hash` claim).
pub fn payload_hash(body: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(body) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Vectors computed independently with python3 (hmac, hashlib, base64):
    //   base64(hmac.new(token, url + "".join(k+v for sorted params), sha1))
    //   HS256 JWT: b64url(header) "." b64url(claims) signed with
    //   hmac.new(secret, ..., sha256); payload_hash = sha256(body).hexdigest().
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

    const VN_SECRET: &[u8] = b"vonage-signature-secret-0123456789";
    const VN_BODY: &[u8] = br#"{"status":"completed","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22","direction":"inbound","timestamp":"2026-11-22T05:00:00.000Z"}"#;
    const VN_HASH: &str = "d570b648ee88d22ece16d0200e9ceffc8cde7ea65b39066e531d8d2449c600ef";
    const VN_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3OTUzMjM2MDAsImp0aSI6ImU1ZDBiNmE0LTBhNGItNGQxYy05ZjRlLTNjN2UyZjBhMWIyYyIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6ImQ1NzBiNjQ4ZWU4OGQyMmVjZTE2ZDAyMDBlOWNlZmZjOGNkZTdlYTY1YjM5MDY2ZTUzMWQ4ZDI0NDljNjAwZWYiLCJhcGlfa2V5IjoiYWJjZDEyMzQiLCJhcHBsaWNhdGlvbl9pZCI6ImFhYWFhYWFhLWJiYmItY2NjYy1kZGRkLWVlZWVlZWVlZWVlZSJ9.kTVhb9-deMpCbUxy4WwiHy0FFQVAoShGU7ut6-R8zMo";
    const VN_IAT: i64 = 1_795_323_600;

    fn vn(body: Option<&[u8]>, now: i64) -> VonageCheck<'_> {
        VonageCheck {
            body,
            now_unix: now,
            max_age_s: Some(300),
        }
    }

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

    #[test]
    fn vonage_known_jwt_verifies_with_body_hash() {
        assert_eq!(payload_hash(VN_BODY), VN_HASH);
        let bearer = format!("Bearer {VN_JWT}");
        let c = verify_vonage(VN_SECRET, Some(&bearer), &vn(Some(VN_BODY), VN_IAT + 10)).unwrap();
        assert_eq!(c.payload_hash.as_deref(), Some(VN_HASH));
        assert_eq!(
            c.application_id.as_deref(),
            Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        );
    }

    #[test]
    fn vonage_refuses_tampered_body_wrong_secret_stale_and_other_algorithms() {
        let bearer = format!("Bearer {VN_JWT}");
        let mut body = VN_BODY.to_vec();
        body[12] = b'x';
        assert_eq!(
            verify_vonage(VN_SECRET, Some(&bearer), &vn(Some(&body), VN_IAT)),
            Err(SignatureError::PayloadHash)
        );
        assert_eq!(
            verify_vonage(b"other", Some(&bearer), &vn(Some(VN_BODY), VN_IAT)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_vonage(VN_SECRET, Some(&bearer), &vn(Some(VN_BODY), VN_IAT + 301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_vonage(VN_SECRET, None, &vn(None, VN_IAT)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_vonage(VN_SECRET, Some(VN_JWT), &vn(None, VN_IAT)),
            Err(SignatureError::Malformed)
        );
        // alg "none" with the signature part kept.
        let none = format!(
            "Bearer {}.{}",
            B64URL.encode(br#"{"alg":"none"}"#),
            VN_JWT.split_once('.').unwrap().1
        );
        assert_eq!(
            verify_vonage(VN_SECRET, Some(&none), &vn(None, VN_IAT)),
            Err(SignatureError::Algorithm)
        );
        // A body with no payload_hash claim is refused.
        let tok = sign_hs256(VN_SECRET, &serde_json::json!({"iat": VN_IAT}));
        assert_eq!(
            verify_vonage(
                VN_SECRET,
                Some(&format!("Bearer {tok}")),
                &vn(Some(b"{}"), VN_IAT)
            ),
            Err(SignatureError::PayloadHash)
        );
        assert!(
            verify_vonage(VN_SECRET, Some(&format!("Bearer {tok}")), &vn(None, VN_IAT)).is_ok()
        );
    }

    #[test]
    fn our_signer_matches_the_independent_vector_shape() {
        let tok = sign_hs256(
            VN_SECRET,
            &serde_json::json!({"iat": 1, "payload_hash": payload_hash(b"x")}),
        );
        let c = verify_vonage(
            VN_SECRET,
            Some(&format!("bearer {tok}")),
            &VonageCheck {
                body: Some(b"x"),
                now_unix: 0,
                max_age_s: None,
            },
        )
        .unwrap();
        assert_eq!(c.iat, Some(1));
    }

    proptest! {
        #[test]
        fn vonage_verify_never_panics(s in ".{0,300}") {
            let _ = verify_vonage(VN_SECRET, Some(&s), &vn(Some(b""), 0));
            let _ = verify_vonage(VN_SECRET, Some(&format!("Bearer {s}")), &vn(None, 0));
        }

        #[test]
        fn twilio_verify_never_panics(s in ".{0,100}") {
            let _ = verify_twilio(b"k", "https://x", &[("a", "b")], Some(&s));
        }
    }
}
