//! End-to-end: SIGTERM with calls up (drain, BYE, valid recordings, exit
//! 0) and a second signal during the drain (new calls refused with 503
//! meanwhile; exit at once, sessions marked interrupted).

mod support_agent;

use std::time::{Duration, Instant};

use callbridge_crm_store::{EndReason, SessionState};
use serde_json::json;
use support_agent::checks::check_wav;
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

/// Waits until `n` calls are answered (store) and health shows them.
fn wait_answered(agent: &Agent, n: usize) {
    agent.wait_for("the calls to be answered", Duration::from_secs(15), || {
        let s = agent.sessions();
        let up = s
            .iter()
            .filter(|s| matches!(s.state, SessionState::Answered | SessionState::Active))
            .count();
        (up == n && agent.health()["active_sessions"] == n).then_some(())
    });
}

#[test]
fn sigterm_with_calls_up_byes_them_finalizes_recordings_and_exits_0() {
    let mut agent = Agent::start(Opts {
        drain_timeout: "1s",
        ..Opts::default()
    });
    // Two callers that stay on until the agent hangs up.
    let callers = Sipp::uac("uac_wait_bye.xml", agent.sip)
        .calls(2, 2, 50)
        .within(Duration::from_secs(30))
        .spawn();
    wait_answered(&agent, 2);
    std::thread::sleep(Duration::from_millis(1000));

    let t0 = Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(20));
    println!("agent exited {status:?} {:?} after SIGTERM", t0.elapsed());
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let run = callers.finish();
    run.assert_ok("both callers got the agent's BYE");
    assert_eq!(run.successful_calls(), Some(2));

    let sessions = agent.sessions();
    assert_eq!(sessions.len(), 2);
    for s in &sessions {
        assert_eq!(s.state, SessionState::Ended, "{s:?}");
        assert_eq!(s.end_reason, Some(EndReason::Shutdown), "{s:?}");
        let rec = s.recording_path.as_ref().expect("a recording");
        let (channels, rate, frames) = check_wav(rec);
        assert_eq!((channels, rate), (2, 8000));
        assert!(frames >= 8000, "{} has {frames} frames", rec.display());
        assert_eq!(
            s.recording_bytes,
            Some(std::fs::metadata(rec).unwrap().len()),
            "stored size matches the file"
        );
    }
    assert!(
        agent.extra_stdout().is_empty(),
        "{:?}",
        agent.extra_stdout()
    );
}

#[test]
fn second_signal_during_drain_exits_at_once_and_marks_calls_interrupted() {
    let mut agent = Agent::start(Opts {
        drain_timeout: "60s",
        // Somewhere to call, so POST /api/calls is refused for the drain
        // and not for a missing target (nothing is dialled).
        outbound_target: Some(([127, 0, 0, 1], support_agent::free_udp_port()).into()),
        ..Opts::default()
    });
    let callers = Sipp::uac("uac_wait_bye.xml", agent.sip)
        .within(Duration::from_secs(30))
        .spawn();
    wait_answered(&agent, 1);
    agent.signal("TERM");
    // Draining: no new calls.
    agent.wait_for("admitting=false", Duration::from_secs(5), || {
        let h = support_agent::http::request(agent.http, "GET", "/api/health", None, None).ok()?;
        (h.json()["admitting"] == false).then_some(())
    });
    // While draining, a new caller gets 503 and an API call request too.
    Sipp::uac("uac_rejected_503.xml", agent.sip)
        .within(Duration::from_secs(15))
        .run()
        .assert_ok("INVITE during the drain gets 503");
    // ... and is counted as a refusal for the drain.
    let m = agent.metrics();
    assert_eq!(
        m.value_with("callbridge_calls_refused_total", &[("reason", "draining")]),
        1.0,
        "the drain's refusal counted"
    );
    let r = agent.request("POST", "/api/calls", Some(&json!({"to": "+15550100777"})));
    assert_eq!(
        r.status,
        503,
        "POST /api/calls while draining: {}",
        r.text()
    );
    assert!(r.header("Retry-After").is_some(), "503 without Retry-After");

    let t0 = Instant::now();
    agent.signal("INT");
    let status = agent.wait_exit(Duration::from_secs(10));
    println!(
        "agent exited {status:?} {:?} after the second signal",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a second signal must exit at once"
    );
    drop(callers);
    let sessions = agent.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].state,
        SessionState::Interrupted,
        "{:?}",
        sessions[0]
    );
}
