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
//! The table is the sans-IO [`Schedule`] (in [`schedule`](crate::schedule),
//! re-exported here): absolute deadlines that advance
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

pub use crate::schedule::{RunStats, Schedule, Tick};

use crate::error::Error;
use crate::sender::PTIME;

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
        if os::set_nice(CLOCK_NICE).is_ok() {
            return ClockPriority::Nice;
        }
    }
    ClockPriority::Normal
}

/// The nice value the clock thread asks for when real-time is refused.
#[cfg(target_os = "linux")]
const CLOCK_NICE: i32 = -10;

/// The calling thread's scheduling, through `thread-priority` (no unsafe
/// code here). Linux schedules threads, not processes, so both calls
/// change the clock thread only.
#[cfg(target_os = "linux")]
mod os {
    use thread_priority::{
        NormalThreadSchedulePolicy, RealtimeThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityValue, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };

    /// Why the kernel (or the crate) refused.
    #[derive(Debug)]
    pub(super) struct Refused;

    /// `SCHED_FIFO` at `priority` (1-99) on the calling thread.
    ///
    /// The crate sets the policy with `pthread_setschedparam`, which takes
    /// no `SCHED_RESET_ON_FORK`: a child forked by this thread would keep
    /// the real-time policy. The clock thread runs only the table and
    /// never forks, and a fork from any other thread copies that thread's
    /// own (normal) policy, so no process ever inherits it.
    pub(super) fn set_fifo(priority: i32) -> Result<(), Refused> {
        let value = u8::try_from(priority).map_err(|_| Refused)?;
        let priority = ThreadPriority::try_from(value).map_err(|_| Refused)?;
        set_thread_priority_and_policy(
            thread_native_id(),
            priority,
            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
        )
        .map_err(|_| Refused)
    }

    /// The normal policy at nice value `nice` (-20..=19) on the calling
    /// thread.
    pub(super) fn set_nice(nice: i32) -> Result<(), Refused> {
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(crossplatform_for_nice(nice)?),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
        )
        .map_err(|_| Refused)
    }

    /// The crate's 0..=99 scale value that it maps to `nice` on Linux
    /// (`-20 + trunc(39 * (1 - p / 99))`; e.g. 73 for -10): the crate
    /// takes a niceness for the normal policy only on that scale.
    fn crossplatform_for_nice(nice: i32) -> Result<ThreadPriorityValue, Refused> {
        (0u8..=99)
            .rev()
            .find(|&p| {
                let ratio = 1f32 - f32::from(p) / 99f32;
                // The crate's own arithmetic, truncation included.
                let mapped = i32::from((39f32 * ratio) as i8) - 20;
                mapped == nice
            })
            .and_then(|p| ThreadPriorityValue::try_from(p).ok())
            .ok_or(Refused)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// (nice, rt_priority, policy) of the calling thread from
        /// `/proc/thread-self/stat` (fields 19, 40 and 41).
        fn sched_of_this_thread() -> (i32, u32, u32) {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after_comm.split(' ').collect();
            (
                f[19 - 3].parse().unwrap(),
                f[40 - 3].parse().unwrap(),
                f[41 - 3].parse().unwrap(),
            )
        }

        #[test]
        fn nice_minus_ten_is_asked_for_as_minus_ten() {
            assert_eq!(u8::from(crossplatform_for_nice(-10).unwrap()), 73);
            assert!(crossplatform_for_nice(-21).is_err());
            let got = std::thread::spawn(|| set_nice(-10).map(|()| sched_of_this_thread()))
                .join()
                .unwrap();
            // Without CAP_SYS_NICE (or RLIMIT_NICE) the kernel refuses.
            if let Ok((nice, _, policy)) = got {
                assert_eq!((nice, policy), (-10, 0), "SCHED_OTHER at nice -10");
            }
        }

        #[test]
        fn fifo_is_sched_fifo_at_the_priority_asked_for() {
            let got = std::thread::spawn(|| set_fifo(10).map(|()| sched_of_this_thread()))
                .join()
                .unwrap();
            // Without CAP_SYS_NICE (or RLIMIT_RTPRIO) the kernel refuses.
            if let Ok((_, rt_priority, policy)) = got {
                assert_eq!((rt_priority, policy), (10, 1), "SCHED_FIFO at 10");
            }
            assert!(set_fifo(100).is_err(), "out of the 1-99 range");
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
