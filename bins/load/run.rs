//! `callbridge-load run`: starts the mock model and the agent (unless an
//! external SIP target is given), warms up with one call, places the calls,
//! waits for the agent to go idle, reads its gauges, stops it with SIGTERM,
//! reads the store, and reports.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use callbridge_llm_mock::clips;
use tokio::process::Command;

use crate::call::{self, CallResult, Kind, Outcome, Shared};
use crate::checks::{GAUGES, Targets, check};
use crate::drive;
use crate::media::{Audio, Plan};
use crate::mock::MockReport;
use crate::procs::{self, Proc};
use crate::procstat;
use crate::report::{self, AgentFigures, Report, Timing};

/// Counters reported (a name with labels picks that series).
const COUNTERS: [&str; 13] = [
    report::OVERLOAD_COUNTER,
    "callbridge_media_engine_late_ticks_total",
    "callbridge_calls_started_total",
    "callbridge_calls_ended_total",
    "callbridge_rtp_packets_in_total",
    "callbridge_rtp_packets_out_total",
    "callbridge_rtp_packets_lost_total",
    "callbridge_rtp_packets_late_total",
    "callbridge_barge_ins_total",
    "callbridge_model_reconnects_total",
    "callbridge_model_reply_timeouts_total",
    "callbridge_store_writes_committed_total",
    "callbridge_store_commits_total",
];

/// `run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A name for the run (in the report).
    #[arg(long, default_value = "load")]
    pub name: String,
    /// Calls to place in all (default: one round of --concurrent).
    #[arg(long)]
    pub calls: Option<u64>,
    /// Most calls live at once.
    #[arg(long, default_value_t = 50)]
    pub concurrent: usize,
    /// Seconds each call is held after the answer.
    #[arg(long, default_value_t = 20.0)]
    pub hold_s: f64,
    /// Seconds over which the first --concurrent calls start.
    #[arg(long, default_value_t = 2.0)]
    pub ramp_s: f64,
    /// Caller faults (vanish, duplicate BYE, CANCEL, lossy relay) and model
    /// faults (drop mid-reply, stall after the greeting: no reply to the
    /// caller's turn) on a share of model connections.
    #[arg(long)]
    pub faults: bool,
    /// The caller only listens (no speech, no barge-in).
    #[arg(long)]
    pub silent: bool,
    /// Call this SIP address instead of starting the mock and the agent.
    #[arg(long)]
    pub sip: Option<SocketAddr>,
    /// The agent binary (default: `agent` next to this binary).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// The agent's RTP port range.
    #[arg(long, default_value = "30000-31999")]
    pub rtp_ports: String,
    /// The agent's call limit (`calls.max_concurrent`; default: 20% over
    /// --concurrent plus 10, so that it is the engine's overload
    /// admission, not this limit, that refuses calls).
    #[arg(long)]
    pub agent_max_calls: Option<usize>,
    /// The RSS growth check's mark: RSS growth is the RSS at the end (the
    /// agent idle again) minus the RSS when this many answered calls had
    /// ended (issue 17's soak: 500).
    #[arg(long, default_value_t = 100)]
    pub rss_mark_calls: usize,
    /// The agent's media engine threads (`media.engine_threads`).
    #[arg(long, default_value_t = 1)]
    pub engine_threads: usize,
    /// Where to write the JSON report.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the agent's directory (config, log, store, recordings).
    #[arg(long)]
    pub keep: bool,
    /// Targets to check (exit 1 when one fails).
    #[command(flatten)]
    pub targets: Targets,
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("--rtp-ports: expected LOW-HIGH, got {s:?}"))?;
    let lo = a.parse().map_err(|_| format!("--rtp-ports: bad {a:?}"))?;
    let hi = b.parse().map_err(|_| format!("--rtp-ports: bad {b:?}"))?;
    if lo >= hi {
        return Err("--rtp-ports: LOW must be below HIGH".into());
    }
    Ok((lo, hi))
}

/// The started mock and agent.
struct Started {
    mock: Proc,
    agent: Proc,
    http: SocketAddr,
    dir: PathBuf,
}

