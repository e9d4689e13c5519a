//! The media engine: the threads that own every call's RTP (and RTCP)
//! sockets and run every call's [`MediaCore`](crate::media::MediaCore) on
//! the 20 ms schedule.
//!
//! One engine thread by default ([`EngineConfig::threads`] for more; a new
//! call goes to the thread with the fewest calls). Each pass of a thread
//! reads the sockets of the calls that are due with `recvmmsg`, ticks
//! their cores and sends what they produce with `sendmmsg`
//! (`io`), and exchanges audio with each call's task through
//! preallocated lock-free queues (the link between an engine thread and a
//! [`MediaStream`](crate::stream::MediaStream)), waking the task (its
//! tokio waker) once per pass that had events for it: with audio flowing
//! that is once per call per tick. The RTCP socket is read every 25th
//! pass. No lock and no allocation on that path, and no global: the
//! engine is a value the binary builds with
//! its [`MediaClock`] (a [`SystemClock`](crate::clock::SystemClock); tests
//! pass a [`SimClock`](crate::clock::SimClock)) and hands to whoever opens
//! streams. Real-time scheduling is a setting
//! ([`EngineConfig::realtime_priority`], off by default).
//!
//! The engine measures itself ([`load`]): tick lateness,
//! busy fraction and how far behind the call tasks are, published once per
//! window. [`MediaEngine::admit`] admits a call when that load, counting
//! the calls handed to a thread since its last window in, leaves room,
//! and paces new calls by the windows ([`admission`]: a budget of new
//! calls per window and a ceiling learned from overload); the session
//! manager refuses new calls (503) when it does not.
//!
//! Dropping the last handle of the engine closes every call it still
//! serves (an RTCP BYE each) and joins its threads.

pub mod admission;
mod io;
pub(crate) mod link;
pub mod load;
mod priority;
mod worker;

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, Thread};

pub use self::admission::{AdmissionControl, AdmissionPolicy, Refusal};
pub use self::load::{EngineCounters, EngineLoad, LoadLimits};
pub use self::priority::RealtimePriority;
use self::worker::WorkerShared;
pub(crate) use self::worker::{CallIo, Slot};
use crate::clock::MediaClock;
use crate::error::Error;

/// How an engine runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Engine threads (at least 1; 1 by default).
    pub threads: usize,
    /// The engine threads' scheduling (off by default).
    pub realtime_priority: RealtimePriority,
    /// When the engine refuses new calls.
    pub limits: LoadLimits,
    /// How the engine paces new calls by its windows.
    pub admission: AdmissionPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: 1,
            realtime_priority: RealtimePriority::Off,
            limits: LoadLimits::default(),
            admission: AdmissionPolicy::default(),
        }
    }
}

