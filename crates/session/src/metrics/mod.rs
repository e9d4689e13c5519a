//! The session manager's metrics registry (issue 7, "GET /metrics"): call
//! counters by direction and end reason, RTP packet counters, the jitter
//! buffer depth gauge, barge-ins, model reconnects, the latency and
//! duration histograms, and the model provider's reachability as last
//! seen. [`crate::Manager::metrics`] returns it as a plain-data
//! [`MetricsSnapshot`]; [`Metrics::register`] puts its families into a
//! `prometheus_client` [`Registry`], which the agent encodes as Prometheus
//! text.
//!
//! The counters and histograms are `prometheus_client`'s, one registry per
//! manager (no process-global recorder, so tests can run many managers
//! side by side). Every labelled series is created once at start and its
//! handle kept: a call's media path adds to counters through its per-call
//! recorder (the private `call` module) and never allocates or locks per
//! 20 ms frame; a histogram takes its short lock per observation (once
//! per call or caller turn).
//!
//! # What each figure means
//! - **Calls started**: calls the manager admitted (inbound INVITEs it took
//!   on, outbound originates), counted at admission, by direction,
//!   `transport` (`sip`, or the carrier: `twilio`, `vonage`) and model
//!   `provider` (`gemini`, `openai`). INVITEs the SIP core refused itself
//!   (503 at capacity or while draining) are not counted.
//! - **Calls refused**: inbound INVITEs the manager refused, by
//!   [`CallRefusal`] (`limit`: `calls.max_concurrent` reached; `codec`: 488, no
//!   common codec or an unusable offer; `loop`: 482, a second INVITE for a
//!   live Call-ID; `media`: no RTP port or file descriptor). The agent's
//!   `callbridge_calls_refused_total` adds the store's, the media engine's
//!   (overload) and the SIP core's (draining) refusals to these.
//! - **Calls ended**: counted when the call's supervisor has joined it, by
//!   direction, the machine's end reason, transport and provider (a call
//!   task that died counts as `error`).
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
//!   received RTP of each call's buffered audio (kept in ms, exported in
//!   seconds, Prometheus's base unit), updated once a
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
//! - **AMD verdicts** (`callbridge_amd_verdicts_total{verdict}`): every
//!   verdict of answering-machine detection (issue 19): the first one of
//!   each call (`human`, `machine`, `no_speech`, `unreachable`, `unknown`)
//!   and a machine greeting's end (`machine_end_beep`,
//!   `machine_end_silence`, `machine_end_timeout`). Every verdict is
//!   exported from start at 0 (a known label set).
//! - **AMD decision time** (`callbridge_amd_decision_seconds`): from the
//!   answer to each call's first verdict.
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
//! - **Model tokens**
//!   (`callbridge_model_tokens_total{provider,direction,purpose}`): the
//!   input and output tokens of every usage report, added when the report
//!   arrives. `purpose="call"`: the calls' realtime model sessions
//!   (Gemini `usageMetadata`, OpenAI `response.done`; GPT-Live bills the
//!   live session by audio time and reports no tokens, its audio goes to
//!   the session's `audio_ms`). `purpose="delegation"`: the text model a
//!   GPT-Live session delegates to (Responses `response.completed`).
//!   `purpose="summary"`: the post-call summaries' text API, under its
//!   own provider (`gemini`, `openai`).
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_rtp::latch::{RejectReason, RejectedPackets};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::lifecycle::{Direction, EndReason};

/// Upper bounds (seconds) for telephony latencies: answer to first audio,
/// end of caller speech to the reply. A good reply starts within 0.3-0.8 s;
/// several seconds is a broken call.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

/// Upper bounds (seconds) for call durations, from one second to two hours.
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// Upper bounds (seconds) for the answering-machine detection's decision
/// time: a person within 1-2 s, no verdict later than 8 s (issue 19).
pub const AMD_BUCKETS: &[f64] = &[
    0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
];

const REASONS: usize = EndReason::ALL.len();
const REFUSALS: usize = CallRefusal::ALL.len();

/// Why the manager refused an inbound INVITE (the `reason` label of
/// `callbridge_calls_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallRefusal {
    /// `calls.max_concurrent` live calls already (503).
    Limit,
    /// No common codec, or an offer that cannot be answered (488).
    Codec,
    /// A second INVITE for a live Call-ID (482).
    Loop,
    /// No RTP port or file descriptor for the call's media (503).
    Media,
}

