//! Outbound blind transfer (RFC 3515 REFER, RFC 5589 section 6, RFC 3892
//! Referred-By): [`UserAgent::refer`] sends an in-dialog REFER for an
//! established call and follows the implicit `refer` subscription
//! (RFC 6665) through the peer's NOTIFYs, whose `message/sipfrag` bodies
//! (RFC 3420) carry the status line of the transferee's INVITE.
//!
//! The outcome is one event per REFER: [`Event::TransferAccepted`] once a
//! NOTIFY reports a 2xx, [`Event::TransferFailed`] for a non-2xx to the
//! REFER, a NOTIFY reporting a 3xx-6xx, a subscription terminated without
//! a final status, or no outcome within [`super::Config::transfer_timeout`]
//! (408). A 202 alone only means the peer will try. One transfer per call
//! at a time; if the call ends first, no transfer event follows.
//!
//! Incoming NOTIFYs: outside any dialog 481; in a dialog but for another
//! event package 489; for no live transfer (or another REFER's `id`) 481;
//! a stale CSeq 500; a body other than `message/sipfrag` 415; else 200.

use super::{Call, CallRef, CallState, Event, Owner, UaError, UserAgent};
use crate::dialog::route_key;
use crate::encode::Encode;
use crate::header::{HeaderName, NameAddr};
use crate::message::{Request, Response};
use crate::method::Method;
use crate::status::StatusCode;
use crate::transaction::{ClientKey, ServerKey};
use crate::uri::Uri;
use std::time::Instant;

/// The one transfer a call may have in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    /// The REFER's client transaction until its final response.
    key: Option<ClientKey>,
    /// The REFER's CSeq: the `id` of its subscription (RFC 3515 section 2.4.6).
    seq: u32,
    /// When we stop waiting for the outcome.
    deadline: Instant,
}

