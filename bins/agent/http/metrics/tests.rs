//! Tests of the exposition: a small checker of the Prometheus text format
//! (tested itself on broken pages), the page for fixed figures, the page
//! after a real call through the manager (caller on loopback, mock
//! Gemini, temporary store), and `promtool check metrics` on the page when
//! Prometheus' promtool is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};

use std::time::Duration;

use callbridge_session::Snapshot;
use callbridge_session::lifecycle::{Direction, EndReason};
use callbridge_session::metrics::{Metrics, RtpCounts};
use callbridge_session::store_writer::StoreStats;

use super::{Page, Scrape};

/// Every metric name the agent contract fixes.
const CONTRACT: &[(&str, &str)] = &[
    ("callbridge_calls_started_total", "counter"),
    ("callbridge_calls_ended_total", "counter"),
    ("callbridge_active_calls", "gauge"),
    ("callbridge_call_tasks", "gauge"),
    ("callbridge_media_sockets", "gauge"),
    ("callbridge_model_sessions", "gauge"),
    ("callbridge_model_connections", "gauge"),
    ("callbridge_live_tasks", "gauge"),
    ("callbridge_rtp_packets_in_total", "counter"),
    ("callbridge_rtp_packets_out_total", "counter"),
    ("callbridge_rtp_packets_lost_total", "counter"),
    ("callbridge_rtp_packets_late_total", "counter"),
    ("callbridge_rtp_rejected_packets_total", "counter"),
    ("callbridge_jitter_buffer_depth_seconds", "gauge"),
    ("callbridge_barge_ins_total", "counter"),
    ("callbridge_model_reconnects_total", "counter"),
    ("callbridge_model_reply_timeouts_total", "counter"),
    ("callbridge_answer_to_first_audio_seconds", "histogram"),
    ("callbridge_caller_stop_to_agent_audio_seconds", "histogram"),
    ("callbridge_call_duration_seconds", "histogram"),
    ("callbridge_amd_verdicts_total", "counter"),
    ("callbridge_amd_decision_seconds", "histogram"),
];

type Labels = Vec<(String, String)>;

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<(String, Labels, f64)>,
}

/// Parses and checks a page: HELP then TYPE before each family's samples,
/// valid names, quoted and escaped label values, float values, no
/// duplicate series, counters named `_total` and never negative,
/// histogram buckets cumulative up to `le="+Inf"` equal to `_count`, with
/// a `_sum`.
fn check(page: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut seen = HashSet::new();
    if !page.ends_with('\n') {
        return Err("the page must end with a line feed".into());
    }
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').ok_or("HELP without text")?;
            valid_name(name)?;
            if families.contains_key(name) {
                return Err(format!("second HELP for {name}"));
            }
            families.insert(
                name.to_owned(),
                Family {
                    help: true,
                    ..Default::default()
                },
            );
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without kind")?;
            let f = families
                .get_mut(name)
                .ok_or(format!("TYPE before HELP: {name}"))?;
            if !["counter", "gauge", "histogram"].contains(&kind) || !f.kind.is_empty() {
                return Err(format!("bad or second TYPE for {name}: {kind}"));
            }
            f.kind = kind.to_owned();
            current = Some(name.to_owned());
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        } else {
            let fam = current
                .clone()
                .ok_or(format!("sample outside a family: {line}"))?;
            let (name, labels, value) = sample(line)?;
            let f = families.get_mut(&fam).unwrap();
            let ok = match f.kind.as_str() {
                "histogram" => [
                    format!("{fam}_bucket"),
                    format!("{fam}_sum"),
                    format!("{fam}_count"),
                ]
                .contains(&name),
                _ => name == fam,
            };
            if !ok {
                return Err(format!("{name} does not belong to family {fam}"));
            }
            if !seen.insert((name.clone(), labels.clone())) {
                return Err(format!("duplicate series {name}{labels:?}"));
            }
            f.samples.push((name, labels, value));
        }
    }
    for (name, f) in &families {
        if !f.help || f.kind.is_empty() || f.samples.is_empty() {
            return Err(format!("{name}: HELP, TYPE and samples required"));
        }
        if f.kind == "counter" && (!name.ends_with("_total") || f.samples.iter().any(|s| s.2 < 0.0))
        {
            return Err(format!("counter {name} must end in _total and be >= 0"));
        }
        if f.kind == "histogram" {
            check_histogram(name, f)?;
        }
    }
    Ok(families)
}

