//! callbridge's carriers: calls whose audio a carrier streams over a
//! WebSocket instead of RTP, and everything about those carriers that is
//! not the call itself.
//!
//! - [`twilio`]: Twilio Media Streams (bidirectional `<Connect><Stream>`):
//!   JSON text messages, base64 G.711 µ-law at 8 kHz, `mark` and `clear`
//!   for playout tracking and barge-in, and the TwiML builder;
//! - [`vonage`]: the Vonage Voice API WebSocket: a first text frame with the
//!   call's metadata, binary L16 frames (8 or 16 kHz, 20 ms), DTMF
//!   events, `notify`/`clear`, and the NCCO builder;
//! - [`core`]: the sans-IO core of one stream: WebSocket messages in,
//!   [`CarrierEvent`]s and 20 ms [`WireFrame`]s (the carrier's own audio
//!   format) out, and the reverse;
//! - [`signature`]: webhook request signatures (Twilio `X-Twilio-Signature`,
//!   HMAC-SHA1 per RFC 2104; Vonage signed webhooks, a JWT per RFC 7519
//!   signed HS256 with a `payload_hash` claim, single-use);
//! - [`replay`]: the bounded cache of used webhook JWT ids (`jti`);
//! - [`stream_token`]: the single-use, expiring per-call tokens that bind
//!   a media WebSocket to the signed webhook that announced its call;
//! - [`webhook`]: the bounded parameters of a webhook's form body or query;
//! - [`vonage_jwt`]: the RS256 application JWTs (RFC 7519) that authorize
//!   Vonage's REST hangup, minted from the application's private key;
//! - [`hangup`]: the carriers' REST hangup behind a mockable trait;
//! - [`admission`]: an agent's admission state: stream tokens per carrier,
//!   used webhook JWT ids, statuses that came before their stream.
//!
//! The crate knows nothing of SIP, RTP, the models or the store: the
//! session crate's adapter turns a stream's [`WireFrame`]s into a call's
//! 8 kHz media, and the agent's HTTP handlers own the real sockets (handed
//! to a call as a [`CarrierSocket`]: two bounded channels of
//! [`WsMessage`]s, so no HTTP framework is needed here).
//!
//! # Features
//!
//! - `driver` (default): the tokio side: [`CarrierSocket`] and the REST
//!   hangups over reqwest, trusting the `callbridge-tls` roots given. Without it the crate is the sans-IO protocols,
//!   signatures and tokens only.
//!
//! # Crypto
//!
//! One crypto stack, aws-lc-rs: JWTs (Vonage's HS256 webhooks, our RS256
//! application tokens) go through the `jsonwebtoken` crate on its aws-lc-rs
//! backend, Twilio's HMAC-SHA1 and Vonage's SHA-256 payload hash through
//! `aws_lc_rs::hmac` and `aws_lc_rs::digest`, and the REST hang-ups' TLS
//! through rustls on the aws-lc-rs provider (`callbridge-tls`).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod admission;
pub mod core;
pub mod hangup;
pub mod replay;
pub mod signature;
pub mod stream_token;
pub mod twilio;
pub mod vonage;
pub mod vonage_jwt;
pub mod webhook;

use std::fmt;

use bytes::Bytes;

pub use self::core::{CarrierCore, CarrierEvent, StartInfo, WireFormat, WireFrame};
pub use self::hangup::{BoxFuture, CarrierHangup, HangupError, NoHangup, RecordingHangup};
#[cfg(feature = "driver")]
pub use self::socket::{CarrierSocket, SOCKET_CAPACITY, SocketEnds};

#[cfg(feature = "driver")]
mod socket;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Largest WebSocket message accepted from a carrier (a 20 ms Twilio
/// media message is about 330 bytes; a Vonage frame 640).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Which carrier streams a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Carrier {
    /// Twilio Media Streams.
    Twilio,
    /// Vonage Voice API WebSocket.
    Vonage,
}

impl Carrier {
    /// The lower-case name (`twilio`, `vonage`), as stored and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Twilio => "twilio",
            Carrier::Vonage => "vonage",
        }
    }
}

impl fmt::Display for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The carrier's id of one call (Twilio `CallSid`, Vonage call `uuid`):
/// the key under which a live carrier call is registered, so a second
/// stream for it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CarrierCallId {
    carrier: Carrier,
    id: String,
}

/// Longest carrier call id accepted (Twilio SIDs are 34 characters,
/// Vonage uuids 36).
pub const MAX_CALL_ID: usize = 64;

impl CarrierCallId {
    /// The id `id` of `carrier`; `None` when it is empty, too long or not
    /// made of ASCII letters, digits, `-` and `_`.
    pub fn new(carrier: Carrier, id: &str) -> Option<CarrierCallId> {
        let ok = !id.is_empty()
            && id.len() <= MAX_CALL_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| CarrierCallId {
            carrier,
            id: id.to_owned(),
        })
    }

    /// The carrier.
    pub fn carrier(&self) -> Carrier {
        self.carrier
    }

    /// The carrier's own id.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The registry and store key, `<carrier>:<id>` (kept in the session
    /// row's call-id column, so the carrier shows on every row).
    pub fn key(&self) -> String {
        format!("{}:{}", self.carrier, self.id)
    }
}

impl fmt::Display for CarrierCallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.carrier, self.id)
    }
}

/// One WebSocket message between the agent's socket and a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A close frame (or the end of the socket) with its code.
    Close(Option<u16>),
}

/// What went wrong with a carrier message or stream.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarrierError {
    /// A message is not valid JSON of the expected shape.
    #[error("malformed {carrier} message: {what}")]
    Malformed {
        /// Whose protocol.
        carrier: Carrier,
        /// What was wrong.
        what: &'static str,
    },
    /// A message is larger than [`MAX_MESSAGE`] or a payload than its bound.
    #[error("{carrier} message too large ({len} bytes)")]
    TooLarge {
        /// Whose protocol.
        carrier: Carrier,
        /// Its size.
        len: usize,
    },
    /// A message that the protocol does not allow in this state (a second
    /// `start`, media before `start`, a binary Twilio frame...).
    #[error("{carrier} protocol violation: {what}")]
    Protocol {
        /// Whose protocol.
        carrier: Carrier,
        /// What happened.
        what: &'static str,
    },
    /// The media format is not the one this bridge speaks.
    #[error("{carrier} media format not supported: {what}")]
    Unsupported {
        /// Whose protocol.
        carrier: Carrier,
        /// What was offered.
        what: &'static str,
    },
    /// The socket ended before the call's stream started.
    #[error("{carrier} socket closed before the stream started")]
    ClosedEarly {
        /// Whose protocol.
        carrier: Carrier,
    },
    /// No `start` (or Vonage metadata) within the handshake timeout.
    #[error("{carrier} stream did not start in time")]
    StartTimeout {
        /// Whose protocol.
        carrier: Carrier,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_bounded_and_plain() {
        assert!(CarrierCallId::new(Carrier::Twilio, "CA0123456789abcdef").is_some());
        assert!(
            CarrierCallId::new(Carrier::Vonage, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").is_some()
        );
        assert!(CarrierCallId::new(Carrier::Twilio, "").is_none());
        assert!(CarrierCallId::new(Carrier::Twilio, "a b").is_none());
        assert!(CarrierCallId::new(Carrier::Twilio, "x:y").is_none());
        assert!(CarrierCallId::new(Carrier::Twilio, &"a".repeat(65)).is_none());
        let id = CarrierCallId::new(Carrier::Vonage, "u-1").unwrap();
        assert_eq!(id.key(), "vonage:u-1");
    }
}
