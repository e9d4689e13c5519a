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
//!
//! A sleeping thread still waits for a CPU when it wakes: on a saturated
//! machine (a load average of 14 on 2 cores, measured) an ordinary thread
//! waited about 15 ms per wake-up. So the clock asks the kernel for a
//! real-time policy ([`CLOCK_RT_PRIORITY`], `SCHED_FIFO`, as audio servers
//! do), falling back to nice -10, and keeps the normal policy when neither
//! is permitted ([`clock_priority`] says which applied). It never waits
//! for a lock another thread may hold while preempted: a stream whose state
//! is busy is retried after a short sleep, and its counters are copied only
//! when their lock is free.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
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

/// What became of one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// The entry ticked; its next deadline is one period on.
    Done,
    /// The entry could not tick now (its state is locked by the other
    /// side for a moment): it stays due and is retried.
    Busy,
    /// The entry has closed: the table forgets it.
    Closed,
}

/// The `SCHED_FIFO` priority the clock thread asks for (1-99; audio
/// servers use 20-88). It runs a few percent of a core at 500 streams, and
/// the kernel's real-time throttling keeps a share of every CPU for
/// ordinary threads whatever happens.
pub const CLOCK_RT_PRIORITY: i32 = 10;

/// How long the clock sleeps before retrying a stream that answered
/// [`Tick::Busy`]: a real sleep, so the holder of the lock (an ordinary
/// thread) can run on this CPU.
const BUSY_RETRY: Duration = Duration::from_micros(200);

/// The scheduling the clock thread got from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockPriority {
    /// No clock thread has started yet.
    Unknown,
    /// `SCHED_FIFO` at [`CLOCK_RT_PRIORITY`].
    Realtime,
    /// The normal policy at nice -10 (real-time was not permitted).
    Nice,
    /// The normal policy (neither was permitted, or not Linux).
    Normal,
}

static PRIORITY: AtomicU8 = AtomicU8::new(0);

/// The scheduling the last clock thread got (see the module docs).
#[must_use]
pub fn clock_priority() -> ClockPriority {
    match PRIORITY.load(Ordering::Relaxed) {
        1 => ClockPriority::Realtime,
        2 => ClockPriority::Nice,
        3 => ClockPriority::Normal,
        _ => ClockPriority::Unknown,
    }
}

/// Raises the calling thread's scheduling as far as permitted.
fn raise_priority() -> ClockPriority {
    #[cfg(target_os = "linux")]
    {
        if os::set_fifo(CLOCK_RT_PRIORITY).is_ok() {
            return ClockPriority::Realtime;
        }
        if os::set_nice(-10).is_ok() {
            return ClockPriority::Nice;
        }
    }
    ClockPriority::Normal
}

