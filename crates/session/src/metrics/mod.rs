//! The session manager's metrics registry (issue 7, "GET /metrics"): call
//! counters by direction and end reason, RTP packet counters, the jitter
//! buffer depth gauge, barge-ins, model reconnects, the latency and
//! duration histograms, and the model provider's reachability as last
//! seen. [`crate::Manager::metrics`] returns it as a plain-data
//! [`MetricsSnapshot`]; the agent renders that as Prometheus text.
//!
//! Everything is atomics and fixed-bucket [`histogram`]s allocated once at
//! start: a call's media path adds to counters through its per-call
//! recorder (the private `call` module) and never allocates or locks per
//! 20 ms frame.
//!
//! # What each figure means
//! - **Calls started**: calls the manager admitted (inbound INVITEs it took
//!   on, outbound originates), counted at admission. INVITEs the SIP core
//!   refused itself (503 at capacity or while draining) are not counted.
//! - **Calls ended**: counted when the call's supervisor has joined it, by
//!   direction and the machine's end reason (a call task that died counts
//!   as `error`).
//! - **RTP packets in/out/lost/late**: from each call's `MediaStream`
//!   stats (`packets_in`, `packets_out`, the jitter buffer's `lost` and
//!   `late`), added **live**: each call adds what is new once a second
//!   (every 50 media ticks) and the rest when its media stops. A stream
//!   that stops by itself loses at most its last second.
//! - **RTP packets rejected**, by reason: packets the call's latch
//!   dropped (`callbridge_rtp::latch`): `outside_allowed_peers` (source
//!   outside `sip.allowed_peers`), `latch_policy` (a source `rtp.latch`
//!   does not allow), `not_peer` (another source once the call's peer was
//!   heard or latched), `before_answer` (a latch candidate before the
//!   inbound call's answer told anyone our port). Added live like the
//!   other RTP counters.
//! - **Jitter buffer depth**: the **mean over live calls** whose stream has
//!   received RTP of each call's buffered audio, in ms, updated once a
//!   second: the rtp stream's `MediaStats::jitter_depth` (from the next
//!   frame to play to the newest packet, sampled after a tick's playout).
//! - **Barge-ins**: the machine's `Metric::BargeIn`: the caller interrupted
//!   a reply that was playing (a `ClearPlayback` with nothing playing is
//!   not one; the store's `barge-in` events count every clear).
//! - **Model reconnects**: `ModelEvent::Resumed`, a model session resumed
//!   on a new connection after the server's `GoingAway`, or after an
//!   unexpected drop while a resumption handle was known (Gemini).
//! - **Model reply timeouts**: the machine's `Metric::ModelReplyTimeout`:
//!   the model owed a reply and sent nothing within
//!   `lifecycle::Config::model_reply_timeout`; the call ended as a model
//!   failure (also counted there).
//! - **Answer to first audio**: from the 200 OK (sent, inbound; received,
//!   outbound) to the first media tick that sent agent audio (a frame that
//!   is not all zeros: the stream sends zeros when nothing is queued).
//!   Inbound this is the greeting; outbound with the callee speaking first
//!   it is the first reply.
//! - **Caller stop to agent audio**: from the end of the caller's speech to
//!   the first agent audio sent of the next reply that starts after it (a
//!   reply still playing when the caller stops is not the answer). The end
//!   of speech comes from an energy detector on the caller's decoded audio
//!   as it leaves the jitter buffer (the private `call` module): the first
//!   silent frame after at least 100 ms of speech (RMS above 400). A reply
//!   that has not started when the caller speaks again (100 ms) is not
//!   measured.
//! - **Call duration**: the machine's `Metric::CallDuration`, from the
//!   answer to the end (answered calls only).
//! - **Model reachability**: the outcome and time of the last model
//!   session opening (success or failure).
//!
//! # Per-call figures in the store
//! Each call also writes its latency figures as events on its session,
//! kind `note` (crm-store `EventKind::Note`), detail
//! `{"metric": "answer_to_first_audio_ms", "value": N}` (once, when the
//! first agent audio is sent) and
//! `{"metric": "caller_stop_to_agent_audio_ms", "value": N}` (once per
//! measured caller turn), `N` an integer number of milliseconds. They go
//! with the call's other batched events (written at least once a second
//! and at the end), so `GET /api/sessions/{id}` and `agent demo` show them.

pub(crate) mod call;
pub mod histogram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub use histogram::{DURATION_BUCKETS, HistogramSnapshot, LATENCY_BUCKETS};

use callbridge_rtp::latch::RejectReason;

use crate::lifecycle::{Direction, EndReason};
use histogram::Histogram;

const REASONS: usize = EndReason::ALL.len();
const REJECT_REASONS: usize = RejectReason::ALL.len();

