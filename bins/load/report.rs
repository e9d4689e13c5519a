//! The run's figures: aggregated from the calls and the agent's process
//! readings, printed as a table and written as JSON, and checked against
//! the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::call::{CallResult, Kind, Outcome};
use crate::mock::MockReport;
use crate::stats::{Samples, Summary, ms};

/// Timing figures over the calls of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Calls counted.
    pub calls: usize,
    /// INVITE to 200 OK.
    pub setup: Summary,
    /// Answer to the greeting's first audio.
    pub answer_to_first_audio: Summary,
    /// Caller's last speech frame to the reply's first audio.
    pub caller_stop_to_agent_audio: Summary,
    /// Barge-in to the last audio of the interrupted reply.
    pub barge_in_flush: Summary,
    /// Calls whose model failed and that played the fallback announcement
    /// instead of a reply (end reason `ModelFailure` in the store): their
    /// "reply" and "barge-in" figures measure the announcement, which is
    /// not interrupted by design, so they are kept out of the two figures
    /// above and counted here.
    pub fallback_calls: usize,
    /// Of those, the calls whose caller spoke over the announcement.
    pub fallback_barge_ins: usize,
    /// Outbound RTP inter-packet interval error.
    pub interval_error: Summary,
    /// Agent packets received.
    pub packets_received: u64,
    /// Agent packets lost (sequence gaps).
    pub packets_lost: u64,
    /// Agent packets more than 10 ms behind schedule.
    pub packets_late: u64,
    /// Agent packets out of order.
    pub packets_reordered: u64,
    /// Agent packets timed at their read (no kernel stamp).
    pub packets_unstamped: u64,
    /// Packets from another address than the call's agent media address
    /// (an earlier call's stream to a reused port): not measured.
    pub packets_stray: u64,
    /// Calls whose caller spoke and heard no reply.
    pub replies_missing: usize,
    /// Calls that never heard the greeting.
    pub greetings_missing: usize,
    /// How late the load tool's own 20 ms ticks ran (its noise floor).
    pub caller_tick_lag: Summary,
}

impl Timing {
    /// Aggregates `calls`; `fallback` tells the calls that played the
    /// fallback announcement (see [`Timing::fallback_calls`]).
    pub fn of<'a>(
        calls: impl Iterator<Item = &'a CallResult>,
        fallback: impl Fn(&CallResult) -> bool,
    ) -> Timing {
        let mut t = Timing::default();
        let (mut setup, mut a2fa, mut stop, mut barge, mut interval, mut lag) = (
            Samples::default(),
            Samples::default(),
            Samples::default(),
            Samples::default(),
            Samples::default(),
            Samples::default(),
        );
        for c in calls {
            t.calls += 1;
            let m = &c.media;
            if let Some(d) = c.setup {
                setup.push(d);
            }
            match m.first_audio {
                Some(d) => a2fa.push(d),
                // Only calls held to the end must have heard it: a call
                // the agent ended (a model fault) is counted by outcome.
                None if c.outcome == Outcome::Completed => t.greetings_missing += 1,
                None => {}
            }
            if fallback(c) {
                t.fallback_calls += 1;
                t.fallback_barge_ins += usize::from(m.barge_flush.is_some());
            } else {
                if let Some(d) = m.stop_to_audio {
                    stop.push(d);
                }
                if let Some(d) = m.barge_flush {
                    barge.push(d);
                }
            }
            t.replies_missing += usize::from(m.reply_missing && c.outcome == Outcome::Completed);
            t.packets_unstamped += m.unstamped;
            t.packets_stray += m.stray;
            interval.extend(&m.rx.interval_error);
            lag.extend(&m.send_lag);
            t.packets_received += m.rx.received;
            t.packets_lost += m.rx.lost;
            t.packets_late += m.rx.late;
            t.packets_reordered += m.rx.reordered;
        }
        t.setup = setup.summary();
        t.answer_to_first_audio = a2fa.summary();
        t.caller_stop_to_agent_audio = stop.summary();
        t.barge_in_flush = barge.summary();
        t.interval_error = interval.summary();
        t.caller_tick_lag = lag.summary();
        t
    }
}

