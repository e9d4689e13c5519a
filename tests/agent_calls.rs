//! End-to-end: inbound calls into the real `agent` binary from sipp (and a
//! hand-written UAC where sipp cannot do it): the answered call with audio
//! both ways, a duplicate BYE, a BYE from outside `sip.allowed_peers`, and
//! CANCEL before the answer.

mod support_agent;

use std::net::UdpSocket;
use std::time::Duration;

use callbridge_crm_store::{EndReason, SessionState, Speaker, Transport};
use callbridge_llm_mock::gemini::{GeminiScript, SetupReply};
use serde_json::Value;
use support_agent::checks::{check_wav, wav_channel_rms};
use support_agent::media::{MockModel, RtpTap};
use support_agent::raw_sip::{RawCall, status};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Model, Opts};

/// The transcript turns of a `GET /api/sessions/{id}` body as (speaker, text).
fn api_turns(v: &Value) -> Vec<(String, String)> {
    let list = ["transcript", "turns"]
        .iter()
        .find_map(|k| v.get(k).or_else(|| v.get("session").and_then(|s| s.get(k))))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no transcript array in {v}"));
    list.iter()
        .map(|t| {
            (
                t["speaker"].as_str().unwrap_or_default().to_string(),
                t["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn inbound_call_with_speech_is_greeted_answered_recorded_and_transcribed() {
    let agent = Agent::start(Opts::default());
    let tap = RtpTap::start(Duration::from_secs(20));
    let run = Sipp::uac("uac_speak_tapped.xml", agent.sip)
        .key("tap", tap.port.to_string())
        .pause_ms(3500)
        .within(Duration::from_secs(30))
        .run();
    run.assert_ok("inbound call with speech");
    let heard = tap.finish();

    // On the wire: the agent sent G.711 to the SDP address from the answer
    // until the caller's own RTP moved it (symmetric RTP), and it was the
    // greeting: voiced packets, not just comfort silence.
    let voiced = heard.iter().filter(|h| h.rms > 300.0).count();
    println!(
        "tap: {} packets before the latch, {voiced} voiced",
        heard.len()
    );
    assert!(
        heard.len() >= 100,
        "the caller's SDP address got {} RTP packets in the ~3 s before the caller spoke",
        heard.len()
    );
    assert!(
        voiced >= 25,
        "only {voiced} voiced packets: no greeting heard"
    );

    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    assert_eq!(s.transport, Transport::Sip, "{s:?}");
    assert!(s.answered_at.is_some(), "{s:?}");

    // The recording: stereo, caller left (sipp's speech), agent right.
    let rec = s
        .recording_path
        .clone()
        .expect("recording path in the store");
    let (channels, rate, frames) = check_wav(&rec);
    assert_eq!((channels, rate), (2, 8000), "{}", rec.display());
    assert!(frames >= 8000 * 5, "recording only {frames} frames");
    let (caller, agent_side) = wav_channel_rms(&rec);
    println!("recording rms: caller {caller:.0}, agent {agent_side:.0}");
    assert!(caller > 100.0, "caller channel silent (rms {caller:.0})");
    assert!(
        agent_side > 100.0,
        "agent channel silent (rms {agent_side:.0})"
    );

    // The transcript in the store has both sides.
    let record = agent.store().load_session(s.id).unwrap();
    assert!(
        record.turns.iter().any(|t| t.speaker == Speaker::Caller),
        "no caller turn: {:?}",
        record.turns
    );
    assert!(
        record.turns.iter().any(|t| t.speaker == Speaker::Agent),
        "no agent turn: {:?}",
        record.turns
    );

    // The same through the API.
    let v = agent.get_json(&format!("/api/sessions/{}", s.id));
    assert_eq!(v["session"]["transport"], "sip", "{v}");
    assert_eq!(v["session"]["direction"], "inbound", "{v}");
    let turns = api_turns(&v);
    assert!(turns.iter().any(|(who, _)| who == "caller"), "{v}");
    assert!(turns.iter().any(|(who, _)| who == "agent"), "{v}");
    let unknown = agent.request(
        "GET",
        "/api/sessions/00000000-0000-4000-8000-000000000000",
        None,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert!(unknown.json()["error"].is_string());
    let rec_resp = agent.request("GET", &format!("/api/sessions/{}/recording", s.id), None);
    assert_eq!(rec_resp.status, 200);
    assert_eq!(&rec_resp.body[..4], b"RIFF");

    agent.wait_idle(Duration::from_secs(10));
    let m = agent.metrics();
    let rtp_in = m.value("callbridge_rtp_packets_in_total").unwrap_or(0.0);
    let rtp_out = m.value("callbridge_rtp_packets_out_total").unwrap_or(0.0);
    println!("metrics: rtp in {rtp_in}, out {rtp_out}");
    assert!(rtp_in >= 50.0, "rtp in {rtp_in}");
    assert!(rtp_out >= 150.0, "rtp out {rtp_out}");
    assert_eq!(m.value("callbridge_calls_started_total"), Some(1.0));
    assert_eq!(agent.health()["active_sessions"], 0);
    assert!(
        agent.extra_stdout().is_empty(),
        "stdout after ready: {:?}",
        agent.extra_stdout()
    );
}

#[test]
fn duplicate_bye_is_answered_twice_and_the_call_ends_once() {
    let agent = Agent::start(Opts::default());
    // The second BYE (new transaction, same dialog) must get 200 or 481.
    let run = Sipp::uac("uac_bye_twice.xml", agent.sip)
        .pause_ms(600)
        .within(Duration::from_secs(20))
        .run();
    run.assert_ok("BYE twice");
    println!(
        "second BYE answered: {}",
        if run.responses(481) == 1 {
            "481"
        } else {
            "200"
        }
    );
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    assert_eq!(sessions.len(), 1, "one INVITE, one session");
    assert_eq!(sessions[0].state, SessionState::Ended);
    assert_eq!(sessions[0].end_reason, Some(EndReason::CallerHangup));
    agent.wait_idle(Duration::from_secs(10));
    let m = agent.metrics();
    assert_eq!(m.value("callbridge_calls_started_total"), Some(1.0));
    assert_eq!(
        m.value("callbridge_calls_ended_total"),
        Some(1.0),
        "one teardown"
    );
}

#[test]
fn bye_from_outside_allowed_peers_is_refused_and_the_call_goes_on() {
    let agent = Agent::start(Opts {
        allowed_peers: vec!["127.0.0.1/32"],
        ..Opts::default()
    });
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    call.invite_and_ack(Duration::from_secs(10));
    let id = agent.wait_for("the call to be answered", Duration::from_secs(10), || {
        let s = agent.sessions().into_iter().next()?;
        matches!(s.state, SessionState::Answered | SessionState::Active).then_some(s.id)
    });

    // The same dialog's BYE from 127.0.0.2: 403 or nothing.
    let stranger = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback /8)");
    let answer = call.bye_from(&stranger, Duration::from_millis(1500));
    if let Some(a) = &answer {
        assert_eq!(status(a), Some(403), "BYE from outside allowed_peers: {a}");
    }
    println!(
        "foreign BYE answered: {:?}",
        answer.as_deref().and_then(status)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.health()["active_sessions"], 1, "the call must go on");
    let s = agent.store().get_session(id).unwrap();
    assert!(!s.state.is_terminal(), "{s:?}");

    // The real caller hangs up.
    let own = call.sock.try_clone().unwrap();
    let ok = call
        .bye_from(&own, Duration::from_secs(5))
        .expect("an answer to the caller's BYE");
    assert_eq!(status(&ok), Some(200), "{ok}");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    assert_eq!(sessions[0].state, SessionState::Ended);
    assert_eq!(sessions[0].end_reason, Some(EndReason::CallerHangup));
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn cancel_before_answer_gets_487_and_ends_the_session_cancelled() {
    // The agent rings while the model session is set up and answers once it
    // is ready (or after its answer wait): a model that takes 8 s to set up
    // keeps the call ringing long enough to cancel it.
    let model = MockModel::start(GeminiScript {
        setup: SetupReply::Delay(Duration::from_secs(8)),
        ..GeminiScript::default()
    });
    let agent = Agent::start(Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        ..Opts::default()
    });
    Sipp::uac("uac_cancel.xml", agent.sip)
        .within(Duration::from_secs(20))
        .run()
        .assert_ok("CANCEL before answer");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    println!(
        "cancelled call stored as state={} reason={:?}",
        s.state.as_str(),
        s.end_reason
    );
    assert_eq!(s.end_reason, Some(EndReason::Cancelled), "{s:?}");
    assert!(s.answered_at.is_none(), "{s:?}");
    // The caller gave up: the call ended normally, it did not fail.
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    agent.wait_idle(Duration::from_secs(15));
}
