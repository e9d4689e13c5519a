//! Periodic absolute deadlines without IO: [`Periodic`], the one 20 ms
//! pacing policy (absolute deadlines that advance by exactly one period
//! per tick, so late wake-ups never drift; a tolerance that lets close
//! deadlines share one wake-up; a bounded catch-up when the driver itself
//! ran late, after which the schedule restarts from now rather than
//! flooding the peer), and [`Schedule`], a table of them. Each call's
//! [`MediaCore`](crate::media::MediaCore) paces itself with a `Periodic`;
//! the media engine only asks the cores for their next deadline.

use std::time::{Duration, Instant};

/// What became of one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// The entry ticked; its next deadline is one period on.
    Done,
    /// The entry has closed: the table forgets it.
    Closed,
}

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

/// A table of periodic deadlines without IO: each entry is due at absolute
/// instants `first + k * period` (a [`Periodic`] each). See the module
/// docs.
#[derive(Debug)]
pub struct Schedule<T> {
    entries: Vec<(Periodic, T)>,
    period: Duration,
    tolerance: Duration,
    max_catch_up: u32,
}

/// What one [`Schedule::run_due`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Ticks delivered.
    pub ticks: u64,
    /// Periods dropped because an entry was more than `max_catch_up`
    /// periods behind.
    pub skipped: u64,
    /// Entries removed because their tick answered [`Tick::Closed`].
    pub removed: u64,
}

impl<T> Schedule<T> {
    /// An empty table: entries tick every `period`, are served up to
    /// `tolerance` early, and catch up at most `max_catch_up` missed
    /// periods at once.
    #[must_use]
    pub fn new(period: Duration, tolerance: Duration, max_catch_up: u32) -> Schedule<T> {
        Schedule {
            entries: Vec::new(),
            period,
            tolerance,
            max_catch_up: max_catch_up.max(1),
        }
    }

    /// Adds an entry first due at `first`.
    pub fn insert(&mut self, first: Instant, item: T) {
        self.entries
            .push((Periodic::new(first, self.period, self.max_catch_up), item));
    }

    /// Entries in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest deadline, `None` when the table is empty.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|(p, _)| p.deadline()).min()
    }

    /// Ticks every entry due by `now` (within the tolerance) and returns
    /// what happened; `tick` gets the entry and the deadline it serves.
    /// An entry behind by several periods is ticked once per missed
    /// period, at most `max_catch_up` times; the rest are skipped and its
    /// schedule restarts one period after `now` ([`Periodic::poll`]).
    pub fn run_due(&mut self, now: Instant, mut tick: impl FnMut(&T, Instant) -> Tick) -> RunStats {
        let mut stats = RunStats::default();
        let mut i = 0;
        while i < self.entries.len() {
            let (periodic, item) = &mut self.entries[i];
            let skipped_before = periodic.skipped();
            let mut closed = false;
            while let Due::Tick(deadline) = periodic.poll(now, self.tolerance) {
                if tick(item, deadline) == Tick::Closed {
                    closed = true;
                    break;
                }
                stats.ticks += 1;
            }
            stats.skipped += periodic.skipped() - skipped_before;
            if closed {
                stats.removed += 1;
                self.entries.swap_remove(i);
                continue;
            }
            i += 1;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media clock's catch-up bound.
    const MAX_CATCH_UP: u32 = 5;

    const P: Duration = Duration::from_millis(20);
    const TOL: Duration = Duration::from_micros(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the table the way the thread does: wake at the next deadline
    /// plus `late(k)`, tick what is due; returns each entry's tick times.
    fn drive(
        table: &mut Schedule<usize>,
        t0: Instant,
        until: Duration,
        late: impl Fn(usize) -> Duration,
        n: usize,
    ) -> Vec<Vec<Duration>> {
        let mut ticks = vec![Vec::new(); n];
        let mut wake = 0;
        while let Some(d) = table.next_deadline() {
            if d > t0 + until {
                break;
            }
            let now = d + late(wake);
            wake += 1;
            table.run_due(now, |&i, _| {
                ticks[i].push(now - t0);
                Tick::Done
            });
        }
        ticks
    }

    #[test]
    fn deadlines_are_absolute_so_late_wakeups_do_not_drift() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, MAX_CATCH_UP);
        table.insert(t0 + P, 0);
        // Every wake-up 0-3 ms late.
        let ticks = drive(&mut table, t0, ms(20_000), |k| ms(k as u64 % 4), 1);
        assert_eq!(ticks[0].len(), 1000);
        for (k, t) in ticks[0].iter().enumerate() {
            let nominal = P * (k as u32 + 1);
            assert!(*t >= nominal && *t - nominal <= ms(3), "tick {k} at {t:?}");
        }
    }

    #[test]
    fn deadlines_within_the_tolerance_share_one_wakeup() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, MAX_CATCH_UP);
        table.insert(t0 + P, 0);
        table.insert(t0 + P + Duration::from_micros(300), 1);
        table.insert(t0 + P + ms(5), 2);
        let mut woke = Vec::new();
        while let Some(d) = table.next_deadline() {
            if d > t0 + ms(90) {
                break;
            }
            let mut who = Vec::new();
            table.run_due(d, |&i, _| {
                who.push(i);
                Tick::Done
            });
            woke.push(who);
        }
        // Per period: {0, 1} together, then 2 alone.
        assert_eq!(woke.len(), 8);
        for pair in woke.chunks(2) {
            assert_eq!(pair[0], vec![0, 1]);
            assert_eq!(pair[1], vec![2]);
        }
    }

    #[test]
    fn a_late_clock_catches_up_missed_periods_up_to_the_cap_then_restarts() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, 5);
        table.insert(t0 + P, 0);
        // 3 periods late: the 3 missed ticks and the current one go out now.
        let mut n = 0;
        let s = table.run_due(t0 + P * 4, |_, _| {
            n += 1;
            Tick::Done
        });
        assert_eq!((n, s.skipped), (4, 0));
        assert_eq!(table.next_deadline(), Some(t0 + P * 5));
        // 1 s late: 5 ticks, the rest skipped, next one a period from now.
        let now = t0 + ms(1_000) + P * 5;
        let s = table.run_due(now, |_, _| Tick::Done);
        assert_eq!(s.ticks, 5);
        assert!(s.skipped >= 40, "{s:?}");
        assert_eq!(table.next_deadline(), Some(now + P));
    }

    #[test]
    fn entries_whose_tick_says_closed_are_forgotten() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, MAX_CATCH_UP);
        for i in 0..4 {
            table.insert(t0 + P, i);
        }
        let s = table.run_due(
            t0 + P,
            |&i, _| {
                if i % 2 == 0 { Tick::Done } else { Tick::Closed }
            },
        );
        assert_eq!((s.ticks, s.removed), (2, 2));
        assert_eq!(table.len(), 2);
        let s = table.run_due(t0 + P * 2, |_, _| Tick::Closed);
        assert_eq!(s.removed, 2);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn nothing_ticks_before_its_deadline_minus_the_tolerance() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, MAX_CATCH_UP);
        table.insert(t0 + P, 0);
        let s = table.run_due(t0 + P - ms(1), |_, _| Tick::Done);
        assert_eq!(s.ticks, 0);
        let s = table.run_due(t0 + P - Duration::from_micros(400), |_, _| Tick::Done);
        assert_eq!(s.ticks, 1);
        assert_eq!(table.next_deadline(), Some(t0 + P * 2));
    }
}