impl CallRefusal {
    /// Every reason, in the order of the snapshot and the metrics page.
    pub const ALL: [CallRefusal; 4] = [
        CallRefusal::Limit,
        CallRefusal::Codec,
        CallRefusal::Loop,
        CallRefusal::Media,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallRefusal::Limit => "limit",
            CallRefusal::Codec => "codec",
            CallRefusal::Loop => "loop",
            CallRefusal::Media => "media",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `provider` label of a model provider.
pub fn provider_label(p: callbridge_llm_bridge::Provider) -> &'static str {
    match p {
        callbridge_llm_bridge::Provider::Gemini => "gemini",
        callbridge_llm_bridge::Provider::OpenAi => "openai",
        callbridge_llm_bridge::Provider::GptLive => "gpt-live",
        _ => "other",
    }
}
const REJECT_REASONS: usize = RejectReason::ALL.len();

/// A series' labels: `N` fixed `(name, value)` pairs.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// The registry (see the module docs). One per manager, shared with its
/// calls.
#[derive(Debug)]
pub struct Metrics {
    started: Family<Labels<3>, Counter>,
    /// The same calls by direction only (the snapshot's figures).
    started_by: [Counter; 2],
    refused_by: [Counter; REFUSALS],
    ended: Family<Labels<4>, Counter>,
    /// The same calls by direction and reason only (the snapshot's).
    ended_by: [[Counter; REASONS]; 2],
    rtp_in: Counter,
    rtp_out: Counter,
    rtp_lost: Counter,
    rtp_late: Counter,
    rtp_rejected: Family<Labels<1>, Counter>,
    rtp_rejected_by: [Counter; REJECT_REASONS],
    depth: DepthGauge,
    barge_ins: Counter,
    model_reconnects: Counter,
    model_reply_timeouts: Counter,
    answer_to_first_audio: Histogram,
    caller_stop_to_agent_audio: Histogram,
    call_duration: Histogram,
    amd_verdicts: Family<Labels<1>, Counter>,
    amd_decision: Histogram,
    /// `callbridge_trunk_registrations`: trunk registrations in place
    /// now (ops, issue 22).
    trunk_registered: Gauge,
    /// `callbridge_model_tokens_total{provider,direction,purpose}` (token
    /// usage, issue 22).
    model_tokens: Family<Labels<3>, Counter>,
    model: Mutex<Option<ModelReachability>>,
}

/// What model tokens were spent on: the `purpose` label of
/// `callbridge_model_tokens_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// The call's realtime model session.
    Call,
    /// The text model a GPT-Live session delegated work to (Responses
    /// delegation).
    Delegation,
    /// The post-call summary.
    Summary,
}

impl TokenPurpose {
    /// The label value: `call`, `delegation`, `summary`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Call => "call",
            TokenPurpose::Delegation => "delegation",
            TokenPurpose::Summary => "summary",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let started = Family::<Labels<3>, Counter>::default();
        let started_by = Direction::ALL.map(|_| Counter::default());
        let ended = Family::<Labels<4>, Counter>::default();
        let ended_by = Direction::ALL.map(|_| EndReason::ALL.map(|_| Counter::default()));
        let rtp_rejected = Family::<Labels<1>, Counter>::default();
        let rtp_rejected_by =
            RejectReason::ALL.map(|r| rtp_rejected.get_or_create_owned(&[("reason", r.as_str())]));
        // Every verdict from start, at 0: a label set that is known ahead
        // is exported before its first event (Prometheus practice), so
        // `rate()` and the dashboard's panel have a series to work on.
        let amd_verdicts = Family::<Labels<1>, Counter>::default();
        for v in callbridge_amd::Verdict::ALL {
            amd_verdicts.get_or_create_owned(&[("verdict", v.as_str())]);
        }
        Metrics {
            started,
            started_by,
            refused_by: Default::default(),
            ended,
            ended_by,
            rtp_in: Counter::default(),
            rtp_out: Counter::default(),
            rtp_lost: Counter::default(),
            rtp_late: Counter::default(),
            rtp_rejected,
            rtp_rejected_by,
            depth: DepthGauge::default(),
            barge_ins: Counter::default(),
            model_reconnects: Counter::default(),
            model_reply_timeouts: Counter::default(),
            answer_to_first_audio: Histogram::new(LATENCY_BUCKETS.iter().copied()),
            caller_stop_to_agent_audio: Histogram::new(LATENCY_BUCKETS.iter().copied()),
            call_duration: Histogram::new(DURATION_BUCKETS.iter().copied()),
            amd_verdicts,
            amd_decision: Histogram::new(AMD_BUCKETS.iter().copied()),
            trunk_registered: Gauge::default(),
            model_tokens: Family::default(),
            model: Mutex::new(None),
        }
    }
}

