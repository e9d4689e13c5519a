//! Trunk registration (RFC 3261 section 10): the manager's SIP driver
//! registers our Contact with a carrier's registrar, answers digest
//! challenges (RFC 3261 section 22) with the given credentials, refreshes
//! before expiry and retries failures (the SIP core's `register_retry`,
//! with a doubling backoff). A registrar named by its domain is located
//! (RFC 3263) again for every round the SIP core starts
//! ([`callbridge_sip::ua::Event::LocateRegistrar`]), and each REGISTER
//! fails over along the targets found.

use callbridge_sip::driver::DriverError;
use callbridge_sip::transport::Transport;
use callbridge_sip::ua::{Register, RegistrationId, RegistrationState};
use std::net::SocketAddr;
use tracing::{debug, info, warn};

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

    /// Starts a registration with a registrar named by its domain (RFC
    /// 3263): located now and again before every refresh and retry; the
    /// REGISTER goes to the first target found and fails over to the next
    /// on a 503, no answer or a connection that cannot be made (TLS
    /// verified against `dest`'s domain). Returns the registration and
    /// the first target, `None` when nothing was found now: the SIP core
    /// then locates it again after its retry backoff. A fixed address
    /// (`Destination::Addr`) is [`Manager::register`] to it.
    ///
    /// # Errors
    /// The SIP driver stopped or refused the request.
    pub async fn register_located(
        &self,
        mut spec: Register,
        dest: &crate::dns::Destination,
    ) -> Result<(RegistrationId, Option<SocketAddr>), DriverError> {
        let l = match dest {
            crate::dns::Destination::Addr(a) => {
                spec.target = *a;
                let id = self.shared.sip.register(spec).await?;
                return Ok((id, Some(*a)));
            }
            crate::dns::Destination::Locate(l) => l,
        };
        let transport = Transport::of_uri_or_udp(&spec.registrar).unwrap_or(Transport::Udp);
        let targets = self.shared.locate(dest, transport).await;
        let first = targets.first().map(|t| t.addr);
        let id = self
            .shared
            .sip
            .register_located(spec, targets, Some(l.host.clone()))
            .await?;
        // The core asks for the next location one refresh or retry
        // interval (at least a second) from now: long after this.
        self.shared
            .registrars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, l.clone());
        Ok((id, first))
    }

    /// Locates registration `id`'s registrar again and hands the targets
    /// to the SIP core (in a task of its own: the router goes on).
    pub(super) fn relocate_registrar(&self, id: RegistrationId) {
        let found = self
            .shared
            .registrars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned();
        let Some(l) = found else {
            warn!(
                registration = id.0,
                "a registrar to locate that is not known"
            );
            return;
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let dest = crate::dns::Destination::Locate(l.clone());
            let targets = shared.locate(&dest, l.default_transport()).await;
            debug!(
                registration = id.0,
                registrar = %dest,
                targets = targets.len(),
                "registrar located"
            );
            let _ = shared
                .sip
                .registration_located(id, targets, Some(l.host))
                .await;
        });
    }

    /// Removes a registration (REGISTER with `Expires: 0`).
    ///
    /// # Errors
    /// The SIP driver stopped or does not know the registration.
    pub async fn unregister(&self, id: RegistrationId) -> Result<(), DriverError> {
        self.shared
            .registrars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
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
            "trunk registration failed; retrying later (backoff)"
        ),
        _ => info!(registration = id.0, "trunk registration changed"),
    }
}
