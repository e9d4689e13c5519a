//! Vonage signed webhooks: an HS256 JWT (RFC 7519, RFC 7515) bound to its
//! request by `payload_hash`, fresh, and single-use (see the parent
//! module).

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{MAX_TOKEN, SignatureError};
use crate::replay::{JtiCache, ReplayError};

/// The claims of a verified Vonage webhook JWT that the agent uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VonageClaims {
    /// Issued at (Unix seconds).
    #[serde(default)]
    pub iat: Option<i64>,
    /// The token's unique id.
    #[serde(default)]
    pub jti: Option<String>,
    /// Hex SHA-256 of what the request carries (see the module docs).
    #[serde(default)]
    pub payload_hash: Option<String>,
    /// The application.
    #[serde(default)]
    pub application_id: Option<String>,
    /// The account's API key (which signature secret signed it).
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Only what tells "another algorithm" from "not a JWT header".
#[derive(Deserialize)]
struct AnyAlg {
    #[allow(dead_code, reason = "present is all that matters")]
    alg: serde_json::Value,
}

/// What a signed request carries, which its token must be bound to.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// The body of a request that has one (POST): `payload_hash` must be
    /// its SHA-256.
    Body(&'a [u8]),
    /// The query parameters, in order, of a request without a body (GET):
    /// `payload_hash`, when the token has one, must be the SHA-256 of
    /// [`query_payload`]; without one, `iat` must be within
    /// [`VonageCheck::fresh_s`].
    Query(&'a [(String, String)]),
}

/// How [`verify_vonage`] checks freshness and binding.
#[derive(Debug, Clone, Copy)]
pub struct VonageCheck<'a> {
    /// What the request carries.
    pub signed: Signed<'a>,
    /// Now, as Unix seconds.
    pub now_unix: i64,
    /// The largest allowed distance between `iat` and now (seconds);
    /// `None` skips the check.
    pub max_age_s: Option<u64>,
    /// The largest allowed distance between `iat` and now for a token that
    /// binds nothing of its request (a GET without `payload_hash`).
    pub fresh_s: u64,
    /// Our Vonage application, when known: a token naming another
    /// `application_id` (the signature secret is the account's, shared by
    /// all its applications) is refused.
    pub application_id: Option<&'a str>,
}

/// Default [`VonageCheck::max_age_s`]: Vonage signs each webhook when it
/// sends it; five minutes covers clock skew and retries.
pub const VONAGE_MAX_AGE_S: u64 = 300;

/// Default [`VonageCheck::fresh_s`]: an answer webhook is signed the moment
/// the call arrives.
pub const VONAGE_FRESH_S: u64 = 30;

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
    let claims = decode_hs256(secret, token)?;
    if let Some(max) = check.max_age_s {
        let iat = claims.iat.ok_or(SignatureError::Stale)?;
        if check.now_unix.abs_diff(iat) > max {
            return Err(SignatureError::Stale);
        }
    }
    if let (Some(ours), Some(theirs)) = (check.application_id, claims.application_id.as_deref())
        && ours != theirs
    {
        return Err(SignatureError::Application);
    }
    match (check.signed, claims.payload_hash.as_deref()) {
        (Signed::Body(body), Some(hash)) => {
            if !hex_eq(digest(&SHA256, body).as_ref(), hash) {
                return Err(SignatureError::PayloadHash);
            }
        }
        (Signed::Body(_), None) => return Err(SignatureError::PayloadHash),
        (Signed::Query(q), Some(hash)) => {
            if !hex_eq(digest(&SHA256, query_payload(q).as_bytes()).as_ref(), hash) {
                return Err(SignatureError::PayloadHash);
            }
        }
        (Signed::Query(_), None) => {
            // Nothing of the request is signed: only a fresh token passes.
            let iat = claims.iat.ok_or(SignatureError::Stale)?;
            if check.now_unix.abs_diff(iat) > check.fresh_s {
                return Err(SignatureError::Stale);
            }
        }
    }
    Ok(claims)
}

