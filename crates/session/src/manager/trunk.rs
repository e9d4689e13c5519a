//! Trunk registration (RFC 3261 section 10): the manager's SIP driver
//! registers our Contact with a carrier's registrar, answers digest
//! challenges (RFC 3261 section 22) with the given credentials, refreshes
//! before expiry and retries failures (the SIP core's `register_retry`).

use callbridge_sip::driver::DriverError;
use callbridge_sip::transport::Transport;
use callbridge_sip::ua::{Register, RegistrationId, RegistrationState};
use std::net::SocketAddr;
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

    /// Starts a registration with a registrar named by its domain: the
    /// first target an RFC 3263 location of `dest` finds over the
    /// transport the registrar's URI names gets the REGISTERs (TLS
    /// verified against `dest`'s domain). A registration does not fail
    /// over to the next target; `Ok(None)`: nothing was found.
    ///
    /// # Errors
    /// The SIP driver stopped or refused the request.
    pub async fn register_located(
        &self,
        mut spec: Register,
        dest: &crate::dns::Destination,
    ) -> Result<Option<(RegistrationId, SocketAddr)>, DriverError> {
        let transport = Transport::of_uri_or_udp(&spec.registrar).unwrap_or(Transport::Udp);
        let targets = self.shared.locate(dest, transport).await;
        let Some(first) = targets.into_iter().find(|t| t.transport == transport) else {
            return Ok(None);
        };
        if let (crate::dns::Destination::Locate(l), Transport::Tls) = (dest, transport) {
            self.shared
                .sip
                .learn_tls_name(first.addr, l.host.clone())
                .await?;
        }
        spec.target = first.addr;
        let id = self.shared.sip.register(spec).await?;
        Ok(Some((id, first.addr)))
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