#[cfg(target_os = "linux")]
mod os {
    /// `sched_setscheduler(2)` on the calling thread (Linux schedules
    /// threads; pid 0 is the caller), reset on fork.
    #[allow(
        unsafe_code,
        reason = "FFI call with a valid sched_param that outlives it; no memory is shared"
    )]
    pub(super) fn set_fifo(priority: i32) -> std::io::Result<()> {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: `param` is an initialized sched_param on our stack, read
        // by the kernel during the call only; pid 0 names this thread.
        let r = unsafe {
            libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// `setpriority(2)` on the calling thread (who 0 is the caller; on
    /// Linux the nice value is per thread).
    #[allow(unsafe_code, reason = "FFI call with plain integer arguments")]
    pub(super) fn set_nice(nice: i32) -> std::io::Result<()> {
        // SAFETY: integer arguments only.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Something the clock ticks once per period.
pub(crate) trait Paced: Send + Sync {
    /// One period has passed (`now` is the clock's reading). Must not wait
    /// for a lock: a stream whose state is held elsewhere answers
    /// [`Tick::Busy`] and is retried, so one preempted holder cannot delay
    /// every other stream.
    fn tick(&self, now: Instant) -> Tick;
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
    /// Entries removed because their tick answered [`Tick::Closed`].
    pub removed: u64,
    /// Entries left due because their tick answered [`Tick::Busy`].
    pub busy: u64,
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

    /// Ticks every entry due by `now` (within the tolerance) and returns
    /// what happened; `tick` gets the entry and the deadline it serves. An entry behind by several periods is ticked once per
    /// missed period, at most `max_catch_up` times; the rest are skipped
    /// and its schedule restarts one period after `now`. An entry that
    /// answers [`Tick::Busy`] keeps its deadline (still due: call again).
    pub fn run_due(&mut self, now: Instant, mut tick: impl FnMut(&T, Instant) -> Tick) -> RunStats {
        let mut stats = RunStats::default();
        let horizon = now + self.tolerance;
        let mut i = 0;
        while i < self.entries.len() {
            let (deadline, item) = &mut self.entries[i];
            let mut outcome = Tick::Done;
            let mut burst = 0;
            while *deadline <= horizon && burst < self.max_catch_up {
                outcome = tick(item, *deadline);
                if outcome != Tick::Done {
                    break;
                }
                burst += 1;
                stats.ticks += 1;
                *deadline += self.period;
            }
            match outcome {
                Tick::Closed => {
                    stats.removed += 1;
                    self.entries.swap_remove(i);
                    continue;
                }
                Tick::Busy => stats.busy += 1,
                Tick::Done => {}
            }
            if outcome == Tick::Done && *deadline <= horizon {
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
    let priority = raise_priority();
    let code = match priority {
        ClockPriority::Realtime => 1,
        ClockPriority::Nice => 2,
        _ => 3,
    };
    if PRIORITY.swap(code, Ordering::Relaxed) != code {
        tracing::info!(?priority, "media clock thread started");
    }
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
        let stats = table.run_due(now, |stream, deadline| {
            let outcome = stream.tick(now);
            if outcome == Tick::Done {
                COUNTERS.ticks.fetch_add(1, Ordering::Relaxed);
                if now.saturating_duration_since(deadline) > LATE {
                    COUNTERS.late.fetch_add(1, Ordering::Relaxed);
                }
            }
            outcome
        });
        COUNTERS.busy.fetch_add(stats.busy, Ordering::Relaxed);
        COUNTERS.skipped.fetch_add(stats.skipped, Ordering::Relaxed);
        if stats.skipped > 0 {
            tracing::warn!(
                skipped = stats.skipped,
                "media clock ran more than {MAX_CATCH_UP} periods late; ticks skipped"
            );
        }
        if stats.busy > 0 {
            // A stream's state is held by its task, which the OS may have
            // preempted: let it run (a yield would not, to a real-time
            // thread), then retry what is still due.
            std::thread::sleep(BUSY_RETRY);
        }
    }
}

/// A tick served more than this after its deadline counts as late in
/// [`ClockCounters::late`].
pub const LATE: Duration = Duration::from_millis(2);

/// Process-wide counters of the media clock (since the process started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockCounters {
    /// Ticks served.
    pub ticks: u64,
    /// Ticks served more than [`LATE`] after their deadline.
    pub late: u64,
    /// Retries of a stream whose state was locked elsewhere.
    pub busy: u64,
    /// Periods skipped because the clock was over [`MAX_CATCH_UP`]
    /// periods behind.
    pub skipped: u64,
}

struct Counters {
    ticks: AtomicU64,
    late: AtomicU64,
    busy: AtomicU64,
    skipped: AtomicU64,
}

static COUNTERS: Counters = Counters {
    ticks: AtomicU64::new(0),
    late: AtomicU64::new(0),
    busy: AtomicU64::new(0),
    skipped: AtomicU64::new(0),
};

/// The clock's counters so far.
#[must_use]
pub fn clock_counters() -> ClockCounters {
    ClockCounters {
        ticks: COUNTERS.ticks.load(Ordering::Relaxed),
        late: COUNTERS.late.load(Ordering::Relaxed),
        busy: COUNTERS.busy.load(Ordering::Relaxed),
        skipped: COUNTERS.skipped.load(Ordering::Relaxed),
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
    let c = clock_counters();
    tracing::info!(
        ticks = c.ticks,
        late = c.late,
        busy = c.busy,
        skipped = c.skipped,
        "media clock thread stops (no stream left)"
    );
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
    fn a_busy_entry_stays_due_and_the_others_tick() {
        let t0 = Instant::now();
        let mut table = Schedule::new(P, TOL, MAX_CATCH_UP);
        for i in 0..3 {
            table.insert(t0 + P, i);
        }
        let mut ticked = Vec::new();
        let s = table.run_due(t0 + P, |&i, _| {
            if i == 1 {
                return Tick::Busy;
            }
            ticked.push(i);
            Tick::Done
        });
        assert_eq!((s.ticks, s.busy), (2, 1));
        assert_eq!(ticked, vec![0, 2]);
        // Still due at its old deadline; the retry ticks it alone.
        assert_eq!(table.next_deadline(), Some(t0 + P));
        let mut retried = Vec::new();
        let s = table.run_due(t0 + P + ms(1), |&i, _| {
            retried.push(i);
            Tick::Done
        });
        assert_eq!((s.ticks, s.busy, retried), (1, 0, vec![1]));
        assert_eq!(table.next_deadline(), Some(t0 + P * 2));
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