/// [`verify_vonage`], then holds the token to a single use: its `jti` is
/// recorded in `seen` until `iat + max_age_s` (when it goes stale).
///
/// # Errors
/// Those of [`verify_vonage`], and [`SignatureError::NoJti`],
/// [`SignatureError::Replayed`], [`SignatureError::Busy`].
pub fn verify_vonage_once(
    secret: &[u8],
    authorization: Option<&str>,
    check: &VonageCheck<'_>,
    seen: &mut JtiCache,
) -> Result<VonageClaims, SignatureError> {
    let max_age = check.max_age_s.unwrap_or(VONAGE_MAX_AGE_S);
    let check = VonageCheck {
        max_age_s: Some(max_age),
        ..*check
    };
    let claims = verify_vonage(secret, authorization, &check)?;
    let jti = claims.jti.as_deref().ok_or(SignatureError::NoJti)?;
    // `max_age_s` was set: `iat` is present (else `Stale` above).
    let iat = claims.iat.unwrap_or(check.now_unix);
    let expires = iat.saturating_add(i64::try_from(max_age).unwrap_or(i64::MAX));
    seen.use_once(check.now_unix, jti, expires.saturating_add(1))
        .map_err(|e| match e {
            ReplayError::NoJti => SignatureError::NoJti,
            ReplayError::Full => SignatureError::Busy,
            _ => SignatureError::Replayed,
        })?;
    Ok(claims)
}

/// The text a GET's `payload_hash` is computed over: its query parameters
/// as a JSON object of strings, in their order, without whitespace (a
/// repeated name keeps its first place and its last value, as a
/// JavaScript object built from them would).
///
/// ```
/// use callbridge_carrier::signature::query_payload;
/// let q = [("uuid".to_owned(), "u-1".to_owned()), ("from".to_owned(), "4477\"".to_owned())];
/// assert_eq!(query_payload(&q), r#"{"uuid":"u-1","from":"4477\""}"#);
/// ```
pub fn query_payload(params: &[(String, String)]) -> String {
    let mut fields: Vec<(&str, &str)> = Vec::with_capacity(params.len());
    for (k, v) in params {
        match fields.iter_mut().find(|(n, _)| *n == k.as_str()) {
            Some(f) => f.1 = v.as_str(),
            None => fields.push((k.as_str(), v.as_str())),
        }
    }
    let mut out = String::with_capacity(64 + params.len() * 32);
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, k);
        out.push(':');
        push_json_string(&mut out, v);
    }
    out.push('}');
    out
}

/// Appends `s` as a JSON string, escaped as `JSON.stringify` does.
fn push_json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The claims of an HS256 `token` signed with `secret`, by
/// `jsonwebtoken`: the header must name HS256 and the signature match
/// before the claims are read. No time claim is checked here (Vonage's
/// tokens carry `iat` only; [`verify_vonage`] checks it).
fn decode_hs256(secret: &[u8], token: &str) -> Result<VonageClaims, SignatureError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        // An `alg` jsonwebtoken does not know ("none") fails to parse
        // like a broken header: tell the two apart for the error only.
        let named = token
            .split('.')
            .next()
            .and_then(|h| B64URL.decode(h).ok())
            .is_some_and(|h| serde_json::from_slice::<AnyAlg>(&h).is_ok());
        if named {
            SignatureError::Algorithm
        } else {
            SignatureError::Malformed
        }
    })?;
    if header.alg != Algorithm::HS256 {
        return Err(SignatureError::Algorithm);
    }
    // An empty secret verifies nothing.
    let key = DecodingKey::from_secret(secret).map_err(|_| SignatureError::Mismatch)?;
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    jsonwebtoken::decode::<VonageClaims>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => SignatureError::Mismatch,
            ErrorKind::InvalidAlgorithm => SignatureError::Algorithm,
            _ => SignatureError::Malformed,
        })
}

/// Whether `hex` (either case) spells `bytes`, in constant time for equal
/// lengths.
fn hex_eq(bytes: &[u8], hex: &str) -> bool {
    match hex::decode(hex) {
        Ok(got) => got.len() == bytes.len() && bool::from(got.ct_eq(bytes)),
        Err(_) => false,
    }
}

/// Signs claims as an HS256 JWT with `jsonwebtoken` (for tests and fake
/// carriers; the agent only verifies). An empty secret, which
/// `jsonwebtoken` refuses, gives an empty string: a token nothing accepts.
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    EncodingKey::from_secret(secret)
        .and_then(|k| jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &k))
        .unwrap_or_default()
}

