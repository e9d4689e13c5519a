//! The UAS half of the core (RFC 3261 sections 8.2, 9.2, 12.2.2, 13.3,
//! 15.1.2; RFC 3581; RFC 6086 INFO): requests we receive and the answers
//! the application gives to inbound calls.

use super::{
    Call, CallRef, CallState, EndReason, Event, IncomingCall, Reinvite, Retransmit, UaError,
    UserAgent,
};
use crate::dialog::{Dialog, first_contact, route_key};
use crate::encode::Encode;
use crate::filter::Rejection;
use crate::header::{HeaderName, MediaType};
use crate::message::{Request, Response};
use crate::method::Method;
use crate::sdp::{HoldState, Session, hold_state};
use crate::status::StatusCode;
use crate::transaction::{Routed, ServerKey};
use crate::transport::Peer;
use crate::uri::Host;
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;

impl UserAgent {
    pub(super) fn on_request(&mut self, now: Instant, source: Peer, mut req: Request) {
        let is_ack = req.method() == &Method::Ack;
        if !self.cfg.filter.allows(source.addr.ip()) {
            self.stats.filtered += 1;
            tracing::debug!(%source, method = %req.method(), "request from a source outside the allowlist");
            if self.cfg.filter.rejection() == Rejection::Forbidden && !is_ack {
                self.stateless(&req, StatusCode::FORBIDDEN, source);
            }
            return;
        }
        // RFC 3261 section 18.2.1 and RFC 3581 section 4: note where the
        // request really came from; answer there when rport asks for it,
        // and always over a reliable transport: on the connection the
        // request came on (section 18.2.2).
        let Ok(mut via) = req.headers().top_via() else {
            self.stats.malformed_dropped += 1;
            return;
        };
        let ip = source.addr.ip();
        let reply_to = if via.rport().is_some() {
            via.set_received(ip);
            via.set_rport(source.addr.port());
            source
        } else {
            if via.host() != &Host::from(ip) {
                via.set_received(ip);
            }
            if source.transport.is_reliable() {
                source
            } else {
                Peer::from(SocketAddr::new(ip, via.port().unwrap_or(5060)))
            }
        };
        req.headers_mut().set_top_via(&via);
        let key = match self.tx.route_request(now, &req, reply_to) {
            Ok(Routed::New(key)) => key,
            Ok(Routed::Absorbed) => {
                self.stats.retransmissions_absorbed += 1;
                return;
            }
            Ok(Routed::Ack) => return self.on_ack(now, &req),
            Ok(Routed::Full) => {
                self.stats.overloaded += 1;
                if !is_ack {
                    self.stateless(&req, StatusCode::SERVICE_UNAVAILABLE, reply_to);
                }
                return;
            }
            Err(_) => {
                self.stats.malformed_dropped += 1;
                return;
            }
        };
        // RFC 3261 section 8.2.2: URI scheme (416), then extensions (420).
        // CANCEL carries no Require of its own (section 9.1).
        if matches!(req.uri(), crate::uri::Uri::Other(_)) {
            return self.reply_status(now, &key, &req, StatusCode::UNSUPPORTED_URI_SCHEME);
        }
        let mut required = req.headers().require().unwrap_or_default();
        required.retain(|t| !t.eq_ignore_ascii_case(crate::session_timer::OPTION_TAG.as_bytes()));
        if !required.is_empty() && req.method() != &Method::Cancel {
            let tag = self.ids.tag();
            let mut r = req.make_response(StatusCode::BAD_EXTENSION, Some(&tag));
            for ext in required {
                r.headers_mut().push(HeaderName::Unsupported, ext);
            }
            return self.reply(now, &key, r);
        }
        // RFC 3261 sections 8.1.1.6 and 16.3: a request that arrives with
        // no hops left has looped or been forwarded too far; it gets 483
        // and goes no further. OPTIONS with Max-Forwards 0 is a probe of
        // this hop (section 11) and CANCEL follows its INVITE.
        if req.headers().max_forwards().ok().flatten() == Some(0)
            && !matches!(req.method(), Method::Options | Method::Cancel)
        {
            return self.reply_status(now, &key, &req, StatusCode::TOO_MANY_HOPS);
        }
        let in_dialog = route_key(&req).is_some();
        match req.method() {
            Method::Invite if in_dialog => self.on_reinvite(now, key, req),
            Method::Invite => self.on_invite(now, key, req, source),
            Method::Cancel => self.on_cancel(now, &key, &req),
            Method::Bye => self.on_bye(now, &key, &req),
            Method::Info => self.on_info(now, &key, &req),
            Method::Notify => self.on_notify(now, &key, &req),
            Method::Update => self.on_update(now, key, req),
            Method::Options => self.on_options(now, &key, &req, in_dialog),
            _ => {
                let tag = self.ids.tag();
                let mut r = req.make_response(StatusCode::METHOD_NOT_ALLOWED, Some(&tag));
                r.headers_mut().push(HeaderName::Allow, super::ALLOW);
                self.reply(now, &key, r);
            }
        }
    }

