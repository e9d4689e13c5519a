//! Trunk registration (RFC 3261 section 10): the manager's SIP driver
//! registers our Contact with a carrier's registrar, answers digest
//! challenges (RFC 3261 section 22) with the given credentials, refreshes
//! before expiry and retries failures (the SIP core's `register_retry`).

use callbridge_sip::driver::DriverError;
use callbridge_sip::ua::{Register, RegistrationId, RegistrationState};
use tracing::{info, warn};

use super::Manager;

impl Manager {
    /// Starts registering with a trunk; kept up until
    /// [`Manager::unregister`] or shutdown.
    ///
    /// # Errors
    /// The SIP driver stopped or refused the request.
    pub async fn register(&self, spec: Register) -> Result<RegistrationId, DriverError> {
        self.shared.sip.register(spec).await
    }

    /// Removes a registration (REGISTER with `Expires: 0`).
    ///
    /// # Errors
    /// The SIP driver stopped or does not know the registration.
    pub async fn unregister(&self, id: RegistrationId) -> Result<(), DriverError> {
        self.shared.sip.unregister(id).await
    }
}

/// Logs a registration's new state (the router's only use of it).
pub(super) fn registration_changed(id: RegistrationId, state: &RegistrationState) {
    match state {
        RegistrationState::Registered { expires } => {
            info!(registration = id.0, expires, "registered with the trunk");
        }
        RegistrationState::Unregistered => info!(registration = id.0, "trunk registration removed"),
        RegistrationState::Failed { status } => warn!(
            registration = id.0,
            status = status.as_u16(),
            "trunk registration failed; retrying later"
        ),
        _ => info!(registration = id.0, "trunk registration changed"),
    }
}
