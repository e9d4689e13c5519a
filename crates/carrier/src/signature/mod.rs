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
//!   account's signature secret. Its claims: `iat` (when it was signed),
//!   `jti` (unique per token), `iss`, `api_key`, `application_id`, and
//!   `payload_hash`: the hex SHA-256 of what the request carries, the body
//!   of a POST, or for a GET the query parameters as a compact JSON object
//!   of strings in their order (Vonage's documented procedure). A token is
//!   bound to its request: a POST's body must match; a GET's query must
//!   match when the token has a `payload_hash`, and without one the token
//!   must be fresh (`iat` within [`VonageCheck::fresh_s`]). With
//!   [`verify_vonage_once`] each token is accepted once (its `jti` is kept
//!   in a [`JtiCache`](crate::replay::JtiCache) for the token's lifetime).
//!
//! Twilio's signature carries no timestamp or nonce: the same request
//! always has the same signature. Its replays are stopped by what the
//! request leads to (single-use stream tokens, one stream per call id; see
//! [`crate::stream_token`]).
//!
//! The JWT is checked by `jsonwebtoken` (HS256 only, the signature before
//! anything else); Twilio's HMAC-SHA1 by `aws_lc_rs::hmac`. Comparisons
//! are constant-time. Secrets never appear in errors or logs.

mod twilio;
mod vonage;

pub use twilio::{twilio_signature, verify_twilio};
pub use vonage::{
    Signed, VONAGE_FRESH_S, VONAGE_MAX_AGE_S, VonageCheck, VonageClaims, payload_hash,
    query_payload, sign_hs256, verify_vonage, verify_vonage_once,
};

/// Longest signature header or token looked at.
pub const MAX_TOKEN: usize = 4096;

/// Why a webhook's signature was refused (403, except [`SignatureError::Busy`]:
/// see [`SignatureError::status`]).
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
    /// The JWT (its `jti`) was accepted before: a replay.
    #[error("signature already used")]
    Replayed,
    /// The JWT names another Vonage application than ours.
    #[error("signature is for another application")]
    Application,
    /// The JWT has no `jti`, so it cannot be held to a single use.
    #[error("signature has no token id")]
    NoJti,
    /// Too many live tokens remembered to take another now.
    #[error("too many signed requests; retry later")]
    Busy,
}

impl SignatureError {
    /// The HTTP status to answer: 503 for [`SignatureError::Busy`] (the
    /// carrier retries), 403 for every other refusal.
    pub fn status(self) -> u16 {
        match self {
            SignatureError::Busy => 503,
            _ => 403,
        }
    }
}
