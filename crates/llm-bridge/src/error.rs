//! The crate's error type.
//!
//! Owns: [`Error`] (what `open` and the handle's methods return) and
//! [`ConnectFailure`] (why one connection attempt failed, and whether it is
//! worth retrying). No message ever carries the API key: URLs are never
//! formatted into errors, only the provider name and typed causes.

use std::time::Duration;

use crate::format::AudioFormat;
use crate::provider::Provider;
use crate::tls::TlsError;

/// Errors of the realtime model clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (caller misuse).
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The API key variable is not set and the endpoint needs a key.
    #[error("missing API key: set the environment variable {var}")]
    MissingApiKey {
        /// The variable that was read.
        var: &'static str,
    },
    /// Opening the session failed; `attempts` connection attempts were made
    /// under the retry policy and `last` is the cause of the last one.
    #[error("could not open a {provider} session after {attempts} attempt(s): {last}")]
    Connect {
        /// Which provider.
        provider: Provider,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        last: ConnectFailure,
    },
    /// The session has ended; nothing more can be sent.
    #[error("the model session is closed")]
    Closed,
    /// The session's command queue is full (the connection is not keeping up);
    /// the frame was not queued.
    #[error("the model session's send queue is full")]
    QueueFull,
    /// The audio frame's format cannot be converted to the model's input.
    #[error("cannot convert audio from {from:?} to {to:?}")]
    UnsupportedAudio {
        /// The frame's format.
        from: AudioFormat,
        /// The model's input format.
        to: AudioFormat,
    },
    /// A DTMF digit outside `0-9 * # A-D`.
    #[error("invalid DTMF digit {0:?}")]
    InvalidDtmf(char),
    /// A mid-call reconnect did not succeed within its budget
    /// ([`crate::SessionConfig::reconnect_budget`]).
    #[error("the reconnect did not succeed within {0:?}")]
    ReconnectTimeout(Duration),
    /// A tool result for a call id the model never issued (or already answered).
    #[error("no outstanding tool call with that id")]
    UnknownToolCall,
    /// The provider (or this model) does not take new instructions in a
    /// live session; the call goes on with the instructions it has.
    #[error("{provider} does not accept instruction updates during a session")]
    InstructionsUpdateUnsupported {
        /// The provider that refused.
        provider: crate::Provider,
    },
}

/// Why one connection attempt (TCP, TLS, WebSocket upgrade, setup) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The endpoint is not a usable `ws://` or `wss://` URL.
    #[error("the endpoint URL is invalid")]
    InvalidUrl,
    /// The TCP/TLS/WebSocket handshake did not finish within the connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// A socket error (refused, reset, unreachable...).
    #[error("I/O error: {0:?}")]
    Io(std::io::ErrorKind),
    /// TLS failed.
    #[error("TLS handshake failed")]
    Tls,
    /// No TLS configuration could be made for the selected roots (the
    /// system trust store has no usable certificate).
    #[error("{0}")]
    TlsRoots(TlsError),
    /// The server answered the upgrade with an HTTP status instead of 101.
    #[error("the server refused the WebSocket upgrade with HTTP {0}")]
    HttpStatus(u16),
    /// The WebSocket handshake was malformed.
    #[error("WebSocket handshake failed")]
    Handshake,
    /// The server did not confirm the session setup within the setup timeout.
    #[error("the server did not complete setup within {0:?}")]
    SetupTimeout(Duration),
    /// The server closed the connection during setup.
    #[error("the server closed the connection during setup (code {code}: {reason})")]
    ClosedDuringSetup {
        /// WebSocket close code (1006 when there was no close frame).
        code: u16,
        /// Close reason text (at most 123 bytes by RFC 6455).
        reason: String,
    },
    /// The server sent something that is not the protocol during setup.
    #[error("protocol error during setup: {0}")]
    Protocol(&'static str),
}

impl ConnectFailure {
    /// Whether another attempt could succeed: transport trouble, timeouts,
    /// HTTP 408/429/5xx and close codes 1006/1011-1014 are transient; a bad
    /// URL, auth (401/403), an invalid setup (1007/1008) are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectFailure::InvalidUrl
            | ConnectFailure::Tls
            | ConnectFailure::TlsRoots(_)
            | ConnectFailure::Protocol(_) => false,
            ConnectFailure::ConnectTimeout(_)
            | ConnectFailure::Io(_)
            | ConnectFailure::Handshake
            | ConnectFailure::SetupTimeout(_) => true,
            ConnectFailure::HttpStatus(s) => *s == 408 || *s == 429 || *s >= 500,
            ConnectFailure::ClosedDuringSetup { code, .. } => {
                matches!(code, 1001 | 1006 | 1011..=1014)
            }
        }
    }
}