    /// A response sent outside any transaction (filter, overload).
    fn stateless(&mut self, req: &Request, status: StatusCode, dest: Peer) {
        let tag = self.ids.tag();
        let resp = self.decorate(req.make_response(status, Some(&tag)));
        self.send(dest, resp.to_bytes());
    }

    pub(super) fn reply(&mut self, now: Instant, key: &ServerKey, resp: Response) {
        let resp = self.decorate(resp);
        self.tx.respond(now, key, &resp);
    }

    pub(super) fn reply_status(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Request,
        status: StatusCode,
    ) {
        let tag = self.ids.tag();
        let r = req.make_response(status, Some(&tag));
        self.reply(now, key, r);
    }

    /// The dialog an in-dialog request belongs to; `None` once it was
    /// answered 481 (RFC 3261 section 12.2.2).
    pub(super) fn dialog_or_481(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Request,
    ) -> Option<CallRef> {
        let call = route_key(req).and_then(|k| self.dialogs.get(&k).copied());
        if call.is_none() {
            self.reply_status(
                now,
                key,
                req,
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
            );
        }
        call
    }

    fn on_invite(&mut self, now: Instant, key: ServerKey, req: Request, source: Peer) {
        if self.draining || self.calls.len() >= self.cfg.max_calls {
            if self.draining {
                self.stats.refused_shutting_down += 1;
            } else {
                self.stats.overloaded += 1;
            }
            let tag = self.ids.tag();
            let mut r = req.make_response(StatusCode::SERVICE_UNAVAILABLE, Some(&tag));
            r.headers_mut()
                .push(HeaderName::RetryAfter, self.cfg.retry_after.to_string());
            return self.reply(now, &key, r);
        }
        let h = req.headers();
        let (Ok(call_id), Ok(from), Ok(to)) = (h.call_id(), h.from_addr(), h.to_addr()) else {
            return self.reply_status(now, &key, &req, StatusCode::BAD_REQUEST);
        };
        // A second INVITE of a live Call-ID on a new branch is a loop or a
        // fork's duplicate: never a second call (RFC 3261 section 8.2.2.2).
        if self.calls.values().any(|c| c.call_id == call_id) {
            return self.reply_status(now, &key, &req, StatusCode::LOOP_DETECTED);
        }
        if let Some(status) = offer_problem(&req) {
            return self.reply_status(now, &key, &req, status);
        }
        if let Some(min_se) = self.interval_too_small(&req) {
            return self.reply_too_small(now, &key, &req, min_se);
        }
        let local_tag = self.ids.tag();
        let dialog = match Dialog::uas(&req, local_tag.clone()) {
            Ok(d) => d,
            Err(e) => {
                let mut r = req.make_response(e.status(), Some(&local_tag));
                r.set_reason(e.reason_phrase());
                return self.reply(now, &key, r);
            }
        };
        self.reply(now, &key, req.make_response(StatusCode::TRYING, None));
        let call = CallRef(self.next_id());
        self.stats.inbound_calls += 1;
        let incoming = IncomingCall {
            call,
            call_id: call_id.clone(),
            dialog: dialog.id().clone(),
            from,
            to: to.with_tag(&local_tag),
            offer: req.body().clone(),
            source: source.addr,
            transport: source.transport,
            extension_headers: super::event::extension_headers(req.headers()),
        };
        self.dialogs
            .insert((call_id.clone(), local_tag.clone()), call);
        self.invites.insert(key.clone(), call);
        let peer_allows_update = crate::dialog::peer_allows(req.headers(), &Method::Update);
        let sips = super::is_sips(req.uri());
        // In-dialog requests go back where the INVITE came from (the
        // trunk), like its responses.
        let state = CallState::Offered {
            key,
            invite: req,
            dialog,
            deadline: now + self.cfg.answer_timeout,
        };
        let mut c = Call::new(source, call_id, local_tag, state);
        c.peer_allows_update = peer_allows_update;
        c.sips = sips;
        self.calls.insert(call, c);
        self.events
            .push_back(Event::IncomingCall(Box::new(incoming)));
    }

