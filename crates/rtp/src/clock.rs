//! The media engine's clock, a value: [`MediaClock`] is what the engine
//! reads the time from and waits on. The binary builds a [`SystemClock`]
//! and passes it to [`MediaEngine::new`](crate::engine::MediaEngine::new);
//! tests pass a [`SimClock`] and move time themselves. Nothing here is
//! global.
//!
//! The engine thread waits with [`std::thread::park_timeout`] (a real
//! clock) or [`std::thread::park`] (a simulated one); whoever has news
//! for it (a call opening or closing, a simulated clock moving on)
//! unparks it.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::media::{MAX_CATCH_UP, WAKE_TOLERANCE};

/// The time source of a media engine. See the module docs.
pub trait MediaClock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Instant;

    /// Blocks the calling engine thread until `deadline` (on this clock;
    /// `None`: no deadline) or until the thread is unparked. May return
    /// early; the engine checks the time again. `idle` says whether every
    /// call's consumer has taken what the engine produced (a simulated
    /// clock that runs ahead does so only then); the engine works it out
    /// only for a clock that [`wakes_on_consume`](Self::wakes_on_consume)
    /// and passes `false` otherwise.
    fn wait(&self, deadline: Option<Instant>, idle: bool);

    /// Registers an engine thread that waits on this clock (a simulated
    /// clock unparks it when time moves).
    fn watch(&self, thread: Thread) {
        let _ = thread;
    }

    /// Whether the engine should be unparked each time a call takes an
    /// event (a simulated clock that runs ahead only while consumers keep
    /// up needs it; a real clock does not).
    fn wakes_on_consume(&self) -> bool {
        false
    }

    /// How to place the kernel's receive stamps (`SO_TIMESTAMPNS`, time
    /// since the Unix epoch) on this clock, taken once per engine pass;
    /// `None` (the default): this clock cannot, arrivals are stamped with
    /// [`now`](Self::now).
    fn stamp_base(&self) -> Option<StampBase> {
        None
    }
}

/// The monotonic and the wall clock read at one moment: maps a kernel
/// receive stamp (wall time) to an [`Instant`] by arithmetic, without
/// reading a clock per datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StampBase {
    /// The monotonic clock.
    pub mono: Instant,
    /// The wall clock at the same moment, since the Unix epoch.
    pub wall: Duration,
}

impl StampBase {
    /// A stamp older than this (or from the future) is not trusted.
    const MAX_AGE: Duration = Duration::from_secs(5);

    /// The monotonic time of a datagram the kernel stamped at `wall`;
    /// `None` for a stamp after the base or more than 5 s before it.
    #[must_use]
    pub fn arrival(&self, wall: Duration) -> Option<Instant> {
        let ago = self.wall.checked_sub(wall)?;
        (ago < Self::MAX_AGE)
            .then(|| self.mono.checked_sub(ago))
            .flatten()
    }
}

/// The operating system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl MediaClock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wait(&self, deadline: Option<Instant>, _idle: bool) {
        match deadline {
            Some(d) => {
                let now = Instant::now();
                if d > now {
                    std::thread::park_timeout(d - now);
                }
            }
            None => std::thread::park(),
        }
    }

    fn stamp_base(&self) -> Option<StampBase> {
        let mono = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Some(StampBase { mono, wall })
    }
}

/// A clock that moves only when told to: [`SimClock::advance`], or, for a
/// clock made with [`SimClock::running`], by itself to the engine's next
/// deadline whenever every call's consumer has caught up (like tokio's
/// paused time: time jumps when nobody has work left). One engine thread
/// per simulated clock.
#[derive(Debug)]
pub struct SimClock {
    state: Mutex<SimState>,
    runs_ahead: bool,
}

#[derive(Debug)]
struct SimState {
    now: Instant,
    watchers: Vec<Thread>,
}

impl SimClock {
    /// A clock starting at `start` that moves only with
    /// [`advance`](Self::advance).
    #[must_use]
    pub fn new(start: Instant) -> SimClock {
        SimClock {
            state: Mutex::new(SimState {
                now: start,
                watchers: Vec::new(),
            }),
            runs_ahead: false,
        }
    }

    /// A clock starting at `start` that also jumps to the engine's next
    /// deadline as soon as every call's events have been taken.
    #[must_use]
    pub fn running(start: Instant) -> SimClock {
        SimClock {
            runs_ahead: true,
            ..SimClock::new(start)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time on by `d` and wakes the engine.
    pub fn advance(&self, d: Duration) {
        let mut s = self.lock();
        s.now += d;
        for t in &s.watchers {
            t.unpark();
        }
    }
}

impl MediaClock for SimClock {
    fn now(&self) -> Instant {
        self.lock().now
    }

    fn wait(&self, deadline: Option<Instant>, idle: bool) {
        if self.runs_ahead
            && idle
            && let Some(d) = deadline
        {
            let mut s = self.lock();
            if d > s.now {
                s.now = d;
            }
            return;
        }
        std::thread::park();
    }

    fn watch(&self, thread: Thread) {
        self.lock().watchers.push(thread);
    }

    fn wakes_on_consume(&self) -> bool {
        self.runs_ahead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_moves_only_when_told() {
        let t0 = Instant::now();
        let c = SimClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_millis(20));
        assert_eq!(c.now(), t0 + Duration::from_millis(20));
    }

    #[test]
    fn a_running_simulated_clock_jumps_to_the_deadline_only_when_idle() {
        let t0 = Instant::now();
        let c = SimClock::running(t0);
        c.wait(Some(t0 + Duration::from_millis(20)), true);
        assert_eq!(c.now(), t0 + Duration::from_millis(20));
        // Not idle: it parks (woken here by an advance from another thread).
        let me = std::thread::current();
        c.watch(me);
        let c = std::sync::Arc::new(c);
        let c2 = std::sync::Arc::clone(&c);
        let h = std::thread::spawn(move || c2.advance(Duration::from_millis(1)));
        c.wait(Some(t0 + Duration::from_secs(5)), false);
        h.join().unwrap();
        assert!(c.now() < t0 + Duration::from_secs(5));
    }

    #[test]
    fn kernel_stamps_map_to_the_monotonic_clock() {
        let base = SystemClock.stamp_base().unwrap();
        let at = base.arrival(base.wall - Duration::from_millis(3)).unwrap();
        assert_eq!(base.mono - at, Duration::from_millis(3));
        let ago = Instant::now() - at;
        assert!(ago >= Duration::from_millis(3) && ago < Duration::from_secs(1));
        assert!(base.arrival(base.wall - Duration::from_secs(60)).is_none());
        assert!(base.arrival(base.wall + Duration::from_secs(60)).is_none());
        assert!(SimClock::new(Instant::now()).stamp_base().is_none());
    }
}
