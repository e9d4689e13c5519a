//! How loaded an engine thread is, measured by the thread itself and
//! without IO: a meter takes, per pass over its calls, how late each
//! tick was served, how long the pass worked and how many events each
//! call had not yet taken, and publishes an [`EngineLoad`] once per
//! [`WINDOW`]. [`LoadLimits`] says when that load means the engine cannot
//! keep one more call on time: admission refuses new calls then (503),
//! and no admitted call is ever ended for it.
//!
//! A window is up to a second old when admission reads it, so the calls
//! handed to a thread since its last window are counted in: the window's
//! busy fraction is scaled by (calls + added) / calls
//! ([`EngineLoad::with_added`]), and a burst of INVITEs stops being
//! admitted once that estimate passes the limit. A thread that served no
//! call in its last window has no measurement to scale, and a call's cost
//! reaches these signals only a second or two after its admission: the
//! admission also paces new calls by the windows
//! ([`admission`](super::admission)).
//!
//! The three signals, and why each:
//!
//! - **Tick lateness** (p99 over the window): the engine thread itself
//!   did not get a CPU in time. It is what the caller hears first.
//! - **Busy fraction** of the window: the engine's headroom. Beyond
//!   [`LoadLimits::max_busy`] one more call's work may push the last
//!   ticks of a pass past their deadline.
//! - **Event backlog** (p99 of events still waiting in a call's queue
//!   when the next tick's audio is handed over): the call tasks (model
//!   WebSockets, resampling, on the async runtime) are not keeping up.
//!   With a real-time engine thread the ticks stay on time even when the
//!   runtime is saturated, so this is the signal that catches an agent
//!   that would otherwise time out its model sessions.

use std::time::{Duration, Instant};

/// The measuring window: one second, 50 periods.
pub const WINDOW: Duration = Duration::from_secs(1);

/// A tick served more than this after its deadline counts as late in
/// [`EngineCounters::late`].
pub const LATE: Duration = Duration::from_millis(2);

/// A tick whose packet went out this long or longer after its deadline
/// (half a period: what the load tool counts as a late packet) is a stall
/// ([`EngineLoad::stalled`]). A multiple of the lateness histogram's
/// bucket, which counts them.
pub const STALL: Duration = Duration::from_millis(10);

/// Lateness histogram: 250 µs buckets up to 20 ms (the last holds the rest).
const LATE_BUCKET_US: u64 = 250;
const LATE_BUCKETS: usize = 81;
/// Backlog histogram: 0..=31 events, the last holds the rest.
const BACKLOG_BUCKETS: usize = 32;

/// One engine thread's load over the last [`WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineLoad {
    /// 99th percentile of how late ticks were served (measured when the
    /// tick's packet had been handed to the kernel).
    pub late_p99: Duration,
    /// Share of the ticks served [`STALL`] or more late (0.0..=1.0): rare
    /// stalls a p99 does not see. Seen on a 2-core machine at 900 calls:
    /// the engine's count of ticks more than 2 ms late rose by a few
    /// hundred within a quarter second a few times a minute, and 164 to
    /// 1,621 packets a run reached the peer 10 ms late, while no call was
    /// that late when its socket calls began.
    pub stalled: f64,
    /// Fraction of the window spent serving calls (0.0..=1.0).
    pub busy: f64,
    /// 99th percentile of the events a call had not taken when the next
    /// tick's audio was handed over (0: the call tasks keep up).
    pub backlog_p99: u32,
    /// Calls served.
    pub calls: usize,
}

/// Counters since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Ticks served.
    pub ticks: u64,
    /// Ticks served more than [`LATE`] after their deadline.
    pub late: u64,
    /// Periods skipped because a call was over
    /// [`MAX_CATCH_UP`](crate::media::MAX_CATCH_UP) periods behind.
    pub skipped: u64,
}

/// When an engine's load means it cannot take one more call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadLimits {
    /// Tick lateness p99 above this refuses calls.
    pub max_late: Duration,
    /// A busy fraction above this refuses calls.
    pub max_busy: f64,
    /// An event backlog p99 above this refuses calls.
    pub max_backlog: u32,
    /// A share of stalled ticks ([`EngineLoad::stalled`]) above this
    /// refuses calls.
    pub max_stalled: f64,
}

impl Default for LoadLimits {
    /// Lateness p99 10 ms (half a period: beyond it a tick risks
    /// colliding with the next; the load tool's interval target is 5 ms at
    /// the peer), busy 70 %, backlog p99 8 events (the call tasks 160 ms
    /// behind: a task that waits a moment for the model or the store now
    /// and then stays well under it, a saturated runtime does not),
    /// stalled ticks 0.1 % (at 1,000 calls, 50 packets in a second going
    /// out 10 ms late).
    fn default() -> Self {
        LoadLimits {
            max_late: Duration::from_millis(10),
            max_busy: 0.7,
            max_backlog: 8,
            max_stalled: 0.001,
        }
    }
}

