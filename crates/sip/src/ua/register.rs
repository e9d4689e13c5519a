//! The REGISTER client (RFC 3261 section 10.2): register an address of
//! record with a trunk's registrar, answer its digest challenges (with nonce
//! counting, reusing the nonce on refreshes), and refresh before the
//! granted expiry runs out; failures are retried after
//! [`super::Config::register_retry`], doubled after each further failure
//! in a row up to [`MAX_REGISTER_BACKOFF`].
//!
//! A registrar named by its domain ([`UserAgent::register_located`]) is
//! located again (RFC 3263) before every REGISTER that starts a round (the
//! first, each refresh, each retry): the core asks for it with
//! [`Event::LocateRegistrar`] and the driver answers with
//! [`UserAgent::registration_located`]. Within a round the REGISTER fails
//! over to the next target (section 4.3) on a 503, on Timer F and on a
//! connection that cannot be made ([`UserAgent::transport_failed`]), as a
//! new transaction (new branch, CSeq one higher, the Via and Contact of
//! that target's transport); a 401/407 is answered to the target that sent
//! it. With no target left the round fails and is retried later.

use super::{Event, Owner, Register, RegistrationId, RegistrationState, UaError, UserAgent};
use crate::auth::DigestClient;
use crate::header::HeaderName;
use crate::ids::{CallId, Tag};
use crate::message::{Request, Response};
use crate::method::Method;
use crate::status::StatusCode;
use crate::transaction::ClientKey;
use crate::transport::{Peer, Transport};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most this many 401/407 rounds per REGISTER.
const MAX_CHALLENGES: u8 = 2;

/// The longest wait between two failed registration rounds (the backoff
/// from [`super::Config::register_retry`] doubles up to this; a longer
/// `register_retry` is used as it is).
pub const MAX_REGISTER_BACKOFF: Duration = Duration::from_secs(600);

/// How long the core waits for [`UserAgent::registration_located`] after
/// [`Event::LocateRegistrar`] before it counts the location as empty (a
/// driver's location gives up well before: 10 s in the session crate).
pub const LOCATE_REGISTRAR_GUARD: Duration = Duration::from_secs(30);

/// Where a registration's REGISTERs go.
#[derive(Debug)]
enum Route {
    /// Always [`Register::target`], over the registrar URI's transport.
    Fixed,
    /// Located before each round.
    Located {
        /// The target of this round's REGISTERs (none before the first
        /// location answered).
        current: Option<Peer>,
        /// The ones to fail over to, in order.
        next: VecDeque<Peer>,
        /// [`Event::LocateRegistrar`] went out and no answer came yet.
        locating: bool,
    },
}

/// One registration's state.
#[derive(Debug)]
pub(super) struct Registration {
    spec: Register,
    call_id: CallId,
    tag: Tag,
    seq: u32,
    auth: DigestClient,
    challenges: u8,
    pending: Option<ClientKey>,
    /// When to send the next REGISTER (refresh or retry), or when to give
    /// up waiting for a location.
    next: Option<Instant>,
    route: Route,
    /// Failed rounds in a row (the backoff's exponent).
    failures: u32,
}

impl Registration {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Where this round's REGISTERs go.
    fn peer(&self) -> Option<Peer> {
        match &self.route {
            Route::Fixed => Some(Peer::new(
                Transport::of_uri_or_udp(&self.spec.registrar).unwrap_or_default(),
                self.spec.target,
            )),
            Route::Located { current, .. } => *current,
        }
    }
}

/// The wait after the `failures`-th failed round in a row:
/// `retry`, doubled for each earlier failure, at most
/// [`MAX_REGISTER_BACKOFF`] (or `retry` if that is longer).
pub(crate) fn retry_after(retry: Duration, failures: u32) -> Duration {
    let doubled = retry.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_REGISTER_BACKOFF.max(retry))
}

/// When to refresh a binding granted for `expires` seconds: halfway for
/// short bindings, one minute early for long ones.
pub(crate) fn refresh_after(expires: u32) -> Duration {
    let e = u64::from(expires);
    Duration::from_secs((e / 2).max(e.saturating_sub(60)).max(1))
}

