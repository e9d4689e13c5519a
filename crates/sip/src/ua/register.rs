//! The REGISTER client (RFC 3261 section 10.2): register an address of
//! record with a trunk's registrar, answer its digest challenges (with nonce
//! counting, reusing the nonce on refreshes), and refresh before the
//! granted expiry runs out; failures are retried after
//! [`super::Config::register_retry`].

use super::{Event, Owner, Register, RegistrationId, RegistrationState, UaError, UserAgent};
use crate::auth::DigestClient;
use crate::header::HeaderName;
use crate::ids::{CallId, Tag};
use crate::message::{Request, Response};
use crate::method::Method;
use crate::status::StatusCode;
use crate::transaction::ClientKey;
use crate::transport::{Peer, Transport};
use std::time::{Duration, Instant};

/// At most this many 401/407 rounds per REGISTER.
const MAX_CHALLENGES: u8 = 2;

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
    /// When to send the next REGISTER (refresh or retry).
    next: Option<Instant>,
}

impl Registration {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.next
    }
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
        };
        self.registrations.insert(id, reg);
        self.send_register(now, id)?;
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
        self.send_register(now, id)
    }

    fn send_register(&mut self, now: Instant, id: RegistrationId) -> Result<(), UaError> {
        let transport = self
            .registrations
            .get(&id)
            .and_then(|r| Transport::of_uri_or_udp(&r.spec.registrar))
            .unwrap_or_default();
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
        let target = Peer::new(transport, r.spec.target);
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
        let retry = self.cfg.register_retry;
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
        if (answer_challenge || raise_expiry) && self.send_register(now, id).is_ok() {
            return;
        }
        if let Some(r) = self.registrations.get_mut(&id) {
            r.challenges = 0;
            r.next = Some(now + retry);
            if r.spec.expires == 0 {
                self.registrations.remove(&id);
            }
        }
        let state = RegistrationState::Failed { status };
        self.events.push_back(Event::Registration { id, state });
    }

    pub(super) fn on_register_timeout(
        &mut self,
        now: Instant,
        id: RegistrationId,
        key: &ClientKey,
    ) {
        let retry = self.cfg.register_retry;
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        if r.pending.as_ref() != Some(key) {
            return;
        }
        r.pending = None;
        r.next = Some(now + retry);
        if r.spec.expires == 0 {
            self.registrations.remove(&id);
        }
        let state = RegistrationState::Failed {
            status: StatusCode::REQUEST_TIMEOUT,
        };
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
            if self.send_register(now, id).is_err()
                && let Some(r) = self.registrations.get_mut(&id)
            {
                r.next = Some(now + self.cfg.register_retry);
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
    use super::refresh_after;
    use std::time::Duration;

    #[test]
    fn refresh_comes_before_expiry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3540));
        assert_eq!(refresh_after(120), Duration::from_secs(60));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }
}