impl EngineLoad {
    /// Whether this load is beyond `limits`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use callbridge_rtp::engine::{EngineLoad, LoadLimits};
    ///
    /// let ok = EngineLoad {
    ///     late_p99: Duration::from_micros(300),
    ///     stalled: 0.0,
    ///     busy: 0.2,
    ///     backlog_p99: 0,
    ///     calls: 400,
    /// };
    /// assert!(!ok.overloaded(&LoadLimits::default()));
    /// let late = EngineLoad { late_p99: Duration::from_millis(12), ..ok };
    /// assert!(late.overloaded(&LoadLimits::default()));
    /// let stalls = EngineLoad { stalled: 0.005, ..ok };
    /// assert!(stalls.overloaded(&LoadLimits::default()));
    /// ```
    #[must_use]
    pub fn overloaded(&self, limits: &LoadLimits) -> bool {
        self.late_p99 > limits.max_late
            || self.stalled > limits.max_stalled
            || self.busy > limits.max_busy
            || self.backlog_p99 > limits.max_backlog
    }

    /// This window's load with `added` more calls than the `calls` it was
    /// measured with: the busy fraction grows in proportion (the other
    /// signals are kept; a window without calls is returned as it is).
    ///
    /// ```
    /// use callbridge_rtp::engine::{EngineLoad, LoadLimits};
    ///
    /// let l = EngineLoad { busy: 0.35, calls: 100, ..EngineLoad::default() };
    /// assert!(!l.overloaded(&LoadLimits::default()));
    /// let burst = l.with_added(150);
    /// assert!((burst.busy - 0.875).abs() < 1e-9);
    /// assert!(burst.overloaded(&LoadLimits::default()));
    /// ```
    #[must_use]
    pub fn with_added(self, added: usize) -> EngineLoad {
        if self.calls == 0 || added == 0 {
            return self;
        }
        let scale = (self.calls + added) as f64 / self.calls as f64;
        EngineLoad {
            busy: self.busy * scale,
            ..self
        }
    }

    /// The headroom left, 0.0 (overloaded) ..= 1.0 (idle): the smallest
    /// of the three signals' margins to their limits.
    #[must_use]
    pub fn headroom(&self, limits: &LoadLimits) -> f64 {
        let margin = |v: f64, max: f64| {
            if max <= 0.0 {
                0.0
            } else {
                (1.0 - v / max).clamp(0.0, 1.0)
            }
        };
        let late = margin(self.late_p99.as_secs_f64(), limits.max_late.as_secs_f64());
        let stalled = margin(self.stalled, limits.max_stalled);
        let busy = margin(self.busy, limits.max_busy);
        let backlog = margin(
            f64::from(self.backlog_p99),
            f64::from(limits.max_backlog.max(1)),
        );
        late.min(stalled).min(busy).min(backlog)
    }
}

/// Measures one engine thread. See the module docs.
#[derive(Debug)]
pub(crate) struct LoadMeter {
    window_start: Instant,
    busy: Duration,
    late: [u32; LATE_BUCKETS],
    backlog: [u32; BACKLOG_BUCKETS],
    counters: EngineCounters,
}

/// Samples a window's tail must hold before it says anything: with few
/// calls a 1 % tail is one or two ticks, and one scheduling hiccup of the
/// machine must not refuse calls.
const MIN_TAIL: u64 = 20;

/// The 99th percentile bucket, or, with fewer than `100 * MIN_TAIL`
/// samples, the bucket that `MIN_TAIL` samples reach or exceed.
fn p99(hist: &[u32]) -> Option<usize> {
    let total: u64 = hist.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    // The smallest bucket with all but the tail at or below it.
    let tail = (total / 100).max(MIN_TAIL);
    let want = total.saturating_sub(tail).max(1);
    let mut seen = 0u64;
    for (i, &n) in hist.iter().enumerate() {
        seen += u64::from(n);
        if seen >= want {
            return Some(i);
        }
    }
    Some(hist.len() - 1)
}

impl LoadMeter {
    /// A meter whose first window starts at `now`.
    #[must_use]
    pub fn new(now: Instant) -> LoadMeter {
        LoadMeter {
            window_start: now,
            busy: Duration::ZERO,
            late: [0; LATE_BUCKETS],
            backlog: [0; BACKLOG_BUCKETS],
            counters: EngineCounters::default(),
        }
    }

