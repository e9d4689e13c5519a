//! Admission by the media engine's own load (issue 17, "Overload"): a new
//! call is refused (an INVITE with 503 and Retry-After, an originate with
//! [`ManagerError::Overloaded`](super::ManagerError::Overloaded), which
//! the HTTP API turns into 503) when the engine cannot keep every live
//! call on time: its ticks run late, its thread has no headroom left, or
//! the call tasks fall behind the audio it hands them
//! ([`callbridge_rtp::engine::load`]). An admitted call is never ended for
//! it. The refusals are counted, and the engine's load is reported in
//! [`EngineStatus`] (`callbridge_media_engine_*` on `GET /metrics`,
//! `callbridge_calls_refused_total{reason="overload"}`).

use std::sync::atomic::{AtomicU64, Ordering};

use callbridge_rtp::engine::MediaEngine;

/// The media engine's load as of its last window, and the calls refused
/// for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStatus {
    /// Headroom left, in thousandths (0: refusing calls; 1000: idle).
    pub headroom_permille: u32,
    /// 99th percentile of tick lateness, in microseconds.
    pub late_p99_us: u64,
    /// Fraction of the time the engine thread worked, in thousandths.
    pub busy_permille: u32,
    /// 99th percentile of the audio events a call had not yet taken.
    pub backlog_p99: u32,
    /// Ticks served more than 2 ms late since start.
    pub late_ticks: u64,
    /// Calls refused because the engine was overloaded, since start.
    pub refused_overload: u64,
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

    /// Whether a new call may be admitted; counts a refusal.
    pub(crate) fn admit(&self) -> bool {
        if self.engine.admits() {
            return true;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let load = self.engine.load();
        tracing::warn!(
            late_p99 = ?load.late_p99,
            busy = load.busy,
            backlog_p99 = load.backlog_p99,
            calls = load.calls,
            "media engine overloaded: new call refused (503)"
        );
        false
    }

    pub(crate) fn status(&self) -> EngineStatus {
        let load = self.engine.load();
        EngineStatus {
            headroom_permille: (self.engine.headroom() * 1000.0) as u32,
            late_p99_us: u64::try_from(load.late_p99.as_micros()).unwrap_or(u64::MAX),
            busy_permille: (load.busy * 1000.0) as u32,
            backlog_p99: load.backlog_p99,
            late_ticks: self.engine.counters().late,
            refused_overload: self.refused.load(Ordering::Relaxed),
        }
    }
}
