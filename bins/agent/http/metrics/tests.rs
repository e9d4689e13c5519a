//! Tests of the exposition: a small checker of the Prometheus text format
//! (tested itself on broken pages), the page for a fixed snapshot, and the
//! page after a real call through the manager (caller on loopback, mock
//! Gemini, temporary store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};

use callbridge_session::lifecycle::{Direction, EndReason};
use callbridge_session::metrics::{DURATION_BUCKETS, LATENCY_BUCKETS};
use callbridge_session::{HistogramSnapshot, MetricsSnapshot, Snapshot};

use super::render;

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
    ("callbridge_jitter_buffer_depth_ms", "gauge"),
    ("callbridge_barge_ins_total", "counter"),
    ("callbridge_model_reconnects_total", "counter"),
    ("callbridge_model_reply_timeouts_total", "counter"),
    ("callbridge_answer_to_first_audio_seconds", "histogram"),
    ("callbridge_caller_stop_to_agent_audio_seconds", "histogram"),
    ("callbridge_call_duration_seconds", "histogram"),
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

fn empty_snapshot() -> (Snapshot, MetricsSnapshot) {
    let s = Snapshot {
        calls: Vec::new(),
        ended: Vec::new(),
        call_tasks: 0,
        media_sockets: 0,
        model_sessions: 0,
        model_connections: 0,
        admitting: true,
    };
    let m = MetricsSnapshot {
        calls_started: Direction::ALL.iter().map(|d| (*d, 0)).collect(),
        calls_ended: Vec::new(),
        rtp_packets_in: 0,
        rtp_packets_out: 0,
        rtp_packets_lost: 0,
        rtp_packets_late: 0,
        rtp_packets_rejected: callbridge_rtp::latch::RejectReason::ALL
            .iter()
            .map(|r| (*r, 0))
            .collect(),
        jitter_buffer_depth_ms: 0.0,
        jitter_buffer_streams: 0,
        barge_ins: 0,
        model_reconnects: 0,
        model_reply_timeouts: 0,
        answer_to_first_audio: HistogramSnapshot::empty(LATENCY_BUCKETS),
        caller_stop_to_agent_audio: HistogramSnapshot::empty(LATENCY_BUCKETS),
        call_duration: HistogramSnapshot::empty(DURATION_BUCKETS),
        model: None,
    };
    (s, m)
}

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
    assert_eq!(super::escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    let mut e = super::Exposition(String::new());
    e.family("x_total", "counter", "help");
    e.sample("x_total", &[("k", "q\"\n\\")], 1);
    let f = check(&e.0).unwrap();
    assert_eq!(value(&f, "x_total", &[("k", "q\"\n\\")]), Some(1.0));
}

#[test]
fn a_fixed_snapshot_renders_every_contract_metric_with_its_values() {
    let (mut s, mut m) = empty_snapshot();
    s.call_tasks = 2;
    s.media_sockets = 3;
    s.model_connections = 1;
    m.calls_started = vec![(Direction::Inbound, 5), (Direction::Outbound, 2)];
    m.calls_ended = vec![(Direction::Outbound, EndReason::Busy, 1)];
    m.rtp_packets_lost = 7;
    m.jitter_buffer_depth_ms = 42.5;
    m.answer_to_first_audio = HistogramSnapshot {
        buckets: vec![(0.1, 1), (0.5, 3)],
        sum: 0.9,
        count: 4,
    };
    let page = render(&s, &m, 9);
    let f = check(&page).unwrap_or_else(|e| panic!("{e}\n{page}"));
    for (name, kind) in CONTRACT {
        assert_eq!(f.get(*name).map(|f| f.kind.as_str()), Some(*kind), "{name}");
    }
    assert_eq!(f.len(), CONTRACT.len(), "no other families");
    let v = |n: &str, l: &[(&str, &str)]| value(&f, n, l);
    assert_eq!(
        v(
            "callbridge_calls_started_total",
            &[("direction", "inbound")]
        ),
        Some(5.0)
    );
    assert_eq!(
        v(
            "callbridge_calls_ended_total",
            &[("direction", "outbound"), ("reason", "busy")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "callbridge_calls_ended_total",
            &[("direction", "inbound"), ("reason", "busy")]
        ),
        Some(0.0),
        "every direction and reason is listed"
    );
    assert_eq!(v("callbridge_call_tasks", &[]), Some(2.0));
    assert_eq!(v("callbridge_media_sockets", &[]), Some(3.0));
    assert_eq!(v("callbridge_live_tasks", &[]), Some(9.0));
    assert_eq!(v("callbridge_rtp_packets_lost_total", &[]), Some(7.0));
    assert_eq!(v("callbridge_jitter_buffer_depth_ms", &[]), Some(42.5));
    let h = "callbridge_answer_to_first_audio_seconds";
    assert_eq!(v(&format!("{h}_bucket"), &[("le", "0.1")]), Some(1.0));
    assert_eq!(v(&format!("{h}_bucket"), &[("le", "+Inf")]), Some(4.0));
    assert_eq!(v(&format!("{h}_sum"), &[]), Some(0.9));
    assert_eq!(v(&format!("{h}_count"), &[]), Some(4.0));
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
    };
    let (s, m) = empty_snapshot();
    let page = format!("{}{}", super::render(&s, &m, 0), super::render_store(&st));
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
}
