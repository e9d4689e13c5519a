//! The load tool's caller against the in-process session manager (the
//! agent's call engine) with the mock Gemini model: the figures it reports
//! come from real calls, and the caller-side faults end the way they should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "bin/paths.rs"]
mod bins;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::Store;
use callbridge_llm_bridge::{GeminiLive, SessionConfig};
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_session::{FixedSummarizer, Manager, ManagerConfig};
use serde_json::Value;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn manager(rtp: std::ops::RangeInclusive<u16>) -> (MockGemini, Manager, tempfile::TempDir) {
    let mock = MockGemini::start(GeminiScript::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("crm.db")).unwrap();
    let mut model = SessionConfig::default();
    model.endpoint = Some(mock.url());
    model.model = "mock-model".into();
    let mut cfg = ManagerConfig::new(SocketAddr::new(LOCAL, 0), LOCAL, rtp, model);
    cfg.machine.rtp_inactivity = Some(Duration::from_secs(2));
    cfg.recordings_dir = Some(dir.path().to_path_buf());
    cfg.max_calls = 40;
    let manager = Manager::start(
        cfg,
        Arc::new(GeminiLive::new()),
        store,
        Some(Arc::new(FixedSummarizer::new("summary"))),
    )
    .await
    .unwrap();
    (mock, manager, dir)
}

/// Runs `callbridge-load run --sip ADDR ...` and returns its JSON report.
async fn load(sip: SocketAddr, dir: &std::path::Path, extra: &[&str]) -> Value {
    let json = dir.join("report.json");
    let out = tokio::process::Command::new(bins::LOAD)
        .args(["run", "--sip", &sip.to_string(), "--json"])
        .arg(&json)
        .args(extra)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("the load run ends within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "callbridge-load failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("answer -> first audio"), "table: {stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_measured_end_to_end() {
    let (mock, manager, dir) = manager(23_000..=23_063).await;
    let r = load(
        manager.sip_addr(),
        dir.path(),
        &["--calls", "3", "--concurrent", "3", "--hold-s", "10"],
    )
    .await;
    assert_eq!(n(&r["outcomes"]["normal"]["completed"]), 3, "{r:#}");
    let t = &r["normal"];
    for figure in [
        "setup",
        "answer_to_first_audio",
        "caller_stop_to_agent_audio",
        "barge_in_flush",
    ] {
        assert_eq!(
            n(&t[figure]["n"]),
            3,
            "{figure} measured on every call: {t:#}"
        );
    }
    // The reply follows the mock's 400 ms end-of-turn silence (its VAD
    // threshold differs from ours by a frame or two).
    let stop = t["caller_stop_to_agent_audio"]["p50_ms"].as_f64().unwrap();
    assert!(
        (300.0..3000.0).contains(&stop),
        "caller stop to audio {stop} ms"
    );
    // A flushed reply stops well before the reply clip (1.75 s) would end.
    let flush = t["barge_in_flush"]["max_ms"].as_f64().unwrap();
    assert!(flush < 1400.0, "barge-in flush {flush} ms");
    // 10 s at 50 packets a second per call, minus the answer's ramp.
    assert!(n(&t["packets_received"]) > 3 * 400, "{t:#}");
    assert!(t["interval_error"]["n"].as_u64().unwrap() > 1000);
    // The warm-up call and the three: greeting plus two caller turns each.
    assert!(mock.stats().caller_turns >= 6, "{:?}", mock.stats());
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_faults_end_as_they_should() {
    let (_mock, manager, dir) = manager(23_100..=23_199).await;
    // Calls 2, 5, 9, 13 and 14 (index 1, 4, 8, 12, 13) are the faulty ones.
    let r = load(
        manager.sip_addr(),
        dir.path(),
        &[
            "--calls",
            "14",
            "--concurrent",
            "14",
            "--hold-s",
            "4",
            "--faults",
            "--silent",
        ],
    )
    .await;
    let o = &r["outcomes"];
    assert_eq!(n(&o["normal"]["completed"]), 9, "{o:#}");
    assert_eq!(n(&o["vanish"]["vanished"]), 1, "{o:#}");
    assert_eq!(n(&o["dup-bye"]["completed"]), 1, "{o:#}");
    assert_eq!(n(&o["lossy"]["completed"]), 2, "{o:#}");
    let cancel = n(&o["cancel"]["cancelled"]) + n(&o["cancel"]["cancel-too-late"]);
    assert_eq!(cancel, 1, "{o:#}");
    // The first BYE is answered 200, the later one with a new CSeq 481.
    assert_eq!(n(&r["dup_bye_statuses"]["200,481"]), 1, "{r:#}");
    // The relay dropped and reordered some of the agent's packets.
    let lossy = &r["lossy"];
    assert!(n(&lossy["packets_lost"]) > 0, "{lossy:#}");
    // The vanished caller's call is ended by the manager (RTP timeout).
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = manager.snapshot().calls.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "calls left in the manager");
}
