//! End-to-end: many calls through the real binary. 100 sequential inbound
//! calls from sipp (short calls, with a caller who speaks and hears the
//! reply every 18th call) leave nothing behind: all answered and stored
//! with an end reason, 0 active, the live-resource gauges back to 0, and
//! resident memory growth from call 10 to call 100 under 5 MB. 20 calls at
//! once are all answered and recorded. The latency figures of the 100-call
//! run are printed for the closing note (`--nocapture`).

mod support_agent;

use std::time::{Duration, Instant};

use support_agent::checks::{check_wav, latency_notes, summary_ms};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

/// Short calls: INVITE, answer, greeting for this long, BYE.
const SHORT_CALL_MS: u64 = 300;
/// Calls with speech: listen for the reply this long after speaking starts.
const TALK_LISTEN_MS: u64 = 2600;

fn short_calls(agent: &Agent, n: u32) {
    let run = Sipp::uac("uac_short.xml", agent.sip)
        .calls(n, 1, 50)
        .pause_ms(SHORT_CALL_MS)
        .within(Duration::from_secs(20 + u64::from(n)))
        .run();
    run.assert_ok("sequential short calls");
    assert_eq!(run.successful_calls(), Some(u64::from(n)), "all answered");
}

fn talk_call(agent: &Agent) {
    let run = Sipp::uac("uac_speak.xml", agent.sip)
        .pause_ms(TALK_LISTEN_MS)
        .within(Duration::from_secs(30))
        .run();
    run.assert_ok("a call with speech");
}

#[test]
fn hundred_sequential_calls_leave_nothing_behind() {
    let agent = Agent::start(Opts {
        log_level: "warn",
        ..Opts::default()
    });
    let t0 = Instant::now();
    short_calls(&agent, 9);
    talk_call(&agent);
    agent.wait_idle(Duration::from_secs(10));
    let rss_10 = agent.rss_kib();

    // Calls 11..=100: 5 x (17 short + 1 with speech).
    for _ in 0..5 {
        short_calls(&agent, 17);
        talk_call(&agent);
    }
    agent.wait_idle(Duration::from_secs(15));
    let rss_100 = agent.rss_kib();
    let wall = t0.elapsed();

    let sessions = agent.wait_sessions_terminal(100, Duration::from_secs(10));
    assert_eq!(sessions.len(), 100);
    for s in &sessions {
        assert!(s.answered_at.is_some(), "not answered: {s:?}");
        assert!(s.end_reason.is_some(), "no end reason: {s:?}");
    }
    let h = agent.health();
    assert_eq!(h["active_sessions"], 0, "{h}");
    let m = agent.metrics();
    assert_eq!(m.value("callbridge_calls_started_total"), Some(100.0));
    assert_eq!(m.value("callbridge_calls_ended_total"), Some(100.0));
    for g in [
        "callbridge_call_tasks",
        "callbridge_media_sockets",
        "callbridge_model_connections",
    ] {
        assert_eq!(m.value(g), Some(0.0), "{g} after 100 calls");
    }

    let growth = rss_100 as i64 - rss_10 as i64;
    println!("== 100 sequential calls through the agent binary ({wall:.1?} wall, debug build) ==");
    println!(
        "VmRSS after call 10: {rss_10} KiB, after call 100: {rss_100} KiB, growth {growth} KiB"
    );
    println!("live tasks now: {:?}", m.value("callbridge_live_tasks"));
    let first_audio = m
        .histogram("callbridge_answer_to_first_audio_seconds")
        .expect("answer-to-first-audio histogram");
    let reply = m
        .histogram("callbridge_caller_stop_to_agent_audio_seconds")
        .expect("caller-stop-to-agent-audio histogram");
    let store = agent.store();
    let notes_first = latency_notes(&store, &sessions, "answer_to_first_audio_ms");
    let notes_reply = latency_notes(&store, &sessions, "caller_stop_to_agent_audio_ms");
    println!(
        "answer-to-first-audio (store, per call):      {}",
        summary_ms(&notes_first)
    );
    println!("answer-to-first-audio (/metrics histogram):   {first_audio}");
    println!(
        "caller-stop-to-agent-audio (store, per turn): {}",
        summary_ms(&notes_reply)
    );
    println!("caller-stop-to-agent-audio (/metrics):        {reply}");
    assert_eq!(
        notes_first.len() as f64,
        first_audio.count,
        "store and /metrics agree"
    );
    assert_eq!(
        notes_reply.len() as f64,
        reply.count,
        "store and /metrics agree"
    );
    assert!(
        first_audio.count >= 90.0,
        "first audio measured on {first_audio}"
    );
    assert!(
        reply.count >= 5.0,
        "a reply measured on each call with speech: {reply}"
    );
    assert!(
        growth < 5 * 1024,
        "resident memory grew {growth} KiB from call 10 to call 100"
    );
}

#[test]
fn twenty_concurrent_calls_are_all_answered_and_recorded() {
    let agent = Agent::start(Opts {
        log_level: "warn",
        max_concurrent: 40,
        ..Opts::default()
    });
    // Each call stays up 6 s after its answer: all 20 must be live at once
    // even when a loaded machine spreads their answers over seconds.
    let callers = Sipp::uac("uac_short.xml", agent.sip)
        .calls(20, 20, 100)
        .pause_ms(6000)
        .within(Duration::from_secs(60))
        .spawn();
    // Watch the active count while they are up.
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let n = agent.health()["active_sessions"].as_u64().unwrap_or(0);
        peak = peak.max(n);
        if peak == 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = callers.finish();
    run.assert_ok("20 concurrent calls");
    assert_eq!(run.successful_calls(), Some(20));
    println!("peak active sessions: {peak}");
    assert_eq!(peak, 20, "the 20 calls were up at once");

    let sessions = agent.wait_sessions_terminal(20, Duration::from_secs(10));
    assert_eq!(sessions.len(), 20);
    for s in &sessions {
        assert!(s.answered_at.is_some(), "not answered: {s:?}");
        let rec = s
            .recording_path
            .as_ref()
            .unwrap_or_else(|| panic!("no recording: {s:?}"));
        let (channels, _, frames) = check_wav(rec);
        assert_eq!(channels, 2);
        assert!(frames >= 8000 * 2, "{} has {frames} frames", rec.display());
    }
    agent.wait_idle(Duration::from_secs(10));
}
