//! The non-INVITE client transaction (RFC 3261 section 17.1.2).
//!
//! ```text
//!                    |Request sent, Timer E = T1, Timer F = 64*T1
//!                    V
//!  Timer E: resend +-----------+  Timer F: TU
//!  E = min(2E, T2) |  Trying   |------------->+
//!                  +-----------+              |
//!       1xx: to TU  |        | 200-699: to TU |
//!                   V        |                |
//!  Timer E: resend +------------+ Timer F: TU |
//!  E = T2          | Proceeding |------------>+
//!                  +------------+             |
//!     200-699: to TU |                        |
//!                    V                        |
//!                  +-----------+ Timer K  +------------+
//!                  | Completed |--------->| Terminated |
//!                  +-----------+          +------------+
//! ```

use super::timer::{Timer, TimerConfig, Timers};
use super::{Output, Termination, ToTu};
use crate::encode::Encode;
use crate::message::{Request, Response};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A non-INVITE client transaction (BYE, CANCEL, OPTIONS, REGISTER, INFO).
#[derive(Debug)]
pub struct ClientNonInvite {
    cfg: TimerConfig,
    timers: Timers,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Sent, no response: retransmit on Timer E with a doubling interval.
    Trying { wire: Bytes, interval: Duration },
    /// A provisional arrived: retransmit every T2.
    Proceeding { wire: Bytes },
    /// Final response delivered; absorb its retransmits until Timer K.
    Completed,
    /// Done.
    Terminated(Termination),
}

impl ClientNonInvite {
    /// Start the transaction: returns it and the request to send now.
    pub fn start(now: Instant, request: &Request, cfg: TimerConfig) -> (ClientNonInvite, Bytes) {
        let wire = request.to_bytes();
        let mut timers = Timers::default();
        if cfg.retransmits() {
            timers.set(Timer::E, now + cfg.t1);
        }
        timers.set(Timer::F, now + cfg.timeout());
        let tx = ClientNonInvite {
            cfg,
            timers,
            state: State::Trying {
                wire: wire.clone(),
                interval: cfg.t1,
            },
        };
        (tx, wire)
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) -> Output {
        let status = response.status();
        let state = std::mem::replace(&mut self.state, State::Terminated(Termination::Done));
        let (state, out) = match state {
            State::Trying { wire, .. } | State::Proceeding { wire } if status.is_provisional() => (
                State::Proceeding { wire },
                Output::to_tu(ToTu::Response(response)),
            ),
            State::Trying { .. } | State::Proceeding { .. } => {
                self.timers.clear();
                self.timers
                    .set(Timer::K, now + self.cfg.absorb(self.cfg.t4));
                (State::Completed, Output::to_tu(ToTu::Response(response)))
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
            (State::Trying { wire, interval }, Timer::E) => {
                let interval = (interval * 2).min(self.cfg.t2);
                self.timers.set(Timer::E, now + interval);
                let out = Output::transmit(wire.clone());
                (State::Trying { wire, interval }, out)
            }
            (State::Proceeding { wire }, Timer::E) => {
                self.timers.set(Timer::E, now + self.cfg.t2);
                let out = Output::transmit(wire.clone());
                (State::Proceeding { wire }, out)
            }
            (State::Trying { .. } | State::Proceeding { .. }, Timer::F) => {
                self.timers.clear();
                (
                    State::Terminated(Termination::TimedOut),
                    Output::to_tu(ToTu::Timeout),
                )
            }
            (State::Completed, Timer::K) => {
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
}
