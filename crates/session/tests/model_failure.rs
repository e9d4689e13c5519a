//! Model failures, before and during a call.
//!
//! Before the answer: an inbound call whose model cannot be opened (the
//! mock refuses the setup with close code 1008, which is not retried),
//! under each setting of `ManagerConfig::machine.model_failure_before_answer`:
//! rejected with 503 before any answer, or answered and then ended with
//! BYE. Either way the session ends `failed` with reason `model-failure`,
//! and the metrics show the model as unreachable.
//!
//! During the call (issue 10's fault list): a Gemini connection that drops
//! abnormally is resumed with the last handle and the call goes on; an
//! OpenAI Realtime connection that drops (no resumption in that protocol)
//! ends the call politely, apology then BYE; a model that stays silent
//! after the caller's turn is handled the same way after the reply
//! timeout.

mod support;

use std::time::Duration;

use callbridge_crm_store::{EndReason, EventKind, SessionRecord, SessionState};
use callbridge_llm_mock::ScriptBook;
use callbridge_llm_mock::gemini::{GeminiScript, SetupReply};
use callbridge_llm_mock::openai::{MidResponseClose, OpenAiScript};
use callbridge_rtp::stream::MediaEvent;
use callbridge_session::bridge::fallback::FallbackClip;
use callbridge_session::lifecycle::{self, ModelFailurePolicy};
use callbridge_sip::ua::{EndReason as SipEnd, Event, Outcome};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Frames (20 ms) from the first loud one to the last, inclusive.
fn loud_span(loud: &[bool]) -> usize {
    match (loud.iter().position(|&l| l), loud.iter().rposition(|&l| l)) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    }
}

fn refusing() -> GeminiScript {
    GeminiScript {
        setup: SetupReply::Close {
            code: 1008,
            reason: "setup refused".into(),
        },
        ..fast_script()
    }
}

