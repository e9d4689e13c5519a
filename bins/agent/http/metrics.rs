//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4),
//! encoded by `prometheus_client` from one registry built at start
//! ([`Page`]):
//!
//! - the session manager's counters, histograms and jitter buffer gauge
//!   (`callbridge_session::metrics`, registered by
//!   `Manager::register_metrics`);
//! - the figures read at each scrape ([`Live`]): the live-resource gauges
//!   of `Manager::snapshot()`, `callbridge_llm_bridge::stats::live_tasks()`,
//!   the media engine's load (`callbridge_media_engine_*`) and the store
//!   writer's families (its health, write failures by operation, the
//!   journal backlog) and every inbound call refused, by reason, in one
//!   family (see [`encode_refusals`]);
//! - the process's figures ([`process`]: CPU seconds, memory, open file
//!   descriptors, start time);
//! - `callbridge_build_info{version,profile,rustc,git_sha} 1` (`git_sha`
//!   when the build set `CALLBRIDGE_GIT_SHA`, as the Dockerfile does).
//!
//! The `callbridge_` names are fixed by the agent contract (CONTRACT.md);
//! what each figure means is documented in `callbridge_session::metrics`.
//! `callbridge_calls_ended_total` lists every direction and end reason of
//! SIP calls with the configured provider, zero or not, so rates work from
//! the first call (a carrier's series appear with its first call).

mod process;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbridge_session::Manager;
use callbridge_session::store_writer::StoreStats;
use callbridge_session::{EngineStatus, Snapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry `GET /metrics` encodes; cheap to clone.
#[derive(Clone)]
pub struct Page {
    registry: Arc<Registry>,
    /// The running agent's manager: the SIP core's counters are asked
    /// of its driver (async) before each rendering.
    manager: Option<Manager>,
    sip: SipFigures,
}

/// The SIP core's counters as last asked (see [`Page::refresh`]).
type SipFigures = Arc<Mutex<Option<callbridge_sip::ua::Stats>>>;

impl Page {
    /// The page of a running agent: `manager`'s families, the figures read
    /// from it at each scrape, the process and the build.
    pub fn new(manager: &Manager) -> Page {
        let live = manager.clone();
        let sip = SipFigures::default();
        let last = Arc::clone(&sip);
        let mut page = Page::with(
            |r| manager.register_metrics(r),
            move || Scrape {
                snapshot: live.snapshot(),
                metrics: live.metrics(),
                live_tasks: callbridge_llm_bridge::stats::live_tasks(),
                store: live.store_stats(),
                sip: *last.lock().unwrap_or_else(PoisonError::into_inner),
            },
        );
        page.manager = Some(manager.clone());
        page.sip = sip;
        page
    }

    /// Asks the SIP driver for its counters (the draining refusals) for
    /// the next rendering; keeps the last ones once it has stopped.
    pub async fn refresh(&self) {
        if let Some(m) = &self.manager
            && let Some(st) = m.sip_stats().await
        {
            *self.sip.lock().unwrap_or_else(PoisonError::into_inner) = Some(st);
        }
    }

    /// A page of the families `register` adds and the figures `scrape`
    /// reads, plus the process and the build.
    fn with(
        register: impl FnOnce(&mut Registry),
        scrape: impl Fn() -> Scrape + Send + Sync + 'static,
    ) -> Page {
        let mut registry = Registry::default();
        register(&mut registry);
        registry.register_collector(Box::new(Live(Box::new(scrape))));
        registry.register_collector(Box::new(process::Process));
        registry.register(
            "callbridge_retention_deleted",
            "What [retention] removed since start, by kind (sessions, transcripts, recordings)",
            crate::retention::deleted().clone(),
        );
        registry.register(
            "callbridge_build",
            "The agent's build: its version, profile, compiler and commit when known (the value is always 1)",
            Info::new(build_labels()),
        );
        Page {
            registry: Arc::new(registry),
            manager: None,
            sip: SipFigures::default(),
        }
    }

    /// The page as of now.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut body = String::with_capacity(8192);
        prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry)?;
        Ok(body)
    }
}

/// Renders the metrics page.
#[utoipa::path(get, path = "/metrics", tag = "health",
    description = "Prometheus metrics (text exposition format; no auth; on `http.metrics_bind` when set).",
    responses((status = 200, description = "The metrics", content_type = "text/plain", body = String)))]
