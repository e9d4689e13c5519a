//! End-to-end: the real `agent` binary with `provider = "gpt-live"`
//! against the strict GPT-Live mock, called by sipp: the greeting and the
//! reply heard on the wire, caller audio reaching the model as G.711 at
//! 8 kHz (no resampling on the model leg), transcripts of both sides in
//! the store, a clean end; and `end_call` under Responses delegation: the
//! farewell played, then the agent's BYE.

mod support_agent;

use std::time::Duration;

use callbridge_crm_store::{EndReason, SessionState, Speaker};
use callbridge_llm_bridge::gpt_live::wire::{Delegation, FormatWire};
use callbridge_llm_mock::gpt_live::GptLiveScript;
use support_agent::checks::{check_wav, wav_channel_rms};
use support_agent::media::{MockLive, RtpTap};
use support_agent::sipp::Sipp;
use support_agent::{Agent, FAKE_OPENAI_KEY, Model, Opts};

fn agent_for(mock: &MockLive, delegation_model: Option<&str>) -> Agent {
    Agent::start(Opts {
        model: Model::GptLive {
            endpoint: mock.url(),
            delegation_model: delegation_model.map(str::to_owned),
        },
        ..Opts::default()
    })
}

#[test]
fn a_gpt_live_call_carries_g711_both_ways_and_stores_both_transcripts() {
    let mock = MockLive::start(GptLiveScript {
        expect_api_key: Some(FAKE_OPENAI_KEY.into()),
        ..GptLiveScript::default()
    });
    let agent = agent_for(&mock, None);
    let tap = RtpTap::start(Duration::from_secs(20));
    let run = Sipp::uac("uac_speak_tapped.xml", agent.sip)
        .key("tap", tap.port.to_string())
        .pause_ms(4500)
        .within(Duration::from_secs(30))
        .run();
    run.assert_ok("gpt-live call with speech");
    let heard = tap.finish();
    let voiced = heard.iter().filter(|h| h.rms > 300.0).count();
    assert!(
        voiced >= 25,
        "only {voiced} voiced packets: no greeting heard"
    );

    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");

    // The model leg: G.711 µ-law at 8 kHz, as the call's media.
    let log = mock.log();
    assert_eq!(log.starts.len(), 1, "{log:?}");
    let format = log.starts[0].audio.as_ref().and_then(|a| a.format);
    assert_eq!(format, Some(FormatWire::Pcmu { rate: 8000 }));
    assert!(log.starts[0].delegation.is_none(), "client delegation");
    assert_eq!(log.instructions.len(), 1, "the greeting prompt: {log:?}");
    assert_eq!(log.closes, 1, "session.close sent: {log:?}");
    let stats = mock.stats();
    assert_eq!(stats.caller_turns, 1, "{stats:?}");
    // 8 kHz µ-law: one byte per sample, whole 20 ms frames, no
    // resampling (a resampled leg would carry 2 or 3 bytes per 8 kHz sample).
    let call_ms = s
        .ended_at
        .unwrap()
        .duration_since(s.answered_at.unwrap())
        .as_millis() as u64;
    assert!(
        stats.audio_bytes_in >= 8 * 1000 && stats.audio_bytes_in <= 8 * (call_ms + 500),
        "{} bytes in {call_ms} ms",
        stats.audio_bytes_in
    );
    assert_eq!(stats.audio_bytes_in % 160, 0, "{stats:?}");
    assert_eq!(stats.clean_closes, 1, "{stats:?}");
    assert!(stats.violations.is_empty(), "{:#?}", stats.violations);

    let record = agent.store().load_session(s.id).unwrap();
    let caller: Vec<&str> = record
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str())
        .collect();
    let agent_turns: Vec<&str> = record
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Agent)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(caller, ["caller turn 1"], "{:?}", record.turns);
    assert_eq!(
        agent_turns,
        [
            callbridge_llm_mock::clips::GREETING_TEXT,
            callbridge_llm_mock::clips::REPLY_TEXT
        ],
        "{:?}",
        record.turns
    );

    let rec = s.recording_path.clone().expect("recording path");
    let (channels, rate, _) = check_wav(&rec);
    assert_eq!((channels, rate), (2, 8000));
    let (caller_rms, agent_rms) = wav_channel_rms(&rec);
    assert!(
        caller_rms > 100.0 && agent_rms > 100.0,
        "{caller_rms} {agent_rms}"
    );
    agent.wait_idle(Duration::from_secs(10));
    assert_eq!(agent.health()["active_sessions"], 0);
    assert!(
        !agent.stderr().contains(FAKE_OPENAI_KEY),
        "the key reached the log"
    );
}

#[test]
fn end_call_plays_the_farewell_then_the_agent_hangs_up() {
    let mock = MockLive::start(GptLiveScript {
        end_call_after_turns: Some(1),
        ..GptLiveScript::default()
    });
    let agent = agent_for(&mock, Some("e2e-backend"));
    let tap = RtpTap::start(Duration::from_secs(20));
    let run = Sipp::uac("uac_speak_wait_bye.xml", agent.sip)
        .key("tap", tap.port.to_string())
        .within(Duration::from_secs(30))
        .run();
    run.assert_ok("gpt-live call ended by the model");
    drop(tap.finish());

    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::AgentHangup), "{s:?}");
    let log = mock.log();
    let Some(Delegation::Responses { responses }) = &log.starts[0].delegation else {
        panic!("no Responses delegation: {log:?}");
    };
    assert_eq!(responses.model, "e2e-backend");
    assert_eq!(log.function_outputs.len(), 1, "end_call answered: {log:?}");
    assert_eq!(log.response_creates, 0, "nothing after end_call: {log:?}");
    // The farewell (the reply clip) reached the store before the BYE.
    let record = agent.store().load_session(s.id).unwrap();
    assert!(
        record.turns.iter().any(|t| t.speaker == Speaker::Agent
            && t.text.as_str() == callbridge_llm_mock::clips::REPLY_TEXT),
        "{:?}",
        record.turns
    );
    assert!(
        mock.stats().violations.is_empty(),
        "{:#?}",
        mock.stats().violations
    );
}
