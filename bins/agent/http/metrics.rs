//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4)
//! of the session manager's counters, gauges and histograms, from
//! `Manager::snapshot()`, `Manager::metrics()` and
//! `callbridge_llm_bridge::stats::live_tasks()`. The metric names are
//! fixed by the agent contract (CONTRACT.md); what each figure means is
//! documented in `callbridge_session::metrics`.
//!
//! Every family has `# HELP` and `# TYPE` lines; label values are escaped
//! (backslash, double quote, line feed); histograms list cumulative
//! `_bucket` series ending with `le="+Inf"`, then `_sum` and `_count`.
//! `callbridge_calls_ended_total` lists every direction and end reason,
//! zero or not, so rates work from the first call. The store writer's
//! families ([`render_store`]) follow: its health, write failures by
//! operation, calls refused for the store, and the journal backlog.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use callbridge_session::lifecycle::{Direction, EndReason};
use callbridge_session::store_writer::StoreStats;
use callbridge_session::{HistogramSnapshot, MetricsSnapshot, Snapshot};

use super::AppState;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the metrics page.
pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = render(
        &state.manager.snapshot(),
        &state.manager.metrics(),
        callbridge_llm_bridge::stats::live_tasks(),
    );
    body.push_str(&render_store(&state.manager.store_stats()));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

/// The whole page for one snapshot of each source.
pub fn render(s: &Snapshot, m: &MetricsSnapshot, live_tasks: usize) -> String {
    let mut out = Exposition(String::with_capacity(8192));
    out.family(
        "callbridge_calls_started_total",
        "counter",
        "Calls admitted since start (inbound INVITEs taken on, outbound originates).",
    );
    for (d, n) in &m.calls_started {
        out.sample(
            "callbridge_calls_started_total",
            &[("direction", d.as_str())],
            *n,
        );
    }
    out.family(
        "callbridge_calls_ended_total",
        "counter",
        "Calls ended since start, by direction and end reason.",
    );
    for d in Direction::ALL {
        for r in EndReason::ALL {
            let n = m
                .calls_ended
                .iter()
                .find(|(dd, rr, _)| *dd == d && *rr == r)
                .map_or(0, |(_, _, n)| *n);
            out.sample(
                "callbridge_calls_ended_total",
                &[("direction", d.as_str()), ("reason", r.as_str())],
                n,
            );
        }
    }
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
        out.family(name, "gauge", help);
        out.sample(name, &[], v);
    }
    let counters: [(&str, &str, u64); 7] = [
        (
            "callbridge_rtp_packets_in_total",
            "RTP packets received.",
            m.rtp_packets_in,
        ),
        (
            "callbridge_rtp_packets_out_total",
            "RTP packets sent.",
            m.rtp_packets_out,
        ),
        (
            "callbridge_rtp_packets_lost_total",
            "Frames whose RTP packet never arrived in time.",
            m.rtp_packets_lost,
        ),
        (
            "callbridge_rtp_packets_late_total",
            "RTP packets that arrived after their frame was played.",
            m.rtp_packets_late,
        ),
        (
            "callbridge_barge_ins_total",
            "Agent replies interrupted by the caller.",
            m.barge_ins,
        ),
        (
            "callbridge_model_reconnects_total",
            "Model sessions resumed on a new connection (after goAway or a drop).",
            m.model_reconnects,
        ),
        (
            "callbridge_model_reply_timeouts_total",
            "Calls ended because the model owed a reply and stayed silent.",
            m.model_reply_timeouts,
        ),
    ];
    for (name, help, v) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], v);
    }
    out.family(
        "callbridge_rtp_rejected_packets_total",
        "counter",
        "RTP packets dropped because their source is not the call's media peer, by reason.",
    );
    for (r, n) in &m.rtp_packets_rejected {
        out.sample(
            "callbridge_rtp_rejected_packets_total",
            &[("reason", r.as_str())],
            *n,
        );
    }
    out.family(
        "callbridge_jitter_buffer_depth_ms",
        "gauge",
        "Mean estimated jitter buffer depth over live calls receiving RTP, in ms.",
    );
    out.sample(
        "callbridge_jitter_buffer_depth_ms",
        &[],
        Float(m.jitter_buffer_depth_ms),
    );
    out.histogram(
        "callbridge_answer_to_first_audio_seconds",
        "From the 200 OK to the first agent audio packet sent.",
        &m.answer_to_first_audio,
    );
    out.histogram(
        "callbridge_caller_stop_to_agent_audio_seconds",
        "From the end of caller speech (energy detector) to the first reply packet sent.",
        &m.caller_stop_to_agent_audio,
    );
    out.histogram(
        "callbridge_call_duration_seconds",
        "From the answer to the end of answered calls.",
        &m.call_duration,
    );
    out.0
}

/// The store writer's families (see `callbridge_session::store_writer`).
pub fn render_store(st: &StoreStats) -> String {
    let mut out = Exposition(String::with_capacity(2048));
    out.family(
        "callbridge_store_healthy",
        "gauge",
        "1 when the last store write (or the writer's one-row probe) reached the database, else 0.",
    );
    out.sample("callbridge_store_healthy", &[], u8::from(st.healthy));
    out.family(
        "callbridge_store_write_failures_total",
        "counter",
        "Store writes that failed because the database could not be written (retries included), by operation.",
    );
    for (op, n) in &st.write_failures {
        out.sample("callbridge_store_write_failures_total", &[("op", op)], n);
    }
    out.family(
        "callbridge_calls_refused_total",
        "counter",
        "Calls refused by the session manager, by reason (store: the session row could not be written).",
    );
    out.sample(
        "callbridge_calls_refused_total",
        &[("reason", "store")],
        st.refused_calls,
    );
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
        out.family(name, "gauge", help);
        out.sample(name, &[], v);
    }
    let counters = [
        (
            "callbridge_store_writes_journaled_total",
            "Writes appended to the store journal.",
            st.journaled,
        ),
        (
            "callbridge_store_writes_replayed_total",
            "Writes applied to the database from the journal or memory backlog.",
            st.replayed,
        ),
        (
            "callbridge_store_writes_rejected_total",
            "Writes the database refused for what they say (not retried).",
            st.rejected,
        ),
        (
            "callbridge_store_writes_lost_total",
            "Writes lost: neither the database, the journal nor the bounded memory backlog took them.",
            st.lost,
        ),
    ];
    for (name, help, v) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], v);
    }
    out.0
}

/// A sample value written in the exposition's float syntax.
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, n) in &h.buckets {
            let le = Float(*le).to_string();
            self.sample(&bucket, &[("le", &le)], n);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], Float(h.sum));
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

/// A label value as the format quotes it: `\`, `"` and line feed escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: `\` and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