#[derive(Debug)]
struct Worker {
    shared: Arc<WorkerShared>,
    thread: Thread,
    join: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Inner {
    workers: Vec<Worker>,
    clock: Arc<dyn MediaClock>,
    limits: LoadLimits,
    /// The admission state and the windows it has taken into account;
    /// locked only by the tasks that admit calls.
    admission: Mutex<(u64, AdmissionControl)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for w in &self.workers {
            w.shared
                .stop
                .store(true, std::sync::atomic::Ordering::Release);
            w.thread.unpark();
        }
        for w in &self.workers {
            let handle = w.join.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
    }
}

/// A handle to the media engine (cheap to clone). See the module docs.
///
/// ```
/// use std::sync::Arc;
/// use callbridge_rtp::clock::SystemClock;
/// use callbridge_rtp::engine::{EngineConfig, MediaEngine};
///
/// let engine = MediaEngine::new(EngineConfig::default(), Arc::new(SystemClock)).unwrap();
/// assert_eq!(engine.calls(), 0);
/// assert!(engine.admits());
/// ```
#[derive(Debug, Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl MediaEngine {
    /// Starts the engine's threads on `clock`.
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be started (the threads already
    /// started are stopped and joined).
    pub fn new(cfg: EngineConfig, clock: Arc<dyn MediaClock>) -> Result<MediaEngine, Error> {
        // Built first so that an error below drops it: `Inner`'s drop stops
        // and joins the threads started so far.
        let mut inner = Inner {
            workers: Vec::new(),
            clock: Arc::clone(&clock),
            limits: cfg.limits,
            admission: Mutex::new((0, AdmissionControl::new(cfg.admission))),
        };
        for i in 0..cfg.threads.max(1) {
            let shared = Arc::new(WorkerShared::new());
            let s = Arc::clone(&shared);
            let c = Arc::clone(&clock);
            let want = cfg.realtime_priority;
            let handle = std::thread::Builder::new()
                .name(format!("media-engine-{i}"))
                .spawn(move || worker::run(&s, &*c, want))
                .map_err(Error::io("spawn a media engine thread"))?;
            inner.workers.push(Worker {
                shared,
                thread: handle.thread().clone(),
                join: Mutex::new(Some(handle)),
            });
        }
        Ok(MediaEngine {
            inner: Arc::new(inner),
        })
    }

    /// The engine's clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn MediaClock> {
        &self.inner.clock
    }

