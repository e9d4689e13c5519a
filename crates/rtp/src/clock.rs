//! The media clock: one OS thread that paces every open
//! [`MediaStream`](crate::stream::MediaStream) of the process.
//!
//! RTP audio is sent one packet per 20 ms (RFC 3551 section 4.5: the
//! packetization interval). A tokio timer per stream fires only when a
//! runtime worker gets to it: tokio services its timers when a worker
//! parks or between batches of tasks, so on a busy runtime (hundreds of
//! calls bridging model audio on two workers) the ticks run late and then
//! catch up in bursts. The media clock takes pacing off the runtime: a
//! dedicated thread sleeps until the earliest absolute deadline of its
//! table, wakes (with a small tolerance, so streams whose deadlines fall
//! within it share one wake-up) and ticks every due stream; a tick pops one
//! prepared frame, does one non-blocking send and hands the tick's audio to
//! the call (see [`stream`](crate::stream)).
//!
//! The table is the sans-IO [`Schedule`]: absolute deadlines that advance
//! by exactly one period per tick (no drift), a bounded catch-up when the
//! thread itself was late, and removal of streams that have closed. The
//! thread is started by the first stream that registers and exits when its
//! table is empty, so no thread is left once every stream has closed
//! ([`clock_threads`] counts it).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::stream::PTIME;

/// How early a deadline may be served to share a wake-up with an earlier
/// one: an interval error this small is far below a receiver's jitter
/// buffer, and it bounds wake-ups to about `PTIME / WAKE_TOLERANCE` per
/// period however many streams there are.
pub const WAKE_TOLERANCE: Duration = Duration::from_micros(500);

/// Missed periods a stream catches up back to back when the clock thread
/// itself ran late (the packets keep their place in the schedule); beyond
/// this the stream's schedule restarts from now rather than flooding the
/// peer.
pub const MAX_CATCH_UP: u32 = 5;

/// Something the clock ticks once per period.
pub(crate) trait Paced: Send + Sync {
    /// One period has passed (`now` is the clock's reading). Returns false
    /// once the stream has closed: the clock forgets it.
    fn tick(&self, now: Instant) -> bool;
}

/// A table of periodic deadlines without IO: each entry is due at absolute
/// instants `first + k * period`. See the module docs.
#[derive(Debug)]
pub struct Schedule<T> {
    entries: Vec<(Instant, T)>,
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
    /// Entries removed because their tick returned false.
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
        self.entries.push((first, item));
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
        self.entries.iter().map(|(d, _)| *d).min()
    }

    /// Ticks every entry due by `now` (within the tolerance): `tick` gets
    /// the entry and returns whether it stays. An entry behind by several
    /// periods is ticked once per missed period, at most `max_catch_up`
    /// times; the rest are skipped and its schedule restarts one period
    /// after `now`.
    pub fn run_due(&mut self, now: Instant, mut tick: impl FnMut(&T) -> bool) -> RunStats {
        let mut stats = RunStats::default();
        let horizon = now + self.tolerance;
        let mut i = 0;
        while i < self.entries.len() {
            let (deadline, item) = &mut self.entries[i];
            let mut keep = true;
            let mut burst = 0;
            while *deadline <= horizon && burst < self.max_catch_up {
                burst += 1;
                stats.ticks += 1;
                *deadline += self.period;
                if !tick(item) {
                    keep = false;
                    break;
                }
            }
            if !keep {
                stats.removed += 1;
                self.entries.swap_remove(i);
                continue;
            }
            if *deadline <= horizon {
                let behind = now.saturating_duration_since(*deadline);
                let missed = behind.as_nanos() / self.period.as_nanos().max(1);
                stats.skipped = stats
                    .skipped
                    .saturating_add(u64::try_from(missed).unwrap_or(u64::MAX))
                    .saturating_add(1);
                *deadline = now + self.period;
            }
            i += 1;
        }
        stats
    }
}

/// A stream joining the clock: its first deadline and the stream.
struct Registration {
    first: Instant,
    stream: Arc<dyn Paced>,
}

/// The running clock thread, if any: where registrations go.
struct Running {
    tx: Sender<Registration>,
    generation: u64,
}