impl UserAgent {
    /// Start (and keep) a registration. Progress arrives as
    /// [`Event::Registration`].
    pub fn register(&mut self, now: Instant, spec: Register) -> Result<RegistrationId, UaError> {
        let id = self.new_registration(spec, Route::Fixed)?;
        self.send_register(now, id)?;
        Ok(id)
    }

    /// Start (and keep) a registration with a registrar located by RFC
    /// 3263: `targets` are the first location's, in order
    /// ([`Register::target`] is not used; each target's transport replaces
    /// the one the registrar URI names). Before each later round (refresh
    /// or retry) the core asks for a new location with
    /// [`Event::LocateRegistrar`]; the driver answers with
    /// [`UserAgent::registration_located`]. No targets: the round fails
    /// (408) and is retried after the backoff.
    pub fn register_located(
        &mut self,
        now: Instant,
        spec: Register,
        targets: Vec<crate::locate::Target>,
    ) -> Result<RegistrationId, UaError> {
        let route = Route::Located {
            current: None,
            next: VecDeque::new(),
            locating: true,
        };
        let id = self.new_registration(spec, route)?;
        self.registration_located(now, id, targets)?;
        Ok(id)
    }

    /// The answer to [`Event::LocateRegistrar`]: the registrar's targets
    /// in order (empty: none found). The round's first REGISTER goes to
    /// the first; without any the round fails and is retried after the
    /// backoff. Ignored unless the registration is waiting for a location.
    ///
    /// # Errors
    /// [`UaError::UnknownCall`] for a registration that is gone.
    pub fn registration_located(
        &mut self,
        now: Instant,
        id: RegistrationId,
        targets: Vec<crate::locate::Target>,
    ) -> Result<(), UaError> {
        let r = self
            .registrations
            .get_mut(&id)
            .ok_or(UaError::UnknownCall)?;
        let Route::Located {
            current,
            next,
            locating,
        } = &mut r.route
        else {
            return Ok(());
        };
        if !*locating {
            return Ok(());
        }
        *locating = false;
        *next = targets
            .into_iter()
            .take(crate::locate::MAX_TARGETS)
            .map(|t| Peer::new(t.transport, t.addr))
            .collect();
        *current = next.pop_front();
        r.next = None;
        if current.is_none() {
            tracing::debug!(registration = id.0, "no target located for the registrar");
            self.registration_failed(now, id, StatusCode::REQUEST_TIMEOUT);
            return Ok(());
        }
        r.challenges = 0;
        if self.send_register(now, id).is_err() {
            self.registration_failed(now, id, StatusCode::SERVICE_UNAVAILABLE);
        }
        Ok(())
    }

    fn new_registration(
        &mut self,
        spec: Register,
        route: Route,
    ) -> Result<RegistrationId, UaError> {
        if self.registrations.len() >= 64 {
            return Err(UaError::Overloaded);
        }
        let id = RegistrationId(self.next_id());
        let reg = Registration {
            spec,
            call_id: self.ids.call_id(),
            tag: self.ids.tag(),
            seq: 0,
            auth: DigestClient::default(),
            challenges: 0,
            pending: None,
            next: None,
            route,
            failures: 0,
        };
        self.registrations.insert(id, reg);
        Ok(id)
    }

    /// Remove the binding (REGISTER with `Expires: 0`) and forget the
    /// registration once the registrar answers.
    pub fn unregister(&mut self, now: Instant, id: RegistrationId) -> Result<(), UaError> {
        let r = self
            .registrations
            .get_mut(&id)
            .ok_or(UaError::UnknownCall)?;
        r.spec.expires = 0;
        r.challenges = 0;
        if r.peer().is_none() {
            // Never located: there is no binding to remove.
            self.registrations.remove(&id);
            let state = RegistrationState::Unregistered;
            self.events.push_back(Event::Registration { id, state });
            return Ok(());
        }
        if let Route::Located { locating, .. } = &mut r.route {
            *locating = false;
        }
        self.send_register(now, id)
    }