/// The agent process's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentFigures {
    /// CPU seconds over the calls phase.
    pub cpu_s: f64,
    /// CPU seconds per minute of answered call time.
    pub cpu_s_per_call_minute: Option<f64>,
    /// Average cores used over the calls phase.
    pub cores: f64,
    /// The same while every call of the run was talking at once (no call
    /// set-up or tear-down in it); none when that lasted under 2 s, and
    /// for runs of more calls than `--concurrent` (there replacements are
    /// set up between readings).
    pub steady: Option<crate::drive::SteadyFigures>,
    /// RSS before the calls (after the warm-up call), MB.
    pub rss_idle_mb: f64,
    /// Largest RSS during the calls, MB.
    pub rss_peak_mb: f64,
    /// (peak - idle) / peak live calls, KB.
    pub rss_per_live_call_kb: Option<f64>,
    /// RSS after the first `rss_mark_calls` answered calls ended, MB.
    pub rss_after_100_mb: Option<f64>,
    /// The mark of `rss_after_100_mb` (100 unless set).
    pub rss_mark_calls: usize,
    /// RSS at the end (idle again), MB.
    pub rss_end_mb: f64,
    /// Open fds before the calls.
    pub fds_baseline: usize,
    /// Open fds at the end.
    pub fds_end: usize,
    /// Resource gauges from /metrics at the end (should all be 0).
    pub gauges_end: BTreeMap<String, f64>,
    /// Counters from /metrics at the end.
    pub counters: BTreeMap<String, f64>,
    /// Exit code after SIGTERM.
    pub exit_code: Option<i32>,
    /// How it exited (code or signal, and whether before our SIGTERM).
    pub exit: crate::procs::Exit,
    /// Sessions in the store by end reason ("unfinished" for none).
    pub store_end_reasons: BTreeMap<String, u64>,
}

/// Everything about one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Run name.
    pub name: String,
    /// UTC time of the run.
    pub date: String,
    /// `git rev-parse --short HEAD` (+ "-dirty").
    pub revision: String,
    /// CPU cores of the machine.
    pub cores: usize,
    /// 1-minute load average before the run.
    pub load_before: Option<f64>,
    /// The command line.
    pub command: String,
    /// Calls placed.
    pub calls: u64,
    /// Most live at once (asked).
    pub concurrent: usize,
    /// Most live at once (seen).
    pub peak_live: usize,
    /// Hold time per call, seconds.
    pub hold_s: f64,
    /// Faults on.
    pub faults: bool,
    /// Wall time of the calls phase, seconds.
    pub wall_s: f64,
    /// Answered talk time, minutes.
    pub call_minutes: f64,
    /// Outcomes by caller kind.
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Calls refused with 503, by the agent's reason.
    pub refusals: Refusals,
    /// Timing over the normal calls (undisturbed by caller-side faults).
    pub normal: Timing,
    /// Timing over the lossy-relay calls.
    pub lossy: Option<Timing>,
    /// BYE statuses of the duplicate-BYE calls.
    pub dup_bye_statuses: BTreeMap<String, u64>,
    /// The agent (absent for an external target).
    pub agent: Option<AgentFigures>,
    /// The mock model's counters.
    pub mock: Option<MockReport>,
    /// CPU seconds the mock model process used over the calls phase.
    pub mock_cpu_s: Option<f64>,
    /// CPU seconds the load tool itself used over the calls phase.
    pub tool_cpu_s: Option<f64>,
    /// The checks and whether each passed.
    pub checks: Vec<Check>,
    /// Where the agent's config, log, store and recordings are (kept with
    /// `--keep` or when a check failed).
    pub agent_dir: Option<String>,
}

/// The calls answered 503, by the agent's reason: its overload counter
/// tells the media engine's admission apart from everything else (the
/// call limit `calls.max_concurrent`, the store, no port or fd left).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Refusals {
    /// Calls answered 503, any reason.
    pub total: u64,
    /// Refused by the media engine's overload admission (the agent's
    /// `callbridge_calls_refused_total{reason="overload"}`; absent without
    /// the agent's counters, e.g. an external target).
    pub overload: Option<u64>,
    /// The other 503s (`total` minus `overload`): mostly the call limit.
    pub other: Option<u64>,
}

/// The agent's overload refusal counter (as run.rs scrapes it).
pub const OVERLOAD_COUNTER: &str = "callbridge_calls_refused_total{reason=\"overload\"}";

