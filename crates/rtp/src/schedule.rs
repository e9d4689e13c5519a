//! Periodic absolute deadlines without IO: [`Periodic`], the one 20 ms
//! pacing policy (absolute deadlines that advance by exactly one period
//! per tick, so late wake-ups never drift; a tolerance that lets close
//! deadlines share one wake-up; a bounded catch-up when the driver itself
//! ran late, after which the schedule restarts from now rather than
//! flooding the peer). Each call's
//! [`MediaCore`](crate::media::MediaCore) paces itself with a `Periodic`;
//! the media engine only asks the cores for their next deadline.

use std::time::{Duration, Instant};

/// What [`Periodic::poll`] found at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing is due yet.
    Idle,
    /// The tick of this deadline is due (the deadline has moved on by one
    /// period): do its work, then poll again.
    Tick(Instant),
}

/// One periodic deadline: due at `first + k * period`. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periodic {
    next: Instant,
    period: Duration,
    max_catch_up: u32,
    /// Ticks served back to back in the current catch-up.
    burst: u32,
    skipped: u64,
}

impl Periodic {
    /// First due at `first`, then every `period`; at most `max_catch_up`
    /// missed periods are served back to back.
    #[must_use]
    pub fn new(first: Instant, period: Duration, max_catch_up: u32) -> Periodic {
        Periodic {
            next: first,
            period,
            max_catch_up: max_catch_up.max(1),
            burst: 0,
            skipped: 0,
        }
    }

    /// The next deadline.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Periods skipped so far because the driver was more than
    /// `max_catch_up` periods late.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether a tick is due at `now` (up to `tolerance` early). Poll
    /// until [`Due::Idle`]: a driver that was late gets one tick per
    /// missed period, at most `max_catch_up` in a row; beyond that the
    /// missed periods are skipped and the schedule restarts one period
    /// after `now`.
    pub fn poll(&mut self, now: Instant, tolerance: Duration) -> Due {
        if self.next > now + tolerance {
            self.burst = 0;
            return Due::Idle;
        }
        if self.burst >= self.max_catch_up {
            let behind = now.saturating_duration_since(self.next);
            let missed = behind.as_nanos() / self.period.as_nanos().max(1);
            self.skipped = self
                .skipped
                .saturating_add(u64::try_from(missed).unwrap_or(u64::MAX))
                .saturating_add(1);
            self.next = now + self.period;
            self.burst = 0;
            return Due::Idle;
        }
        let deadline = self.next;
        self.next += self.period;
        self.burst += 1;
        Due::Tick(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);
    const TOL: Duration = Duration::from_micros(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ticks everything due at `now`; returns the deadlines served.
    fn drain(p: &mut Periodic, now: Instant) -> Vec<Instant> {
        let mut served = Vec::new();
        while let Due::Tick(d) = p.poll(now, TOL) {
            served.push(d);
        }
        served
    }

    #[test]
    fn deadlines_are_absolute_so_late_wakeups_do_not_drift() {
        let t0 = Instant::now();
        let mut p = Periodic::new(t0 + P, P, 5);
        // Every wake-up 0-3 ms late.
        for k in 0..1000u32 {
            let now = p.deadline() + ms(u64::from(k % 4));
            assert_eq!(drain(&mut p, now), vec![t0 + P * (k + 1)], "tick {k}");
        }
        assert_eq!(p.deadline(), t0 + P * 1001);
        assert_eq!(p.skipped(), 0);
    }

    #[test]
    fn a_late_driver_catches_up_missed_periods_up_to_the_cap_then_restarts() {
        let t0 = Instant::now();
        let mut p = Periodic::new(t0 + P, P, 5);
        // 3 periods late: the 3 missed ticks and the current one go out now.
        assert_eq!(drain(&mut p, t0 + P * 4).len(), 4);
        assert_eq!(p.deadline(), t0 + P * 5);
        // 1 s late: 5 ticks, the rest skipped, next one a period from now.
        let now = t0 + ms(1_000) + P * 5;
        assert_eq!(drain(&mut p, now).len(), 5);
        assert!(p.skipped() >= 40, "{p:?}");
        assert_eq!(p.deadline(), now + P);
    }

    #[test]
    fn nothing_ticks_before_its_deadline_minus_the_tolerance() {
        let t0 = Instant::now();
        let mut p = Periodic::new(t0 + P, P, 5);
        assert_eq!(p.poll(t0 + P - ms(1), TOL), Due::Idle);
        assert_eq!(
            p.poll(t0 + P - Duration::from_micros(400), TOL),
            Due::Tick(t0 + P)
        );
        assert_eq!(p.deadline(), t0 + P * 2);
    }
}
