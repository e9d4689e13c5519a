//! The non-INVITE server transaction (RFC 3261 section 17.2.2).
//!
//! ```text
//!                    |Request received: to TU
//!                    V
//!                  +-----------+  request: absorb
//!                  |  Trying   |
//!                  +-----------+
//!     1xx from TU   |        | 200-699 from TU: send
//!                   V        |
//!  request: resend +------------+
//!  last 1xx        | Proceeding |
//!                  +------------+
//!    200-699 from TU  |  J = 64*T1 (UDP)
//!                     V
//!  request: resend +-----------+ Timer J +------------+
//!  the final       | Completed |-------->| Terminated |
//!                  +-----------+         +------------+
//! ```
//!
//! A retransmitted BYE gets the same 200 again from here, never a second
//! teardown.

use super::timer::{Timer, TimerConfig, Timers};
use super::{Output, Termination};
use crate::encode::Encode;
use crate::message::Response;
use bytes::Bytes;
use std::time::Instant;

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    cfg: TimerConfig,
    timers: Timers,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the TU; retransmits are absorbed.
    Trying,
    /// A provisional was sent; resend it for retransmits.
    Proceeding { last: Bytes },
    /// The final was sent; resend it for retransmits until Timer J.
    Completed { wire: Bytes },
    /// Done.
    Terminated,
}

impl ServerNonInvite {
    /// A transaction for a newly received request.
    pub fn new(cfg: TimerConfig) -> ServerNonInvite {
        ServerNonInvite {
            cfg,
            timers: Timers::default(),
            state: State::Trying,
        }
    }

    /// A retransmission of the request.
    pub fn handle_request(&mut self) -> Output {
        match &self.state {
            State::Proceeding { last } => Output::transmit(last.clone()),
            State::Completed { wire } => Output::transmit(wire.clone()),
            State::Trying | State::Terminated => Output::default(),
        }
    }

    /// A response from the TU; responses after the final are ignored.
    pub fn respond(&mut self, now: Instant, response: &Response) -> Output {
        let state = std::mem::replace(&mut self.state, State::Terminated);
        let (state, out) = match state {
            State::Trying | State::Proceeding { .. } => {
                let wire = response.to_bytes();
                let out = Output::transmit(wire.clone());
                if response.status().is_provisional() {
                    (State::Proceeding { last: wire }, out)
                } else {
                    self.timers
                        .set(Timer::J, now + self.cfg.absorb(self.cfg.timeout()));
                    (State::Completed { wire }, out)
                }
            }
            other => (other, Output::default()),
        };
        self.state = state;
        out
    }

    /// Fire the earliest expired timer, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Output {
        if let Some(Timer::J) = self.timers.pop_expired(now) {
            self.timers.clear();
            self.state = State::Terminated;
        }
        Output::default()
    }

    /// The earliest armed timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// How the transaction ended, once it has.
    pub fn termination(&self) -> Option<Termination> {
        matches!(self.state, State::Terminated).then_some(Termination::Done)
    }
}
