//! Readiness for load balancers and dispatchers: one function,
//! [`Manager::readiness`], decides whether this agent takes new calls, and
//! both probes report it: `GET /readyz` (the HTTP API) and the answer to an
//! out-of-dialog SIP OPTIONS (200, or 503 with Retry-After), which is what
//! Kamailio's dispatcher probes (`deploy/kamailio/`).
//!
//! The SIP core answers OPTIONS itself, without a round trip to the
//! manager, from what it knows (shutting down, call slots) and a flag the
//! manager sets ([`callbridge_sip::ua::UserAgent::set_ready`]). The flag
//! is refreshed every [`PROBE_REFRESH`] by [`Manager::report_readiness`]:
//! its inputs change in four places, two of them on other threads (the
//! store writer's health, the media engine's load), and a dispatcher
//! probes every few seconds, so a poll this often is as fresh to it as a
//! notification from each place would be, at one channel message per
//! tick.

use std::time::Duration;

use super::Manager;

/// How often the SIP core's readiness flag is refreshed.
pub(crate) const PROBE_REFRESH: Duration = Duration::from_millis(200);

/// Whether the manager takes new calls, for load balancers (`/readyz`,
/// SIP OPTIONS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Calls are admitted (false once a shutdown started draining).
    pub admitting: bool,
    /// Every call slot (`ManagerConfig::max_calls`) is taken.
    pub at_capacity: bool,
    /// The store accepts writes ([`Manager::store_writable`]).
    pub store_writable: bool,
    /// The media engine refuses new calls for its load, or its calls are
    /// at the ceiling it learned from its last overload (module
    /// `overload`; calls paced for a moment do not count).
    pub overloaded: bool,
}

impl Readiness {
    /// Admitting, not full, able to write the store and not overloaded.
    pub fn ready(&self) -> bool {
        self.admitting && !self.at_capacity && self.store_writable && !self.overloaded
    }
}

impl Manager {
    /// Whether new calls would be taken now: admitting, below the call
    /// limit, the store writable and the media engine not overloaded.
    /// `/readyz` and the SIP core's answer to OPTIONS both report it.
    pub fn readiness(&self) -> Readiness {
        let (admitting, live) = {
            let reg = self.shared.registry();
            (reg.admitting, reg.len())
        };
        Readiness {
            admitting,
            at_capacity: live >= self.shared.cfg.max_calls,
            store_writable: self.store_writable(),
            overloaded: {
                let e = self.inner.admission.engine();
                !e.admits() || e.at_ceiling()
            },
        }
    }

    /// Hands [`Manager::readiness`] to the SIP core every
    /// [`PROBE_REFRESH`] until the SIP driver stops.
    /// Logs each change (SIP probes see it from then on).
    pub(super) async fn report_readiness(self) {
        let mut last = None;
        loop {
            let r = self.readiness();
            if last != Some(r) {
                if r.ready() {
                    tracing::info!("ready for new calls (SIP OPTIONS 200)");
                } else if r.admitting {
                    tracing::info!(
                        at_capacity = r.at_capacity,
                        store_writable = r.store_writable,
                        overloaded = r.overloaded,
                        "not ready for new calls (SIP OPTIONS 503)"
                    );
                }
                last = Some(r);
            }
            if self.shared.sip.set_ready(r.ready()).await.is_err() {
                return;
            }
            tokio::time::sleep(PROBE_REFRESH).await;
        }
    }
}