impl Transfer {
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl UserAgent {
    /// Blind-transfer an established call to `target` (RFC 5589 section
    /// 6): sends REFER with `Refer-To: <target>` and `Referred-By: <our
    /// address of record>` in the call's dialog. The outcome arrives as
    /// [`Event::TransferAccepted`] or [`Event::TransferFailed`]; the call
    /// itself goes on until someone hangs up.
    ///
    /// Errors: [`UaError::UnknownCall`] for a call that ended or never
    /// existed, [`UaError::WrongState`] before the call is established,
    /// while it is ending or while another transfer is pending.
    pub fn refer(&mut self, now: Instant, call: CallRef, target: Uri) -> Result<(), UaError> {
        let via = self.our_via(self.call_transport(call));
        let contact = self.call_contact(call);
        let ua = self.cfg.user_agent.clone();
        let deadline = now + self.cfg.transfer_timeout;
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        if c.transfer.is_some() {
            return Err(UaError::WrongState("a transfer is pending"));
        }
        let peer = c.peer;
        let CallState::Established { dialog, .. } = &mut c.state else {
            return Err(UaError::WrongState("not established"));
        };
        let referred_by = NameAddr::new(dialog.local().uri().clone()).to_bytes();
        let refer = dialog
            .request(Method::Refer, &via, None)
            .contact(&contact)
            .typed_header(HeaderName::ReferTo, &NameAddr::new(target))
            .header(HeaderName::ReferredBy, referred_by)
            .header(HeaderName::UserAgent, ua)
            .build()?;
        let seq = dialog.local_seq();
        let key = self
            .tx
            .send_request(now, refer, peer)
            .map_err(|_| UaError::Overloaded)?;
        self.owners.insert(key.clone(), Owner::Refer(call));
        if let Some(c) = self.calls.get_mut(&call) {
            c.transfer = Some(Transfer {
                key: Some(key),
                seq,
                deadline,
            });
        }
        Ok(())
    }

    /// A response to our REFER: 2xx (202) means the peer will try and
    /// NOTIFY us; any other final status fails the transfer.
    pub(super) fn on_refer_response(&mut self, call: CallRef, key: &ClientKey, resp: &Response) {
        let status = resp.status();
        if status.is_provisional() {
            return;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(t) = c.transfer.as_mut().filter(|t| t.key.as_ref() == Some(key)) else {
            return;
        };
        if status.is_success() {
            t.key = None;
            return;
        }
        c.transfer = None;
        self.events
            .push_back(Event::TransferFailed { call, status });
    }

    /// Timer F of our REFER: no final response at all.
    pub(super) fn on_refer_timeout(&mut self, call: CallRef, key: &ClientKey) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.transfer
            .as_ref()
            .is_some_and(|t| t.key.as_ref() == Some(key))
        {
            c.transfer = None;
            let status = StatusCode::REQUEST_TIMEOUT;
            self.events
                .push_back(Event::TransferFailed { call, status });
        }
    }

    /// Transfers whose outcome never came: failed with 408.
    pub(super) fn transfer_timeouts(&mut self, now: Instant) {
        let due: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, c)| c.transfer.as_ref().is_some_and(|t| t.deadline <= now))
            .map(|(r, _)| *r)
            .collect();
        for call in due {
            if let Some(c) = self.calls.get_mut(&call) {
                c.transfer = None;
            }
            tracing::info!(?call, "no outcome for the transfer");
            let status = StatusCode::REQUEST_TIMEOUT;
            self.events
                .push_back(Event::TransferFailed { call, status });
        }
    }

    /// An incoming NOTIFY (RFC 6665 section 4.1.3, RFC 3515 section 2.4.5).
    pub(super) fn on_notify(&mut self, now: Instant, key: &ServerKey, req: &Request) {
        let status = self.check_notify(req);
        let tag = self.ids.tag();
        let mut r = req.make_response(status.unwrap_or(StatusCode::OK), Some(&tag));
        if status == Some(StatusCode::UNSUPPORTED_MEDIA_TYPE) {
            r.headers_mut().push(HeaderName::Accept, "message/sipfrag");
        } else if status == Some(StatusCode::BAD_EVENT) {
            r.headers_mut().push(HeaderName::AllowEvents, "refer");
        }
        self.reply(now, key, r);
        if status.is_some() {
            return;
        }
        let Some(call) = route_key(req).and_then(|k| self.dialogs.get(&k).copied()) else {
            return;
        };
        let frag = sipfrag_status(req.body());
        let terminated = req
            .headers()
            .get(&HeaderName::SubscriptionState)
            .is_some_and(|v| first_token_is(v, b"terminated"));
        let outcome = match frag {
            Some(s) if s.is_success() => Some(Event::TransferAccepted { call }),
            Some(s) if s.is_final() => Some(Event::TransferFailed { call, status: s }),
            // Ended without saying how: the transfer's fate is unknown.
            _ if terminated => Some(Event::TransferFailed {
                call,
                status: StatusCode::REQUEST_TIMEOUT,
            }),
            _ => None,
        };
        if let Some(event) = outcome {
            if let Some(c) = self.calls.get_mut(&call) {
                c.transfer = None;
            }
            self.events.push_back(event);
        }
    }

    /// The error status for a NOTIFY, `None` when it is ours to accept.
    fn check_notify(&mut self, req: &Request) -> Option<StatusCode> {
        let Some(call) = route_key(req).and_then(|k| self.dialogs.get(&k).copied()) else {
            return Some(StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST);
        };
        let h = req.headers();
        let Some(event) = h.get(&HeaderName::Event) else {
            return Some(StatusCode::BAD_EVENT);
        };
        if !first_token_is(event, b"refer") {
            return Some(StatusCode::BAD_EVENT);
        }
        let Some(Call {
            state: CallState::Established { dialog, .. },
            transfer: Some(transfer),
            ..
        }) = self.calls.get_mut(&call)
        else {
            return Some(StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST);
        };
        if event_id(event).is_some_and(|id| id != transfer.seq) {
            return Some(StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST);
        }
        let seq = h.cseq().map(|c| c.seq).unwrap_or(0);
        if !dialog.accept_remote_seq(seq) {
            return Some(StatusCode::SERVER_INTERNAL_ERROR);
        }
        let is_sipfrag = h.content_type().ok().flatten().is_some_and(|t| {
            t.kind().eq_ignore_ascii_case(b"message")
                && t.subtype().eq_ignore_ascii_case(b"sipfrag")
        });
        if !req.body().is_empty() && !is_sipfrag {
            return Some(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        None
    }
}

/// Whether a header value's first token (before `;` or whitespace) is
/// `token`, ignoring ASCII case.
fn first_token_is(value: &[u8], token: &[u8]) -> bool {
    let start = value
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(value.len());
    let value = &value[start..];
    let end = value
        .iter()
        .position(|&c| c == b';' || c.is_ascii_whitespace())
        .unwrap_or(value.len());
    value[..end].eq_ignore_ascii_case(token)
}

/// The `id` parameter of an `Event: refer;id=N` value.
fn event_id(value: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(value).ok()?;
    text.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("id")
            .then(|| v.trim().parse().ok())?
    })
}