pub async fn handler(State(page): State<Page>) -> Response {
    page.refresh().await;
    match page.render() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the metrics page could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `callbridge_build_info`'s labels: `version`, `profile`, `rustc` (set
/// by build.rs) and `git_sha` when the build environment named it.
fn build_labels() -> Vec<(&'static str, &'static str)> {
    let mut labels = vec![
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        ),
        ("rustc", env!("CALLBRIDGE_RUSTC_VERSION")),
    ];
    if let Some(sha) = option_env!("CALLBRIDGE_GIT_SHA").filter(|s| !s.is_empty()) {
        labels.push(("git_sha", sha));
    }
    labels
}

/// What the page reads at each scrape.
#[derive(Debug, Clone)]
struct Scrape {
    snapshot: Snapshot,
    /// The manager's counted refusals (the rest of its metrics are
    /// registered families).
    metrics: callbridge_session::MetricsSnapshot,
    live_tasks: usize,
    store: StoreStats,
    /// The SIP core's counters; `None` before the first ask.
    sip: Option<callbridge_sip::ua::Stats>,
}

/// The families read at each scrape (see the module doc).
struct Live(Box<dyn Fn() -> Scrape + Send + Sync>);

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Scrape {
            snapshot: s,
            metrics,
            live_tasks,
            store: st,
            sip,
        } = (self.0)();
        let gauges: [(&str, &str, usize); 6] = [
            ("callbridge_active_calls", "Live calls.", s.calls.len()),
            (
                "callbridge_call_tasks",
                "Live call supervisor tasks.",
                s.call_tasks,
            ),
            (
                "callbridge_media_sockets",
                "Open media streams (RTP sockets).",
                s.media_sockets,
            ),
            (
                "callbridge_model_sessions",
                "Model sessions open or opening.",
                s.model_sessions,
            ),
            (
                "callbridge_model_connections",
                "Model WebSocket connections alive in the process.",
                s.model_connections,
            ),
            (
                "callbridge_live_tasks",
                "Tasks of the model bridge alive in the process.",
                live_tasks,
            ),
        ];
        for (name, help, v) in gauges {
            gauge(&mut encoder, name, help, v)?;
        }
        encode_engine(&mut encoder, &s.engine)?;
        encode_store(&mut encoder, &st)?;
        encode_refusals(
            &mut encoder,
            &metrics.calls_refused,
            st.refused_calls,
            s.engine.refused_overload,
            sip.as_ref(),
        )
    }
}

/// The media engine's load (see `callbridge_session`'s overload
/// admission and `callbridge_rtp::engine::load`).
fn encode_engine(encoder: &mut DescriptorEncoder<'_>, e: &EngineStatus) -> fmt::Result {
    let gauges = [
        (
            "callbridge_media_engine_headroom_ratio",
            "Headroom the media engine has left over the last second, 0 (refusing new calls) to 1 (idle).",
            f64::from(e.headroom_permille) / 1000.0,
        ),
        (
            "callbridge_media_engine_late_p99_seconds",
            "99th percentile of how late the media engine served its 20 ms ticks over the last second.",
            e.late_p99_us as f64 / 1e6,
        ),
        (
            "callbridge_media_engine_stalled_ratio",
            "Share of the media engine's ticks over the last second whose packet went out 10 ms or more late.",
            f64::from(e.stalled_ppm) / 1e6,
        ),
        (
            "callbridge_media_engine_busy_ratio",
            "Fraction of the last second the media engine thread spent serving calls.",
            f64::from(e.busy_permille) / 1000.0,
        ),
        (
            "callbridge_media_engine_backlog_p99",
            "99th percentile of the audio events a call task had not yet taken when the next came.",
            f64::from(e.backlog_p99),
        ),
        (
            "callbridge_media_engine_admission_ceiling_calls",
            "Calls the admission keeps under, learned from the media engine's last overload (0: none learned yet).",
            e.admission_ceiling as f64,
        ),
    ];
    for (name, help, v) in gauges {
        gauge(encoder, name, help, v)?;
    }
    counter(
        encoder,
        "callbridge_media_engine_late_ticks",
        "Media ticks served more than 2 ms after their deadline.",
        e.late_ticks,
    )
}