async fn start(args: &RunArgs) -> Result<(Started, SocketAddr), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let agent_bin = match &args.agent {
        Some(p) => p.clone(),
        None => me.with_file_name("agent"),
    };
    let faults = if args.faults { "20" } else { "0" };
    let mut mcmd = Command::new(&me);
    mcmd.args(["mock-model", "--listen", "127.0.0.1:0"])
        .args(["--drop-every", faults, "--stall-every", faults])
        .stdin(std::process::Stdio::piped());
    let mock = procs::spawn_ready(mcmd, "mock-model").await?;
    let ws = procs::ready_field(&mock.ready, "ws")
        .ok_or("mock-model: no ws= in its ready line")?
        .to_owned();
    let dir = std::env::temp_dir().join(format!(
        "callbridge-load-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_second()
    ));
    // The agent's log and database hold call data: private like the agent's own files.
    callbridge_files::create_dir_all(&dir, callbridge_files::Access::Owner)
        .map_err(|e| e.to_string())?;
    let max_calls = args
        .agent_max_calls
        .unwrap_or(args.concurrent + args.concurrent / 5 + 10);
    let config = procs::write_agent_config(
        &dir,
        &ws,
        max_calls,
        port_range(&args.rtp_ports)?,
        "5s",
        args.engine_threads,
    )
    .map_err(|e| e.to_string())?;
    let log =
        callbridge_files::create_file(&dir.join("agent.log"), callbridge_files::Access::Owner)
            .map_err(|e| e.to_string())?;
    let mut acmd = Command::new(&agent_bin);
    acmd.arg("run")
        .arg("--config")
        .arg(&config)
        .env("GEMINI_API_KEY", "load-test-fake-key")
        .stderr(log);
    let agent = procs::spawn_ready(acmd, &format!("agent ({})", agent_bin.display())).await?;
    let sip = procs::ready_field(&agent.ready, "sip")
        .and_then(|s| s.parse().ok())
        .ok_or("agent: no sip= in its ready line")?;
    let http = procs::ready_field(&agent.ready, "http")
        .and_then(|s| s.parse().ok())
        .ok_or("agent: no http= in its ready line")?;
    Ok((
        Started {
            mock,
            agent,
            http,
            dir,
        },
        sip,
    ))
}

