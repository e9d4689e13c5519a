//! Session refresh inside a dialog: answers that carry our offer (an
//! INVITE or re-INVITE without SDP, RFC 3261 section 13.2.1, RFC 3264
//! section 8) and the answer their ACK must bring; UPDATE (RFC 3311); and
//! the session timer of each call (RFC 4028, the value in
//! [`crate::session_timer`]): the headers of our 2xx and requests, our
//! refreshes, and the BYE when the session expires.

use super::uas::{allow_headers, offer_problem, placeholder};
use super::{Call, CallRef, CallState, EndReason, Event, Owner, Reinvite, Retransmit, UserAgent};
use crate::dialog::first_contact;
use crate::encode::Encode;
use crate::header::{HeaderName, MediaType};
use crate::message::{Request, Response};
use crate::method::Method;
use crate::sdp::{HoldState, Session, hold_state, process_answer};
use crate::session_timer::{
    Due, Refresher, Role, SessionExpires, SessionTimer, UasDecision, decide_uac, decide_uas,
};
use crate::status::StatusCode;
use crate::transaction::{ClientKey, ServerKey};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Whether `answer` is a usable SDP answer to our `offer` (RFC 3264
/// section 6: it parses, keeps the m-lines, accepts audio with a codec we
/// offered).
fn answer_fits(offer: &Bytes, answer: &Bytes) -> bool {
    match (Session::parse(offer), Session::parse(answer)) {
        (Ok(o), Ok(a)) => process_answer(&o, &a).is_ok(),
        _ => false,
    }
}

/// The `Session-Expires` we send in a refresh request of a running timer:
/// its interval, the refresher kept (we are the UAC of the request).
fn refresh_value(timer: &SessionTimer) -> String {
    let delta = u32::try_from(timer.interval().as_secs()).unwrap_or(u32::MAX);
    let refresher = match timer.role() {
        Role::Us => Refresher::Uac,
        Role::Peer => Refresher::Uas,
    };
    SessionExpires {
        delta,
        refresher: Some(refresher),
    }
    .to_value()
}

impl UserAgent {
    /// The `Min-SE` of our 422 when `request` asks for a session interval
    /// below ours (RFC 4028 section 9).
    pub(super) fn interval_too_small(&self, request: &Request) -> Option<u32> {
        match decide_uas(&self.cfg.session_timer, request.headers()) {
            UasDecision::TooSmall { min_se } => Some(min_se),
            _ => None,
        }
    }

    /// Refuse `request` with 422 and our `Min-SE`.
    pub(super) fn reply_too_small(
        &mut self,
        now: Instant,
        key: &ServerKey,
        request: &Request,
        min_se: u32,
    ) {
        let tag = self.ids.tag();
        let mut r = request.make_response(StatusCode::SESSION_INTERVAL_TOO_SMALL, Some(&tag));
        r.headers_mut().push(HeaderName::MinSe, min_se.to_string());
        self.reply(now, key, r);
    }

    /// The session timer of our 2xx to `request` (an INVITE, re-INVITE or
    /// UPDATE from the peer) sent at `now`: its headers go into `ok`, and
    /// the call's timer starts again (or stops, when the request asks for
    /// none: RFC 4028 section 9).
    pub(super) fn uas_timer(
        &mut self,
        now: Instant,
        call: CallRef,
        request: &Request,
        ok: &mut Response,
    ) {
        let decision = decide_uas(&self.cfg.session_timer, request.headers());
        let timer = match decision {
            UasDecision::Run {
                header,
                require,
                role,
            } => {
                ok.headers_mut()
                    .push(HeaderName::SessionExpires, header.to_value());
                if require {
                    ok.headers_mut()
                        .push(HeaderName::Require, crate::session_timer::OPTION_TAG);
                }
                let interval = Duration::from_secs(u64::from(header.delta));
                Some(SessionTimer::new(now, interval, role))
            }
            UasDecision::None | UasDecision::TooSmall { .. } => None,
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.timer = timer;
        }
    }

    /// The session timer a 2xx to our INVITE, re-INVITE or UPDATE sets
    /// (RFC 4028 section 7.2): none when the 2xx carries no
    /// `Session-Expires`.
    pub(super) fn uac_timer(&mut self, now: Instant, call: CallRef, resp: &Response) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.timer = decide_uac(resp.headers())
                .map(|(interval, role)| SessionTimer::new(now, interval, role));
        }
    }

    /// The `Session-Expires` our in-dialog requests carry while a timer runs.
    pub(super) fn timer_header(&self, call: CallRef) -> Option<String> {
        self.calls
            .get(&call)
            .and_then(|c| c.timer.as_ref())
            .map(refresh_value)
    }

    /// The session timer of `call` at `now`: our refresh at half the
    /// interval, BYE when it expires.
    pub(super) fn session_timer_timeout(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !matches!(c.state, CallState::Established { .. }) {
            return;
        }
        match c.timer.as_mut().and_then(|t| t.poll(now)) {
            Some(Due::Refresh) => self.send_refresh(now, call),
            Some(Due::Expire) => {
                tracing::info!(
                    ?call,
                    "session timer expired (RFC 4028 section 10): no refresh in time; sending BYE"
                );
                c.timer = None;
                self.send_bye(now, call, None);
                self.events.push_back(Event::Ended {
                    call,
                    reason: EndReason::SessionExpired,
                });
            }
            None => {}
        }
    }

    /// Our session refresh (RFC 4028 section 7.4): an UPDATE without a
    /// body when the peer allows UPDATE, else a re-INVITE with our current
    /// SDP unchanged (same `o=` version: RFC 3264 section 8); both carry
    /// our `Min-SE` (without it the peer would assume 90 s). Skipped while
    /// another re-INVITE is in progress (its 2xx refreshes the session).
    fn send_refresh(&mut self, now: Instant, call: CallRef) {
        let via = self.our_via(self.call_transport(call));
        let contact = self.call_contact(call);
        let ua = self.cfg.user_agent.clone();
        let min_se = self.cfg.session_timer.min_se.as_secs().to_string();
        let Some(se) = self.timer_header(call) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let peer = c.peer;
        let (method, body) = if c.peer_allows_update {
            (Method::Update, None)
        } else {
            (Method::Invite, c.local_sdp.clone())
        };
        let CallState::Established {
            dialog,
            reinvite: None,
            ..
        } = &mut c.state
        else {
            tracing::debug!(?call, "session refresh skipped: a re-INVITE is in progress");
            return;
        };
        let mut b = dialog
            .request(method.clone(), &via, None)
            .contact(&contact)
            .header(HeaderName::Allow, super::ALLOW)
            .header(HeaderName::Supported, super::SUPPORTED)
            .header(HeaderName::SessionExpires, se)
            .header(HeaderName::MinSe, min_se)
            .header(HeaderName::UserAgent, ua);
        if let Some(sdp) = body {
            b = b.body(MediaType::sdp(), sdp);
        }
        let Ok(request) = b.build() else {
            return;
        };
        let Ok(key) = self.tx.send_request(now, request, peer) else {
            tracing::warn!(?call, "transaction table full: session refresh not sent");
            return;
        };
        tracing::debug!(?call, method = %method, "session refresh sent");
        self.owners.insert(key.clone(), Owner::Call(call));
        if let Some(Call {
            state: CallState::Established { reinvite, .. },
            ..
        }) = self.calls.get_mut(&call)
        {
            *reinvite = Some(Reinvite::Sent { key, refresh: true });
        }
    }

    /// The final response to our session refresh: a 2xx restarts the
    /// timer; 408 or 481 mean the dialog is gone (RFC 3261 section
    /// 12.2.1.2): BYE, the session expired. Any other failure leaves the
    /// timer to expire.
    pub(super) fn on_refresh_failed(&mut self, now: Instant, call: CallRef, status: StatusCode) {
        tracing::info!(?call, status = status.as_u16(), "session refresh refused");
        if matches!(status.as_u16(), 408 | 481) {
            if let Some(c) = self.calls.get_mut(&call) {
                c.timer = None;
            }
            self.send_bye(now, call, None);
            self.events.push_back(Event::Ended {
                call,
                reason: EndReason::SessionExpired,
            });
        }
    }

    /// An ACK for our 2xx whose offer it must answer: the answer is passed
    /// on ([`Event::AnswerInAck`]), or, when it is missing or unusable,
    /// the call ends with BYE (RFC 3261 section 13.3.1.4). Returns whether
    /// the call goes on.
    pub(super) fn ack_answer(
        &mut self,
        now: Instant,
        call: CallRef,
        offer: &Bytes,
        ack: &Request,
    ) -> bool {
        if answer_fits(offer, ack.body()) {
            self.events.push_back(Event::AnswerInAck {
                call,
                answer: ack.body().clone(),
            });
            return true;
        }
        tracing::info!(
            ?call,
            body_len = ack.body().len(),
            "the ACK of our offer brought no usable SDP answer; sending BYE"
        );
        self.send_bye(now, call, None);
        self.events.push_back(Event::Ended {
            call,
            reason: EndReason::BadAnswerInAck,
        });
        false
    }

    /// A re-INVITE without SDP in a confirmed dialog (a session refresh,
    /// RFC 3264 section 8, RFC 4028): the core answers it itself with our
    /// current SDP, unchanged, and waits for the answer in the ACK.
    pub(super) fn answer_offerless_reinvite(
        &mut self,
        now: Instant,
        call: CallRef,
        key: ServerKey,
        request: Request,
    ) {
        let contact = self.call_contact(call);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(sdp) = c.local_sdp.clone() else {
            return self.reply_status(now, &key, &request, StatusCode::SERVER_INTERNAL_ERROR);
        };
        let tag = c.local_tag.clone();
        let mut ok = request.make_response(StatusCode::OK, Some(&tag));
        ok.headers_mut().push_typed(HeaderName::Contact, &contact);
        allow_headers(&mut ok);
        self.uas_timer(now, call, &request, &mut ok);
        ok.set_body(&MediaType::sdp(), sdp.clone());
        let ok = self.decorate(ok);
        self.tx.respond(now, &key, &ok);
        let retx = Retransmit::start(now, ok.to_bytes(), &self.cfg.timers);
        if let Some(Call {
            state: CallState::Established { reinvite, .. },
            ..
        }) = self.calls.get_mut(&call)
        {
            *reinvite = Some(Reinvite::Answered {
                retx,
                offer: Some(sdp),
            });
        }
    }

    /// UPDATE (RFC 3311): without a body it refreshes the session (and the
    /// target) and is answered here; with an offer it is handed to the
    /// application like a re-INVITE's ([`Event::Reinvite`]) and answered
    /// through [`UserAgent::answer`]. Before the dialog is confirmed only
    /// an UPDATE without an offer is taken (491 otherwise).
    pub(super) fn on_update(&mut self, now: Instant, key: ServerKey, req: Request) {
        let Some(call) = self.dialog_or_481(now, &key, &req) else {
            return;
        };
        if let Some(status) = offer_problem(&req) {
            return self.reply_status(now, &key, &req, status);
        }
        let has_offer = !req.body().is_empty();
        let seq = req.headers().cseq().map(|c| c.seq).unwrap_or(0);
        let refusal = match self.calls.get_mut(&call).map(|c| &mut c.state) {
            Some(CallState::Established {
                dialog, reinvite, ..
            }) => {
                if has_offer && reinvite.is_some() {
                    Some(StatusCode::REQUEST_PENDING)
                } else if dialog.accept_remote_seq(seq) {
                    dialog.refresh_target(first_contact(req.headers()).as_ref());
                    None
                } else {
                    Some(StatusCode::SERVER_INTERNAL_ERROR)
                }
            }
            Some(CallState::Offered { .. } | CallState::Answered { .. }) if !has_offer => None,
            Some(
                CallState::Offered { .. } | CallState::Answered { .. } | CallState::Calling(_),
            ) => Some(StatusCode::REQUEST_PENDING),
            _ => Some(StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST),
        };
        if let Some(status) = refusal {
            return self.reply_status(now, &key, &req, status);
        }
        if let Some(min_se) = self.interval_too_small(&req) {
            return self.reply_too_small(now, &key, &req, min_se);
        }
        if has_offer {
            let hold = Session::parse(req.body()).is_ok_and(|s| hold_state(&s) == HoldState::Held);
            let offer = req.body().clone();
            if let Some(Call {
                state: CallState::Established { reinvite, .. },
                ..
            }) = self.calls.get_mut(&call)
            {
                *reinvite = Some(Reinvite::Offered { key, request: req });
            }
            return self.events.push_back(Event::Reinvite { call, offer, hold });
        }
        let contact = self.call_contact(call);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let established = matches!(c.state, CallState::Established { .. });
        let tag = c.local_tag.clone();
        let mut ok = req.make_response(StatusCode::OK, Some(&tag));
        ok.headers_mut().push_typed(HeaderName::Contact, &contact);
        allow_headers(&mut ok);
        if established {
            self.uas_timer(now, call, &req, &mut ok);
        }
        self.reply(now, &key, ok);
    }

    /// Answer the UPDATE `request` that carried an offer with our SDP
    /// answer: a plain 2xx of its non-INVITE transaction (no ACK).
    pub(super) fn answer_update(
        &mut self,
        now: Instant,
        call: CallRef,
        key: &ServerKey,
        request: &Request,
        sdp: Bytes,
    ) {
        let contact = self.call_contact(call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let tag = c.local_tag.clone();
        c.local_sdp = Some(sdp.clone());
        let mut ok = request.make_response(StatusCode::OK, Some(&tag));
        ok.headers_mut().push_typed(HeaderName::Contact, &contact);
        allow_headers(&mut ok);
        self.uas_timer(now, call, request, &mut ok);
        ok.set_body(&MediaType::sdp(), sdp);
        self.reply(now, key, ok);
    }

    /// The ACK for a 2xx of ours inside an established dialog (a
    /// re-INVITE's): when the 2xx offered, the ACK must answer.
    pub(super) fn ack_in_dialog(&mut self, now: Instant, call: CallRef, ack: &Request) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let CallState::Established { reinvite, .. } = &mut c.state else {
            return;
        };
        let offer = match reinvite.take() {
            Some(Reinvite::Answered { offer, .. }) => offer,
            other => {
                *reinvite = other;
                return;
            }
        };
        if let Some(offer) = offer {
            self.ack_answer(now, call, &offer, ack);
        }
    }

    /// Take an ACK for the 2xx of an inbound call: the call is confirmed
    /// (after the answer, when our 2xx offered).
    pub(super) fn ack_initial(&mut self, now: Instant, call: CallRef, ack: &Request) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let (dialog, offer) = match std::mem::replace(&mut c.state, placeholder()) {
            CallState::Answered { dialog, offer, .. } => (dialog, offer),
            other => {
                c.state = other;
                return;
            }
        };
        c.state = CallState::Established {
            dialog,
            ack: None,
            reinvite: None,
        };
        if let Some(offer) = offer
            && !self.ack_answer(now, call, &offer, ack)
        {
            return;
        }
        self.events.push_back(Event::Confirmed { call });
    }

    /// Whether `key` is our session refresh in progress for `call`.
    pub(super) fn is_refresh(&self, call: CallRef, key: &ClientKey) -> bool {
        matches!(
            self.calls.get(&call).map(|c| &c.state),
            Some(CallState::Established {
                reinvite: Some(Reinvite::Sent { key: k, refresh: true }),
                ..
            }) if k == key
        )
    }
}
