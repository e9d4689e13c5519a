//! End-to-end calls over loopback: a SIP caller with an RTP peer, the
//! manager, the mock Gemini model, a temporary store.

mod support;

use std::time::Duration;

use callbridge_crm_store::{EndReason, SessionState, Speaker};
use callbridge_llm_bridge::mock::gemini::SetupReply;
use callbridge_sip::ua::{EndReason as SipEnd, Event};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_call_greets_replies_records_and_stores_caller_hangup() {
    let r = rig(fast_script(), |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await, "call answered");
    let snap = r.manager.snapshot();
    assert_eq!(snap.calls.len(), 1);
    assert_eq!(snap.media_sockets, 1);
    let ticks = hear(&mut leg.media, 300.0, SECS(3)).await;
    assert!(ticks.is_some(), "greeting heard after the answer");
    assert!(
        until_quiet(&mut leg.media, 25, SECS(6)).await,
        "greeting ends"
    );
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, SECS(5)).await.is_some(),
        "reply heard after the caller spoke"
    );
    assert!(until_quiet(&mut leg.media, 10, SECS(6)).await);
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let snap = r.manager.snapshot();
    assert!(snap.calls.is_empty());
    assert_eq!(
        (snap.call_tasks, snap.media_sockets, snap.model_sessions),
        (0, 0, 0)
    );
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.state, SessionState::Ended);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert!(rec.session.sip_call_id.is_some());
    assert!(
        rec.turns.iter().any(|t| t.speaker == Speaker::Agent),
        "agent turns stored"
    );
    let path = rec
        .session
        .recording_path
        .clone()
        .expect("recording stored");
    let mut wav = hound::WavReader::open(&path).unwrap();
    assert_eq!(wav.spec().channels, 2);
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let caller_ch: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let agent_ch: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(
        rms(&caller_ch) > 50.0,
        "caller channel has the caller's speech"
    );
    assert!(rms(&agent_ch) > 50.0, "agent channel has what was played");
    assert_eq!(r.mock.stats().setups, 1, "one model session for the call");
    assert_eq!(r.mock.stats().clean_closes, 1, "closed cleanly");
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_call_plays_the_farewell_then_sends_bye() {
    let script = callbridge_llm_bridge::mock::gemini::GeminiScript {
        end_call_after_turns: Some(1),
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, SECS(3)).await.is_some());
    assert!(until_quiet(&mut leg.media, 25, SECS(6)).await);
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, SECS(5)).await.is_some(),
        "the farewell is heard before the BYE"
    );
    match caller.ended(SECS(8)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected the agent's BYE, got {other:?}"),
    }
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::AgentHangup));
    assert_eq!(rec.session.state, SessionState::Ended);
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_dropping_mid_call_ends_the_call_as_model_failure() {
    let script = callbridge_llm_bridge::mock::gemini::GeminiScript {
        close_mid_response_at_turn: Some(1),
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, SECS(3)).await.is_some());
    assert!(until_quiet(&mut leg.media, 25, SECS(6)).await);
    speak(&leg.media).await;
    match caller.ended(SECS(10)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE after the model failure, got {other:?}"),
    }
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::ModelFailure));
    assert_eq!(rec.session.state, SessionState::Failed);
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_stores_cancelled() {
    let script = callbridge_llm_bridge::mock::gemini::GeminiScript {
        setup: SetupReply::Delay(SECS(2)),
        ..fast_script()
    };
    let r = rig(script, |c| c.machine.answer_wait = SECS(5)).await;
    let mut caller = Caller::new().await;
    let leg = caller.dial(r.manager.sip_addr()).await;
    // Ringing: wait for the 180.
    loop {
        match caller.next(SECS(3)).await {
            Some(Event::Progress { .. }) => break,
            Some(_) => {}
            None => panic!("no 180"),
        }
    }
    caller.sip.hangup(leg.call).await.unwrap();
    let end = caller.ended(SECS(5)).await;
    assert!(end.is_some(), "the INVITE ends after CANCEL: {end:?}");
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::Cancelled));
    assert_eq!(rec.session.sip_status, Some(487));
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_vanishing_without_bye_ends_with_rtp_timeout_and_bye() {
    let r = rig(fast_script(), |c| c.rtp_inactivity = SECS(1)).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, SECS(3)).await.is_some());
    // The peer's RTP stops (its socket closes); SIP stays up.
    leg.media.close().await;
    match caller.ended(SECS(8)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE after the RTP timeout, got {other:?}"),
    }
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::RtpTimeout));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_call_sends_bye_and_stores_shutdown() {
    let r = rig(fast_script(), |c| {
        c.shutdown_drain = Duration::from_millis(300)
    })
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, SECS(3)).await.is_some());
    let m = r.manager.clone();
    let shut = tokio::spawn(async move { m.shutdown().await });
    match caller.ended(SECS(8)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE at shutdown, got {other:?}"),
    }
    shut.await.unwrap();
    leg.media.close().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::Shutdown));
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty() && !s.admitting);
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    caller.stop().await;
}
