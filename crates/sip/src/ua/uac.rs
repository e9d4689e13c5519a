//! The UAC half of the core (RFC 3261 sections 8.1, 9.1, 13.2, 15.1.1,
//! 22.2): outbound calls, their ACKs, CANCEL before the answer, digest
//! retries on 401/407, and BYE.

use super::{
    Call, CallRef, CallState, Calling, EndReason, Event, Originate, Outcome, Owner, Reinvite,
    UaError, UserAgent, uas::placeholder,
};
use crate::auth::{DigestClient, Refusal};
use crate::dialog::Dialog;
use crate::encode::Encode;
use crate::header::{HeaderName, Headers, MediaType, NameAddr};
use crate::message::{Request, Response};
use crate::method::Method;
use crate::status::StatusCode;
use crate::transaction::ClientKey;
use crate::transport::{Peer, Transport};
use bytes::Bytes;
use std::time::Instant;

/// At most this many 401/407 rounds per call before giving up: the first
/// challenge and one more (a stale nonce, or a second realm: a proxy's 407
/// then the far end's 401). A third challenge fails the call `AuthFailed`.
const MAX_CHALLENGES: u8 = 2;

impl UserAgent {
    /// Place an outbound call: sends the INVITE with the SDP offer. The
    /// call's fate arrives as [`Event::Progress`], then [`Event::Answered`]
    /// or [`Event::Failed`].
    pub fn originate(&mut self, now: Instant, o: Originate) -> Result<CallRef, UaError> {
        self.originate_located(now, o, Vec::new())
    }

    /// Place an outbound call like [`UserAgent::originate`] to the
    /// targets an RFC 3263 location gave ([`crate::locate`]), in order:
    /// the INVITE goes to the first (its transport replaces the one the
    /// Request-URI names, and [`Originate::target`] is not used), and
    /// moves on to the next, as a new transaction with a new branch
    /// (section 4.3), when the one tried answers 503, does not answer at
    /// all (Timer B) or cannot be connected to
    /// ([`UserAgent::transport_failed`]). It is not sent elsewhere once a
    /// provisional response other than 100 came, once the application
    /// hung up or the ring timer fired, nor after any other final
    /// response. An empty `route` is [`UserAgent::originate`].
    pub fn originate_located(
        &mut self,
        now: Instant,
        o: Originate,
        route: Vec<crate::locate::Target>,
    ) -> Result<CallRef, UaError> {
        // Bounded like a location's own list.
        let mut route = route
            .into_iter()
            .take(crate::locate::MAX_TARGETS)
            .map(|t| Peer::new(t.transport, t.addr))
            .collect::<std::collections::VecDeque<Peer>>();
        if self.draining {
            return Err(UaError::ShuttingDown);
        }
        if self.calls.len() >= self.cfg.max_calls {
            return Err(UaError::Overloaded);
        }
        let call_id = self.ids.call_id();
        let local_tag = self.ids.tag();
        let first = match route.pop_front() {
            Some(p) => p,
            None => Peer::new(
                Transport::of_uri_or_udp(&o.to).ok_or(UaError::UnsupportedTransport)?,
                o.target,
            ),
        };
        let transport = first.transport;
        let via = self.our_via(transport);
        let mut builder = Request::builder(Method::Invite, o.to.clone())
            .via(&via)
            .from_addr(&o.from.clone().with_tag(&local_tag))
            .to_addr(&NameAddr::new(o.to.clone()))
            .call_id(&call_id)
            .cseq(1)
            .contact(&self.contact_as(transport, super::is_sips(&o.to)))
            .header(HeaderName::Allow, super::ALLOW)
            .header(HeaderName::Supported, super::SUPPORTED)
            .header(
                HeaderName::SessionExpires,
                self.cfg.session_timer.session_expires.as_secs().to_string(),
            )
            .header(
                HeaderName::MinSe,
                self.cfg.session_timer.min_se.as_secs().to_string(),
            )
            .header(HeaderName::UserAgent, self.cfg.user_agent.clone());
        let safe = |b: &[u8]| !b.iter().any(|c| c.is_ascii_control());
        for (name, value) in o
            .extra_headers
            .iter()
            .filter(|(n, v)| super::event::is_extension_header(n) && safe(n) && safe(v))
            .take(super::event::MAX_EXTENSION_HEADERS)
        {
            builder = builder.header(HeaderName::from_bytes(name), value.clone());
        }
        let invite = builder.body(MediaType::sdp(), o.offer.clone()).build()?;
        let key = self
            .tx
            .send_request(now, invite.clone(), first)
            .map_err(|_| UaError::Overloaded)?;
        let call = CallRef(self.next_id());
        self.stats.outbound_calls += 1;
        self.owners.insert(key.clone(), Owner::Call(call));
        self.dialogs
            .insert((call_id.clone(), local_tag.clone()), call);
        let state = CallState::Calling(Box::new(Calling {
            key,
            invite,
            credentials: o.credentials,
            auth: DigestClient::default(),
            challenges: 0,
            cancel: None,
            cancel_sent: false,
            ring_deadline: now + self.cfg.ring_timeout,
            next: route,
            progressed: false,
        }));
        let mut c = Call::new(first, call_id, local_tag, state);
        c.sips = super::is_sips(&o.to);
        c.local_sdp = Some(o.offer);
        self.calls.insert(call, c);
        Ok(call)
    }