fn check_histogram(name: &str, f: &Family) -> Result<(), String> {
    let mut last = (f64::NEG_INFINITY, 0.0);
    let mut inf = None;
    for (n, labels, v) in &f.samples {
        if !n.ends_with("_bucket") {
            continue;
        }
        let le = labels
            .iter()
            .find(|(k, _)| k == "le")
            .ok_or(format!("{name}: bucket without le"))?;
        let bound = parse_value(&le.1)?;
        if inf.is_some() || bound <= last.0 || *v < last.1 {
            return Err(format!("{name}: buckets not ascending and cumulative"));
        }
        if bound == f64::INFINITY {
            inf = Some(*v);
        }
        last = (bound, *v);
    }
    let get = |suffix: &str| {
        f.samples
            .iter()
            .find(|s| s.0 == format!("{name}{suffix}"))
            .map(|s| s.2)
    };
    let count = get("_count").ok_or(format!("{name}: no _count"))?;
    get("_sum").ok_or(format!("{name}: no _sum"))?;
    if inf != Some(count) {
        return Err(format!("{name}: le=\"+Inf\" {inf:?} is not _count {count}"));
    }
    Ok(())
}

fn valid_name(n: &str) -> Result<(), String> {
    let mut chars = n.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {n:?}"))
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn sample(line: &str) -> Result<(String, Labels, f64), String> {
    let end = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
    let name = &line[..end];
    valid_name(name)?;
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            let eq = r.find('=').ok_or("label without =")?;
            valid_name(&r[..eq])?;
            let key = r[..eq].to_owned();
            r = r[eq + 1..]
                .strip_prefix('"')
                .ok_or(format!("unquoted label value in {line}"))?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let close = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key, value));
            r = &r[close + 1..];
            if let Some(more) = r.strip_prefix(',') {
                r = more;
                continue;
            }
            rest = r
                .strip_prefix('}')
                .ok_or(format!("bad label list in {line}"))?;
            break;
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or(format!("no space before the value: {line}"))?;
    Ok((name.to_owned(), labels, parse_value(value)?))
}

/// The value of one series.
fn value(f: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    f.values().flat_map(|f| &f.samples).find_map(|(n, l, v)| {
        let same = l.len() == labels.len()
            && labels
                .iter()
                .all(|(k, val)| l.iter().any(|(lk, lv)| lk == k && lv == val));
        (n == name && same).then_some(*v)
    })
}

fn empty_snapshot() -> Snapshot {
    Snapshot {
        calls: Vec::new(),
        ended: Vec::new(),
        call_tasks: 0,
        media_sockets: 0,
        model_sessions: 0,
        model_connections: 0,
        admitting: true,
        engine: callbridge_session::EngineStatus::default(),
    }
}

fn healthy_store() -> StoreStats {
    StoreStats {
        healthy: true,
        write_failures: callbridge_session::store_writer::OPS
            .iter()
            .map(|op| (*op, 0))
            .collect(),
        backlog: 0,
        in_memory: 0,
        journaled: 0,
        replayed: 0,
        rejected: 0,
        lost: 0,
        refused_calls: 0,
        written: 0,
        commits: 0,
    }
}

/// The page of `metrics` with these figures read at the scrape.
fn render(metrics: &Metrics, snapshot: Snapshot, live_tasks: usize, store: StoreStats) -> String {
    let scrape = Scrape {
        snapshot,
        metrics: metrics.snapshot(),
        live_tasks,
        store,
        sip: Some(callbridge_sip::ua::Stats {
            refused_shutting_down: 2,
            overloaded: 1,
            filtered: 6,
            ..Default::default()
        }),
    };
    Page::with(|r| metrics.register(r), move || scrape.clone())
        .render()
        .unwrap()
}

