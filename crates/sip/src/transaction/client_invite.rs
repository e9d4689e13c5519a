//! The INVITE client transaction (RFC 3261 section 17.1.1, with the
//! Accepted state of RFC 6026 section 7.2).
//!
//! ```text
//!                    |INVITE sent, Timer A = T1, Timer B = 64*T1
//!                    V
//!    Timer A fires +-----------+
//!    resend INVITE |  Calling  |-----------+ 2xx: to TU
//!    A = 2*A       +-----------+           |
//!    Timer B: TU      |   |1xx: to TU       |
//!    <----------------+   V                 V
//!                  +------------+  2xx  +----------+ 2xx: to TU
//!                  | Proceeding |------>| Accepted | (retransmits)
//!                  +------------+       +----------+
//!     300-699: ACK,   |                      | Timer M
//!     to TU           V                      V
//!                  +-----------+        +------------+
//!   300-699: ACK   | Completed |------->| Terminated |
//!                  +-----------+ Timer D +------------+
//! ```
//!
//! The ACK for a non-2xx final response belongs to this transaction
//! (section 17.1.1.3); the ACK for a 2xx is the TU's (section 13.2.2.4).

use super::timer::{Timer, TimerConfig, Timers};
use super::{Output, Termination, ToTu};
use crate::encode::Encode;
use crate::header::{HeaderName, Headers};
use crate::message::{Request, Response};
use crate::method::Method;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    request: Request,
    cfg: TimerConfig,
    timers: Timers,
    state: State,
}

#[derive(Debug)]
enum State {
    /// INVITE sent, no response yet: retransmit on Timer A.
    Calling { wire: Bytes, interval: Duration },
    /// A provisional response arrived; retransmissions stop.
    Proceeding,
    /// A 300-699 response was ACKed; resend the ACK for its retransmits.
    Completed { ack: Bytes },
    /// A 2xx arrived; its retransmits go to the TU (RFC 6026).
    Accepted,
    /// Done.
    Terminated(Termination),
}

impl ClientInvite {
    /// Start the transaction: returns it and the INVITE to send now.
    pub fn start(now: Instant, request: Request, cfg: TimerConfig) -> (ClientInvite, Bytes) {
        let wire = request.to_bytes();
        let mut timers = Timers::default();
        if cfg.retransmits() {
            timers.set(Timer::A, now + cfg.t1);
        }
        timers.set(Timer::B, now + cfg.timeout());
        let tx = ClientInvite {
            request,
            cfg,
            timers,
            state: State::Calling {
                wire: wire.clone(),
                interval: cfg.t1,
            },
        };
        (tx, wire)
    }

    /// The INVITE this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) -> Output {
        let status = response.status();
        let state = std::mem::replace(&mut self.state, State::Terminated(Termination::Done));
        let (state, out) = match state {
            State::Calling { .. } | State::Proceeding if status.is_provisional() => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                (State::Proceeding, Output::to_tu(ToTu::Response(response)))
            }
            State::Calling { .. } | State::Proceeding if status.is_success() => {
                self.timers.clear();
                self.timers.set(Timer::M, now + self.cfg.timeout());
                (State::Accepted, Output::to_tu(ToTu::Response(response)))
            }
            State::Calling { .. } | State::Proceeding => {
                self.timers.clear();
                self.timers.set(Timer::D, now + self.cfg.absorb(self.cfg.d));
                let ack = self.ack_for(&response).to_bytes();
                let out = Output {
                    transmit: Some(ack.clone()),
                    to_tu: Some(ToTu::Response(response)),
                };
                (State::Completed { ack }, out)
            }
            State::Completed { ack } if status.is_final() && !status.is_success() => {
                let out = Output::transmit(ack.clone());
                (State::Completed { ack }, out)
            }
            State::Accepted if status.is_success() => {
                (State::Accepted, Output::to_tu(ToTu::Response(response)))
            }
            other => (other, Output::default()),
        };
        self.state = state;
        out
    }

    /// Fire the earliest expired timer, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Output {
        let Some(timer) = self.timers.pop_expired(now) else {
            return Output::default();
        };
        let state = std::mem::replace(&mut self.state, State::Terminated(Termination::Done));
        let (state, out) = match (state, timer) {
            (State::Calling { wire, interval }, Timer::A) => {
                let interval = interval * 2;
                self.timers.set(Timer::A, now + interval);
                let out = Output::transmit(wire.clone());
                (State::Calling { wire, interval }, out)
            }
            (State::Calling { .. }, Timer::B) => {
                self.timers.clear();
                (
                    State::Terminated(Termination::TimedOut),
                    Output::to_tu(ToTu::Timeout),
                )
            }
            (State::Completed { .. }, Timer::D) | (State::Accepted, Timer::M) => {
                self.timers.clear();
                (State::Terminated(Termination::Done), Output::default())
            }
            (other, _) => (other, Output::default()),
        };
        self.state = state;
        out
    }

    /// The earliest armed timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// How the transaction ended, once it has.
    pub fn termination(&self) -> Option<Termination> {
        match self.state {
            State::Terminated(t) => Some(t),
            _ => None,
        }
    }

    /// Whether a provisional or final response has arrived (a CANCEL may
    /// only be sent after a provisional, RFC 3261 section 9.1).
    pub fn has_response(&self) -> bool {
        !matches!(self.state, State::Calling { .. })
    }

    /// The ACK for a non-2xx final response (RFC 3261 section 17.1.1.3):
    /// the INVITE's Request-URI, Call-ID, From, CSeq number, top Via and
    /// Route headers, and the response's To.
    fn ack_for(&self, response: &Response) -> Request {
        ack_for(&self.request, response.headers().get(&HeaderName::To))
    }
}

/// Build a hop-by-hop ACK for `invite` with the given To value.
pub(crate) fn ack_for(invite: &Request, to: Option<&Bytes>) -> Request {
    let src = invite.headers();
    let mut headers = Headers::with_capacity(8);
    if let Ok(via) = src.top_via() {
        headers.push_typed(HeaderName::Via, &via);
    }
    for name in [HeaderName::From, HeaderName::CallId] {
        if let Some(v) = src.get(&name) {
            headers.push(name, v.clone());
        }
    }
    if let Some(to) = to.or_else(|| src.get(&HeaderName::To)) {
        headers.push(HeaderName::To, to.clone());
    }
    let seq = src.cseq().map(|c| c.seq).unwrap_or(1);
    headers.push(HeaderName::CSeq, Bytes::from(format!("{seq} ACK")));
    for r in src.get_all(&HeaderName::Route) {
        headers.push(HeaderName::Route, r.clone());
    }
    headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    headers.push(HeaderName::ContentLength, Bytes::from_static(b"0"));
    Request::from_parts(Method::Ack, invite.uri().clone(), headers, Bytes::new())
}