    fn on_ack(&mut self, now: Instant, req: &Request) {
        let Some(call) = route_key(req).and_then(|k| self.dialogs.get(&k).copied()) else {
            return;
        };
        match self.calls.get(&call).map(|c| &c.state) {
            Some(CallState::Answered { .. }) => self.ack_initial(now, call, req),
            Some(CallState::Established { .. }) => self.ack_in_dialog(now, call, req),
            _ => {}
        }
    }

    fn on_cancel(&mut self, now: Instant, key: &ServerKey, req: &Request) {
        let Some(call) = self.invites.get(&key.invite()).copied() else {
            return self.reply_status(
                now,
                key,
                req,
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
            );
        };
        let tag = self.calls.get(&call).map(|c| c.local_tag.clone());
        let ok = req.make_response(StatusCode::OK, tag.as_ref());
        self.reply(now, key, ok);
        let offered = matches!(
            self.calls.get(&call).map(|c| &c.state),
            Some(CallState::Offered { .. })
        );
        if offered && let Some(c) = self.end_call(call) {
            if let CallState::Offered { key, invite, .. } = c.state {
                let r = invite.make_response(StatusCode::REQUEST_TERMINATED, Some(&c.local_tag));
                self.reply(now, &key, r);
            }
            self.events.push_back(Event::Ended {
                call,
                reason: EndReason::RemoteCancel,
            });
        }
    }

    fn on_bye(&mut self, now: Instant, key: &ServerKey, req: &Request) {
        let Some(call) = route_key(req).and_then(|k| self.dialogs.get(&k).copied()) else {
            return self.reply_status(
                now,
                key,
                req,
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
            );
        };
        if matches!(
            self.calls.get(&call).map(|c| &c.state),
            Some(CallState::Calling(_))
        ) {
            return self.reply_status(now, key, req, StatusCode::OK);
        }
        self.reply_status(now, key, req, StatusCode::OK);
        let Some(c) = self.end_call(call) else {
            return;
        };
        let reason = match c.state {
            CallState::Offered { key, invite, .. } => {
                let r = invite.make_response(StatusCode::REQUEST_TERMINATED, Some(&c.local_tag));
                self.reply(now, &key, r);
                Some(EndReason::RemoteBye)
            }
            // BYEs crossed: ours was already on its way.
            CallState::Ending { reason, .. } => reason,
            _ => Some(EndReason::RemoteBye),
        };
        if let Some(reason) = reason {
            self.events.push_back(Event::Ended { call, reason });
        }
    }

    fn on_info(&mut self, now: Instant, key: &ServerKey, req: &Request) {
        let Some(call) = route_key(req).and_then(|k| self.dialogs.get(&k).copied()) else {
            return self.reply_status(
                now,
                key,
                req,
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
            );
        };
        let is_dtmf = req
            .headers()
            .content_type()
            .ok()
            .flatten()
            .is_some_and(|t| {
                t.kind().eq_ignore_ascii_case(b"application")
                    && t.subtype().eq_ignore_ascii_case(b"dtmf-relay")
            });
        if is_dtmf && let Some((digit, duration_ms)) = parse_dtmf_relay(req.body()) {
            self.events.push_back(Event::Dtmf {
                call,
                digit,
                duration_ms,
            });
        }
        self.reply_status(now, key, req, StatusCode::OK);
    }