/// The jitter buffer depth gauge: the mean over the calls in it, computed
/// when read (a sum and a count, each one atomic).
#[derive(Debug, Clone, Default)]
struct DepthGauge {
    sum_ms: Arc<AtomicU64>,
    streams: Arc<AtomicU64>,
}

impl DepthGauge {
    /// `(mean in ms, calls)`; 0 ms when there are none.
    fn read(&self) -> (f64, u64) {
        let streams = self.streams.load(Ordering::Relaxed);
        if streams == 0 {
            return (0.0, 0);
        }
        let sum = self.sum_ms.load(Ordering::Relaxed);
        (sum as f64 / streams as f64, streams)
    }
}

impl EncodeMetric for DepthGauge {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.read().0 / 1000.0))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// Registers `metric` as `name`; `prometheus_client` ends each HELP text
/// with a full stop itself.
fn add(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help.trim_end_matches('.'), metric);
}

/// RTP counters of one call (totals or a delta).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpCounts {
    /// Packets received (accepted by the stream's latch).
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Frames whose packet never arrived in time.
    pub lost: u64,
    /// Packets that arrived after their frame was played.
    pub late: u64,
    /// Packets the latch dropped, by reason.
    pub rejected: RejectedPackets,
}

/// The model provider's reachability as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelReachability {
    /// Whether the last model session opening succeeded.
    pub reachable: bool,
    /// When it finished (success or failure).
    pub at: jiff::Timestamp,
}