/// `callbridge_calls_refused_total{reason}`: every inbound call refused,
/// each reason listed (zero or not) so rates work from the start. The
/// manager's own refusals (`limit`, `codec`, `loop`, `media`: see
/// `callbridge_session::metrics::CallRefusal`), `store` (the session row
/// could not be written), `overload` (the media engine could not take
/// another call on time) and `draining` (INVITEs the SIP core answered 503
/// while the agent drained). `limit` also counts what the SIP core refused
/// at its own capacity (it holds `calls.max_concurrent` too, so it is
/// usually the one that says 503; a request refused for a full
/// transaction table counts there as well). Requests from sources outside
/// `sip.allowed_peers` are counted apart
/// (`callbridge_sip_requests_filtered_total`: not only INVITEs).
fn encode_refusals(
    encoder: &mut DescriptorEncoder<'_>,
    manager: &[(callbridge_session::metrics::CallRefusal, u64)],
    store: u64,
    overload: u64,
    sip: Option<&callbridge_sip::ua::Stats>,
) -> fmt::Result {
    let mut refused = encoder.encode_descriptor(
        "callbridge_calls_refused",
        "Inbound calls refused, by reason (limit, codec, loop, media, store, overload, draining).",
        None,
        MetricType::Counter,
    )?;
    let sip_limit = sip.map_or(0, |s| s.overloaded);
    for (r, n) in manager {
        let n = match r {
            callbridge_session::metrics::CallRefusal::Limit => n + sip_limit,
            _ => *n,
        };
        ConstCounter::new(n).encode(refused.encode_family(&[("reason", r.as_str())])?)?;
    }
    let sip_draining = sip.map_or(0, |s| s.refused_shutting_down);
    for (reason, n) in [
        ("store", store),
        ("overload", overload),
        ("draining", sip_draining),
    ] {
        ConstCounter::new(n).encode(refused.encode_family(&[("reason", reason)])?)?;
    }
    counter(
        encoder,
        "callbridge_sip_requests_filtered",
        "SIP requests from sources outside sip.allowed_peers (403 or dropped, per sip.reject_unlisted).",
        sip.map_or(0, |s| s.filtered),
    )
}

/// The store writer's families (see `callbridge_session::store_writer`).
fn encode_store(encoder: &mut DescriptorEncoder<'_>, st: &StoreStats) -> fmt::Result {
    gauge(
        encoder,
        "callbridge_store_healthy",
        "1 when the last store write (or the writer's one-row probe) reached the database, else 0.",
        u32::from(st.healthy),
    )?;
    let mut failures = encoder.encode_descriptor(
        "callbridge_store_write_failures",
        "Store writes that failed because the database could not be written (retries included), by operation.",
        None,
        MetricType::Counter,
    )?;
    for (op, n) in &st.write_failures {
        ConstCounter::new(*n).encode(failures.encode_family(&[("op", *op)])?)?;
    }
    let gauges = [
        (
            "callbridge_store_journal_backlog",
            "Writes accepted but not yet in the database (journal plus memory).",
            st.backlog,
        ),
        (
            "callbridge_store_backlog_in_memory",
            "Of those, writes held in memory only (the journal could not take them either).",
            st.in_memory,
        ),
    ];
    for (name, help, v) in gauges {
        gauge(encoder, name, help, v)?;
    }
    let counters = [
        (
            "callbridge_store_writes_journaled",
            "Writes appended to the store journal.",
            st.journaled,
        ),
        (
            "callbridge_store_writes_replayed",
            "Writes applied to the database from the journal or memory backlog.",
            st.replayed,
        ),
        (
            "callbridge_store_writes_rejected",
            "Writes the database refused for what they say (not retried).",
            st.rejected,
        ),
        (
            "callbridge_store_writes_committed",
            "Session rows and writes committed to the database as they came (not from the backlog).",
            st.written,
        ),
        (
            "callbridge_store_commits",
            "Transactions that committed them (several writes queued at once share one: group commit).",
            st.commits,
        ),
        (
            "callbridge_store_writes_lost",
            "Writes lost: neither the database, the journal nor the bounded memory backlog took them.",
            st.lost,
        ),
    ];
    for (name, help, v) in counters {
        counter(encoder, name, help, v)?;
    }
    Ok(())
}

/// One unlabelled gauge family.
fn gauge<V: EncodeGaugeValue + fmt::Debug + Send + Sync + 'static>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: V,
) -> fmt::Result {
    ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// One unlabelled counter family; `name` without the `_total` the
/// encoder adds.
fn counter<
    V: prometheus_client::encoding::EncodeCounterValue + fmt::Debug + Send + Sync + 'static,
>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: V,
) -> fmt::Result {
    ConstCounter::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

#[cfg(test)]
mod tests;