    fn send_register(&mut self, now: Instant, id: RegistrationId) -> Result<(), UaError> {
        let target = self
            .registrations
            .get(&id)
            .ok_or(UaError::UnknownCall)?
            .peer()
            .ok_or(UaError::WrongState("not located"))?;
        let transport = target.transport;
        let via = self.our_via(transport);
        let sips = self
            .registrations
            .get(&id)
            .is_some_and(|r| super::is_sips(&r.spec.registrar));
        let contact = self.contact_as(transport, sips);
        let ua = self.cfg.user_agent.clone();
        let cnonce = self.ids.hex();
        let Some(r) = self.registrations.get_mut(&id) else {
            return Err(UaError::UnknownCall);
        };
        r.seq = r.seq.wrapping_add(1);
        let mut req = Request::builder(Method::Register, r.spec.registrar.clone())
            .via(&via)
            .from_addr(&r.spec.aor.clone().with_tag(&r.tag))
            .to_addr(&r.spec.aor)
            .call_id(&r.call_id)
            .cseq(r.seq)
            .contact(&contact)
            .header(HeaderName::Expires, r.spec.expires.to_string())
            .header(HeaderName::UserAgent, ua)
            .build()?;
        if let Some(creds) = &r.spec.credentials {
            for (name, value) in r
                .auth
                .authorize(creds, "REGISTER", &r.spec.registrar, &cnonce)
            {
                req.headers_mut().push_typed(name, &value);
            }
        }
        r.next = None;
        let key = self
            .tx
            .send_request(now, req, target)
            .map_err(|_| UaError::Overloaded)?;
        if let Some(r) = self.registrations.get_mut(&id) {
            r.pending = Some(key.clone());
        }
        self.owners.insert(key, Owner::Registration(id));
        Ok(())
    }