    /// End a call: CANCEL before the answer, BYE after it, 603 for an
    /// inbound call not yet answered.
    pub fn hangup(&mut self, now: Instant, call: CallRef) -> Result<(), UaError> {
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        match &mut c.state {
            CallState::Offered { .. } => self.reject(now, call, StatusCode::DECLINE),
            CallState::Calling(calling) => {
                if calling.cancel.is_none() {
                    calling.cancel = Some(Outcome::Cancelled);
                }
                self.try_cancel(now, call);
                Ok(())
            }
            CallState::Answered { .. } | CallState::Established { .. } => {
                self.send_bye(now, call, Some(EndReason::LocalHangup));
                Ok(())
            }
            CallState::Ending { .. } => Ok(()),
        }
    }

    /// Send a re-INVITE with a new offer in an established call, e.g. to
    /// hold (`a=sendonly`, see [`crate::sdp::make_offer`]) or resume
    /// (`a=sendrecv`). The result arrives as [`Event::ReinviteAnswered`] or
    /// [`Event::ReinviteFailed`].
    pub fn reinvite(&mut self, now: Instant, call: CallRef, sdp: Bytes) -> Result<(), UaError> {
        let via = self.our_via(self.call_transport(call));
        let contact = self.call_contact(call);
        let ua = self.cfg.user_agent.clone();
        let se = self.timer_header(call);
        let min_se = self.cfg.session_timer.min_se.as_secs().to_string();
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let peer = c.peer;
        let CallState::Established {
            dialog,
            reinvite: None,
            ..
        } = &mut c.state
        else {
            return Err(UaError::WrongState(
                "not established, or a re-INVITE is pending",
            ));
        };
        let mut b = dialog
            .request(Method::Invite, &via, None)
            .contact(&contact)
            .header(HeaderName::Allow, super::ALLOW)
            .header(HeaderName::Supported, super::SUPPORTED)
            .header(HeaderName::UserAgent, ua);
        if let Some(se) = se {
            b = b
                .header(HeaderName::SessionExpires, se)
                .header(HeaderName::MinSe, min_se);
        }
        let invite = b.body(MediaType::sdp(), sdp.clone()).build()?;
        c.local_sdp = Some(sdp);
        let key = self
            .tx
            .send_request(now, invite, peer)
            .map_err(|_| UaError::Overloaded)?;
        self.owners.insert(key.clone(), Owner::Call(call));
        if let Some(Call {
            state: CallState::Established { reinvite, .. },
            ..
        }) = self.calls.get_mut(&call)
        {
            *reinvite = Some(Reinvite::Sent {
                key,
                refresh: false,
            });
        }
        Ok(())
    }