impl Refusals {
    /// The 503s among `outcomes`, split by the agent's overload counter
    /// when its `counters` are known.
    #[must_use]
    pub fn of(
        outcomes: &BTreeMap<String, BTreeMap<String, u64>>,
        counters: Option<&BTreeMap<String, f64>>,
    ) -> Refusals {
        let total = outcomes
            .values()
            .filter_map(|o| o.get("rejected-503"))
            .sum();
        let overload = counters
            .and_then(|c| c.get(OVERLOAD_COUNTER))
            .map(|&v| v as u64);
        Refusals {
            total,
            overload,
            other: overload.map(|o| total.saturating_sub(o)),
        }
    }
}

/// One pass/fail check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// The figure.
    pub value: String,
    /// The target.
    pub target: String,
    /// Passed.
    pub ok: bool,
}

/// Outcome counts by kind.
pub fn outcomes(calls: &[CallResult]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut m: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for c in calls {
        let kind = serde_json::to_value(c.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let outcome = match &c.outcome {
            Outcome::Rejected(code) => format!("rejected-{code}"),
            Outcome::ToolError(_) => "tool-error".into(),
            o => serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        *m.entry(kind).or_default().entry(outcome).or_default() += 1;
    }
    m
}

/// BYE status sequences of the duplicate-BYE calls ("200,481": 12).
pub fn dup_bye(calls: &[CallResult]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for c in calls.iter().filter(|c| c.kind == Kind::DupBye) {
        let key = c
            .bye_statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        *m.entry(key).or_default() += 1;
    }
    m
}

fn row(out: &mut String, name: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "  {name:<34} {:>9} {:>9} {:>9} {:>8}",
        ms(s.p50_ms),
        ms(s.p99_ms),
        ms(s.max_ms),
        s.n
    );
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "callbridge-load {} | {} | rev {} | {} cores | load before {:?}",
            self.name, self.date, self.revision, self.cores, self.load_before
        );
        let _ = writeln!(
            o,
            "calls {} (concurrent {}, peak live {}), hold {:.1} s, faults {}, wall {:.1} s, {:.1} call-minutes",
            self.calls,
            self.concurrent,
            self.peak_live,
            self.hold_s,
            self.faults,
            self.wall_s,
            self.call_minutes
        );
        let _ = writeln!(
            o,
            "\n  {:<34} {:>9} {:>9} {:>9} {:>8}",
            "normal calls (ms)", "p50", "p99", "max", "n"
        );
        let t = &self.normal;
        row(&mut o, "call setup (INVITE->200)", &t.setup);
        row(&mut o, "answer -> first audio", &t.answer_to_first_audio);
        row(
            &mut o,
            "caller stop -> agent audio",
            &t.caller_stop_to_agent_audio,
        );
        row(&mut o, "barge-in flush", &t.barge_in_flush);
        row(&mut o, "outbound RTP interval error", &t.interval_error);
        row(
            &mut o,
            "load tool tick lag (noise floor)",
            &t.caller_tick_lag,
        );
        let _ = writeln!(
            o,
            "  packets: {} received ({} without kernel stamp, {} stray from other addresses not counted), {} lost, {} late (>10 ms), {} reordered; greetings missing {}, replies missing {}",
            t.packets_received,
            t.packets_unstamped,
            t.packets_stray,
            t.packets_lost,
            t.packets_late,
            t.packets_reordered,
            t.greetings_missing,
            t.replies_missing
        );
        if t.fallback_calls > 0 {
            let _ = writeln!(
                o,
                "  model failures (fallback announcement instead of a reply, not in the reply and barge-in rows): {} calls, {} barged in on the announcement",
                t.fallback_calls, t.fallback_barge_ins
            );
        }
        if let Some(l) = &self.lossy {
            let _ = writeln!(
                o,
                "  lossy-relay calls: {} calls, {} received, {} lost, {} reordered, first audio p99 {} ms",
                l.calls,
                l.packets_received,
                l.packets_lost,
                l.packets_reordered,
                ms(l.answer_to_first_audio.p99_ms)
            );
        }
        if let Some(a) = &self.agent {
            let _ = writeln!(
                o,
                "\nagent: {:.1} CPU s = {:.2} cores; {} CPU s per call-minute",
                a.cpu_s,
                a.cores,
                a.cpu_s_per_call_minute
                    .map_or("-".into(), |v| format!("{v:.3}"))
            );
            if let Some(w) = &a.steady {
                let _ = writeln!(
                    o,
                    "agent with all {} calls talking ({:.1} s): {:.2} cores; {:.3} CPU s per call-minute",
                    w.calls, w.window_s, w.cores, w.cpu_s_per_call_minute
                );
            }
            let _ = writeln!(
                o,
                "agent RSS MB: idle {:.1}, peak {:.1}, after {} calls {}, end {:.1}; per live call {} KB",
                a.rss_idle_mb,
                a.rss_peak_mb,
                a.rss_mark_calls,
                a.rss_after_100_mb.map_or("-".into(), |v| format!("{v:.1}")),
                a.rss_end_mb,
                a.rss_per_live_call_kb
                    .map_or("-".into(), |v| format!("{v:.0}"))
            );
            let _ = writeln!(
                o,
                "agent fds: baseline {}, end {}; exit {:?}",
                a.fds_baseline, a.fds_end, a.exit
            );
            let _ = writeln!(o, "agent gauges at end: {:?}", a.gauges_end);
            let _ = writeln!(o, "agent counters: {:?}", a.counters);
            let _ = writeln!(o, "store end reasons: {:?}", a.store_end_reasons);
        }
        let _ = writeln!(o, "outcomes: {:?}", self.outcomes);
        let opt = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        let _ = writeln!(
            o,
            "refused with 503: {} ({} by the engine's overload admission, {} other: call limit, store, ports)",
            self.refusals.total,
            opt(self.refusals.overload),
            opt(self.refusals.other)
        );
        if !self.dup_bye_statuses.is_empty() {
            let _ = writeln!(o, "duplicate BYE statuses: {:?}", self.dup_bye_statuses);
        }
        let _ = writeln!(
            o,
            "other processes over the calls phase: mock model {} CPU s, load tool {} CPU s",
            self.mock_cpu_s.map_or("-".into(), |v| format!("{v:.1}")),
            self.tool_cpu_s.map_or("-".into(), |v| format!("{v:.1}"))
        );
        if let Some(m) = &self.mock {
            let _ = writeln!(
                o,
                "mock: {} connections, {} setups, {} clean closes, {} caller turns, {} drops and {} stalls scripted, {} violations",
                m.connections,
                m.setups,
                m.clean_closes,
                m.caller_turns,
                m.drops_scripted,
                m.stalls_scripted,
                m.violations.len()
            );
            if m.audio_messages_in > 0 {
                // 16 kHz s16le: 32 bytes per millisecond.
                let ms_each = m.audio_bytes_in as f64 / 32.0 / m.audio_messages_in as f64;
                let _ = writeln!(
                    o,
                    "mock: {} caller audio messages, {:.1} ms of audio each ({:.1} messages per second of a call's audio)",
                    m.audio_messages_in,
                    ms_each,
                    1000.0 / ms_each
                );
            }
        }
        if !self.checks.is_empty() {
            let _ = writeln!(o, "\nchecks:");
            for c in &self.checks {
                let _ = writeln!(
                    o,
                    "  [{}] {}: {} (target {})",
                    if c.ok { "ok" } else { "FAIL" },
                    c.what,
                    c.value,
                    c.target
                );
            }
        }
        o
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(id: &str, barge_ms: u64) -> CallResult {
        let mut media = crate::media::MediaResult {
            barge_flush: Some(Duration::from_millis(barge_ms)),
            stop_to_audio: Some(Duration::from_millis(barge_ms)),
            ..Default::default()
        };
        media.stray = 3;
        CallResult {
            index: 0,
            kind: Kind::Normal,
            outcome: Outcome::Completed,
            setup: None,
            talk: Duration::ZERO,
            media,
            bye_statuses: Vec::new(),
            call_id: id.into(),
        }
    }

    #[test]
    fn a_fallback_announcement_is_kept_out_of_the_reply_and_barge_in_figures() {
        let calls = [call("a", 80), call("b", 2358), call("c", 90)];
        let t = Timing::of(calls.iter(), |c| c.call_id == "b");
        assert_eq!(t.barge_in_flush.n, 2);
        assert_eq!(t.barge_in_flush.max_ms, Some(90.0));
        assert_eq!(t.caller_stop_to_agent_audio.n, 2);
        assert_eq!((t.fallback_calls, t.fallback_barge_ins), (1, 1));
        assert_eq!(t.packets_stray, 9);
        // Without the store's word every call counts.
        assert_eq!(Timing::of(calls.iter(), |_| false).barge_in_flush.n, 3);
    }
}
