//! The state the carrier routes share (one per agent): the settings, the
//! REST hang-ups and the carrier crate's admission state. A leaf: the app
//! state holds it without using the routes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use callbridge_carrier::admission::{Admission, StreamAuth, StreamRefusal};
use callbridge_carrier::hangup::{TwilioRest, VonageRest};
use callbridge_carrier::stream_token::{self as stream_token, Grant, TokenError};
use callbridge_carrier::{Carrier, CarrierCallId, CarrierHangup, HangupError, NoHangup, StartInfo};
use callbridge_llm_bridge::TlsRoots;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tracing::warn;

use crate::http::carrier_config::{CarrierEntry, CarrierSettings};

/// What the carrier routes share (one per agent): the settings, the
/// hangups, and the carrier crate's admission state.
pub struct CarrierState {
    settings: CarrierSettings,
    pub(super) twilio_hangup: Arc<dyn CarrierHangup>,
    pub(super) vonage_hangup: Arc<dyn CarrierHangup>,
    admission: Mutex<Admission>,
    /// Where stream tokens come from (seedable: [`CarrierState::seeded`]).
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for CarrierState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CarrierState {
    /// The routes' state; REST hangups go through the configured API
    /// bases (Twilio's with its auth token; Vonage's only with an
    /// application key or `VONAGE_API_JWT`; without one the call ends when
    /// we close the socket), over HTTPS trusting `roots` (`tls.roots`).
    ///
    /// # Errors
    /// A configured hangup client cannot be built:
    /// [`HangupError::Tls`] when `roots` is the system store and it has no
    /// usable certificate. The agent refuses to start then, rather than
    /// run calls it could not hang up at the carrier.
    pub fn new(settings: CarrierSettings, roots: TlsRoots) -> Result<CarrierState, HangupError> {
        let twilio_hangup: Arc<dyn CarrierHangup> = match &settings.twilio {
            Some(t) => match &t.secret {
                Some(token) => {
                    Arc::new(TwilioRest::new(&t.api_base, token.expose().clone(), roots)?)
                }
                None => Arc::new(NoHangup),
            },
            None => Arc::new(NoHangup),
        };
        let vonage_hangup: Arc<dyn CarrierHangup> = match &settings.vonage {
            Some(v) => match &v.hangup_bearer {
                Some(bearer) => Arc::new(VonageRest::new(&v.api_base, bearer.clone(), roots)?),
                None => Arc::new(NoHangup),
            },
            None => Arc::new(NoHangup),
        };
        Ok(CarrierState::with_hangups(
            settings,
            twilio_hangup,
            vonage_hangup,
        ))
    }

    /// The routes' state with given hangups (tests). Stream tokens come
    /// from the operating system's random source; [`CarrierState::seeded`]
    /// makes them reproducible.
    pub fn with_hangups(
        settings: CarrierSettings,
        twilio_hangup: Arc<dyn CarrierHangup>,
        vonage_hangup: Arc<dyn CarrierHangup>,
    ) -> CarrierState {
        let ttl = |e: &Option<CarrierEntry>| {
            e.as_ref()
                .map_or(stream_token::DEFAULT_TTL, |e| e.stream_token_ttl)
        };
        CarrierState {
            admission: Mutex::new(Admission::new(ttl(&settings.twilio), ttl(&settings.vonage))),
            rng: Mutex::new(rand::make_rng()),
            settings,
            twilio_hangup,
            vonage_hangup,
        }
    }

    /// The same state with stream tokens drawn from a generator seeded
    /// with `seed` (tests and simulations: the same seed gives the same
    /// tokens).
    pub fn seeded(self, seed: u64) -> CarrierState {
        *self.rng.lock().unwrap_or_else(PoisonError::into_inner) = StdRng::seed_from_u64(seed);
        self
    }

    pub(super) fn entry(&self, c: Carrier) -> Option<&CarrierEntry> {
        match c {
            Carrier::Vonage => self.settings.vonage.as_ref(),
            _ => self.settings.twilio.as_ref(),
        }
    }

    pub(super) fn admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues the stream token of `call`, announced by a signed webhook
    /// naming `grant`'s parties.
    pub(super) fn issue(&self, call: &CarrierCallId, grant: Grant) -> Result<String, TokenError> {
        let mut random = [0u8; 32];
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(&mut random);
        self.admission()
            .issue(Instant::now(), call, grant, random)
            .inspect_err(|e| warn!(call = %call, error = %e, "no stream token issued"))
    }

    /// Redeems `token` for `call`: the parties its webhook named.
    pub(super) fn redeem(&self, call: &CarrierCallId, token: &str) -> Result<Grant, TokenError> {
        self.admission()
            .redeem(Instant::now(), call, token)
            .inspect_err(|e| warn!(call = %call, error = %e, "carrier stream token refused"))
    }

    /// The parties of a started stream, if `auth` admits it.
    pub(super) fn admit_stream(
        &self,
        start: &StartInfo,
        auth: StreamAuth,
    ) -> Result<Grant, StreamRefusal> {
        self.admission().admit_stream(Instant::now(), start, auth)
    }

    /// Keeps a status of `call` until its stream starts (bounded).
    pub(super) fn remember(&self, call: &CarrierCallId, status: serde_json::Value) {
        self.admission().remember_status(call, status);
    }

    /// The statuses that came before `call`'s stream, in order.
    pub(super) fn take_pending(&self, call: &CarrierCallId) -> Vec<serde_json::Value> {
        self.admission().take_statuses(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> CarrierState {
        let settings = CarrierSettings {
            twilio: None,
            vonage: None,
        };
        CarrierState::with_hangups(settings, Arc::new(NoHangup), Arc::new(NoHangup))
    }

    fn token(s: &CarrierState, sid: &str) -> String {
        let call = CarrierCallId::new(Carrier::Twilio, sid).unwrap();
        s.issue(&call, Grant::default()).unwrap()
    }

    #[test]
    fn stream_tokens_come_from_the_injected_generator() {
        let (a, b) = (state().seeded(7), state().seeded(7));
        assert_eq!(token(&a, "CA1"), token(&b, "CA1"));
        assert_eq!(token(&a, "CA2"), token(&b, "CA2"));
        let c = state().seeded(8);
        assert_ne!(token(&c, "CA1"), token(&state().seeded(7), "CA1"));
    }

    #[test]
    fn unseeded_states_issue_different_tokens() {
        assert_ne!(token(&state(), "CA1"), token(&state(), "CA1"));
    }
}