/// Waits (up to 60 s: a vanished caller's BYE may retransmit for 32 s)
/// until every exported gauge is 0; returns the last readings.
async fn idle_gauges(http: SocketAddr) -> BTreeMap<String, f64> {
    let mut last = BTreeMap::new();
    for _ in 0..120 {
        if let Ok(text) = procs::http_get(http, "/metrics").await {
            // A gauge the agent does not export is left out (and reported
            // missing by the checks), not waited for.
            last = GAUGES
                .iter()
                .filter_map(|g| Some(((*g).to_owned(), procs::metric(&text, g)?)))
                .collect();
            if last.values().all(|v| *v == 0.0) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    last
}

/// The store's sessions by end reason, and the Call-IDs of the sessions
/// that ended in a model failure.
fn store_reasons(db: &std::path::Path) -> (BTreeMap<String, u64>, HashSet<String>) {
    let mut m = BTreeMap::new();
    let mut failed = HashSet::new();
    let Ok(store) = callbridge_crm_store::Store::open(db) else {
        m.insert("store-unreadable".into(), 1);
        return (m, failed);
    };
    let mut cursor = None;
    loop {
        let Ok(page) = store.list_sessions(&Default::default(), 500, cursor) else {
            m.insert("store-unreadable".into(), 1);
            return (m, failed);
        };
        for s in &page.items {
            let key = s
                .end_reason
                .map_or("unfinished".to_owned(), |r| format!("{r:?}"));
            if s.end_reason == Some(callbridge_crm_store::EndReason::ModelFailure)
                && let Some(id) = &s.sip_call_id
            {
                failed.insert(id.clone());
            }
            *m.entry(key).or_default() += 1;
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return (m, failed),
        }
    }
}

fn revision() -> String {
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let rev = out(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        out(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev}-dirty") } else { rev }
}

fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the load and returns the report (checks filled in).
pub async fn run(args: RunArgs) -> Result<Report, String> {
    let load_before = load_avg();
    let revision = revision();
    let (started, sip) = match args.sip {
        Some(addr) => (None, addr),
        None => {
            let (s, sip) = start(&args).await?;
            (Some(s), sip)
        }
    };
    let plan = Plan {
        speak: !args.silent,
        barge: !args.silent,
    };
    let hold = Duration::from_secs_f64(args.hold_s);
    let shared = Arc::new(Shared {
        agent: sip,
        hold,
        plan,
        audio: Audio::new(&clips::reply().samples_at(8000)),
        run: u64::from(std::process::id()) << 16 ^ jiff::Timestamp::now().as_second() as u64,
        talking: AtomicUsize::new(0),
    });
    let pid = started.as_ref().map(|s| s.agent.pid());
    // Warm-up: one short call, so lazily created resources are in the
    // baseline.
    let warm_up = Arc::new(Shared {
        agent: sip,
        hold: hold.min(Duration::from_secs(9)),
        plan,
        audio: shared.audio.clone(),
        run: shared.run ^ 1,
        talking: AtomicUsize::new(0),
    });
    let warm = call::run(warm_up, 0, Kind::Normal).await;
    if warm.outcome != Outcome::Completed {
        return Err(format!("the warm-up call failed: {:?}", warm.outcome));
    }
    if let Some(s) = &started {
        idle_gauges(s.http).await;
    }
    let base = pid.and_then(procstat::sample);
    let mock_pid = started.as_ref().map(|s| s.mock.pid());
    let mock_base = mock_pid.and_then(procstat::sample);
    let tool_base = procstat::sample(std::process::id());
    let total = args.calls.unwrap_or(args.concurrent as u64);
    let (calls, watch, wall) = drive::drive(
        shared,
        total,
        args.concurrent,
        Duration::from_secs_f64(args.ramp_s),
        args.faults,
        pid,
        args.rss_mark_calls,
    )
    .await;
    let cpu_since = |pid: Option<u32>, base: Option<procstat::Sample>| {
        Some(procstat::sample(pid?)?.cpu_s - base?.cpu_s)
    };
    let mock_cpu_s = cpu_since(mock_pid, mock_base);
    let tool_cpu_s = cpu_since(Some(std::process::id()), tool_base);
    let mut report = Report {
        mock_cpu_s,
        tool_cpu_s,
        name: args.name.clone(),
        date: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_default()
            .to_string(),
        revision,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        calls: total,
        concurrent: args.concurrent,
        peak_live: watch.peak_live,
        hold_s: args.hold_s,
        faults: args.faults,
        wall_s: wall.as_secs_f64(),
        call_minutes: calls.iter().map(|c| c.talk.as_secs_f64()).sum::<f64>() / 60.0,
        outcomes: report::outcomes(&calls),
        normal: Timing::of(calls.iter().filter(|c| c.kind == Kind::Normal), |_| false),
        lossy: args
            .faults
            .then(|| Timing::of(calls.iter().filter(|c| c.kind == Kind::Lossy), |_| false)),
        dup_bye_statuses: report::dup_bye(&calls),
        ..Report::default()
    };
    if let Some(mut s) = started {
        let mb = |b: u64| b as f64 / 1_048_576.0;
        let gauges_end = idle_gauges(s.http).await;
        let metrics = procs::http_get(s.http, "/metrics")
            .await
            .unwrap_or_default();
        // The fewest fds over two seconds: a connection in its last close
        // steps (the /metrics GET just made) is not a leak. The RSS is the
        // last of twelve seconds: the agent's allocator (jemalloc) gives
        // pages freed by the ended calls back after its 10 s decay.
        let mut end = procstat::sample(s.agent.pid());
        for _ in 0..24 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let (Some(e), Some(now)) = (end.as_mut(), procstat::sample(s.agent.pid())) {
                e.fds = e.fds.min(now.fds);
                e.rss = now.rss;
            }
        }
        let base = base.unwrap_or_default();
        let last = watch.last.unwrap_or_default();
        let cpu_s = last.cpu_s - base.cpu_s;
        let mut a = AgentFigures {
            cpu_s,
            cpu_s_per_call_minute: (report.call_minutes > 0.0).then(|| cpu_s / report.call_minutes),
            cores: cpu_s / report.wall_s.max(1e-9),
            // Only when each slot holds one call: with more calls than
            // slots, replacements are set up between two readings that
            // both see every slot talking.
            steady: watch
                .steady
                .filter(|_| total <= args.concurrent as u64)
                .and_then(|w| w.figures()),
            rss_idle_mb: mb(base.rss),
            rss_peak_mb: mb(watch.peak_rss),
            rss_per_live_call_kb: (watch.peak_live > 0).then(|| {
                watch.peak_rss.saturating_sub(base.rss) as f64 / 1024.0 / watch.peak_live as f64
            }),
            rss_after_100_mb: watch.rss_after_100.map(mb),
            rss_mark_calls: args.rss_mark_calls,
            rss_end_mb: mb(end.map_or(0, |e| e.rss)),
            fds_baseline: base.fds,
            fds_end: end.map_or(0, |e| e.fds),
            gauges_end,
            counters: COUNTERS
                .iter()
                .filter_map(|c| Some(((*c).to_owned(), procs::metric(&metrics, c)?)))
                .collect(),
            ..AgentFigures::default()
        };
        a.exit = procs::terminate(&mut s.agent.child, Duration::from_secs(30)).await;
        a.exit_code = a.exit.code.filter(|_| !a.exit.before_sigterm);
        let (reasons, fallback) = store_reasons(&s.dir.join("crm.db"));
        a.store_end_reasons = reasons;
        // The store tells which calls' models failed: those played the
        // fallback announcement, not a reply.
        let played_fallback = |c: &CallResult| fallback.contains(&c.call_id);
        report.normal = Timing::of(
            calls.iter().filter(|c| c.kind == Kind::Normal),
            played_fallback,
        );
        report.lossy = args.faults.then(|| {
            Timing::of(
                calls.iter().filter(|c| c.kind == Kind::Lossy),
                played_fallback,
            )
        });
        report.agent = Some(a);
        drop(s.mock.child.stdin.take());
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(10), s.mock.stdout.next_line()).await
        {
            report.mock = serde_json::from_str::<MockReport>(&line).ok();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), s.mock.child.wait()).await;
        report.agent_dir = Some(s.dir.display().to_string());
    }
    report.refusals =
        report::Refusals::of(&report.outcomes, report.agent.as_ref().map(|a| &a.counters));
    report.checks = check(&args.targets, &report);
    if let Some(dir) = report.agent_dir.clone() {
        // Kept when asked, or when a check failed (the agent's log says why).
        if args.keep || !report.passed() {
            eprintln!("callbridge-load: agent files kept in {dir}");
        } else {
            let _ = std::fs::remove_dir_all(&dir);
            report.agent_dir = None;
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}