    /// Calls the engine serves.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.inner
            .workers
            .iter()
            .map(|w| w.shared.calls.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// The engine's load over the last window: the least loaded thread's
    /// (the one a new call would go to), with the calls handed to it since
    /// counted in ([`EngineLoad::with_added`]), and the calls of all.
    #[must_use]
    pub fn load(&self) -> EngineLoad {
        EngineLoad {
            calls: self.calls(),
            ..self.least_loaded(WorkerShared::load)
        }
    }

    /// The headroom left (0.0 overloaded ..= 1.0 idle), see
    /// [`EngineLoad::headroom`].
    #[must_use]
    pub fn headroom(&self) -> f64 {
        self.load().headroom(&self.inner.limits)
    }

    /// Whether the engine's load leaves room for one more call (see
    /// [`load`]). [`admit`](Self::admit) also paces new calls.
    #[must_use]
    pub fn admits(&self) -> bool {
        !self.load().overloaded(&self.inner.limits)
    }

    /// Admits one more call, or says why not: the engine's load (its last
    /// window, with the calls handed to it since counted in), the budget
    /// of new calls until its next window and the ceiling learned from
    /// its last overload ([`admission`]). The caller opens the call's
    /// stream soon after.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use callbridge_rtp::clock::SystemClock;
    /// use callbridge_rtp::engine::{AdmissionPolicy, EngineConfig, MediaEngine, Refusal};
    ///
    /// let cfg = EngineConfig {
    ///     admission: AdmissionPolicy { step: 2, ..AdmissionPolicy::default() },
    ///     ..EngineConfig::default()
    /// };
    /// let engine = MediaEngine::new(cfg, Arc::new(SystemClock)).unwrap();
    /// assert_eq!(engine.admit(), Ok(()));
    /// assert_eq!(engine.admit(), Ok(()));
    /// // Two calls before the engine has measured any: the third waits
    /// // for a window.
    /// assert!(engine.paces());
    /// assert_eq!(engine.admit(), Err(Refusal::Paced));
    /// ```
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn admit(&self) -> Result<(), Refusal> {
        let load = self.load();
        let overloaded = load.overloaded(&self.inner.limits);
        let calls = load.calls + self.handed();
        self.with_admission(|control| control.admit(calls, overloaded))
    }

    /// Whether a call asking now would be paced: the calls the engine takes
    /// before its next window are taken ([`Refusal::Paced`]). Takes
    /// nothing; a caller that would wait for a window can tell before it
    /// asks.
    #[must_use]
    pub fn paces(&self) -> bool {
        self.with_admission(|control| control.budget() == 0)
    }

    /// Runs `f` on the admission state, once it has taken the windows
    /// published since it last looked into account.
    fn with_admission<T>(&self, f: impl FnOnce(&mut AdmissionControl) -> T) -> T {
        let windows: u64 = self.inner.workers.iter().map(|w| w.shared.windows()).sum();
        let mut a = self
            .inner
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (seen, control) = &mut *a;
        if windows != *seen {
            *seen = windows;
            let window = self.window();
            control.window(window.calls, window.overloaded(&self.inner.limits));
        }
        f(control)
    }

    /// The newest windows as measured: the least loaded thread's signals
    /// (as [`load`](Self::load)) and the calls all threads served in them.
    fn window(&self) -> EngineLoad {
        EngineLoad {
            calls: self
                .inner
                .workers
                .iter()
                .map(|w| w.shared.window().calls)
                .sum(),
            ..self.least_loaded(WorkerShared::window)
        }
    }

    /// The load `of` each thread with the most headroom: the thread a new
    /// call goes to.
    fn least_loaded(&self, of: impl Fn(&WorkerShared) -> EngineLoad) -> EngineLoad {
        let limits = &self.inner.limits;
        self.inner
            .workers
            .iter()
            .map(|w| of(&w.shared))
            .fold(None, |best: Option<EngineLoad>, l| match best {
                Some(b) if b.headroom(limits) >= l.headroom(limits) => Some(b),
                _ => Some(l),
            })
            .unwrap_or_default()
    }

    /// Whether the engine's calls are at the ceiling its admission learned
    /// from its last overload: every new call is refused
    /// ([`Refusal::Ceiling`]) until some end. Readiness probes report it.
    #[must_use]
    pub fn at_ceiling(&self) -> bool {
        self.admission_ceiling()
            .is_some_and(|c| self.calls() + self.handed() >= c)
    }

    /// Calls handed to the threads and not yet taken by them.
    fn handed(&self) -> usize {
        self.inner
            .workers
            .iter()
            .map(|w| w.shared.inbox.len())
            .sum()
    }

    /// The admission's ceiling learned from the engine's last overload
    /// (`None`: none yet), see [`admission`].
    #[must_use]
    pub fn admission_ceiling(&self) -> Option<usize> {
        self.inner
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .ceiling()
    }

    /// The counters of all threads since the engine started.
    #[must_use]
    pub fn counters(&self) -> EngineCounters {
        self.inner.workers.iter().map(|w| w.shared.counters()).fold(
            EngineCounters::default(),
            |a, c| EngineCounters {
                ticks: a.ticks + c.ticks,
                late: a.late + c.late,
                skipped: a.skipped + c.skipped,
            },
        )
    }

    /// The thread a new call goes to: the one with the fewest calls.
    pub(crate) fn pick(&self) -> (Thread, usize) {
        let (i, w) = self
            .inner
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| {
                w.shared.calls.load(std::sync::atomic::Ordering::Relaxed) + w.shared.inbox.len()
            })
            .map_or((0, None), |(i, w)| (i, Some(w)));
        match w {
            Some(w) => (w.thread.clone(), i),
            // Unreachable: `new` starts at least one thread.
            None => (std::thread::current(), 0),
        }
    }

    /// Hands a new call to thread `i`.
    pub(crate) fn add(&self, i: usize, slot: Box<Slot>) -> Result<(), Error> {
        let w = self.inner.workers.get(i).ok_or(Error::InvalidArgument {
            what: "no such engine thread",
        })?;
        if w.shared.stop.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::InvalidArgument {
                what: "media engine stopped",
            });
        }
        w.shared
            .inbox
            .push(slot)
            .map_err(|_| Error::InvalidArgument {
                what: "media engine: too many calls opening at once",
            })?;
        w.shared
            .added
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        w.thread.unpark();
        Ok(())
    }
}

pub(crate) use self::io::enable_timestamps;