    /// The final response to our re-INVITE or UPDATE: ACK a 2xx of a
    /// re-INVITE (and remember the ACK for its retransmissions; the
    /// transaction ACKs anything else); a 2xx restarts the session timer.
    /// A session refresh's outcome is not reported to the application.
    fn on_reinvite_response(
        &mut self,
        now: Instant,
        call: CallRef,
        key: &ClientKey,
        resp: Response,
    ) {
        let status = resp.status();
        if status.is_provisional() {
            return;
        }
        let refresh = self.is_refresh(call, key);
        if status.is_success() {
            self.uac_timer(now, call, &resp);
        }
        let via = self.our_via(self.call_transport(call));
        let Some(Call {
            state:
                CallState::Established {
                    dialog,
                    ack,
                    reinvite,
                },
            peer,
            ..
        }) = self.calls.get_mut(&call)
        else {
            return;
        };
        *reinvite = None;
        let peer = *peer;
        if !status.is_success() {
            if refresh {
                return self.on_refresh_failed(now, call, status);
            }
            return self
                .events
                .push_back(Event::ReinviteFailed { call, status });
        }
        if key.method == Method::Update {
            return;
        }
        let seq = dialog.local_seq();
        dialog.refresh_target(crate::dialog::first_contact(resp.headers()).as_ref());
        let wire = match dialog.request(Method::Ack, &via, Some(seq)).build() {
            Ok(a) => a.to_bytes(),
            Err(_) => Bytes::new(),
        };
        *ack = Some((key.clone(), wire.clone()));
        self.send(peer, wire);
        if !refresh {
            self.events.push_back(Event::ReinviteAnswered {
                call,
                answer: resp.body().clone(),
            });
        }
    }

    /// Send the CANCEL of a call whose hangup was asked for, once the
    /// INVITE has had a provisional response (RFC 3261 section 9.1).
    pub(super) fn try_cancel(&mut self, now: Instant, call: CallRef) {
        let Some(Call {
            state: CallState::Calling(calling),
            peer,
            ..
        }) = self.calls.get_mut(&call)
        else {
            return;
        };
        if calling.cancel.is_none()
            || calling.cancel_sent
            || !self.tx.client_invite_has_response(&calling.key)
        {
            return;
        }
        let cancel = cancel_for(&calling.invite);
        calling.cancel_sent = true;
        calling.ring_deadline = now + self.cfg.timers.timeout();
        let peer = *peer;
        if self.tx.send_request(now, cancel, peer).is_err() {
            tracing::warn!(?call, "transaction table full: CANCEL not sent");
        }
    }