/// The registry (see the module docs). One per manager, shared with its
/// calls.
#[derive(Debug)]
pub struct Metrics {
    started: [AtomicU64; 2],
    ended: [[AtomicU64; REASONS]; 2],
    rtp_in: AtomicU64,
    rtp_out: AtomicU64,
    rtp_lost: AtomicU64,
    rtp_late: AtomicU64,
    rtp_rejected: [AtomicU64; REJECT_REASONS],
    depth_sum_ms: AtomicU64,
    depth_streams: AtomicU64,
    barge_ins: AtomicU64,
    model_reconnects: AtomicU64,
    model_reply_timeouts: AtomicU64,
    answer_to_first_audio: Histogram,
    caller_stop_to_agent_audio: Histogram,
    call_duration: Histogram,
    model: Mutex<Option<ModelReachability>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Default::default(),
            ended: Default::default(),
            rtp_in: AtomicU64::new(0),
            rtp_out: AtomicU64::new(0),
            rtp_lost: AtomicU64::new(0),
            rtp_late: AtomicU64::new(0),
            rtp_rejected: Default::default(),
            depth_sum_ms: AtomicU64::new(0),
            depth_streams: AtomicU64::new(0),
            barge_ins: AtomicU64::new(0),
            model_reconnects: AtomicU64::new(0),
            model_reply_timeouts: AtomicU64::new(0),
            answer_to_first_audio: Histogram::new(LATENCY_BUCKETS),
            caller_stop_to_agent_audio: Histogram::new(LATENCY_BUCKETS),
            call_duration: Histogram::new(DURATION_BUCKETS),
            model: Mutex::new(None),
        }
    }
}

/// The model provider's reachability as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelReachability {
    /// Whether the last model session opening succeeded.
    pub reachable: bool,
    /// When it finished (success or failure).
    pub at: jiff::Timestamp,
}

/// The metrics as of one moment: plain data (see the module docs for what
/// each figure means).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Calls admitted since start, for each direction (both always listed,
    /// inbound first).
    pub calls_started: Vec<(Direction, u64)>,
    /// Calls ended since start by direction and end reason; only non-zero
    /// pairs, in [`Direction::ALL`] then [`EndReason::ALL`] order.
    pub calls_ended: Vec<(Direction, EndReason, u64)>,
    /// RTP packets received (accepted by the stream's latch).
    pub rtp_packets_in: u64,
    /// RTP packets sent.
    pub rtp_packets_out: u64,
    /// Frames whose packet never arrived in time (jitter buffer `lost`).
    pub rtp_packets_lost: u64,
    /// Packets that arrived after their frame was played or concealed.
    pub rtp_packets_late: u64,
    /// RTP packets the latch rejected, for every reason (zero or not), in
    /// [`RejectReason::ALL`] order.
    pub rtp_packets_rejected: Vec<(RejectReason, u64)>,
    /// Mean jitter buffer depth over live calls receiving RTP,
    /// in ms (0 when there are none).
    pub jitter_buffer_depth_ms: f64,
    /// How many live calls that mean is over.
    pub jitter_buffer_streams: u64,
    /// Replies the caller interrupted.
    pub barge_ins: u64,
    /// Model sessions resumed on a new connection.
    pub model_reconnects: u64,
    /// Calls whose model owed a reply and stayed silent past the bound.
    pub model_reply_timeouts: u64,
    /// 200 OK to the first agent audio sent, seconds.
    pub answer_to_first_audio: HistogramSnapshot,
    /// End of caller speech to the first agent audio sent, seconds.
    pub caller_stop_to_agent_audio: HistogramSnapshot,
    /// Answer to end of answered calls, seconds.
    pub call_duration: HistogramSnapshot,
    /// The last model session opening; `None` before the first.
    pub model: Option<ModelReachability>,
}