/// A histogram's figures as of one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramSnapshot {
    /// The sum of every observation, in seconds.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    fn of(h: &Histogram) -> HistogramSnapshot {
        HistogramSnapshot {
            sum: h.sum(),
            count: h.count(),
        }
    }
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
    /// Inbound INVITEs the manager refused, for every reason (zero or
    /// not), in [`CallRefusal::ALL`] order.
    pub calls_refused: Vec<(CallRefusal, u64)>,
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
    /// Adds every family to `registry`, under the names of the agent
    /// contract (a counter's `_total` is added by the encoder). The
    /// registry shares the series: what calls add shows at the next
    /// encoding.
    pub fn register(&self, registry: &mut Registry) {
        add(
            registry,
            "callbridge_calls_started",
            "Calls admitted since start (inbound INVITEs taken on, outbound originates), by direction, transport and model provider.",
            self.started.clone(),
        );
        add(
            registry,
            "callbridge_calls_ended",
            "Calls ended since start, by direction, end reason, transport and model provider.",
            self.ended.clone(),
        );
        let counters = [
            (
                "callbridge_rtp_packets_in",
                "RTP packets received.",
                &self.rtp_in,
            ),
            (
                "callbridge_rtp_packets_out",
                "RTP packets sent.",
                &self.rtp_out,
            ),
            (
                "callbridge_rtp_packets_lost",
                "Frames whose RTP packet never arrived in time.",
                &self.rtp_lost,
            ),
            (
                "callbridge_rtp_packets_late",
                "RTP packets that arrived after their frame was played.",
                &self.rtp_late,
            ),
            (
                "callbridge_barge_ins",
                "Agent replies interrupted by the caller.",
                &self.barge_ins,
            ),
            (
                "callbridge_model_reconnects",
                "Model sessions resumed on a new connection (after goAway or a drop).",
                &self.model_reconnects,
            ),
            (
                "callbridge_model_reply_timeouts",
                "Calls ended because the model owed a reply and stayed silent.",
                &self.model_reply_timeouts,
            ),
        ];
        for (name, help, c) in counters {
            add(registry, name, help, c.clone());
        }
        add(
            registry,
            "callbridge_rtp_rejected_packets",
            "RTP and RTCP packets dropped, by reason: a source that is not the call's media peer, or SRTP/SRTCP authentication failed (srtp_auth).",
            self.rtp_rejected.clone(),
        );
        add(
            registry,
            "callbridge_amd_verdicts",
            "Answering-machine detection verdicts, by verdict (first verdicts and machine greeting ends).",
            self.amd_verdicts.clone(),
        );
        add(
            registry,
            "callbridge_jitter_buffer_depth_seconds",
            "Mean estimated jitter buffer depth over live calls receiving RTP, in seconds.",
            self.depth.clone(),
        );
        let histograms = [
            (
                "callbridge_answer_to_first_audio_seconds",
                "From the 200 OK to the first agent audio packet sent.",
                &self.answer_to_first_audio,
            ),
            (
                "callbridge_caller_stop_to_agent_audio_seconds",
                "From the end of caller speech (energy detector) to the first reply packet sent.",
                &self.caller_stop_to_agent_audio,
            ),
            (
                "callbridge_call_duration_seconds",
                "From the answer to the end of answered calls.",
                &self.call_duration,
            ),
            (
                "callbridge_amd_decision_seconds",
                "From the answer to the first answering-machine detection verdict.",
                &self.amd_decision,
            ),
        ];
        for (name, help, h) in histograms {
            add(registry, name, help, h.clone());
        }
        add(
            registry,
            "callbridge_trunk_registrations",
            "Trunk registrations in place now (1 while registered with the configured trunk; 0 without one, or while it fails).",
            self.trunk_registered.clone(),
        );
        add(
            registry,
            "callbridge_model_tokens",
            "Model tokens the provider reported, by provider, direction (input, output) and purpose (call: the realtime model; delegation: the text model a gpt-live session delegates to; summary: post-call summaries); gpt-live bills its live session by audio time and reports no call tokens.",
            self.model_tokens.clone(),
        );
    }

    /// Counts the tokens of one usage report of `provider`, made for
    /// `purpose` (token usage, issue 22).
    pub fn model_tokens(
        &self,
        provider: &'static str,
        purpose: TokenPurpose,
        input: u64,
        output: u64,
    ) {
        for (direction, n) in [("input", input), ("output", output)] {
            self.model_tokens
                .get_or_create(&[
                    ("provider", provider),
                    ("direction", direction),
                    ("purpose", purpose.as_str()),
                ])
                .inc_by(n);
        }
    }

    /// The tokens counted for `provider` in `direction` (`input`,
    /// `output`) for `purpose`.
    pub fn model_tokens_counted(
        &self,
        provider: &'static str,
        direction: &'static str,
        purpose: TokenPurpose,
    ) -> u64 {
        self.model_tokens
            .get_or_create(&[
                ("provider", provider),
                ("direction", direction),
                ("purpose", purpose.as_str()),
            ])
            .get()
    }

    /// A trunk registration was established (`true`) or lost, removed or
    /// refused (`false`); each registration counts once while in place.
    pub fn trunk_registration(&self, was: bool, now: bool) {
        match (was, now) {
            (false, true) => {
                self.trunk_registered.inc();
            }
            (true, false) => {
                self.trunk_registered.dec();
            }
            _ => {}
        }
    }

    /// Everything as of now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut calls_ended = Vec::new();
        for d in Direction::ALL {
            for r in EndReason::ALL {
                let n = self.ended_by[d.index()][r.index()].get();
                if n > 0 {
                    calls_ended.push((d, r, n));
                }
            }
        }
        let (depth_ms, streams) = self.depth.read();
        MetricsSnapshot {
            calls_started: Direction::ALL
                .iter()
                .map(|&d| (d, self.started_by[d.index()].get()))
                .collect(),
            calls_ended,
            rtp_packets_in: self.rtp_in.get(),
            rtp_packets_out: self.rtp_out.get(),
            rtp_packets_lost: self.rtp_lost.get(),
            rtp_packets_late: self.rtp_late.get(),
            rtp_packets_rejected: RejectReason::ALL
                .iter()
                .zip(&self.rtp_rejected_by)
                .map(|(r, n)| (*r, n.get()))
                .collect(),
            jitter_buffer_depth_ms: depth_ms,
            jitter_buffer_streams: streams,
            calls_refused: CallRefusal::ALL
                .iter()
                .map(|&r| (r, self.refused_by[r.index()].get()))
                .collect(),
            barge_ins: self.barge_ins.get(),
            model_reconnects: self.model_reconnects.get(),
            model_reply_timeouts: self.model_reply_timeouts.get(),
            answer_to_first_audio: HistogramSnapshot::of(&self.answer_to_first_audio),
            caller_stop_to_agent_audio: HistogramSnapshot::of(&self.caller_stop_to_agent_audio),
            call_duration: HistogramSnapshot::of(&self.call_duration),
            model: *self.model.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Counts a call admitted, by direction, transport (`sip` or the
    /// carrier) and model provider label ([`provider_label`]).
    pub fn call_started(&self, d: Direction, transport: &'static str, provider: &'static str) {
        self.started_by[d.index()].inc();
        self.started
            .get_or_create(&[
                ("direction", d.as_str()),
                ("transport", transport),
                ("provider", provider),
            ])
            .inc();
    }

    /// Creates the `sip` series of calls started (both directions) and
    /// ended (every direction and reason) for `provider` at zero, so rates
    /// over them work from the first call.
    pub fn prepare(&self, provider: &'static str) {
        self.model_tokens(provider, TokenPurpose::Call, 0, 0);
        for d in Direction::ALL {
            let _ = self.started.get_or_create(&[
                ("direction", d.as_str()),
                ("transport", "sip"),
                ("provider", provider),
            ]);
            for r in EndReason::ALL {
                let _ = self.ended.get_or_create(&[
                    ("direction", d.as_str()),
                    ("reason", r.as_str()),
                    ("transport", "sip"),
                    ("provider", provider),
                ]);
            }
        }
    }

    /// Counts an inbound INVITE refused.
    pub fn call_refused(&self, r: CallRefusal) {
        self.refused_by[r.index()].inc();
    }

    /// Counts a call ended, by direction and reason, transport and
    /// provider (as [`Metrics::call_started`]).
    pub fn call_ended(
        &self,
        d: Direction,
        r: EndReason,
        transport: &'static str,
        provider: &'static str,
    ) {
        self.ended_by[d.index()][r.index()].inc();
        self.ended
            .get_or_create(&[
                ("direction", d.as_str()),
                ("reason", r.as_str()),
                ("transport", transport),
                ("provider", provider),
            ])
            .inc();
    }

    /// Notes the outcome of a model session opening, now.
    pub fn model_opened(&self, reachable: bool) {
        *self.model.lock().unwrap_or_else(PoisonError::into_inner) = Some(ModelReachability {
            reachable,
            at: jiff::Timestamp::now(),
        });
    }

    /// Counts a model session resumed on a new connection.
    pub fn model_reconnected(&self) {
        self.model_reconnects.inc();
    }

    /// Counts a call ended for a model that owed a reply.
    pub fn model_reply_timeout(&self) {
        self.model_reply_timeouts.inc();
    }

    /// Counts a reply the caller interrupted.
    pub fn barge_in(&self) {
        self.barge_ins.inc();
    }

    /// Counts an answering-machine detection verdict (its snake-case
    /// name, a fixed set); `decided`: the time from the answer, for a
    /// call's first verdict.
    pub fn amd_verdict(&self, verdict: &'static str, decided: Option<Duration>) {
        self.amd_verdicts
            .get_or_create_owned(&[("verdict", verdict)])
            .inc();
        if let Some(d) = decided {
            self.amd_decision.observe(d.as_secs_f64());
        }
    }

    /// Observes an answered call's duration.
    pub fn call_duration(&self, d: Duration) {
        self.call_duration.observe(d.as_secs_f64());
    }

    /// Observes the time from the answer to the first agent audio.
    pub fn answer_to_first_audio(&self, d: Duration) {
        self.answer_to_first_audio.observe(d.as_secs_f64());
    }

    /// Observes the time from the end of caller speech to the reply.
    pub fn caller_stop_to_agent_audio(&self, d: Duration) {
        self.caller_stop_to_agent_audio.observe(d.as_secs_f64());
    }

    /// Adds one call's new RTP counts.
    pub fn rtp(&self, delta: RtpCounts) {
        self.rtp_in.inc_by(delta.packets_in);
        self.rtp_out.inc_by(delta.packets_out);
        self.rtp_lost.inc_by(delta.lost);
        self.rtp_late.inc_by(delta.late);
        for (r, n) in RejectReason::ALL.iter().zip(&self.rtp_rejected_by) {
            n.inc_by(delta.rejected.get(*r));
        }
    }

    /// A call's depth joins (`old` `None`), changes from `old` to `new`
    /// ms, or leaves (`new` `None`).
    pub fn depth(&self, old: Option<u64>, new: Option<u64>) {
        let (sum, streams) = (&self.depth.sum_ms, &self.depth.streams);
        match (old, new) {
            (None, Some(n)) => {
                streams.fetch_add(1, Ordering::Relaxed);
                sum.fetch_add(n, Ordering::Relaxed);
            }
            (Some(o), None) => {
                sum.fetch_sub(o, Ordering::Relaxed);
                streams.fetch_sub(1, Ordering::Relaxed);
            }
            (Some(o), Some(n)) if n >= o => {
                sum.fetch_add(n - o, Ordering::Relaxed);
            }
            (Some(o), Some(n)) => {
                sum.fetch_sub(o - n, Ordering::Relaxed);
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_registrations_count_each_registration_once_while_in_place() {
        let m = Metrics::default();
        m.trunk_registration(false, true);
        m.trunk_registration(true, true); // a refresh
        assert_eq!(m.trunk_registered.get(), 1);
        m.trunk_registration(false, true); // a second trunk
        assert_eq!(m.trunk_registered.get(), 2);
        m.trunk_registration(true, false);
        m.trunk_registration(false, false); // a failure while not registered
        assert_eq!(m.trunk_registered.get(), 1);
    }

    #[test]
    fn ended_calls_are_listed_by_direction_and_reason_only_when_counted() {
        let m = Metrics::default();
        m.call_started(Direction::Inbound, "sip", "gemini");
        m.call_started(Direction::Inbound, "twilio", "gemini");
        m.call_ended(Direction::Inbound, EndReason::CallerHangup, "sip", "gemini");
        m.call_ended(Direction::Outbound, EndReason::Busy, "sip", "gemini");
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
    fn bucket_bounds_ascend() {
        for b in [LATENCY_BUCKETS, DURATION_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn the_registry_shows_inclusive_cumulative_buckets_and_every_labelled_series() {
        let m = Metrics::default();
        m.answer_to_first_audio(Duration::from_millis(100)); // le=0.1 (inclusive)
        m.answer_to_first_audio(Duration::from_millis(300));
        m.answer_to_first_audio(Duration::from_secs(20)); // +Inf only
        m.prepare("openai");
        m.call_ended(Direction::Inbound, EndReason::CallerHangup, "sip", "openai");
        m.call_started(Direction::Outbound, "sip", "openai");
        m.depth(None, Some(40));
        let mut r = Registry::default();
        m.register(&mut r);
        let mut page = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut page, &r).unwrap();
        let h = "callbridge_answer_to_first_audio_seconds";
        for line in [
            format!("# TYPE {h} histogram"),
            format!("{h}_bucket{{le=\"0.1\"}} 1"),
            format!("{h}_bucket{{le=\"0.3\"}} 2"),
            format!("{h}_bucket{{le=\"10\"}} 2"),
            format!("{h}_bucket{{le=\"+Inf\"}} 3"),
            format!("{h}_count 3"),
            "# TYPE callbridge_calls_ended_total counter".to_owned(),
            "callbridge_calls_ended_total{direction=\"inbound\",reason=\"caller-hangup\",transport=\"sip\",provider=\"openai\"} 1"
                .to_owned(),
            "callbridge_calls_ended_total{direction=\"outbound\",reason=\"busy\",transport=\"sip\",provider=\"openai\"} 0"
                .to_owned(),
            "callbridge_calls_started_total{direction=\"outbound\",transport=\"sip\",provider=\"openai\"} 1"
                .to_owned(),
            "# HELP callbridge_rtp_packets_in_total RTP packets received.".to_owned(),
            "callbridge_jitter_buffer_depth_seconds 0.04".to_owned(),
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing in\n{page}");
        }
        let s = m.snapshot().answer_to_first_audio;
        assert_eq!(s.count, 3);
        assert!((s.sum - 20.4).abs() < 1e-9, "sum {}", s.sum);
    }

    #[test]
    fn refusals_are_listed_for_every_reason_and_started_calls_by_labels() {
        let m = Metrics::default();
        m.call_refused(CallRefusal::Codec);
        m.call_refused(CallRefusal::Codec);
        m.call_refused(CallRefusal::Limit);
        assert_eq!(
            m.snapshot().calls_refused,
            vec![
                (CallRefusal::Limit, 1),
                (CallRefusal::Codec, 2),
                (CallRefusal::Loop, 0),
                (CallRefusal::Media, 0)
            ]
        );
        m.prepare("openai");
        m.call_started(Direction::Inbound, "twilio", "openai");
        let mut r = Registry::default();
        m.register(&mut r);
        let mut page = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut page, &r).unwrap();
        let started = "callbridge_calls_started_total";
        for line in [
            format!("{started}{{direction=\"inbound\",transport=\"sip\",provider=\"openai\"}} 0"),
            format!("{started}{{direction=\"outbound\",transport=\"sip\",provider=\"openai\"}} 0"),
            format!(
                "{started}{{direction=\"inbound\",transport=\"twilio\",provider=\"openai\"}} 1"
            ),
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing in\n{page}");
        }
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