    /// Send BYE in the call's dialog and wait for its answer.
    pub(super) fn send_bye(&mut self, now: Instant, call: CallRef, reason: Option<EndReason>) {
        let via = self.our_via(self.call_transport(call));
        let ua = self.cfg.user_agent.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut dialog = match std::mem::replace(&mut c.state, placeholder()) {
            CallState::Answered { dialog, .. } | CallState::Established { dialog, .. } => dialog,
            other => {
                c.state = other;
                return;
            }
        };
        let peer = c.peer;
        let bye = dialog
            .request(Method::Bye, &via, None)
            .header(HeaderName::UserAgent, ua)
            .build();
        let key = bye
            .ok()
            .and_then(|bye| self.tx.send_request(now, bye, peer).ok());
        match key {
            Some(key) => {
                self.owners.insert(key.clone(), Owner::Call(call));
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = CallState::Ending { bye: key, reason };
                }
            }
            None => {
                tracing::warn!(?call, "BYE could not be sent; ending the call");
                self.end_call(call);
                if let Some(reason) = reason {
                    self.events.push_back(Event::Ended { call, reason });
                }
            }
        }
    }

    fn set_state(&mut self, call: CallRef, state: CallState) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = state;
        }
    }

    pub(super) fn on_call_response(
        &mut self,
        now: Instant,
        call: CallRef,
        key: &ClientKey,
        resp: Response,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let peer = c.peer;
        match &c.state {
            CallState::Calling(calling) if &calling.key == key => {
                self.on_invite_response(now, call, resp)
            }
            CallState::Established {
                reinvite: Some(Reinvite::Sent { key: k, .. }),
                ..
            } if k == key => self.on_reinvite_response(now, call, key, resp),
            CallState::Established {
                ack: Some((k, ack)),
                ..
            } if k == key && resp.status().is_success() => {
                // A retransmitted 2xx: our ACK was lost (section 13.2.2.4).
                let ack = ack.clone();
                self.send(peer, ack);
            }
            CallState::Ending { bye, reason } if bye == key && resp.status().is_final() => {
                let reason = *reason;
                self.end_call(call);
                if let Some(reason) = reason {
                    self.events.push_back(Event::Ended { call, reason });
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_call_timeout(&mut self, now: Instant, call: CallRef, key: &ClientKey) {
        let refresh = self.is_refresh(call, key);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let CallState::Established { reinvite, .. } = &mut c.state
            && matches!(reinvite, Some(Reinvite::Sent { key: k, .. }) if k == key)
        {
            *reinvite = None;
            let status = StatusCode::REQUEST_TIMEOUT;
            if refresh {
                return self.on_refresh_failed(now, call, status);
            }
            return self
                .events
                .push_back(Event::ReinviteFailed { call, status });
        }
        match &c.state {
            CallState::Calling(calling) if &calling.key == key => {
                // Timer B: not a single response (a CANCEL needs one first).
                if self.fail_over(now, call, "no response (Timer B)") {
                    return;
                }
                let Some(CallState::Calling(calling)) = self.calls.get(&call).map(|c| &c.state)
                else {
                    return;
                };
                let outcome = match calling.cancel {
                    Some(Outcome::Cancelled) => Outcome::Cancelled,
                    _ => Outcome::Unreachable,
                };
                self.end_call(call);
                self.events.push_back(Event::Failed { call, outcome });
            }
            CallState::Ending { bye, reason } if bye == key => {
                let reason = *reason;
                self.end_call(call);
                if let Some(reason) = reason {
                    self.events.push_back(Event::Ended { call, reason });
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, now: Instant, call: CallRef, resp: Response) {
        let status = resp.status();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let peer = c.peer;
        let mut calling = match std::mem::replace(&mut c.state, placeholder()) {
            CallState::Calling(calling) => calling,
            other => {
                c.state = other;
                return;
            }
        };
        if status.is_provisional() {
            if status != StatusCode::TRYING {
                calling.progressed = true;
            }
            if status != StatusCode::TRYING && calling.cancel.is_none() {
                self.events.push_back(Event::Progress { call, status });
            }
            self.set_state(call, CallState::Calling(calling));
            return self.try_cancel(now, call);
        }
        if status.is_success() {
            let via = self.our_via(self.call_transport(call));
            let seq = calling.invite.headers().cseq().map_or(1, |c| c.seq);
            let Ok(mut dialog) = Dialog::uac(&calling.invite, &resp) else {
                tracing::warn!(?call, "2xx without a To tag; call failed");
                self.end_call(call);
                let outcome = Outcome::Failed(status);
                return self.events.push_back(Event::Failed { call, outcome });
            };
            let ack = dialog.request(Method::Ack, &via, Some(seq)).build();
            let ack = match ack {
                Ok(a) => a.to_bytes(),
                Err(_) => Bytes::new(),
            };
            self.send(peer, ack.clone());
            let id = dialog.id().clone();
            let allows_update = crate::dialog::peer_allows(resp.headers(), &Method::Update);
            if let Some(c) = self.calls.get_mut(&call) {
                c.peer_allows_update = allows_update;
            }
            self.uac_timer(now, call, &resp);
            let state = CallState::Established {
                dialog,
                ack: Some((calling.key.clone(), ack)),
                reinvite: None,
            };
            self.set_state(call, state);
            match calling.cancel {
                // Answered while our CANCEL was on its way: ACK, then BYE.
                Some(outcome) => {
                    self.events.push_back(Event::Failed { call, outcome });
                    self.send_bye(now, call, None);
                }
                None => self.events.push_back(Event::Answered {
                    call,
                    dialog: id,
                    answer: resp.body().clone(),
                }),
            }
            return;
        }
        let challenged = matches!(status.as_u16(), 401 | 407);
        if challenged && calling.cancel.is_none() {
            match self.retry_with_credentials(now, call, peer, &mut calling, &resp) {
                Ok(()) => return self.set_state(call, CallState::Calling(calling)),
                Err(why) => tracing::warn!(
                    ?call,
                    status = status.as_u16(),
                    why,
                    "outbound INVITE challenged; not retried, call failed"
                ),
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            self.set_state(call, CallState::Calling(calling));
            if self.fail_over(now, call, "503") {
                return;
            }
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            calling = match std::mem::replace(&mut c.state, placeholder()) {
                CallState::Calling(calling) => calling,
                other => {
                    c.state = other;
                    return;
                }
            };
        }
        let outcome = match calling.cancel {
            // We asked to stop: a 487, or a challenge we no longer answer.
            Some(o) if status == StatusCode::REQUEST_TERMINATED || challenged => o,
            _ => Outcome::from_status(status),
        };
        self.end_call(call);
        self.events.push_back(Event::Failed { call, outcome });
    }

    /// The connection to `peer` could not be made (TCP or TLS): an
    /// outbound call whose INVITE went there and has had no response
    /// moves on to its next target (RFC 3263 section 4.3), or fails
    /// [`Outcome::Unreachable`] when it has none (RFC 3261 section
    /// 8.1.3.1: a transport error is a 503). Other calls are left to
    /// their timers. A REGISTER waiting on `peer` moves on to its next
    /// target likewise, or its round fails (retried later).
    pub fn transport_failed(&mut self, now: Instant, peer: Peer) {
        self.register_transport_failed(now, peer);
        let hit: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.peer == peer
                    && matches!(&c.state, CallState::Calling(calling)
                        if !self.tx.client_invite_has_response(&calling.key))
            })
            .map(|(call, _)| *call)
            .collect();
        for call in hit {
            if self.fail_over(now, call, "cannot connect") {
                continue;
            }
            let outcome = match self.calls.get(&call).map(|c| &c.state) {
                Some(CallState::Calling(calling)) => match calling.cancel {
                    Some(Outcome::Cancelled) => Outcome::Cancelled,
                    _ => Outcome::Unreachable,
                },
                _ => continue,
            };
            self.end_call(call);
            self.events.push_back(Event::Failed { call, outcome });
        }
    }

    /// Send the INVITE of a call in `Calling` to its next target (RFC 3263
    /// section 4.3): the same request with a new branch (a new
    /// transaction), the Via and Contact of the new target's transport.
    /// False when the call may not move on (no target left, a provisional
    /// response came, the application hung up) or the transaction table
    /// is full; the caller then fails the call.
    fn fail_over(&mut self, now: Instant, call: CallRef, why: &'static str) -> bool {
        let Some(Call {
            state: CallState::Calling(calling),
            ..
        }) = self.calls.get(&call)
        else {
            return false;
        };
        if calling.cancel.is_some() || calling.progressed || calling.next.is_empty() {
            return false;
        }
        let mut invite = calling.invite.clone();
        let Some(Call {
            state: CallState::Calling(calling),
            ..
        }) = self.calls.get_mut(&call)
        else {
            return false;
        };
        let Some(peer) = calling.next.pop_front() else {
            return false;
        };
        let via = self.our_via(peer.transport);
        let contact = self.contact_as(peer.transport, super::is_sips(invite.uri()));
        let h = invite.headers_mut();
        h.set_top_via(&via);
        h.remove(&HeaderName::Contact);
        h.push_typed(HeaderName::Contact, &contact);
        let Ok(key) = self.tx.send_request(now, invite.clone(), peer) else {
            tracing::warn!(
                ?call,
                "transaction table full: INVITE not sent to the next target"
            );
            return false;
        };
        tracing::info!(?call, why, next = %peer, "outbound INVITE failed over to the next target");
        self.owners.insert(key.clone(), Owner::Call(call));
        self.stats.failovers += 1;
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        c.peer = peer;
        if let CallState::Calling(calling) = &mut c.state {
            calling.key = key;
            calling.invite = invite;
        }
        let target = peer.addr;
        self.events.push_back(Event::FailedOver { call, target });
        true
    }

    /// Answer a 401/407 to our INVITE (RFC 3261 section 22.2): a new
    /// INVITE in the same call (same Call-ID, From tag and To), CSeq one
    /// higher, a new branch, and the Authorization (401) or
    /// Proxy-Authorization (407) computed by [`DigestClient`] from the
    /// challenge, next to the answers to earlier challenges of other
    /// realms (a proxy's 407, then the far end's 401). The transaction has already ACKed the error response.
    /// The caller ends the call when this refuses, with the reason given
    /// (for the log; the credentials are never part of it).
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        call: CallRef,
        peer: Peer,
        calling: &mut Calling,
        resp: &Response,
    ) -> Result<(), &'static str> {
        let Some(creds) = calling.credentials.as_ref() else {
            return Err("no credentials for this call");
        };
        if calling.challenges >= MAX_CHALLENGES {
            return Err("challenged again after our answers");
        }
        match calling.auth.challenge(resp) {
            Ok(()) => {}
            Err(Refusal::Unusable) => return Err("no Digest challenge we can answer"),
            Err(Refusal::Rejected) => return Err("our credentials were refused"),
        }
        calling.challenges += 1;
        let mut invite = calling.invite.clone();
        let via = self.our_via(peer.transport);
        let h = invite.headers_mut();
        h.set_top_via(&via);
        let seq = h.cseq().map_or(1, |c| c.seq).wrapping_add(1);
        h.set(HeaderName::CSeq, format!("{seq} INVITE"));
        h.remove(&HeaderName::Authorization);
        h.remove(&HeaderName::ProxyAuthorization);
        let cnonce = self.ids.hex();
        let answers = calling
            .auth
            .authorize(creds, "INVITE", invite.uri(), &cnonce);
        if answers.is_empty() {
            return Err("no Digest challenge we can answer");
        }
        for (name, value) in answers {
            invite.headers_mut().push_typed(name, &value);
        }
        let key = self
            .tx
            .send_request(now, invite.clone(), peer)
            .map_err(|_| "transaction table full")?;
        self.owners.insert(key.clone(), Owner::Call(call));
        tracing::debug!(
            ?call,
            cseq = seq,
            "INVITE challenged; sent again with credentials"
        );
        calling.key = key;
        calling.invite = invite;
        Ok(())
    }
}

/// The CANCEL of an INVITE (RFC 3261 section 9.1): same Request-URI,
/// Call-ID, To, From, CSeq number and single top Via (same branch).
pub(crate) fn cancel_for(invite: &Request) -> Request {
    let src = invite.headers();
    let mut headers = Headers::with_capacity(8);
    if let Ok(via) = src.top_via() {
        headers.push_typed(HeaderName::Via, &via);
    }
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        if let Some(v) = src.get(&name) {
            headers.push(name, v.clone());
        }
    }
    let seq = src.cseq().map_or(1, |c| c.seq);
    headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
    for r in src.get_all(&HeaderName::Route) {
        headers.push(HeaderName::Route, r.clone());
    }
    headers.push(HeaderName::MaxForwards, "70");
    headers.push(HeaderName::ContentLength, "0");
    Request::from_parts(Method::Cancel, invite.uri().clone(), headers, Bytes::new())
}