    pub(super) fn on_register_response(
        &mut self,
        now: Instant,
        id: RegistrationId,
        key: &ClientKey,
        resp: &Response,
    ) {
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        let status = resp.status();
        if r.pending.as_ref() != Some(key) || status.is_provisional() {
            return;
        }
        r.pending = None;
        if status.is_success() && r.spec.expires == 0 {
            self.registrations.remove(&id);
            let state = RegistrationState::Unregistered;
            return self.events.push_back(Event::Registration { id, state });
        }
        if status.is_success() {
            r.challenges = 0;
            r.failures = 0;
            let expires = granted_expires(resp).unwrap_or(r.spec.expires);
            r.next = Some(now + refresh_after(expires));
            let state = RegistrationState::Registered { expires };
            return self.events.push_back(Event::Registration { id, state });
        }
        let challenged = matches!(status.as_u16(), 401 | 407);
        let answer_challenge = challenged
            && r.spec.credentials.is_some()
            && r.challenges < MAX_CHALLENGES
            && r.auth.challenge(resp).is_ok();
        let min_expires = resp
            .headers()
            .get(&HeaderName::MinExpires)
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok());
        let raise_expiry = status == StatusCode::INTERVAL_TOO_BRIEF
            && min_expires.is_some_and(|min| min > r.spec.expires);
        if answer_challenge {
            r.challenges += 1;
        }
        if raise_expiry && let Some(min) = min_expires {
            r.spec.expires = min;
        }
        // A challenge is answered to the target that sent it.
        if (answer_challenge || raise_expiry) && self.send_register(now, id).is_ok() {
            return;
        }
        if status == StatusCode::SERVICE_UNAVAILABLE && self.register_fail_over(now, id, "503") {
            return;
        }
        self.registration_failed(now, id, status);
    }

    pub(super) fn on_register_timeout(
        &mut self,
        now: Instant,
        id: RegistrationId,
        key: &ClientKey,
    ) {
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        if r.pending.as_ref() != Some(key) {
            return;
        }
        r.pending = None;
        if self.register_fail_over(now, id, "no response (Timer F)") {
            return;
        }
        self.registration_failed(now, id, StatusCode::REQUEST_TIMEOUT);
    }

    /// The connection to `peer` could not be made: a REGISTER waiting on
    /// it moves on to the next target of its location, or its round fails
    /// (503, RFC 3261 section 8.1.3.1). Its transaction is left to time
    /// out unheard.
    pub(super) fn register_transport_failed(&mut self, now: Instant, peer: Peer) {
        let hit: Vec<RegistrationId> = self
            .registrations
            .iter()
            .filter(|(_, r)| r.pending.is_some() && r.peer() == Some(peer))
            .map(|(id, _)| *id)
            .collect();
        for id in hit {
            if let Some(r) = self.registrations.get_mut(&id) {
                r.pending = None;
            }
            if self.register_fail_over(now, id, "cannot connect") {
                continue;
            }
            self.registration_failed(now, id, StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    /// Send the REGISTER to the next target of this round's location (RFC
    /// 3263 section 4.3): a new transaction (new branch, CSeq one higher)
    /// with the Via and Contact of its transport. False with no target
    /// left, for a registrar not located, or when it cannot be sent.
    fn register_fail_over(&mut self, now: Instant, id: RegistrationId, why: &'static str) -> bool {
        let Some(r) = self.registrations.get_mut(&id) else {
            return false;
        };
        let Route::Located { current, next, .. } = &mut r.route else {
            return false;
        };
        let Some(peer) = next.pop_front() else {
            return false;
        };
        *current = Some(peer);
        r.challenges = 0;
        if self.send_register(now, id).is_err() {
            return false;
        }
        tracing::info!(
            registration = id.0,
            why,
            next = %peer,
            "REGISTER failed over to the next target"
        );
        self.stats.register_failovers += 1;
        true
    }

    /// A round failed (`status`; 408 for no answer or no target): retried
    /// after the backoff, an unregistration forgotten. Reported once.
    fn registration_failed(&mut self, now: Instant, id: RegistrationId, status: StatusCode) {
        let retry = self.cfg.register_retry;
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        r.challenges = 0;
        r.pending = None;
        if r.spec.expires == 0 {
            self.registrations.remove(&id);
        } else {
            r.failures = r.failures.saturating_add(1);
            r.next = Some(now + retry_after(retry, r.failures));
        }
        self.stats.register_failures += 1;
        let state = RegistrationState::Failed { status };
        self.events.push_back(Event::Registration { id, state });
    }

    pub(super) fn registration_timeouts(&mut self, now: Instant) {
        let due: Vec<RegistrationId> = self
            .registrations
            .iter()
            .filter(|(_, r)| r.next.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(r) = self.registrations.get_mut(&id) else {
                continue;
            };
            match &mut r.route {
                Route::Located { locating: true, .. } => {
                    tracing::warn!(
                        registration = id.0,
                        "the registrar's location was never answered"
                    );
                    // As if nothing was found: the round fails.
                    let _ = self.registration_located(now, id, Vec::new());
                }
                Route::Located { locating, .. } => {
                    *locating = true;
                    r.next = Some(now + LOCATE_REGISTRAR_GUARD);
                    self.events.push_back(Event::LocateRegistrar { id });
                }
                Route::Fixed => {
                    if self.send_register(now, id).is_err() {
                        self.registration_failed(now, id, StatusCode::SERVICE_UNAVAILABLE);
                    }
                }
            }
        }
    }
}

/// The expiry the registrar granted: our Contact's `expires` parameter,
/// else the Expires header (RFC 3261 section 10.2.4).
fn granted_expires(resp: &Response) -> Option<u32> {
    let h = resp.headers();
    let from_contact = h
        .contacts()
        .ok()
        .and_then(|cs| cs.iter().find_map(|c| c.expires()));
    from_contact.or_else(|| h.expires().ok().flatten())
}

#[cfg(test)]
mod tests {
    use super::{MAX_REGISTER_BACKOFF, refresh_after, retry_after};
    use std::time::Duration;

    #[test]
    fn retries_back_off_doubling_up_to_the_bound() {
        let s = Duration::from_secs;
        assert_eq!(retry_after(s(30), 1), s(30));
        assert_eq!(retry_after(s(30), 2), s(60));
        assert_eq!(retry_after(s(30), 3), s(120));
        assert_eq!(retry_after(s(30), 6), MAX_REGISTER_BACKOFF);
        assert_eq!(retry_after(s(30), u32::MAX), MAX_REGISTER_BACKOFF);
        assert_eq!(retry_after(s(900), 4), s(900), "a longer retry is kept");
    }

    #[test]
    fn refresh_comes_before_expiry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3540));
        assert_eq!(refresh_after(120), Duration::from_secs(60));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }
}
