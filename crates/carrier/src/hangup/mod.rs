//! Hanging up a carrier call through the carrier's REST API, behind the
//! [`CarrierHangup`] trait so tests (and operators without API access)
//! plug in their own: [`RecordingHangup`] records what was asked,
//! [`NoHangup`] only closes the socket.
//!
//! - Twilio: `POST {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`
//!   with the form `Status=completed`, HTTP basic auth (RFC 7617) with the
//!   account SID and auth token.
//! - Vonage: `PUT {base}/v1/calls/{uuid}` with `{"action":"hangup"}` and a
//!   bearer JWT (RFC 6750): an application JWT minted and cached by
//!   [`crate::vonage_jwt::VonageBearer`] (RS256 with the application's
//!   private key), or a fixed token from configuration.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use super::{Carrier, CarrierCallId};

#[cfg(feature = "driver")]
mod rest;

#[cfg(feature = "driver")]
pub use rest::{TwilioRest, VonageRest};

/// A boxed, sendable future (what [`CarrierHangup::hangup`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Bound on one REST hangup request.
pub const HANGUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The call to hang up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupTarget {
    /// The carrier's call id (Twilio CallSid, Vonage uuid).
    pub call: CarrierCallId,
    /// Twilio's AccountSid (from `start`); `None` for Vonage.
    pub account: Option<String>,
}

/// Why a REST hangup failed (the call still ends on our side: the socket
/// is closed either way).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HangupError {
    /// The request could not be sent or timed out.
    #[error("{0}: hangup request failed")]
    Transport(Carrier),
    /// The carrier answered with a non-2xx status.
    #[error("{carrier}: hangup refused with HTTP {status}")]
    Status {
        /// Whose API.
        carrier: Carrier,
        /// The HTTP status.
        status: u16,
    },
    /// The target lacks what the API needs (Twilio's AccountSid).
    #[error("{0}: hangup target incomplete")]
    Target(Carrier),
    /// The bearer token could not be made (see
    /// [`crate::vonage_jwt::JwtError`]).
    #[error("{0}: hangup token not signed")]
    Token(Carrier),
    /// The REST client's TLS configuration could not be made (the system
    /// trust store has no usable root certificate): a configuration
    /// problem, found when the client is built.
    #[error("{carrier}: REST hang-up client: {source}")]
    Tls {
        /// Whose API.
        carrier: Carrier,
        /// Why.
        source: callbridge_tls::TlsError,
    },
}

/// Hangs up a carrier call (mockable).
pub trait CarrierHangup: Send + Sync + 'static {
    /// Asks the carrier to end `target`.
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>>;
}

/// Does nothing: the call ends when we close the socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHangup;

impl CarrierHangup for NoHangup {
    fn hangup(&self, _target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Records every hangup asked of it (tests).
#[derive(Debug, Clone, Default)]
pub struct RecordingHangup {
    calls: Arc<Mutex<Vec<HangupTarget>>>,
}

impl RecordingHangup {
    /// The targets hung up so far, in order.
    pub fn calls(&self) -> Vec<HangupTarget> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CarrierHangup for RecordingHangup {
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target);
        Box::pin(async { Ok(()) })
    }
}
