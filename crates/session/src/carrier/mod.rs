//! Carrier WebSocket media (issue 9): calls whose audio a carrier streams
//! over a WebSocket instead of RTP.
//!
//! This module owns the wire protocols and their sans-IO cores:
//! - [`twilio`]: Twilio Media Streams (bidirectional `<Connect><Stream>`):
//!   JSON text messages, base64 G.711 µ-law at 8 kHz (ITU-T G.711), `mark`
//!   and `clear` for playout tracking and barge-in, and the TwiML builder;
//! - [`vonage`]: the Vonage Voice API WebSocket: a first text frame with the
//!   call's metadata, binary 640-byte L16 frames (16 kHz, 20 ms), DTMF
//!   events, `notify`/`clear`, and the NCCO builder;
//! - [`signature`]: webhook request signatures (Twilio `X-Twilio-Signature`,
//!   HMAC-SHA1 per RFC 2104; Vonage signed webhooks, a JWT per RFC 7519
//!   signed HS256 per RFC 7515 with a `payload_hash` claim, single-use);
//! - [`replay`]: the bounded cache of used webhook JWT ids (`jti`);
//! - [`stream_token`]: the single-use, expiring per-call tokens that bind
//!   a media WebSocket to the signed webhook that announced its call;
//! - [`webhook`]: the bounded parameters of a webhook's form body or query;
//! - [`core`]: one value per call that turns WebSocket messages into
//!   [`CarrierEvent`]s and 8 kHz frames, and 8 kHz frames into messages;
//! - [`hangup`]: the carriers' REST hangup behind a mockable trait;
//! - [`vonage_jwt`]: the RS256 application JWTs (RFC 7519) that authorize
//!   Vonage's REST hangup, minted from the application's private key;
//! - [`media`]: the thin tokio driver that runs a core on a call's socket
//!   with a 20 ms tick (it is the call's media transport).
//!
//! The socket itself belongs to the HTTP server (the agent, axum); it is
//! handed to the session as a [`CarrierSocket`]: two bounded channels of
//! [`WsMessage`]s, so this crate needs no HTTP framework.

pub mod core;
pub mod hangup;
pub mod media;
pub mod replay;
pub mod signature;
pub mod stream_token;
pub mod twilio;
pub mod vonage;
pub mod vonage_jwt;
pub mod webhook;

use std::fmt;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use self::core::{CarrierCore, CarrierEvent, StartInfo};
pub use self::hangup::{CarrierHangup, HangupError, NoHangup, RecordingHangup};
pub use self::media::accept;

/// Largest WebSocket message accepted from a carrier (a 20 ms Twilio
/// media message is about 330 bytes; a Vonage frame 640).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Capacity of each direction of a [`CarrierSocket`].
pub const SOCKET_CAPACITY: usize = 64;

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

    /// The session row's transport for this carrier's calls.
    ///
    /// ```
    /// use callbridge_session::carrier::Carrier;
    /// use callbridge_crm_store::Transport;
    /// assert_eq!(Carrier::Twilio.transport(), Transport::Twilio);
    /// assert_eq!(Carrier::Vonage.transport().as_str(), Carrier::Vonage.as_str());
    /// ```
    pub fn transport(self) -> callbridge_crm_store::Transport {
        match self {
            Carrier::Twilio => callbridge_crm_store::Transport::Twilio,
            Carrier::Vonage => callbridge_crm_store::Transport::Vonage,
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

/// A carrier WebSocket as the session sees it: bounded channels to and
/// from the task that owns the real socket. Dropping `tx` tells that task
/// to send a close frame (1000) and end.
#[derive(Debug)]
pub struct CarrierSocket {
    /// Messages from the carrier.
    pub rx: mpsc::Receiver<WsMessage>,
    /// Messages to the carrier.
    pub tx: mpsc::Sender<WsMessage>,
}

/// The other ends of a [`CarrierSocket`], for the task that owns the real
/// socket (or a test's fake carrier).
#[derive(Debug)]
pub struct SocketEnds {
    /// Put messages from the carrier here.
    pub to_call: mpsc::Sender<WsMessage>,
    /// Take messages for the carrier from here; `None` means the call is
    /// done with the socket (close it with 1000).
    pub from_call: mpsc::Receiver<WsMessage>,
}

impl CarrierSocket {
    /// A socket pair with [`SOCKET_CAPACITY`] in each direction.
    pub fn pair() -> (CarrierSocket, SocketEnds) {
        let (to_call, rx) = mpsc::channel(SOCKET_CAPACITY);
        let (tx, from_call) = mpsc::channel(SOCKET_CAPACITY);
        (CarrierSocket { rx, tx }, SocketEnds { to_call, from_call })
    }
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