/// The process's clock. Registrations are sent under this lock, and the
/// thread decides to exit under it, so a registration never reaches a
/// thread that is leaving.
static CLOCK: Mutex<Option<Running>> = Mutex::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Media clock threads running in this process: 1 while any stream paced
/// by the clock is open, 0 shortly (at most one period) after the last one
/// has closed.
#[must_use]
pub fn clock_threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Puts `stream` on the clock, first due at `first`; starts the thread
/// when none runs.
pub(crate) fn register(stream: Arc<dyn Paced>, first: Instant) -> Result<(), Error> {
    let mut clock = CLOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let mut reg = Registration { first, stream };
    if let Some(running) = clock.as_ref() {
        match running.tx.send(reg) {
            Ok(()) => return Ok(()),
            // The thread is gone (it only leaves under this lock after
            // clearing `CLOCK`, so it died): start another one.
            Err(mpsc::SendError(back)) => reg = back,
        }
    }
    let (tx, rx) = mpsc::channel();
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    // The receiver is alive until the thread below owns it.
    let _ = tx.send(reg);
    std::thread::Builder::new()
        .name("media-clock".to_owned())
        .spawn(move || run(rx, generation))
        .map_err(Error::io("spawn the media clock thread"))?;
    *clock = Some(Running { tx, generation });
    Ok(())
}

/// Counts the thread while it runs.
struct ThreadGauge;

impl ThreadGauge {
    fn hold() -> ThreadGauge {
        THREADS.fetch_add(1, Ordering::Relaxed);
        ThreadGauge
    }
}

impl Drop for ThreadGauge {
    fn drop(&mut self) {
        THREADS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The clock thread: sleep until the next deadline or a registration,
/// tick what is due, leave when the table is empty.
fn run(rx: Receiver<Registration>, generation: u64) {
    let _gauge = ThreadGauge::hold();
    let mut table: Schedule<Arc<dyn Paced>> = Schedule::new(PTIME, WAKE_TOLERANCE, MAX_CATCH_UP);
    loop {
        let next = match table.next_deadline() {
            None => match leave_or_take(&rx, generation) {
                Some(reg) => Some(reg),
                None => return,
            },
            Some(deadline) => {
                let now = Instant::now();
                if deadline > now + WAKE_TOLERANCE {
                    // A timeout, or a registration to add first.
                    rx.recv_timeout(deadline - now).ok()
                } else {
                    None
                }
            }
        };
        if let Some(reg) = next {
            table.insert(reg.first, reg.stream);
            while let Ok(reg) = rx.try_recv() {
                table.insert(reg.first, reg.stream);
            }
        }
        let now = Instant::now();
        let stats = table.run_due(now, |stream| stream.tick(now));
        if stats.skipped > 0 {
            tracing::warn!(
                skipped = stats.skipped,
                "media clock ran more than {MAX_CATCH_UP} periods late; ticks skipped"
            );
        }
    }
}

/// With an empty table: takes a registration that raced in, or gives up
/// the clock (under its lock) and returns `None`.
fn leave_or_take(rx: &Receiver<Registration>, generation: u64) -> Option<Registration> {
    let mut clock = CLOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if let Ok(reg) = rx.try_recv() {
        return Some(reg);
    }
    if clock.as_ref().is_some_and(|r| r.generation == generation) {
        *clock = None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
            table.run_due(now, |&i| {
                ticks[i].push(now - t0);
                true
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
            table.run_due(d, |&i| {
                who.push(i);
                true
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
        let s = table.run_due(t0 + P * 4, |_| {
            n += 1;
            true
        });
        assert_eq!((n, s.skipped), (4, 0));
        assert_eq!(table.next_deadline(), Some(t0 + P * 5));
        // 1 s late: 5 ticks, the rest skipped, next one a period from now.
        let now = t0 + ms(1_000) + P * 5;
        let s = table.run_due(now, |_| true);
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
        let s = table.run_due(t0 + P, |&i| i % 2 == 0);
        assert_eq!((s.ticks, s.removed), (4, 2));
        assert_eq!(table.len(), 2);
        let s = table.run_due(t0 + P * 2, |_| false);
        assert_eq!(s.removed, 2);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn nothing_ticks_before_its_deadline_minus_the_tolerance() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, MAX_CATCH_UP);
        table.insert(t0 + P, 0);
        let s = table.run_due(t0 + P - ms(1), |_| true);
        assert_eq!(s.ticks, 0);
        let s = table.run_due(t0 + P - Duration::from_micros(400), |_| true);
        assert_eq!(s.ticks, 1);
        assert_eq!(table.next_deadline(), Some(t0 + P * 2));
    }
}
