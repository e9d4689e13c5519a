//! An inbound call whose model cannot be opened (the mock refuses the
//! setup with close code 1008, which is not retried), under each setting
//! of `ManagerConfig::machine.model_failure_before_answer`: rejected with
//! 503 before any answer, or answered and then ended with BYE. Either way
//! the session ends `failed` with reason `model-failure`, and the metrics
//! show the model as unreachable.

mod support;

use std::time::Duration;

use callbridge_crm_store::{EndReason, SessionState};
use callbridge_llm_bridge::mock::gemini::{GeminiScript, SetupReply};
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