async fn assert_failed_as_model_failure(r: &Rig, sip_status: u16) {
    r.idle().await;
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.state, SessionState::Failed);
    assert_eq!(rec.session.end_reason, Some(EndReason::ModelFailure));
    assert_eq!(rec.session.sip_status, Some(sip_status));
    let m = r.manager.metrics();
    assert_eq!(m.model.map(|x| x.reachable), Some(false));
    assert_eq!(
        m.calls_ended,
        vec![(
            lifecycle::Direction::Inbound,
            lifecycle::EndReason::ModelFailure,
            1
        )]
    );
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_refusing_setup_rejects_the_invite_with_503_when_so_configured() {
    let r = rig(refusing(), |c| {
        c.machine.model_failure_before_answer = ModelFailurePolicy::Reject503 {
            retry_after: Some(SECS(30)),
        }
    })
    .await;
    let mut caller = Caller::new().await;
    let leg = caller.dial(r.manager.sip_addr()).await;
    match caller.ended(SECS(20)).await {
        Some(Event::Failed { call, outcome }) => {
            assert_eq!(call, leg.call);
            assert_eq!(outcome, Outcome::Unavailable, "503 before any answer");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    leg.media.close().await;
    assert_failed_as_model_failure(&r, 503).await;
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_refusing_setup_answers_then_ends_with_bye_when_so_configured() {
    let r = rig(refusing(), |c| {
        c.machine.model_failure_before_answer = ModelFailurePolicy::AnswerThenEnd
    })
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await, "answered despite the model");
    // Everything the caller hears until the BYE.
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + SECS(10);
    let end = loop {
        tokio::select! {
            ev = caller.events.recv() => match ev {
                Some(e @ (Event::Ended { .. } | Event::Failed { .. })) => break Some(e),
                Some(_) => {}
                None => break None,
            },
            m = leg.media.recv() => {
                if let Some(MediaEvent::Audio { pcm, .. }) = m {
                    heard.push(rms(&pcm) > 300.0);
                }
            }
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    match end {
        Some(Event::Ended { call, reason }) => {
            assert_eq!(call, leg.call);
            assert_eq!(reason, SipEnd::RemoteBye, "the agent ends it with BYE");
        }
        other => panic!("expected the agent's BYE, got {other:?}"),
    }
    // The apology played, whole, before the BYE: the span from its first
    // to its last loud frame is about the clip's own.
    let clip = FallbackClip::builtin().unwrap();
    let want = loud_span(
        &clip
            .samples()
            .chunks(160)
            .map(|f| rms(f) > 300.0)
            .collect::<Vec<_>>(),
    );
    let got = loud_span(&heard);
    assert!(
        want > 100 && got + 10 >= want && got <= want + 10,
        "heard {got} frames of the apology, the clip has {want}"
    );
    leg.media.close().await;
    assert_failed_as_model_failure(&r, 200).await;
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_503_for_a_model_failure_carries_the_policys_retry_after() {
    let r = rig(refusing(), |c| {
        c.machine.model_failure_before_answer = ModelFailurePolicy::Reject503 {
            retry_after: Some(SECS(45)),
        }
    })
    .await;
    let mut peer = raw::RawPeer::new(r.manager.sip_addr(), "raw-503-retry@127.0.0.1").await;
    let offer = raw::pcmu_offer(
        peer.rtp.local_addr().unwrap().port(),
        "0",
        "a=rtpmap:0 PCMU/8000\r\n",
    );
    let inv = peer.request("INVITE", "z9hG4bK-raw-503", "", "application/sdp", &offer);
    peer.send(&inv).await;
    let resp = peer
        .response("z9hG4bK-raw-503", SECS(5))
        .await
        .expect("a final response to the INVITE");
    assert_eq!(raw::status(&resp), 503, "{resp}");
    assert_eq!(raw::header(&resp, "retry-after"), Some("45"), "{resp}");
    assert_failed_as_model_failure(&r, 503).await;
    r.manager.shutdown().await;
}

/// Notes (`EventKind::Note`) of a session that carry `key`.
fn notes<'a>(rec: &'a SessionRecord, key: &str) -> Vec<&'a serde_json::Value> {
    rec.events
        .iter()
        .filter(|e| e.kind == EventKind::Note)
        .map(|e| &e.detail)
        .filter(|d| d.get(key).is_some())
        .collect()
}

/// The built-in apology's span of loud frames (20 ms).
fn apology_span() -> usize {
    let clip = FallbackClip::builtin().unwrap();
    loud_span(
        &clip
            .samples()
            .chunks(160)
            .map(|f| rms(f) > 300.0)
            .collect::<Vec<_>>(),
    )
}

/// What the caller hears (loud or not, per 20 ms frame) until the call
/// ends or `within` passes, and the end event.
async fn hear_until_end(
    caller: &mut Caller,
    leg: &mut Leg,
    within: Duration,
) -> (Vec<bool>, Option<Event>) {
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let end = loop {
        tokio::select! {
            ev = caller.events.recv() => match ev {
                Some(e @ (Event::Ended { .. } | Event::Failed { .. })) => break Some(e),
                Some(_) => {}
                None => break None,
            },
            m = leg.media.recv() => {
                if let Some(MediaEvent::Audio { pcm, .. }) = m {
                    heard.push(rms(&pcm) > 300.0);
                }
            }
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    (heard, end)
}

/// The apology, whole, then the agent's BYE; the call stored as a model
/// failure, nothing left running.
async fn assert_apology_then_bye<M>(r: &Rig<M>, heard: &[bool], end: Option<Event>, leg: &Leg) {
    match end {
        Some(Event::Ended { call, reason }) => {
            assert_eq!(call, leg.call);
            assert_eq!(reason, SipEnd::RemoteBye, "the agent ends it with BYE");
        }
        other => panic!("expected the agent's BYE, got {other:?}"),
    }
    let (want, got) = (apology_span(), loud_span(heard));
    assert!(
        want > 100 && got + 10 >= want && got <= want + 10,
        "heard {got} loud frames, the apology has {want}"
    );
    r.idle().await;
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.state, SessionState::Failed);
    assert_eq!(rec.session.end_reason, Some(EndReason::ModelFailure));
    assert_eq!(notes(&rec, "fallback_played_ms").len(), 1);
    let m = r.manager.metrics();
    assert_eq!(
        m.calls_ended,
        vec![(
            lifecycle::Direction::Inbound,
            lifecycle::EndReason::ModelFailure,
            1
        )]
    );
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_drop_mid_call_is_resumed_and_the_caller_hears_the_next_reply() {
    // Connection 0 answers the first turn (its handle is issued), then
    // its TCP connection drops without a close frame.
    let r = rig_book(
        ScriptBook {
            per_connection: vec![GeminiScript {
                abort_after_turn: Some(1),
                ..fast_script()
            }],
            default: fast_script(),
        },
        |_| {},
    )
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, SECS(5)).await.is_some(),
        "first reply heard"
    );
    assert!(until_quiet(&mut leg.media, 10, SECS(6)).await);
    let mut resumed = false;
    for _ in 0..200 {
        if r.manager.metrics().model_reconnects == 1 {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "the dropped model session was resumed and counted");
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, SECS(5)).await.is_some(),
        "the reply after the drop is heard"
    );
    assert!(until_quiet(&mut leg.media, 10, SECS(6)).await);
    assert!(
        r.manager.snapshot().calls.len() == 1,
        "the call is still up"
    );
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.state, SessionState::Ended);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    let dropped = notes(&rec, "model_reconnecting");
    assert_eq!(dropped.len(), 1, "{:?}", rec.events);
    assert!(
        dropped[0]["model_reconnecting"]
            .as_str()
            .is_some_and(|s| s.contains("connection lost")),
        "{dropped:?}"
    );
    assert_eq!(notes(&rec, "model_resumed").len(), 1);
    assert!(notes(&rec, "fallback_played_ms").is_empty(), "no apology");
    let st = r.mock.stats();
    assert_eq!((st.connections, st.resumed_setups), (2, 1));
    assert_eq!(st.caller_turns, 2, "one turn on each connection");
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let m = r.manager.metrics();
    assert_eq!(m.model_reconnects, 1);
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_drop_mid_call_plays_the_apology_then_bye_as_model_failure() {
    // The mock "plays" its reply for twice the clip's length, so the drop
    // after it comes once the agent has played the whole reply.
    let r = rig_openai(
        OpenAiScript {
            close_after_turn: Some((1, MidResponseClose::Abort)),
            playback_speed: 0.5,
            ..OpenAiScript::default()
        },
        |_| {},
    )
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, SECS(5)).await.is_some(),
        "first reply heard"
    );
    assert!(until_quiet(&mut leg.media, 10, SECS(6)).await);
    let (heard, end) = hear_until_end(&mut caller, &mut leg, SECS(15)).await;
    assert_apology_then_bye(&r, &heard, end, &leg).await;
    let rec = r.record(r.all_ids()[0]);
    assert!(
        rec.events.iter().any(|e| e.kind == EventKind::Model
            && e.detail["closed"]
                .as_str()
                .is_some_and(|s| s.contains("connection lost"))),
        "{:?}",
        rec.events
    );
    assert!(
        notes(&rec, "model_reconnecting").is_empty(),
        "no resumption"
    );
    assert_eq!(r.mock.stats().connections, 1);
    leg.media.close().await;
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_stalls_after_the_callers_turn_gets_the_apology_then_bye() {
    const REPLY_TIMEOUT: Duration = Duration::from_millis(1500);
    let r = rig(
        GeminiScript {
            stall_after_turns: Some(1),
            ..fast_script()
        },
        |c| c.machine.model_reply_timeout = Some(REPLY_TIMEOUT),
    )
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    let spoke = tokio::time::Instant::now();
    let (heard, end) = hear_until_end(&mut caller, &mut leg, SECS(15)).await;
    // Nothing before the reply timeout: the first loud frame comes at
    // least the timeout after the caller stopped (a lower bound only).
    let first = heard.iter().position(|&l| l).expect("the apology is heard");
    assert!(
        first * 20 >= 1000,
        "the apology began {} ms after the caller's turn",
        first * 20
    );
    assert!(spoke.elapsed() >= REPLY_TIMEOUT);
    assert_apology_then_bye(&r, &heard, end, &leg).await;
    let rec = r.record(r.all_ids()[0]);
    let stalled = notes(&rec, "model_reply_timeout_ms");
    assert_eq!(stalled.len(), 1, "{:?}", rec.events);
    assert_eq!(stalled[0]["model_reply_timeout_ms"], 1500);
    assert_eq!(stalled[0]["model_failure"], "no reply");
    assert_eq!(r.manager.metrics().model_reply_timeouts, 1);
    assert_eq!(r.mock.stats().caller_turns, 1);
    leg.media.close().await;
    r.manager.shutdown().await;
    caller.stop().await;
}