/// The families of the media engine, the store writer, the process and
/// the build.
const OTHERS: &[(&str, &str)] = &[
    ("callbridge_media_engine_headroom_ratio", "gauge"),
    ("callbridge_media_engine_late_p99_seconds", "gauge"),
    ("callbridge_media_engine_busy_ratio", "gauge"),
    ("callbridge_media_engine_backlog_p99", "gauge"),
    ("callbridge_media_engine_stalled_ratio", "gauge"),
    ("callbridge_media_engine_admission_ceiling_calls", "gauge"),
    ("callbridge_media_engine_late_ticks_total", "counter"),
    ("callbridge_store_healthy", "gauge"),
    ("callbridge_store_write_failures_total", "counter"),
    ("callbridge_calls_refused_total", "counter"),
    ("callbridge_sip_requests_filtered_total", "counter"),
    ("callbridge_store_journal_backlog", "gauge"),
    ("callbridge_store_backlog_in_memory", "gauge"),
    ("callbridge_store_writes_journaled_total", "counter"),
    ("callbridge_store_writes_replayed_total", "counter"),
    ("callbridge_store_writes_rejected_total", "counter"),
    ("callbridge_store_writes_lost_total", "counter"),
    ("callbridge_store_writes_committed_total", "counter"),
    ("callbridge_store_commits_total", "counter"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_virtual_memory_max_bytes", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_threads", "gauge"),
    ("callbridge_build_info", "gauge"),
    // ops (issue 22): what [retention] removed.
    ("callbridge_retention_deleted_total", "counter"),
    ("callbridge_trunk_registrations", "gauge"),
    // ops2 (issue 22): token usage, zero series from `prepare`.
    ("callbridge_model_tokens_total", "counter"),
];

