//! Model connections failing in the middle of a call, against the mocks:
//! a Gemini session that drops abnormally (TCP reset, close 1011) while a
//! resumption handle is known resumes on a new connection with it and the
//! conversation goes on; a refused resumption ends the session; an OpenAI
//! session (no resumption in that protocol) ends on a drop; a stalled
//! model reports the caller's turn and then nothing.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{CloseReason, ModelEvent, ModelSession};
use callbridge_llm_mock::ScriptBook;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini, SetupReply};
use callbridge_llm_mock::openai::{MidResponseClose, MockOpenAi, OpenAiScript};
use common::*;

fn is_turn_complete(e: &ModelEvent) -> bool {
    matches!(e, ModelEvent::TurnComplete)
}

fn position(events: &[ModelEvent], pred: impl Fn(&ModelEvent) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

/// Events until `stop` or `within` passes (for the stall tests, which
/// must see nothing more).
async fn events_for(
    session: &mut ModelSession,
    within: Duration,
    stop: impl Fn(&ModelEvent) -> bool,
) -> Vec<ModelEvent> {
    let mut out = Vec::new();
    let collect = async {
        while let Some(ev) = session.next_event().await {
            let done = stop(&ev);
            out.push(ev);
            if done {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, collect).await;
    out
}

/// Gemini: turn 1 is answered (its handle issued), then connection 0
/// ends as `first` says; turn 2 must be answered on connection 1.
async fn gemini_resumes_after(first: GeminiScript, expect: fn(&CloseReason) -> bool) {
    use common::gemini::*;
    let mock = MockGemini::start_with(ScriptBook {
        per_connection: vec![first],
        default: fast_script(),
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let one = events_until(&mut s, |e| matches!(e, ModelEvent::Resumed)).await;
    let complete = position(&one, is_turn_complete).expect("turn 1 answered");
    let recon = position(&one, |e| matches!(e, ModelEvent::Reconnecting { .. }))
        .unwrap_or_else(|| panic!("no reconnect: {:?}", summary(&one)));
    assert!(complete < recon);
    match &one[recon] {
        ModelEvent::Reconnecting { reason } => assert!(expect(reason), "{reason:?}"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(one.last(), Some(ModelEvent::Resumed)),
        "{:?}",
        summary(&one)
    );
    assert!(!one.iter().any(|e| matches!(e, ModelEvent::Closed { .. })));

    send_frames(&mut s, &caller_turn(400, 500));
    let two = events_until(&mut s, is_turn_complete).await;
    assert!(audio_ms(&two) > 0, "turn 2 answered: {:?}", summary(&two));
    assert!(two.iter().any(is_turn_complete));
    assert!(s.close().await.clean);
    let (st, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |st| st.open_connections == 0)
        .await;
    assert!(ok);
    assert_eq!(st.connections, 2);
    assert_eq!(
        st.resumed_setups, 1,
        "the new connection resumed the handle"
    );
    assert_eq!(st.caller_turns, 2);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

#[tokio::test]
async fn gemini_tcp_reset_between_turns_resumes_with_the_last_handle() {
    gemini_resumes_after(
        GeminiScript {
            abort_after_turn: Some(1),
            ..common::gemini::fast_script()
        },
        |r| *r == CloseReason::ConnectionLost,
    )
    .await;
}

#[tokio::test]
async fn gemini_close_1011_between_turns_resumes_with_the_last_handle() {
    gemini_resumes_after(
        GeminiScript {
            close_after_turn: Some(1),
            close_code: 1011,
            ..common::gemini::fast_script()
        },
        |r| matches!(r, CloseReason::ServerClosed { code: 1011, .. }),
    )
    .await;
}

#[tokio::test]
async fn gemini_drop_mid_reply_ends_that_reply_then_resumes() {
    use common::gemini::*;
    let mock = MockGemini::start_with(ScriptBook {
        per_connection: vec![GeminiScript {
            close_mid_response_at_turn: Some(2),
            ..fast_script()
        }],
        default: fast_script(),
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let one = events_until(&mut s, is_turn_complete).await;
    assert!(one.iter().any(is_turn_complete), "{:?}", summary(&one));
    // Let the mock issue turn 1's handle before the next turn.
    let _ = events_for(&mut s, Duration::from_millis(100), |_| false).await;
    send_frames(&mut s, &caller_turn(400, 500));
    let two = events_until(&mut s, |e| matches!(e, ModelEvent::Resumed)).await;
    let first_audio =
        position(&two, |e| matches!(e, ModelEvent::Audio(_))).expect("part of reply 2");
    let complete = position(&two, is_turn_complete).expect("the cut reply is ended");
    let recon = position(&two, |e| matches!(e, ModelEvent::Reconnecting { .. }))
        .unwrap_or_else(|| panic!("{:?}", summary(&two)));
    assert!(
        first_audio < complete && complete < recon,
        "{:?}",
        summary(&two)
    );
    assert!(matches!(two.last(), Some(ModelEvent::Resumed)));
    assert!(s.close().await.clean);
    assert_eq!(mock.stats().resumed_setups, 1);
}

#[tokio::test]
async fn gemini_refused_resumption_ends_the_session_as_resumption_failed() {
    use common::gemini::*;
    let refuse = GeminiScript {
        setup: SetupReply::Close {
            code: 1008,
            reason: "Invalid session handle".into(),
        },
        ..fast_script()
    };
    let mock = MockGemini::start_with(ScriptBook {
        per_connection: vec![GeminiScript {
            abort_after_turn: Some(1),
            ..fast_script()
        }],
        default: refuse,
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert!(
        position(&evs, |e| matches!(e, ModelEvent::Reconnecting { .. })).is_some(),
        "{:?}",
        summary(&evs)
    );
    assert!(!evs.iter().any(|e| matches!(e, ModelEvent::Resumed)));
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ResumptionFailed,
            clean: false
        })
    );
    assert_eq!(s.close().await.reason, CloseReason::ResumptionFailed);
    assert_eq!(mock.stats().connections, 2, "a 1008 refusal is not retried");
}

#[tokio::test]
async fn gemini_reconnect_is_bounded_by_its_budget() {
    use common::gemini::*;
    let mock = MockGemini::start_with(ScriptBook {
        per_connection: vec![GeminiScript {
            abort_after_turn: Some(1),
            ..fast_script()
        }],
        default: GeminiScript {
            setup: SetupReply::Never,
            ..fast_script()
        },
    })
    .await
    .unwrap();
    let mut c = config(mock.url());
    c.reconnect_budget = Duration::from_millis(400);
    let mut s = open_with(c).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ResumptionFailed,
            clean: false
        }),
        "{:?}",
        summary(&evs)
    );
    let _ = s.close().await;
}

#[tokio::test]
async fn gemini_drop_before_any_handle_ends_the_session() {
    use common::gemini::*;
    let mock = MockGemini::start(GeminiScript {
        close_mid_response_at_turn: Some(1),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert!(
        !evs.iter()
            .any(|e| matches!(e, ModelEvent::Reconnecting { .. }))
    );
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ConnectionLost,
            clean: false
        })
    );
    let _ = s.close().await;
    assert_eq!(mock.stats().connections, 1);
}

#[tokio::test]
async fn gemini_stalled_model_reports_the_callers_turn_and_then_nothing() {
    use common::gemini::*;
    let mock = MockGemini::start(GeminiScript {
        stall_after_turns: Some(2),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let one = events_until(&mut s, is_turn_complete).await;
    let ended = position(&one, |e| matches!(e, ModelEvent::CallerTurnEnded)).expect("turn 1 ended");
    let audio = position(&one, |e| matches!(e, ModelEvent::Audio(_))).expect("turn 1 answered");
    assert!(ended < audio, "{:?}", summary(&one));
    let _ = events_for(&mut s, Duration::from_millis(100), |_| false).await;
    send_frames(&mut s, &caller_turn(400, 500));
    let two = events_for(&mut s, Duration::from_secs(1), |_| false).await;
    assert!(
        two.iter().any(|e| matches!(e, ModelEvent::CallerTurnEnded)),
        "{:?}",
        summary(&two)
    );
    assert_eq!(audio_ms(&two), 0, "no reply: {:?}", summary(&two));
    assert!(!two.iter().any(|e| matches!(e, ModelEvent::Closed { .. })));
    assert!(s.close().await.clean);
    assert_eq!(mock.stats().caller_turns, 2);
}

#[tokio::test]
async fn openai_drop_between_turns_ends_the_session_without_reconnecting() {
    use common::openai::*;
    for how in [
        MidResponseClose::Abort,
        MidResponseClose::Close {
            code: 1011,
            reason: "server_error".into(),
        },
    ] {
        let mock = MockOpenAi::start(OpenAiScript {
            close_after_turn: Some((1, how.clone())),
            ..fast_script()
        })
        .await
        .unwrap();
        let mut s = open(mock.url()).await.unwrap();
        send_ulaw(&mut s, &caller_turn_ulaw(400, 500));
        let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
        assert!(evs.iter().any(is_turn_complete), "{:?}", summary(&evs));
        assert!(
            !evs.iter()
                .any(|e| matches!(e, ModelEvent::Reconnecting { .. }))
        );
        let want = match &how {
            MidResponseClose::Abort => CloseReason::ConnectionLost,
            MidResponseClose::Close { code, reason } => CloseReason::ServerClosed {
                code: *code,
                reason: reason.clone(),
            },
        };
        assert_eq!(
            evs.last(),
            Some(&ModelEvent::Closed {
                reason: want,
                clean: false
            }),
            "{how:?}"
        );
        let _ = s.close().await;
        assert_eq!(mock.stats().connections, 1, "{how:?}");
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn openai_stalled_model_commits_the_turn_and_then_sends_nothing() {
    use common::openai::*;
    let mock = MockOpenAi::start(OpenAiScript {
        stall_after_turns: Some(1),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(400, 500));
    let evs = events_for(&mut s, Duration::from_secs(1), |_| false).await;
    assert!(
        evs.iter().any(|e| matches!(e, ModelEvent::CallerTurnEnded)),
        "{:?}",
        summary(&evs)
    );
    assert_eq!(audio_ms(&evs), 0, "{:?}", summary(&evs));
    assert!(!evs.iter().any(is_turn_complete));
    assert!(s.close().await.clean);
    let st = mock.stats();
    assert_eq!(st.caller_turns, 1);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}