/// The status of a `message/sipfrag` body's first line (RFC 3420, RFC
/// 3515 section 2.4.5): `SIP/2.0 200 OK` gives 200. `None` for anything
/// that is not a SIP status line with a code in 100..=699.
pub(crate) fn sipfrag_status(body: &[u8]) -> Option<StatusCode> {
    let line = body.split(|&c| c == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"SIP/2.0 ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&c| c != b' ') {
        return None;
    }
    let n = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    StatusCode::new(n)
}

#[cfg(test)]
mod tests {
    use super::{event_id, first_token_is, sipfrag_status};
    use proptest::prelude::*;

    #[test]
    fn sipfrag_status_lines_give_their_code_and_anything_else_none() {
        let code = |b: &[u8]| sipfrag_status(b).map(|s| s.as_u16());
        assert_eq!(code(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(code(b"SIP/2.0 100 Trying"), Some(100));
        assert_eq!(
            code(b"SIP/2.0 503 Service Unavailable\r\nX: y\r\n"),
            Some(503)
        );
        assert_eq!(code(b"SIP/2.0 180\r\n"), Some(180));
        assert_eq!(code(b"SIP/2.0 2000 OK"), None);
        assert_eq!(code(b"SIP/2.0 099 Low"), None);
        assert_eq!(code(b"SIP/2.0 7xx Bad"), None);
        assert_eq!(code(b"INVITE sip:a@b SIP/2.0"), None);
        assert_eq!(code(b""), None);
    }

    #[test]
    fn event_headers_match_refer_with_an_optional_id() {
        assert!(first_token_is(b"refer", b"refer"));
        assert!(first_token_is(b" Refer;id=7", b"refer"));
        assert!(!first_token_is(b"presence", b"refer"));
        assert!(!first_token_is(b"referral", b"refer"));
        assert!(first_token_is(
            b"terminated;reason=noresource",
            b"terminated"
        ));
        assert_eq!(event_id(b"refer;id=7"), Some(7));
        assert_eq!(event_id(b"refer ; ID = 12"), Some(12));
        assert_eq!(event_id(b"refer"), None);
        assert_eq!(event_id(b"refer;id=x"), None);
    }

    proptest! {
        #[test]
        fn sipfrag_parsing_never_panics_and_only_yields_valid_codes(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(s) = sipfrag_status(&body) {
                prop_assert!((100..=699).contains(&s.as_u16()));
            }
        }

        #[test]
        fn every_valid_code_round_trips_through_a_status_line(n in 100u16..=699) {
            let line = format!("SIP/2.0 {n} Whatever\r\n");
            prop_assert_eq!(sipfrag_status(line.as_bytes()).map(|s| s.as_u16()), Some(n));
        }
    }
}