#[test]
fn the_checker_rejects_broken_pages() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"q\"} 1\n";
    assert!(check(ok).is_ok(), "{:?}", check(ok).err());
    for bad in [
        "a_total 1\n",                                                       // no family
        "# HELP a_total x\na_total 1\n",                                     // no TYPE
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"q\"} 1\n", // unescaped quote
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=v} 1\n",        // unquoted
        "# HELP a x\n# TYPE a counter\na 1\n", // counter without _total
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n", // duplicate
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP g x\n# TYPE g gauge\ng one\n",
    ] {
        assert!(check(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn label_values_are_escaped() {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    let family = Family::<[(&str, &str); 1], Counter>::default();
    family.get_or_create(&[("k", "q\"\n\\")]).inc();
    let mut r = prometheus_client::registry::Registry::default();
    r.register("x", "help", family);
    let mut page = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut page, &r).unwrap();
    assert!(page.contains(r#"x_total{k="q\"\n\\"} 1"#), "{page}");
    let f = check(&page).unwrap();
    assert_eq!(value(&f, "x_total", &[("k", "q\"\n\\")]), Some(1.0));
}

#[test]
fn fixed_figures_render_every_contract_metric_with_its_values() {
    let mut s = empty_snapshot();
    s.call_tasks = 2;
    s.media_sockets = 3;
    s.model_connections = 1;
    let m = Metrics::default();
    m.prepare("gemini");
    for _ in 0..5 {
        m.call_started(Direction::Inbound, "sip", "gemini");
    }
    m.call_started(Direction::Outbound, "sip", "gemini");
    m.call_started(Direction::Outbound, "sip", "gemini");
    m.call_ended(Direction::Outbound, EndReason::Busy, "sip", "gemini");
    m.rtp(RtpCounts {
        lost: 7,
        ..RtpCounts::default()
    });
    m.depth(None, Some(85));
    m.depth(None, Some(0));
    for ms in [100, 200, 300, 12_000] {
        m.answer_to_first_audio(Duration::from_millis(ms));
    }
    m.amd_verdict("machine", Some(Duration::from_millis(2660)));
    m.amd_verdict("machine_end_beep", None);
    let page = render(&m, s, 9, healthy_store());
    let f = check(&page).unwrap_or_else(|e| panic!("{e}\n{page}"));
    for (name, kind) in CONTRACT.iter().chain(OTHERS) {
        assert_eq!(f.get(*name).map(|f| f.kind.as_str()), Some(*kind), "{name}");
    }
    assert_eq!(f.len(), CONTRACT.len() + OTHERS.len(), "no other families");
    let v = |n: &str, l: &[(&str, &str)]| value(&f, n, l);
    assert_eq!(
        v("callbridge_amd_verdicts_total", &[("verdict", "machine")]),
        Some(1.0)
    );
    assert_eq!(
        v(
            "callbridge_amd_verdicts_total",
            &[("verdict", "machine_end_beep")]
        ),
        Some(1.0)
    );
    assert_eq!(v("callbridge_amd_decision_seconds_count", &[]), Some(1.0));
    assert_eq!(
        v(
            "callbridge_calls_started_total",
            &[
                ("direction", "inbound"),
                ("transport", "sip"),
                ("provider", "gemini")
            ]
        ),
        Some(5.0)
    );
    assert_eq!(
        v(
            "callbridge_calls_ended_total",
            &[
                ("direction", "outbound"),
                ("reason", "busy"),
                ("transport", "sip"),
                ("provider", "gemini")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "callbridge_calls_ended_total",
            &[
                ("direction", "inbound"),
                ("reason", "busy"),
                ("transport", "sip"),
                ("provider", "gemini")
            ]
        ),
        Some(0.0),
        "every direction and reason is listed"
    );
    assert_eq!(v("callbridge_call_tasks", &[]), Some(2.0));
    assert_eq!(v("callbridge_media_sockets", &[]), Some(3.0));
    assert_eq!(v("callbridge_live_tasks", &[]), Some(9.0));
    assert_eq!(v("callbridge_rtp_packets_lost_total", &[]), Some(7.0));
    assert_eq!(
        v("callbridge_jitter_buffer_depth_seconds", &[]),
        Some(0.0425)
    );
    let h = "callbridge_answer_to_first_audio_seconds";
    assert_eq!(v(&format!("{h}_bucket"), &[("le", "0.1")]), Some(1.0));
    assert_eq!(v(&format!("{h}_bucket"), &[("le", "0.3")]), Some(3.0));
    assert_eq!(v(&format!("{h}_bucket"), &[("le", "+Inf")]), Some(4.0));
    assert!((v(&format!("{h}_sum"), &[]).unwrap() - 12.6).abs() < 1e-9);
    assert_eq!(v(&format!("{h}_count"), &[]), Some(4.0));
    assert_eq!(
        v(
            "callbridge_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("rustc", env!("CALLBRIDGE_RUSTC_VERSION")),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    }
                )
            ]
        ),
        Some(1.0)
    );
    assert!(v("process_start_time_seconds", &[]).unwrap() > 1.0e9);
    assert!(v("process_open_fds", &[]).unwrap() >= 3.0);
    assert!(v("process_resident_memory_bytes", &[]).unwrap() > 0.0);
}

mod real_call;

#[test]
fn the_store_families_render_health_failures_refusals_and_backlog() {
    let st = callbridge_session::store_writer::StoreStats {
        healthy: false,
        write_failures: callbridge_session::store_writer::OPS
            .iter()
            .map(|op| (*op, u64::from(*op == "turns") * 3))
            .collect(),
        backlog: 7,
        in_memory: 2,
        journaled: 5,
        replayed: 1,
        rejected: 0,
        lost: 0,
        refused_calls: 4,
        written: 12,
        commits: 5,
    };
    let page = render(&Metrics::default(), empty_snapshot(), 0, st);
    let f = check(&page).unwrap();
    assert_eq!(value(&f, "callbridge_store_healthy", &[]), Some(0.0));
    assert_eq!(
        value(
            &f,
            "callbridge_store_write_failures_total",
            &[("op", "turns")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &f,
            "callbridge_store_write_failures_total",
            &[("op", "create")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&f, "callbridge_calls_refused_total", &[("reason", "store")]),
        Some(4.0)
    );
    assert_eq!(
        value(
            &f,
            "callbridge_calls_refused_total",
            &[("reason", "overload")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&f, "callbridge_store_journal_backlog", &[]),
        Some(7.0)
    );
    assert_eq!(
        value(&f, "callbridge_store_backlog_in_memory", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&f, "callbridge_store_writes_journaled_total", &[]),
        Some(5.0)
    );
    assert_eq!(
        value(&f, "callbridge_store_writes_committed_total", &[]),
        Some(12.0)
    );
    assert_eq!(value(&f, "callbridge_store_commits_total", &[]), Some(5.0));
}

/// `promtool check metrics` (Prometheus' own parser and linter) accepts
/// the page, lints included (promtool exits 3 for lint problems, 1 for a
/// page it cannot parse); skipped with a note when promtool is not
/// installed.
#[test]
fn promtool_accepts_the_page() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let m = Metrics::default();
    m.call_started(Direction::Inbound, "sip", "gemini");
    m.call_duration(Duration::from_secs(42));
    let page = render(&m, empty_snapshot(), 1, healthy_store());
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("promtool not on PATH: `promtool check metrics` skipped");
            return;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = said.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "promtool check metrics ({:?}): {said}\n{page}",
        out.status.code()
    );
}

#[test]
fn the_engine_families_render_load_headroom_and_overload_refusals() {
    let mut snapshot = empty_snapshot();
    snapshot.engine = callbridge_session::EngineStatus {
        headroom_permille: 250,
        late_p99_us: 1_500,
        stalled_ppm: 2_000,
        busy_permille: 400,
        backlog_p99: 2,
        late_ticks: 9,
        refused_overload: 3,
        admission_ceiling: 950,
    };
    let page = render(&Metrics::default(), snapshot, 0, healthy_store());
    let f = check(&page).unwrap();
    let v = |name: &str| value(&f, name, &[]);
    assert_eq!(v("callbridge_media_engine_headroom_ratio"), Some(0.25));
    assert_eq!(v("callbridge_media_engine_late_p99_seconds"), Some(0.0015));
    assert_eq!(v("callbridge_media_engine_busy_ratio"), Some(0.4));
    assert_eq!(v("callbridge_media_engine_stalled_ratio"), Some(0.002));
    assert_eq!(v("callbridge_media_engine_backlog_p99"), Some(2.0));
    assert_eq!(v("callbridge_media_engine_late_ticks_total"), Some(9.0));
    assert_eq!(
        v("callbridge_media_engine_admission_ceiling_calls"),
        Some(950.0)
    );
    assert_eq!(
        value(
            &f,
            "callbridge_calls_refused_total",
            &[("reason", "overload")]
        ),
        Some(3.0)
    );
}

#[test]
fn every_refusal_reason_is_listed_with_its_count() {
    let m = Metrics::default();
    m.call_refused(callbridge_session::metrics::CallRefusal::Codec);
    m.call_refused(callbridge_session::metrics::CallRefusal::Limit);
    m.call_refused(callbridge_session::metrics::CallRefusal::Limit);
    let mut st = healthy_store();
    st.refused_calls = 4;
    let page = render(&m, empty_snapshot(), 0, st);
    let f = check(&page).unwrap();
    let refused = |r: &str| value(&f, "callbridge_calls_refused_total", &[("reason", r)]);
    for (reason, n) in [
        // The manager's 2 and the SIP core's 1.
        ("limit", 3.0),
        ("codec", 1.0),
        ("loop", 0.0),
        ("media", 0.0),
        ("store", 4.0),
        ("overload", 0.0),
        ("draining", 2.0),
    ] {
        assert_eq!(refused(reason), Some(n), "{reason}");
    }
    assert_eq!(
        value(&f, "callbridge_sip_requests_filtered_total", &[]),
        Some(6.0)
    );
}

// --- issue 19 (amd) ---
#[test]
fn every_amd_verdict_is_exported_at_zero_before_the_first_call() {
    let m = Metrics::default();
    let page = render(&m, empty_snapshot(), 0, healthy_store());
    let f = check(&page).unwrap_or_else(|e| panic!("{e}\n{page}"));
    for v in [
        "human",
        "machine",
        "no_speech",
        "unreachable",
        "unknown",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_timeout",
    ] {
        assert_eq!(
            value(&f, "callbridge_amd_verdicts_total", &[("verdict", v)]),
            Some(0.0),
            "{v}"
        );
    }
    m.amd_verdict("human", Some(Duration::from_millis(1200)));
    let page = render(&m, empty_snapshot(), 0, healthy_store());
    let f = check(&page).unwrap();
    assert_eq!(
        value(&f, "callbridge_amd_verdicts_total", &[("verdict", "human")]),
        Some(1.0),
        "the same series counts"
    );
}
// --- end issue 19 (amd) ---
