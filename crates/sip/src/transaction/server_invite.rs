//! The INVITE server transaction (RFC 3261 section 17.2.1, with the
//! Accepted state of RFC 6026 section 7.1).
//!
//! ```text
//!                       |INVITE received (TU sends 100 Trying)
//!                       V
//!  INVITE: resend  +------------+  2xx from TU: send  +----------+
//!  last provisional| Proceeding |------------------->| Accepted | INVITE: absorb
//!                  +------------+                    +----------+
//!    300-699 from TU:  |  G = T1, H = 64*T1               | Timer L
//!    send              V                                  |
//!  INVITE: resend  +-----------+  Timer H: TU             |
//!  Timer G: resend | Completed |------------------------->+
//!  G = min(2G, T2) +-----------+                          |
//!             ACK      |  I = T4                          V
//!                      V                            +------------+
//!  ACK: absorb     +-----------+  Timer I           | Terminated |
//!                  | Confirmed |------------------->+------------+
//!                  +-----------+
//! ```
//!
//! Retransmitted INVITEs never leave this transaction: that is what keeps a
//! retransmission from making a second call. The 2xx is retransmitted by
//! the dialog layer until the ACK arrives (section 13.3.1.4).

use super::timer::{Timer, TimerConfig, Timers};
use super::{Output, Termination, ToTu};
use crate::encode::Encode;
use crate::message::Response;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// An INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    cfg: TimerConfig,
    timers: Timers,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the TU's final response; resend the last provisional.
    Proceeding { last: Option<Bytes> },
    /// A 2xx was sent; INVITE retransmits are absorbed (RFC 6026).
    Accepted,
    /// A 300-699 was sent: retransmit it on Timer G until the ACK.
    Completed { wire: Bytes, interval: Duration },
    /// The ACK arrived; absorb its retransmits until Timer I.
    Confirmed,
    /// Done.
    Terminated(Termination),
}

/// Where an INVITE server transaction stands, for the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// No final response yet.
    Proceeding,
    /// A 2xx was sent (an ACK belongs to the dialog).
    Accepted,
    /// A 300-699 was sent (an ACK belongs to this transaction), or the
    /// transaction is over.
    Completed,
}

impl ServerInvite {
    /// A transaction for a newly received INVITE.
    pub fn new(cfg: TimerConfig) -> ServerInvite {
        ServerInvite {
            cfg,
            timers: Timers::default(),
            state: State::Proceeding { last: None },
        }
    }

    /// A retransmitted INVITE, or an ACK for our non-2xx final response.
    pub fn handle_request(&mut self, now: Instant, is_ack: bool) -> Output {
        let state = std::mem::replace(&mut self.state, State::Terminated(Termination::Done));
        let (state, out) = match state {
            State::Proceeding { last } if !is_ack => {
                let out = last.clone().map(Output::transmit).unwrap_or_default();
                (State::Proceeding { last }, out)
            }
            State::Completed { wire, interval } if !is_ack => {
                let out = Output::transmit(wire.clone());
                (State::Completed { wire, interval }, out)
            }
            State::Completed { .. } => {
                self.timers.clear();
                self.timers
                    .set(Timer::I, now + self.cfg.absorb(self.cfg.t4));
                (State::Confirmed, Output::default())
            }
            other => (other, Output::default()),
        };
        self.state = state;
        out
    }

    /// A response from the TU. Responses after the final one are ignored.
    pub fn respond(&mut self, now: Instant, response: &Response) -> Output {
        let status = response.status();
        let state = std::mem::replace(&mut self.state, State::Terminated(Termination::Done));
        let (state, out) = match state {
            State::Proceeding { .. } if status.is_provisional() => {
                let wire = response.to_bytes();
                let out = Output::transmit(wire.clone());
                (State::Proceeding { last: Some(wire) }, out)
            }
            State::Proceeding { .. } if status.is_success() => {
                self.timers.set(Timer::L, now + self.cfg.timeout());
                (State::Accepted, Output::transmit(response.to_bytes()))
            }
            State::Proceeding { .. } => {
                let wire = response.to_bytes();
                if self.cfg.retransmits() {
                    self.timers.set(Timer::G, now + self.cfg.t1);
                }
                self.timers.set(Timer::H, now + self.cfg.timeout());
                let out = Output::transmit(wire.clone());
                let interval = self.cfg.t1;
                (State::Completed { wire, interval }, out)
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
            (State::Completed { wire, interval }, Timer::G) => {
                let interval = (interval * 2).min(self.cfg.t2);
                self.timers.set(Timer::G, now + interval);
                let out = Output::transmit(wire.clone());
                (State::Completed { wire, interval }, out)
            }
            (State::Completed { .. }, Timer::H) => {
                self.timers.clear();
                (
                    State::Terminated(Termination::TimedOut),
                    Output::to_tu(ToTu::Timeout),
                )
            }
            (State::Confirmed, Timer::I) | (State::Accepted, Timer::L) => {
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

    /// Whether the TU may still send a final response.
    pub fn state(&self) -> ServerInviteState {
        match self.state {
            State::Proceeding { .. } => ServerInviteState::Proceeding,
            State::Accepted => ServerInviteState::Accepted,
            _ => ServerInviteState::Completed,
        }
    }
}
