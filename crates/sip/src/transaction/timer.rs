//! The RFC 3261 transaction timers as a table (RFC 3261 section 17 and
//! table 4 in appendix A; timers L and M from RFC 6026).
//!
//! | timer | value (UDP)        | meaning                                      |
//! |-------|--------------------|----------------------------------------------|
//! | T1    | 500 ms             | RTT estimate                                 |
//! | T2    | 4 s                | maximum non-INVITE / response retransmit gap |
//! | T4    | 5 s                | maximum time a message stays in the network  |
//! | A     | T1, doubling       | INVITE request retransmit                    |
//! | B     | 64*T1              | INVITE client transaction timeout            |
//! | D     | 32 s               | wait for response retransmits (client)       |
//! | E     | T1, doubling to T2 | non-INVITE request retransmit                |
//! | F     | 64*T1              | non-INVITE client transaction timeout        |
//! | G     | T1, doubling to T2 | INVITE final response retransmit             |
//! | H     | 64*T1              | wait for ACK receipt                         |
//! | I     | T4                 | wait for ACK retransmits                     |
//! | J     | 64*T1              | wait for non-INVITE request retransmits      |
//! | K     | T4                 | wait for non-INVITE response retransmits     |
//! | L     | 64*T1              | server Accepted state (RFC 6026)             |
//! | M     | 64*T1              | client Accepted state (RFC 6026)             |
//!
//! Over a reliable transport (TCP, TLS; [`TimerConfig::reliable`]) nothing
//! is retransmitted: timers A, E and G are not started, and the absorb
//! timers D, I, J and K are zero (sections 17.1.1.2, 17.1.2.2, 17.2.1,
//! 17.2.2). B, F, H, L and M keep their values.
//!
//! Each transaction owns one [`Timers`] table; the endpoint asks every
//! table for its earliest deadline. Firing a timer that is not armed, or
//! calling `handle_timeout` early, does nothing.

use std::time::{Duration, Instant};

/// One RFC 3261 transaction timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (client).
    A,
    /// INVITE client transaction timeout.
    B,
    /// Client INVITE Completed: absorb response retransmits.
    D,
    /// Non-INVITE request retransmit (client).
    E,
    /// Non-INVITE client transaction timeout.
    F,
    /// INVITE final response retransmit (server).
    G,
    /// Server INVITE: give up waiting for the ACK.
    H,
    /// Server INVITE Confirmed: absorb ACK retransmits.
    I,
    /// Server non-INVITE Completed: absorb request retransmits.
    J,
    /// Client non-INVITE Completed: absorb response retransmits.
    K,
    /// Server INVITE Accepted (RFC 6026): absorb INVITE retransmits after a 2xx.
    L,
    /// Client INVITE Accepted (RFC 6026): pass 2xx retransmits to the TU.
    M,
}

const ALL: [Timer; 12] = [
    Timer::A,
    Timer::B,
    Timer::D,
    Timer::E,
    Timer::F,
    Timer::G,
    Timer::H,
    Timer::I,
    Timer::J,
    Timer::K,
    Timer::L,
    Timer::M,
];

impl Timer {
    fn index(self) -> usize {
        self as usize
    }
}

/// The base timer values (RFC 3261 section 17.1.1.1). Tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, the round-trip estimate (500 ms).
    pub t1: Duration,
    /// T2, the cap on non-INVITE and response retransmit intervals (4 s).
    pub t2: Duration,
    /// T4, the time a message may stay in the network (5 s).
    pub t4: Duration,
    /// Timer D for unreliable transports (at least 32 s).
    pub d: Duration,
    /// The transaction runs over a reliable transport (TCP, TLS): no
    /// retransmission (A, E, G), zero absorb timers (D, I, J, K).
    pub reliable: bool,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
            reliable: false,
        }
    }
}

impl TimerConfig {
    /// 64*T1: timers B, F, H, J, L and M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// These values for a transaction over `transport`.
    pub fn on(self, transport: crate::transport::Transport) -> TimerConfig {
        TimerConfig {
            reliable: transport.is_reliable(),
            ..self
        }
    }

    /// `d` over an unreliable transport, zero over a reliable one: the
    /// absorb timers D, I, J and K.
    pub fn absorb(&self, d: Duration) -> Duration {
        if self.reliable { Duration::ZERO } else { d }
    }

    /// Whether requests and responses are retransmitted (timers A, E, G).
    pub fn retransmits(&self) -> bool {
        !self.reliable
    }
}

/// A table of armed timers: one optional deadline per [`Timer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timers([Option<Instant>; 12]);

impl Timers {
    /// Arm `timer` to fire at `at` (replacing any earlier deadline).
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer.index()] = Some(at);
    }

    /// Disarm `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.0[timer.index()] = None;
    }

    /// Disarm every timer.
    pub fn clear(&mut self) {
        self.0 = [None; 12];
    }

    /// The deadline of `timer`, when armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer.index()]
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarm and return the earliest timer due at `now`, if any. Callers
    /// loop until `None`, so several expired timers fire in deadline order.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (timer, _) = ALL
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .filter(|&(_, at)| at <= now)
            .min_by_key(|&(_, at)| at)?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_timers_pop_in_deadline_order_and_only_once() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(Timer::B, t0 + Duration::from_secs(32));
        t.set(Timer::A, t0 + Duration::from_millis(500));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(t.pop_expired(t0), None);
        let late = t0 + Duration::from_secs(40);
        assert_eq!(t.pop_expired(late), Some(Timer::A));
        assert_eq!(t.pop_expired(late), Some(Timer::B));
        assert_eq!(t.pop_expired(late), None);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn default_timeout_is_64_t1() {
        assert_eq!(TimerConfig::default().timeout(), Duration::from_secs(32));
    }
}
