//! Signatures on the agent's own outgoing HTTP requests (tool calls and
//! call-event webhooks), so that a receiver can tell a request came from
//! this agent and was not replayed later.
//!
//! The scheme (documented for receivers in the README):
//!
//! - header [`SIGNATURE_HEADER`] = `t=<unix seconds>,v1=<hex>`;
//! - `<hex>` = lower-case hex of HMAC-SHA256 keyed with the shared secret
//!   over the bytes `<unix seconds>` `.` `<raw request body>`;
//! - a receiver recomputes it, compares in constant time, and refuses a
//!   timestamp further than its tolerance (e.g. 300 s) from its clock.
//!
//! Timestamp plus body (rather than the body alone) is what makes an old
//! captured request useless after the tolerance; the same shape as the
//! Stripe and Slack schemes receivers already know.
//!
//! ```
//! use callbridge_session::signing::{sign, verify};
//! let header = sign(b"s3cret", 1_700_000_000, br#"{"a":1}"#);
//! assert!(header.starts_with("t=1700000000,v1="));
//! assert!(verify(b"s3cret", &header, br#"{"a":1}"#, 1_700_000_010, 300).is_ok());
//! assert!(verify(b"other", &header, br#"{"a":1}"#, 1_700_000_010, 300).is_err());
//! ```

use aws_lc_rs::hmac;

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Callbridge-Signature";

/// Why a signature was refused (receiver side; used by the tests and by
/// anyone embedding the crate as a receiver).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<digits>,v1=<hex>`.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    /// The MAC does not match the body and timestamp.
    #[error("the signature does not match")]
    Mismatch,
}

/// The header value for `body` sent at `unix_seconds`.
pub fn sign(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, &signed_bytes(unix_seconds, body));
    format!("t={unix_seconds},v1={}", hex::encode(tag.as_ref()))
}

/// Checks a header value against `body`, at `now` (unix seconds), allowing
/// `tolerance_s` of clock difference either way. The MAC comparison is
/// constant-time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let (t, mac) = parse(header).ok_or(VerifyError::Malformed)?;
    if now.abs_diff(t) > tolerance_s.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &signed_bytes(t, body), &mac).map_err(|_| VerifyError::Mismatch)
}

fn signed_bytes(unix_seconds: i64, body: &[u8]) -> Vec<u8> {
    let t = unix_seconds.to_string();
    let mut v = Vec::with_capacity(t.len() + 1 + body.len());
    v.extend_from_slice(t.as_bytes());
    v.push(b'.');
    v.extend_from_slice(body);
    v
}

fn parse(header: &str) -> Option<(i64, Vec<u8>)> {
    let (t, v1) = header.trim().split_once(',')?;
    let t = t.strip_prefix("t=")?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || t.len() > 12 {
        return None;
    }
    let mac = hex::decode(v1.trim().strip_prefix("v1=")?).ok()?;
    if mac.len() != 32 {
        return None;
    }
    Some((t.parse().ok()?, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key "key", "1.body"), computed independently with
        // `printf '1.body' | openssl dgst -sha256 -hmac key`.
        assert_eq!(
            sign(b"key", 1, b"body"),
            "t=1,v1=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }

    #[test]
    fn round_trip_and_refusals() {
        let body = br#"{"call":"x","args":{"n":1}}"#;
        let h = sign(b"secret", 1_000, body);
        assert_eq!(verify(b"secret", &h, body, 1_000, 300), Ok(()));
        assert_eq!(verify(b"secret", &h, body, 1_300, 300), Ok(()));
        assert_eq!(
            verify(b"secret", &h, body, 1_301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"secret", &h, body, 699, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"wrong", &h, body, 1_000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", &h, b"{}", 1_000, 300),
            Err(VerifyError::Mismatch)
        );
        // A replay with the timestamp moved forward does not verify.
        let moved = h.replacen("t=1000", "t=1200", 1);
        assert_eq!(
            verify(b"secret", &moved, body, 1_200, 300),
            Err(VerifyError::Mismatch)
        );
        for bad in [
            "",
            "t=,v1=00",
            "v1=00,t=1",
            "t=1,v1=zz",
            "t=-1,v1=00",
            "t=1,v1=0011",
        ] {
            assert_eq!(
                verify(b"secret", bad, body, 1, 300),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
    }
}
