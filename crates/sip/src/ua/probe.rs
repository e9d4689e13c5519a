//! Readiness for a dispatcher: the answer to an out-of-dialog OPTIONS.
//!
//! A SIP load balancer (Kamailio's dispatcher with `ds_probing_mode`)
//! sends each agent OPTIONS every few seconds and stops routing new calls
//! to one that answers an error. The core answers 200 while it would take
//! a new INVITE, and 503 with Retry-After (RFC 3261 section 21.5.4) while
//! it would refuse one: shutting down ([`UserAgent::shutdown`]), every
//! call slot taken ([`Config::max_calls`](super::Config::max_calls)), or
//! the application said it admits no calls ([`UserAgent::set_ready`]: its
//! own reasons, such as an overloaded media engine or an unwritable
//! store). An OPTIONS inside a
//! dialog is a keep-alive of that call and always gets 200.

use std::time::Instant;

use super::UserAgent;
use super::uas::allow_headers;
use crate::header::HeaderName;
use crate::message::Request;
use crate::status::StatusCode;
use crate::transaction::ServerKey;

impl UserAgent {
    /// Whether the application admits new calls, as the 200 or 503 of an
    /// out-of-dialog OPTIONS reports it (default: ready). The core's own
    /// reasons (shutting down, all call slots taken) count on top; new
    /// INVITEs are still the application's to refuse.
    pub fn set_ready(&mut self, ready: bool) {
        self.ready = ready;
    }

    /// Whether an out-of-dialog OPTIONS gets 200 now.
    pub fn is_ready(&self) -> bool {
        self.ready && !self.draining && self.calls.len() < self.cfg.max_calls
    }

    pub(super) fn on_options(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Request,
        in_dialog: bool,
    ) {
        let tag = self.ids.tag();
        let status = if in_dialog || self.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut r = req.make_response(status, Some(&tag));
        allow_headers(&mut r);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .push(HeaderName::RetryAfter, self.cfg.retry_after.to_string());
        }
        self.reply(now, key, r);
    }
}