    /// A tick served `late` after its deadline.
    pub fn tick(&mut self, late: Duration) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        let i = usize::try_from(us / LATE_BUCKET_US)
            .map_or(LATE_BUCKETS - 1, |i| i.min(LATE_BUCKETS - 1));
        self.late[i] = self.late[i].saturating_add(1);
        self.counters.ticks += 1;
        if late > LATE {
            self.counters.late += 1;
        }
    }

    /// Periods a call skipped.
    pub fn skipped(&mut self, n: u64) {
        self.counters.skipped += n;
    }

    /// A call had `waiting` events not yet taken when its next audio came.
    pub fn backlog(&mut self, waiting: usize) {
        let i = waiting.min(BACKLOG_BUCKETS - 1);
        self.backlog[i] = self.backlog[i].saturating_add(1);
    }

    /// A pass over the calls worked from `start` to `end`. Returns the
    /// window's load when a window has ended (`calls` 0: the thread knows
    /// its calls).
    pub fn pass(&mut self, start: Instant, end: Instant) -> Option<EngineLoad> {
        self.busy += end.saturating_duration_since(start);
        let span = end.saturating_duration_since(self.window_start);
        if span < WINDOW {
            return None;
        }
        let late_p99 = p99(&self.late).map_or(Duration::ZERO, |i| {
            Duration::from_micros((i as u64 + 1) * LATE_BUCKET_US)
        });
        let backlog_p99 = p99(&self.backlog).map_or(0, |i| u32::try_from(i).unwrap_or(u32::MAX));
        let ticks: u64 = self.late.iter().map(|&n| u64::from(n)).sum();
        // The buckets from STALL up; as for the percentiles, a few calls'
        // one hiccup (fewer than MIN_TAIL ticks) says nothing.
        let first =
            usize::try_from(STALL.as_micros() / u128::from(LATE_BUCKET_US)).unwrap_or(LATE_BUCKETS);
        let stalled: u64 = self.late.iter().skip(first).map(|&n| u64::from(n)).sum();
        let stalled = if stalled < MIN_TAIL {
            0.0
        } else {
            stalled as f64 / ticks as f64
        };
        let load = EngineLoad {
            late_p99,
            stalled,
            busy: (self.busy.as_secs_f64() / span.as_secs_f64()).clamp(0.0, 1.0),
            backlog_p99,
            calls: 0,
        };
        self.window_start = end;
        self.busy = Duration::ZERO;
        self.late = [0; LATE_BUCKETS];
        self.backlog = [0; BACKLOG_BUCKETS];
        Some(load)
    }

    /// Drops the window so far and starts a new one at `now` (the counters
    /// are kept): an engine without calls has no load.
    pub fn restart(&mut self, now: Instant) {
        self.window_start = now;
        self.busy = Duration::ZERO;
        self.late = [0; LATE_BUCKETS];
        self.backlog = [0; BACKLOG_BUCKETS];
    }

    /// The counters since the meter started.
    #[must_use]
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A simulated engine thread serving `calls` calls for `secs` seconds:
    /// each pass works `work` per call, and every tick is served `late`.
    fn simulate(calls: usize, work: Duration, late: Duration, backlog: usize) -> EngineLoad {
        let t0 = Instant::now();
        let mut m = LoadMeter::new(t0);
        let mut now = t0;
        let mut last = None;
        for _ in 0..100 {
            let start = now;
            for _ in 0..calls {
                m.tick(late);
                m.backlog(backlog);
            }
            let end = start + work * u32::try_from(calls).unwrap();
            now = start + 20 * MS;
            if let Some(l) = m.pass(start, end) {
                last = Some(l);
            }
        }
        EngineLoad {
            calls,
            ..last.unwrap()
        }
    }

    #[test]
    fn an_engine_with_room_reports_its_load_and_admits() {
        let l = simulate(
            500,
            Duration::from_micros(10),
            Duration::from_micros(100),
            0,
        );
        assert!((l.busy - 0.25).abs() < 0.01, "{l:?}");
        assert_eq!(l.late_p99, Duration::from_micros(250));
        assert!(!l.overloaded(&LoadLimits::default()));
        assert!(l.headroom(&LoadLimits::default()) > 0.5);
    }

    #[test]
    fn calls_added_since_the_window_count_toward_admission() {
        // 500 calls measured at 25 % busy: 1,000 more in the same window
        // would be 75 %, over the 70 % limit; 800 more (65 %) are not.
        let l = simulate(
            500,
            Duration::from_micros(10),
            Duration::from_micros(100),
            0,
        );
        assert!(!l.with_added(800).overloaded(&LoadLimits::default()));
        let burst = l.with_added(1000);
        assert!((burst.busy - 0.75).abs() < 0.02, "{burst:?}");
        assert!(burst.overloaded(&LoadLimits::default()));
        assert_eq!(burst.late_p99, l.late_p99);
        // No window with calls yet: nothing to scale.
        assert_eq!(
            EngineLoad::default().with_added(1000),
            EngineLoad::default()
        );
    }

    #[test]
    fn a_busy_engine_is_overloaded() {
        let l = simulate(1000, Duration::from_micros(16), Duration::ZERO, 0);
        assert!(l.busy > 0.7, "{l:?}");
        assert!(l.overloaded(&LoadLimits::default()));
        assert_eq!(l.headroom(&LoadLimits::default()), 0.0);
    }

    #[test]
    fn late_ticks_mean_overload_even_with_cpu_to_spare() {
        let l = simulate(100, Duration::from_micros(5), 12 * MS, 0);
        assert!(l.busy < 0.1);
        assert!(l.late_p99 >= 12 * MS);
        assert!(l.overloaded(&LoadLimits::default()));
    }

    #[test]
    fn call_tasks_that_fall_behind_mean_overload() {
        let l = simulate(100, Duration::from_micros(5), Duration::ZERO, 12);
        assert_eq!(l.backlog_p99, 12);
        assert!(l.overloaded(&LoadLimits::default()));
    }

    #[test]
    fn a_restart_forgets_the_window_but_keeps_the_counters() {
        let t0 = Instant::now();
        let mut m = LoadMeter::new(t0);
        for _ in 0..100 {
            m.tick(9 * MS);
        }
        m.restart(t0 + 500 * MS);
        let l = m.pass(t0 + 500 * MS, t0 + 1500 * MS).unwrap();
        assert_eq!(l.late_p99, Duration::ZERO);
        assert_eq!(m.counters().late, 100);
    }

    #[test]
    fn a_few_late_ticks_of_a_few_calls_are_not_overload() {
        let t0 = Instant::now();
        let mut m = LoadMeter::new(t0);
        // Three calls for a second: 150 ticks, 5 of them 15 ms late.
        for i in 0..150 {
            m.tick(if i % 30 == 0 { 15 * MS } else { Duration::ZERO });
        }
        // A pass of no work that ends the window.
        let l = m.pass(t0 + WINDOW, t0 + WINDOW).unwrap();
        assert_eq!(l.late_p99, Duration::from_micros(250));
        assert!(!l.overloaded(&LoadLimits::default()), "{l:?}");
        // Every other tick late is.
        for i in 0..150 {
            m.tick(if i % 2 == 0 { 15 * MS } else { Duration::ZERO });
        }
        let l = m.pass(t0 + 2 * WINDOW, t0 + 2 * WINDOW).unwrap();
        assert!(l.late_p99 >= 15 * MS, "{l:?}");
        assert!(l.overloaded(&LoadLimits::default()), "{l:?}");
    }

    #[test]
    fn a_stall_the_p99_does_not_see_is_overload() {
        // 900 calls for a second, one stall serving 400 of their ticks
        // 12 ms late: 0.9 % of the ticks, under the p99's 1 %.
        let t0 = Instant::now();
        let mut m = LoadMeter::new(t0);
        for i in 0..45_000 {
            m.tick(if i < 400 { 12 * MS } else { Duration::ZERO });
        }
        // A pass of no work that ends the window: only the stall counts.
        let l = m.pass(t0 + WINDOW, t0 + WINDOW).unwrap();
        assert_eq!(l.late_p99, Duration::from_micros(250));
        assert_eq!(l.busy, 0.0);
        assert!((l.stalled - 400.0 / 45_000.0).abs() < 1e-9, "{l:?}");
        assert!(l.overloaded(&LoadLimits::default()));
        assert_eq!(l.headroom(&LoadLimits::default()), 0.0);
        // 20 ticks 12 ms late (0.04 %) are not; the next window forgets.
        for i in 0..45_000 {
            m.tick(if i < 20 { 12 * MS } else { Duration::ZERO });
        }
        let l = m.pass(t0 + 2 * WINDOW, t0 + 2 * WINDOW).unwrap();
        assert!(!l.overloaded(&LoadLimits::default()), "{l:?}");
        assert!(l.stalled > 0.0);
        // Fewer than 20 stalled ticks are one hiccup: not reported.
        for i in 0..150 {
            m.tick(if i < 19 { 12 * MS } else { Duration::ZERO });
        }
        let l = m.pass(t0 + 3 * WINDOW, t0 + 3 * WINDOW).unwrap();
        assert_eq!(l.stalled, 0.0);
    }

    #[test]
    fn one_late_tick_in_a_thousand_is_not_the_p99() {
        let t0 = Instant::now();
        let mut m = LoadMeter::new(t0);
        for i in 0..1000 {
            m.tick(if i == 0 { 15 * MS } else { Duration::ZERO });
        }
        let l = m.pass(t0, t0 + WINDOW).unwrap();
        assert_eq!(l.late_p99, Duration::from_micros(250));
        assert_eq!(m.counters().late, 1);
        assert_eq!(m.counters().ticks, 1000);
    }
}
