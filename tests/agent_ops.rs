//! End-to-end: the operator's files under `deploy/` against the real
//! `agent` binary. The Grafana dashboard and the Prometheus alert rules
//! name only metrics a running agent exports (scraped here), and
//! `promtool check rules` accepts the rules when promtool is installed
//! (Debian's `prometheus` package; scripts/test installs it). The systemd
//! unit passes `systemd-analyze verify`, and the agent speaks systemd's
//! notify protocol to a `$NOTIFY_SOCKET` of the test's: READY=1 once up,
//! WATCHDOG=1 while `$WATCHDOG_USEC` asks, STOPPING=1 on SIGTERM. The
//! container image's configuration passes `agent check-config`. (No image
//! is built here: that needs a Docker daemon.)

mod support_agent;

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support_agent::{Agent, Opts};

/// A file under the workspace's `deploy/`.
fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Every metric name (`callbridge_*`, `process_*`) in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            let w = &text[start..i];
            if w.starts_with("callbridge_") || w.starts_with("process_") {
                names.insert(w.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The sample names of an exposition page (`name{labels} value`).
fn exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_the_agent_exports() {
    let agent = Agent::start(Opts::default());
    let page = agent.request("GET", "/metrics", None);
    assert_eq!(page.status, 200);
    let have = exported(&page.text());
    assert!(have.contains("callbridge_build_info"), "{have:?}");

    let dashboard = std::fs::read_to_string(deploy("grafana/callbridge.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let exprs: Vec<String> = json["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{} queries", exprs.len());
    // Token usage (issue 22): exported from the start (zero series for
    // the configured provider) and charted.
    assert!(have.contains("callbridge_model_tokens_total"), "{have:?}");
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("callbridge_model_tokens_total")),
        "the dashboard charts token usage"
    );
    // Issue 19: the verdict panel's series exist before any call.
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("callbridge_amd_verdicts_total") && e.contains("by (verdict)")),
        "no AMD verdict panel"
    );
    assert!(
        exprs.iter().any(|e| e.contains("histogram_quantile(0.95")
            && e.contains("callbridge_amd_decision_seconds")),
        "no AMD decision time p95 panel"
    );
    let text = page.text();
    for v in ["human", "machine", "no_speech", "machine_end_beep"] {
        let sample = format!("callbridge_amd_verdicts_total{{verdict=\"{v}\"}} 0");
        assert!(text.contains(&sample), "{sample} not exported at start");
    }
    let alerts = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();

    for (file, text) in [
        ("deploy/grafana/callbridge.json", exprs.join("\n")),
        ("deploy/prometheus/alerts.yml", alerts),
    ] {
        let named = metric_names(&text);
        assert!(named.len() >= 5, "{file} names {named:?}");
        let unknown: Vec<_> = named.difference(&have).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics the agent does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_name_scan_finds_names_in_expressions() {
    let n = metric_names(
        "rate(callbridge_calls_started_total[5m]) / process_max_fds{x=\"callbridge agent\"}",
    );
    assert_eq!(
        n.into_iter().collect::<Vec<_>>(),
        ["callbridge_calls_started_total", "process_max_fds"]
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = deploy("prometheus/alerts.yml");
    match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules {}:\n{}{}",
            rules.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("promtool not on PATH (Debian package `prometheus`): check skipped");
        }
        Err(e) => panic!("promtool: {e}"),
    }
}

/// The datagrams received on `sock` until one contains `want` (each
/// datagram one string), or the time is up.
fn notifications_until(sock: &UnixDatagram, want: &str, within: Duration) -> Vec<String> {
    let end = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.lines().any(|l| l == want);
        got.push(msg);
        if done {
            break;
        }
    }
    got
}

#[test]
fn the_agent_notifies_ready_watchdog_and_stopping_to_the_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut agent = Agent::start(Opts {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            // 400 ms: a ping every 200 ms.
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Opts::default()
    });
    // The `ready` line is out: READY=1 came with it, naming the listeners.
    let up = notifications_until(&sock, "READY=1", Duration::from_secs(5));
    let ready = up.last().expect("a READY=1 notification");
    assert!(ready.lines().any(|l| l == "READY=1"), "{up:?}");
    assert!(
        ready.contains(&format!("STATUS=ready sip={}", agent.sip)),
        "{ready}"
    );
    let pings = notifications_until(&sock, "WATCHDOG=1", Duration::from_secs(5));
    assert!(
        pings
            .last()
            .is_some_and(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "no watchdog ping: {pings:?}"
    );
    agent.signal("TERM");
    let down = notifications_until(&sock, "STOPPING=1", Duration::from_secs(10));
    assert!(
        down.last()
            .is_some_and(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {down:?}"
    );
    assert!(
        !down.iter().any(|m| m.contains("READY=1")),
        "READY=1 again: {down:?}"
    );
    assert!(agent.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not on PATH: `systemd-analyze verify` skipped");
        return;
    }
    let unit = std::fs::read_to_string(deploy("systemd/callbridge-agent.service")).unwrap();
    for needed in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/callbridge",
        "PrivateTmp=yes",
        "WatchdogSec=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // verify checks that the executables exist: the binary under test
    // stands in for the installed one.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("callbridge-agent.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/callbridge-agent",
            support_agent::agent_bin(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !said.contains("callbridge-agent.service:"),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_container_configuration_passes_check_config_and_the_dockerfile_runs_unprivileged() {
    let config = deploy("docker/agent.toml");
    let out = support_agent::run_agent_cmd(
        &["check-config", "--config", config.to_str().unwrap()],
        &Opts {
            env: vec![("GEMINI_API_KEY".into(), "test-key".into())],
            ..Opts::default()
        },
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "check-config {}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("http 0.0.0.0:8080"), "{said}");
    assert!(said.contains("/var/lib/callbridge/store/"), "{said}");

    let dockerfile =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"))
            .unwrap();
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "USER {user}"
    );
    assert!(
        dockerfile.contains("/livez"),
        "the health check probes /livez"
    );
    assert!(
        dockerfile
            .contains("VOLUME [\"/var/lib/callbridge/store\", \"/var/lib/callbridge/recordings\"]"),
        "the store and the recordings are volumes"
    );
    // The paths the image declares are the configuration's.
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("\"/var/lib/callbridge/store/callbridge.db\""));
    assert!(toml.contains("\"/var/lib/callbridge/recordings\""));
}
