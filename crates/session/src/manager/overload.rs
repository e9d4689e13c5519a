//! Admission by the media engine's own load (issue 17, "Overload"): a new
//! call is refused (an INVITE with 503 and Retry-After, an originate with
//! [`ManagerError::Overloaded`](super::ManagerError::Overloaded), which
//! the HTTP API turns into 503) when the engine cannot keep every live
//! call on time: its ticks run late, its thread has no headroom left, or
//! the call tasks fall behind the audio it hands them
//! ([`callbridge_rtp::engine::load`]); and, since a call's cost reaches
//! those signals a second or two after its admission, when the calls the
//! engine takes per load window are taken or the engine is at the call
//! count it was last overloaded with
//! ([`callbridge_rtp::engine::admission`]). An admitted call is never
//! ended for it. The refusals are counted, and the engine's load is reported in
//! [`EngineStatus`] (`callbridge_media_engine_*` on `GET /metrics`,
//! `callbridge_calls_refused_total{reason="overload"}`).

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use callbridge_rtp::engine::{MediaEngine, Refusal};

/// How often a paced call asks the engine again: a tenth of its one-second
/// load window (a burst's waiting INVITEs ask ten times a second each; an
/// ask is a lock and a few atomic loads).
pub(crate) const PACED_RETRY: Duration = Duration::from_millis(100);

/// The media engine's load as of its last window, and the calls refused
/// for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStatus {
    /// Headroom left, in thousandths (0: refusing calls; 1000: idle).
    pub headroom_permille: u32,
    /// 99th percentile of tick lateness, in microseconds.
    pub late_p99_us: u64,
    /// Share of ticks 10 ms or more late, in millionths.
    pub stalled_ppm: u32,
    /// Fraction of the time the engine thread worked, in thousandths.
    pub busy_permille: u32,
    /// 99th percentile of the audio events a call had not yet taken.
    pub backlog_p99: u32,
    /// Ticks served more than 2 ms late since start.
    pub late_ticks: u64,
    /// Calls refused because the engine was overloaded, since start.
    pub refused_overload: u64,
    /// The call count admission keeps under, learned from the engine's
    /// last overload (0: none learned yet).
    pub admission_ceiling: u64,
}

/// The admission check and its counter.
#[derive(Debug)]
pub(crate) struct Admission {
    engine: MediaEngine,
    refused: AtomicU64,
}

impl Admission {
    pub(crate) fn new(engine: MediaEngine) -> Admission {
        Admission {
            engine,
            refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn engine(&self) -> &MediaEngine {
        &self.engine
    }

    /// Whether a new call may be admitted; counts a refusal. A call the
    /// engine paces ([`Refusal::Paced`]: the calls it takes before its next
    /// load window are taken) waits up to `wait` for a window that lets it
    /// in, asking again every [`PACED_RETRY`]; the other refusals are at
    /// once.
    pub(crate) async fn admit(&self, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        let why = loop {
            match self.engine.admit() {
                Ok(()) => return true,
                Err(Refusal::Paced) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep_until(until.min(tokio::time::Instant::now() + PACED_RETRY))
                        .await;
                }
                Err(why) => break why,
            }
        };
        let n = self.refused.fetch_add(1, Ordering::Relaxed);
        let load = self.engine.load();
        let what = match why {
            Refusal::Overloaded => "media engine overloaded: new call refused (503)",
            Refusal::Paced => {
                "media engine: the calls it takes before its next load window are taken: new call refused (503)"
            }
            Refusal::Ceiling => {
                "media engine at the call count it was overloaded with: new call refused (503)"
            }
        };
        // A burst refuses hundreds at once: the first of each hundred is
        // logged, the counter has them all.
        if n.is_multiple_of(100) {
            tracing::warn!(
                late_p99 = ?load.late_p99,
                stalled = load.stalled,
                busy = load.busy,
                backlog_p99 = load.backlog_p99,
                calls = load.calls,
                ceiling = self.engine.admission_ceiling(),
                refused_so_far = n + 1,
                "{what}"
            );
        }
        false
    }

    pub(crate) fn status(&self) -> EngineStatus {
        let load = self.engine.load();
        EngineStatus {
            headroom_permille: (self.engine.headroom() * 1000.0) as u32,
            late_p99_us: u64::try_from(load.late_p99.as_micros()).unwrap_or(u64::MAX),
            stalled_ppm: (load.stalled * 1e6) as u32,
            busy_permille: (load.busy * 1000.0) as u32,
            backlog_p99: load.backlog_p99,
            late_ticks: self.engine.counters().late,
            refused_overload: self.refused.load(Ordering::Relaxed),
            admission_ceiling: self
                .engine
                .admission_ceiling()
                .map_or(0, |c| u64::try_from(c).unwrap_or(u64::MAX)),
        }
    }
}