/// Hex SHA-256 of `body` (the `payload_hash` claim).
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(digest(&SHA256, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Vectors computed independently with python3 (hmac, hashlib, base64):
    //   HS256 JWT: b64url(header) "." b64url(claims) signed with
    //   hmac.new(secret, ..., sha256); payload_hash = sha256(body).hexdigest().
    const VN_SECRET: &[u8] = b"vonage-signature-secret-0123456789";
    const VN_BODY: &[u8] = br#"{"status":"completed","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22","direction":"inbound","timestamp":"2026-11-22T05:00:00.000Z"}"#;
    const VN_HASH: &str = "d570b648ee88d22ece16d0200e9ceffc8cde7ea65b39066e531d8d2449c600ef";
    const VN_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3OTUzMjM2MDAsImp0aSI6ImU1ZDBiNmE0LTBhNGItNGQxYy05ZjRlLTNjN2UyZjBhMWIyYyIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6ImQ1NzBiNjQ4ZWU4OGQyMmVjZTE2ZDAyMDBlOWNlZmZjOGNkZTdlYTY1YjM5MDY2ZTUzMWQ4ZDI0NDljNjAwZWYiLCJhcGlfa2V5IjoiYWJjZDEyMzQiLCJhcHBsaWNhdGlvbl9pZCI6ImFhYWFhYWFhLWJiYmItY2NjYy1kZGRkLWVlZWVlZWVlZWVlZSJ9.kTVhb9-deMpCbUxy4WwiHy0FFQVAoShGU7ut6-R8zMo";
    const VN_IAT: i64 = 1_795_323_600;

    const NO_QUERY: &[(String, String)] = &[];

    fn vn(body: Option<&[u8]>, now: i64) -> VonageCheck<'_> {
        VonageCheck {
            signed: body.map_or(Signed::Query(NO_QUERY), Signed::Body),
            now_unix: now,
            max_age_s: Some(300),
            fresh_s: 300,
            application_id: None,
        }
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
                signed: Signed::Body(b"x"),
                now_unix: 0,
                max_age_s: None,
                fresh_s: 0,
                application_id: None,
            },
        )
        .unwrap();
        assert_eq!(c.iat, Some(1));
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn check<'a>(signed: Signed<'a>, now: i64) -> VonageCheck<'a> {
        VonageCheck {
            signed,
            now_unix: now,
            max_age_s: Some(VONAGE_MAX_AGE_S),
            fresh_s: VONAGE_FRESH_S,
            application_id: None,
        }
    }

    /// A JWT as Vonage signs one, with `extra` claims.
    fn vonage_jwt(iat: i64, jti: &str, extra: serde_json::Value) -> String {
        let mut c =
            serde_json::json!({"iat": iat, "jti": jti, "iss": "Vonage", "api_key": "abcd1234"});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        format!("Bearer {}", sign_hs256(VN_SECRET, &c))
    }

    #[test]
    fn query_payload_is_the_compact_json_object_of_the_parameters() {
        assert_eq!(
            query_payload(&q(&[
                ("uuid", "u-1"),
                ("from", "447700900001"),
                ("to", "4477")
            ])),
            r#"{"uuid":"u-1","from":"447700900001","to":"4477"}"#
        );
        assert_eq!(query_payload(&[]), "{}");
        // JSON.stringify's escapes; a repeated name keeps its first place.
        assert_eq!(
            query_payload(&q(&[("a", "x\"\\\n\u{1}é/"), ("b", "1"), ("a", "2")])),
            "{\"a\":\"2\",\"b\":\"1\"}"
        );
        assert_eq!(
            query_payload(&q(&[("a", "x\"\\\n\u{1}é/")])),
            "{\"a\":\"x\\\"\\\\\\n\\u0001é/\"}"
        );
        // The same bytes as serde_json writes the object.
        let v = serde_json::json!({"uuid": "u\"1", "from": "\t"});
        assert_eq!(
            query_payload(&q(&[("from", "\t"), ("uuid", "u\"1")])),
            v.to_string()
        );
    }

    #[test]
    fn vonage_jwt_captured_from_an_event_is_refused_on_the_answer_get() {
        let body = br#"{"status":"ringing","uuid":"u-1"}"#;
        let ev = vonage_jwt(
            VN_IAT,
            "j-ev",
            serde_json::json!({"payload_hash": payload_hash(body)}),
        );
        assert!(verify_vonage(VN_SECRET, Some(&ev), &check(Signed::Body(body), VN_IAT)).is_ok());
        let answer = q(&[("uuid", "evil"), ("from", "15556660000")]);
        assert_eq!(
            verify_vonage(VN_SECRET, Some(&ev), &check(Signed::Query(&answer), VN_IAT)),
            Err(SignatureError::PayloadHash)
        );
        // A GET token that hashes its own query passes, for that query only.
        let bound = vonage_jwt(
            VN_IAT,
            "j-get",
            serde_json::json!({"payload_hash": payload_hash(query_payload(&answer).as_bytes())}),
        );
        assert!(
            verify_vonage(
                VN_SECRET,
                Some(&bound),
                &check(Signed::Query(&answer), VN_IAT + 200)
            )
            .is_ok()
        );
        let other = q(&[("uuid", "evil"), ("from", "15556660001")]);
        assert_eq!(
            verify_vonage(
                VN_SECRET,
                Some(&bound),
                &check(Signed::Query(&other), VN_IAT)
            ),
            Err(SignatureError::PayloadHash)
        );
    }

    #[test]
    fn vonage_jwt_of_another_application_of_the_account_is_refused() {
        let qs = q(&[("uuid", "u-1")]);
        let ours = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
        let c = VonageCheck {
            application_id: Some(ours),
            ..check(Signed::Query(&qs), VN_IAT)
        };
        let other = vonage_jwt(
            VN_IAT,
            "j",
            serde_json::json!({"application_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}),
        );
        assert_eq!(
            verify_vonage(VN_SECRET, Some(&other), &c),
            Err(SignatureError::Application)
        );
        let mine = vonage_jwt(VN_IAT, "j", serde_json::json!({"application_id": ours}));
        assert!(verify_vonage(VN_SECRET, Some(&mine), &c).is_ok());
    }

    #[test]
    fn vonage_get_without_payload_hash_needs_a_fresh_iat() {
        let tok = vonage_jwt(VN_IAT, "j", serde_json::json!({}));
        let qs = q(&[("uuid", "u-1")]);
        let at = |now| verify_vonage(VN_SECRET, Some(&tok), &check(Signed::Query(&qs), now));
        assert!(at(VN_IAT + 30).is_ok());
        assert!(at(VN_IAT - 30).is_ok());
        assert_eq!(at(VN_IAT + 31), Err(SignatureError::Stale));
        assert_eq!(at(VN_IAT + 120), Err(SignatureError::Stale));
    }

    #[test]
    fn exact_replay_of_a_vonage_event_is_refused_until_it_is_stale() {
        let mut seen = JtiCache::new(16);
        let bearer = format!("Bearer {VN_JWT}");
        let c = |now| check(Signed::Body(VN_BODY), now);
        assert!(verify_vonage_once(VN_SECRET, Some(&bearer), &c(VN_IAT), &mut seen).is_ok());
        assert_eq!(
            verify_vonage_once(VN_SECRET, Some(&bearer), &c(VN_IAT + 1), &mut seen),
            Err(SignatureError::Replayed)
        );
        assert_eq!(
            verify_vonage_once(VN_SECRET, Some(&bearer), &c(VN_IAT + 300), &mut seen),
            Err(SignatureError::Replayed),
            "still inside its lifetime"
        );
        assert_eq!(
            verify_vonage_once(VN_SECRET, Some(&bearer), &c(VN_IAT + 301), &mut seen),
            Err(SignatureError::Stale),
            "past it, stale"
        );
        // A token that fails its checks does not burn its jti.
        let mut seen = JtiCache::new(16);
        assert_eq!(
            verify_vonage_once(
                VN_SECRET,
                Some(&bearer),
                &check(Signed::Body(b"{}"), VN_IAT),
                &mut seen
            ),
            Err(SignatureError::PayloadHash)
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn vonage_tokens_without_jti_or_beyond_the_cache_are_refused() {
        let mut seen = JtiCache::new(1);
        let no_jti = format!(
            "Bearer {}",
            sign_hs256(VN_SECRET, &serde_json::json!({"iat": VN_IAT}))
        );
        let qs = q(&[("uuid", "u")]);
        let c = check(Signed::Query(&qs), VN_IAT);
        assert_eq!(
            verify_vonage_once(VN_SECRET, Some(&no_jti), &c, &mut seen),
            Err(SignatureError::NoJti)
        );
        let a = vonage_jwt(VN_IAT, "a", serde_json::json!({}));
        let b = vonage_jwt(VN_IAT, "b", serde_json::json!({}));
        assert!(verify_vonage_once(VN_SECRET, Some(&a), &c, &mut seen).is_ok());
        let busy = verify_vonage_once(VN_SECRET, Some(&b), &c, &mut seen);
        assert_eq!(busy, Err(SignatureError::Busy));
        assert_eq!(SignatureError::Busy.status(), 503);
        assert_eq!(SignatureError::Replayed.status(), 403);
    }

    proptest! {
        #[test]
        fn query_payload_is_what_serde_json_writes(
            pairs in proptest::collection::vec(("[a-z]{1,6}", ".{0,12}"), 0..6),
        ) {
            let mut seen = std::collections::HashSet::new();
            let pairs: Vec<(String, String)> =
                pairs.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            let mut out = String::from("{");
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 { out.push(','); }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                out.push_str(&serde_json::to_string(v).unwrap());
            }
            out.push('}');
            prop_assert_eq!(query_payload(&pairs), out);
        }

        #[test]
        fn vonage_verify_never_panics(s in ".{0,300}") {
            let _ = verify_vonage(VN_SECRET, Some(&s), &vn(Some(b""), 0));
            let _ = verify_vonage(VN_SECRET, Some(&format!("Bearer {s}")), &vn(None, 0));
        }
    }
}