    fn on_reinvite(&mut self, now: Instant, key: ServerKey, req: Request) {
        let Some(call) = self.dialog_or_481(now, &key, &req) else {
            return;
        };
        let seq = req.headers().cseq().map(|c| c.seq).unwrap_or(0);
        let status = match self.calls.get_mut(&call).map(|c| &mut c.state) {
            Some(CallState::Established {
                reinvite: Some(_), ..
            }) => Some(StatusCode::REQUEST_PENDING),
            Some(CallState::Established { dialog, .. }) => {
                if dialog.accept_remote_seq(seq) {
                    dialog.refresh_target(first_contact(req.headers()).as_ref());
                    None
                } else {
                    Some(StatusCode::SERVER_INTERNAL_ERROR)
                }
            }
            // The initial INVITE is still in progress (RFC 3261 section 14.2).
            Some(
                CallState::Offered { .. } | CallState::Answered { .. } | CallState::Calling(_),
            ) => Some(StatusCode::REQUEST_PENDING),
            _ => Some(StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST),
        };
        let status = status.or_else(|| offer_problem(&req));
        if let Some(status) = status {
            return self.reply_status(now, &key, &req, status);
        }
        if let Some(min_se) = self.interval_too_small(&req) {
            return self.reply_too_small(now, &key, &req, min_se);
        }
        if req.body().is_empty() {
            return self.answer_offerless_reinvite(now, call, key, req);
        }
        self.reply(now, &key, req.make_response(StatusCode::TRYING, None));
        let hold = Session::parse(req.body()).is_ok_and(|s| hold_state(&s) == HoldState::Held);
        let offer = req.body().clone();
        if let Some(Call {
            state: CallState::Established { reinvite, .. },
            ..
        }) = self.calls.get_mut(&call)
        {
            *reinvite = Some(Reinvite::Offered { key, request: req });
        }
        self.events.push_back(Event::Reinvite { call, offer, hold });
    }