impl Metrics {
    /// Everything as of now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut calls_ended = Vec::new();
        for d in Direction::ALL {
            for r in EndReason::ALL {
                let n = load(&self.ended[d.index()][r.index()]);
                if n > 0 {
                    calls_ended.push((d, r, n));
                }
            }
        }
        let streams = load(&self.depth_streams);
        MetricsSnapshot {
            calls_started: Direction::ALL
                .iter()
                .map(|&d| (d, load(&self.started[d.index()])))
                .collect(),
            calls_ended,
            rtp_packets_in: load(&self.rtp_in),
            rtp_packets_out: load(&self.rtp_out),
            rtp_packets_lost: load(&self.rtp_lost),
            rtp_packets_late: load(&self.rtp_late),
            rtp_packets_rejected: RejectReason::ALL
                .iter()
                .zip(&self.rtp_rejected)
                .map(|(r, n)| (*r, load(n)))
                .collect(),
            jitter_buffer_depth_ms: if streams == 0 {
                0.0
            } else {
                load(&self.depth_sum_ms) as f64 / streams as f64
            },
            jitter_buffer_streams: streams,
            barge_ins: load(&self.barge_ins),
            model_reconnects: load(&self.model_reconnects),
            model_reply_timeouts: load(&self.model_reply_timeouts),
            answer_to_first_audio: self.answer_to_first_audio.snapshot(),
            caller_stop_to_agent_audio: self.caller_stop_to_agent_audio.snapshot(),
            call_duration: self.call_duration.snapshot(),
            model: *self.model.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    pub(crate) fn call_started(&self, d: Direction) {
        self.started[d.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call_ended(&self, d: Direction, r: EndReason) {
        self.ended[d.index()][r.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn model_opened(&self, reachable: bool) {
        *self.model.lock().unwrap_or_else(PoisonError::into_inner) = Some(ModelReachability {
            reachable,
            at: jiff::Timestamp::now(),
        });
    }

    pub(crate) fn model_reconnected(&self) {
        self.model_reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn model_reply_timeout(&self) {
        self.model_reply_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn barge_in(&self) {
        self.barge_ins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call_duration(&self, d: Duration) {
        self.call_duration.observe(d);
    }

    pub(crate) fn answer_to_first_audio(&self, d: Duration) {
        self.answer_to_first_audio.observe(d);
    }

    pub(crate) fn caller_stop_to_agent_audio(&self, d: Duration) {
        self.caller_stop_to_agent_audio.observe(d);
    }

    pub(crate) fn rtp(&self, delta: call::RtpCounts) {
        self.rtp_in.fetch_add(delta.packets_in, Ordering::Relaxed);
        self.rtp_out.fetch_add(delta.packets_out, Ordering::Relaxed);
        self.rtp_lost.fetch_add(delta.lost, Ordering::Relaxed);
        self.rtp_late.fetch_add(delta.late, Ordering::Relaxed);
        for (r, n) in RejectReason::ALL.iter().zip(&self.rtp_rejected) {
            n.fetch_add(delta.rejected.get(*r), Ordering::Relaxed);
        }
    }

    /// A call's depth joins (`joined`) or changes from `old` to
    /// `new` ms.
    pub(crate) fn depth(&self, old: Option<u64>, new: Option<u64>) {
        match (old, new) {
            (None, Some(n)) => {
                self.depth_streams.fetch_add(1, Ordering::Relaxed);
                self.depth_sum_ms.fetch_add(n, Ordering::Relaxed);
            }
            (Some(o), None) => {
                self.depth_sum_ms.fetch_sub(o, Ordering::Relaxed);
                self.depth_streams.fetch_sub(1, Ordering::Relaxed);
            }
            (Some(o), Some(n)) if n >= o => {
                self.depth_sum_ms.fetch_add(n - o, Ordering::Relaxed);
            }
            (Some(o), Some(n)) => {
                self.depth_sum_ms.fetch_sub(o - n, Ordering::Relaxed);
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_calls_are_listed_by_direction_and_reason_only_when_counted() {
        let m = Metrics::default();
        m.call_started(Direction::Inbound);
        m.call_started(Direction::Inbound);
        m.call_ended(Direction::Inbound, EndReason::CallerHangup);
        m.call_ended(Direction::Outbound, EndReason::Busy);
        let s = m.snapshot();
        assert_eq!(
            s.calls_started,
            vec![(Direction::Inbound, 2), (Direction::Outbound, 0)]
        );
        assert_eq!(
            s.calls_ended,
            vec![
                (Direction::Inbound, EndReason::CallerHangup, 1),
                (Direction::Outbound, EndReason::Busy, 1)
            ]
        );
    }

    #[test]
    fn depth_gauge_is_the_mean_over_joined_streams_and_returns_to_zero() {
        let m = Metrics::default();
        m.depth(None, Some(40));
        m.depth(None, Some(80));
        assert_eq!(m.snapshot().jitter_buffer_depth_ms, 60.0);
        m.depth(Some(80), Some(20));
        assert_eq!(m.snapshot().jitter_buffer_depth_ms, 30.0);
        m.depth(Some(40), None);
        m.depth(Some(20), None);
        let s = m.snapshot();
        assert_eq!(
            (s.jitter_buffer_depth_ms, s.jitter_buffer_streams),
            (0.0, 0)
        );
    }

    #[test]
    fn reachability_is_the_last_opening() {
        let m = Metrics::default();
        assert_eq!(m.snapshot().model, None);
        m.model_opened(true);
        m.model_opened(false);
        assert_eq!(m.snapshot().model.map(|r| r.reachable), Some(false));
    }
}