    /// Send 180 Ringing for an inbound call.
    pub fn ring(&mut self, now: Instant, call: CallRef) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        let CallState::Offered { key, invite, .. } = &c.state else {
            return Err(UaError::WrongState("not ringing"));
        };
        let mut r = invite.make_response(StatusCode::RINGING, Some(&c.local_tag));
        r.headers_mut().push_typed(
            HeaderName::Contact,
            &self.contact_as(c.peer.transport, c.sips),
        );
        let key = key.clone();
        self.reply(now, &key, r);
        Ok(())
    }

    /// Answer an inbound call (or a pending re-INVITE) with 200 OK and an
    /// SDP answer; the 200 is retransmitted until the ACK.
    pub fn answer(&mut self, now: Instant, call: CallRef, sdp: Bytes) -> Result<(), UaError> {
        let contact = self.call_contact(call);
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let local_tag = c.local_tag.clone();
        let (key, request, state) = match std::mem::replace(&mut c.state, placeholder()) {
            CallState::Offered {
                key,
                invite,
                dialog,
                ..
            } => (key, invite, Some(dialog)),
            CallState::Established {
                dialog,
                ack,
                reinvite: Some(Reinvite::Offered { key, request }),
            } if request.method() == &Method::Update => {
                c.state = CallState::Established {
                    dialog,
                    ack,
                    reinvite: None,
                };
                self.answer_update(now, call, &key, &request, sdp);
                return Ok(());
            }
            CallState::Established {
                dialog,
                ack,
                reinvite: Some(Reinvite::Offered { key, request }),
            } => {
                c.state = CallState::Established {
                    dialog,
                    ack,
                    reinvite: None,
                };
                (key, request, None)
            }
            other => {
                c.state = other;
                return Err(UaError::WrongState("not waiting for an answer"));
            }
        };
        // An INVITE without SDP gets our offer in the 2xx; the ACK answers.
        let offer = request.body().is_empty().then(|| sdp.clone());
        c.local_sdp = Some(sdp.clone());
        let mut ok = request.make_response(StatusCode::OK, Some(&local_tag));
        ok.headers_mut().push_typed(HeaderName::Contact, &contact);
        allow_headers(&mut ok);
        self.uas_timer(now, call, &request, &mut ok);
        ok.set_body(&MediaType::sdp(), sdp);
        let ok = self.decorate(ok);
        self.tx.respond(now, &key, &ok);
        self.invites.remove(&key);
        let retx = Retransmit::start(now, ok.to_bytes(), &self.cfg.timers);
        if let Some(c) = self.calls.get_mut(&call) {
            match (state, &mut c.state) {
                (Some(dialog), state) => {
                    *state = CallState::Answered {
                        dialog,
                        retx,
                        offer,
                    }
                }
                (None, CallState::Established { reinvite, .. }) => {
                    *reinvite = Some(Reinvite::Answered { retx, offer });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Refuse an inbound call (or a pending re-INVITE) with a 3xx-6xx.
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
    ) -> Result<(), UaError> {
        self.reject_with(now, call, status, None, None)
    }

    /// Like [`reject`](Self::reject), with a `Retry-After` header of
    /// `retry_after` (whole seconds, rounded up; RFC 3261 section 20.33):
    /// typically a 503 that tells the caller when to try again.
    pub fn reject_retry_after(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        retry_after: std::time::Duration,
    ) -> Result<(), UaError> {
        self.reject_with(now, call, status, Some(retry_after), None)
    }

    /// Like [`reject_retry_after`](Self::reject_retry_after) (no
    /// `Retry-After` when `None`), with a `Warning: 399 callbridge "text"`
    /// header (RFC 3261 section 20.43, 399: miscellaneous warning) saying
    /// why, for the operator reading the peer's trace. `text` is ours (a
    /// fixed phrase), never caller data; `"` and `\` are dropped from it.
    pub fn reject_warning(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        retry_after: Option<std::time::Duration>,
        text: &str,
    ) -> Result<(), UaError> {
        self.reject_with(now, call, status, retry_after, Some(text))
    }

    fn reject_with(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        retry_after: Option<std::time::Duration>,
        warning: Option<&str>,
    ) -> Result<(), UaError> {
        let with_retry = |mut r: Response| {
            if let Some(d) = retry_after {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                r.headers_mut()
                    .push(HeaderName::RetryAfter, secs.to_string());
            }
            if let Some(text) = warning {
                let text: String = text.chars().filter(|c| !matches!(c, '"' | '\\')).collect();
                r.headers_mut()
                    .push(HeaderName::Warning, format!("399 callbridge \"{text}\""));
            }
            r
        };
        if !status.is_final() || status.is_success() {
            return Err(UaError::WrongState("a rejection needs a 3xx-6xx status"));
        }
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let tag = c.local_tag.clone();
        match &mut c.state {
            CallState::Offered { .. } => {
                if let Some(Call {
                    state: CallState::Offered { key, invite, .. },
                    ..
                }) = self.end_call(call)
                {
                    let r = with_retry(invite.make_response(status, Some(&tag)));
                    self.reply(now, &key, r);
                }
                Ok(())
            }
            CallState::Established { reinvite, .. }
                if matches!(reinvite, Some(Reinvite::Offered { .. })) =>
            {
                if let Some(Reinvite::Offered { key, request }) = reinvite.take() {
                    let r = with_retry(request.make_response(status, Some(&tag)));
                    self.reply(now, &key, r);
                }
                Ok(())
            }
            _ => Err(UaError::WrongState("not waiting for an answer")),
        }
    }
}

/// Allow, Accept and Supported for OPTIONS and INVITE answers.
pub(super) fn allow_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.push(HeaderName::Allow, super::ALLOW);
    h.push(HeaderName::Accept, "application/sdp");
    h.push(HeaderName::Supported, super::SUPPORTED);
}

/// 415 for a body that is not SDP, the SDP error's status (488) for an SDP
/// body that does not parse; `None` for a usable (or absent) offer.
pub(super) fn offer_problem(req: &Request) -> Option<StatusCode> {
    if req.body().is_empty() {
        return None;
    }
    match req.headers().content_type() {
        Ok(Some(t)) if t.is_sdp() => {}
        _ => return Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
    }
    Session::parse(req.body()).err().map(|e| e.status())
}

/// `Signal=5` / `Duration=160` lines of `application/dtmf-relay`.
pub(crate) fn parse_dtmf_relay(body: &[u8]) -> Option<(char, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut digit = None;
    let mut duration = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                digit = match v {
                    "10" => Some('*'),
                    "11" => Some('#'),
                    _ if v.len() == 1 => v
                        .chars()
                        .next()
                        .map(|c| c.to_ascii_uppercase())
                        .filter(|c| c.is_ascii_digit() || "*#ABCD".contains(*c)),
                    _ => None,
                }
            }
            "duration" => duration = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    digit.map(|d| (d, duration))
}

/// The value a call's state holds for the moment its old state is moved
/// out to build the next one; always overwritten before returning.
pub(super) fn placeholder() -> CallState {
    CallState::Ending {
        bye: crate::transaction::ClientKey {
            branch: crate::ids::Branch::new(Bytes::new()),
            method: Method::Bye,
        },
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_dtmf_relay;

    #[test]
    fn dtmf_relay_bodies_give_digit_and_duration() {
        assert_eq!(
            parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(parse_dtmf_relay(b"Signal= #\r\n"), Some(('#', 0)));
        assert_eq!(
            parse_dtmf_relay(b"Signal=11\r\nDuration=100"),
            Some(('#', 100))
        );
        assert_eq!(parse_dtmf_relay(b"Signal=x\r\n"), None);
        assert_eq!(parse_dtmf_relay(b"Duration=100"), None);
    }
}
