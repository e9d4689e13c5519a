//! Failure handling and scripted behaviours against the mock Gemini server.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{
    ApiKey, CloseReason, ConnectFailure, Error, ErrorKind, GeminiLive, ModelEvent, RealtimeModel,
    ToolResult, TurnDetection,
};
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini, SetupReply};
use callbridge_llm_mock::{Handshake, ScriptBook};
use common::gemini::*;
use common::*;

#[tokio::test]
async fn connect_retries_then_succeeds_on_the_third_attempt() {
    let book = ScriptBook {
        per_connection: vec![
            GeminiScript {
                handshake: Handshake::RejectHttp(503),
                ..Default::default()
            },
            GeminiScript {
                handshake: Handshake::DropTcp,
                ..Default::default()
            },
        ],
        default: GeminiScript::default(),
    };
    let mock = MockGemini::start_with(book).await.unwrap();
    let s = open(mock.url()).await.unwrap();
    assert!(s.close().await.clean);
    let st = mock.stats();
    assert_eq!((st.connections, st.setups), (3, 1));
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

#[tokio::test]
async fn gives_up_after_three_failures_with_a_clear_error_and_no_key() {
    let mock = MockGemini::start(GeminiScript {
        handshake: Handshake::RejectHttp(503),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cfg = config(mock.url());
    cfg.api_key = Some(ApiKey::new("secret-key-123"));
    let err = open_with(cfg).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(connect_failure(&err, 3), ConnectFailure::HttpStatus(503)),
        "{err:?}"
    );
    assert_eq!(
        msg,
        "could not open a Gemini Live session after 3 attempt(s): the server refused the WebSocket upgrade with HTTP 503"
    );
    assert!(!msg.contains("secret") && !format!("{err:?}").contains("secret"));
    assert_eq!(mock.stats().connections, 3);
}

#[tokio::test]
async fn api_key_travels_in_the_header_only() {
    let mock = MockGemini::start(GeminiScript {
        expect_api_key: Some("k-1".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cfg = config(mock.url());
    cfg.api_key = Some(ApiKey::new("k-1"));
    let s = open_with(cfg).await.unwrap();
    assert!(s.close().await.clean);
    mock.assert_no_violations();
}

#[tokio::test]
async fn an_invalid_setup_is_not_retried() {
    let mock = MockGemini::start(GeminiScript {
        setup: SetupReply::Close {
            code: 1008,
            reason: "Requested entity was not found.".into(),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let err = open(mock.url()).await.unwrap_err();
    match err {
        Error::Connect {
            attempts: 1,
            last: ConnectFailure::ClosedDuringSetup { code: 1008, reason },
            ..
        } => assert_eq!(reason, "Requested entity was not found."),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn setup_that_never_completes_times_out() {
    let mock = MockGemini::start(GeminiScript {
        setup: SetupReply::Never,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = open_with(impatient(config(mock.url()))).await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { attempts: 3, last: ConnectFailure::SetupTimeout(d), .. } if d == IMPATIENT_SETUP),
        "{err:?}"
    );
    assert!(err.to_string().contains("did not complete setup"));
    // The client never sent anything before setupComplete.
    mock.server().assert_no_violations();
    // Each timed-out attempt ended with the client's close frame (1000),
    // not a dropped connection (1006).
    let (stats, ended) = mock
        .server()
        .wait_for(Duration::from_secs(5), |s| s.client_close_codes.len() == 3)
        .await;
    assert!(ended, "{stats:?}");
    assert_eq!(stats.client_close_codes, [1000, 1000, 1000]);
    assert_eq!(stats.clean_closes, 3);
}

#[tokio::test]
async fn slow_setup_within_the_timeout_succeeds() {
    let mock = MockGemini::start(GeminiScript {
        setup: SetupReply::Delay(Duration::from_millis(100)),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = open(mock.url()).await.unwrap();
    assert!(s.close().await.clean);
    assert_eq!(mock.stats().connections, 1);
}

#[tokio::test]
async fn server_dropping_mid_response_gives_a_closed_event_with_reason() {
    let mock = MockGemini::start(GeminiScript {
        close_mid_response_at_turn: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert!(audio_ms(&evs) > 0, "part of the reply arrived first");
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ConnectionLost,
            clean: false
        })
    );
    assert_eq!(s.next_event().await, None);
    // Sending after the end is a typed error, not a panic.
    let frames = caller_turn(20, 0);
    assert!(matches!(
        s.send_audio(callbridge_llm_bridge::AudioFrame::Pcm16 {
            rate: callbridge_llm_bridge::SampleRate::HZ_16000,
            samples: &frames[0]
        }),
        Err(Error::Closed)
    ));
    let outcome = s.close().await;
    assert_eq!(outcome.reason, CloseReason::ConnectionLost);
}

#[tokio::test]
async fn server_close_frame_is_reported_with_code_and_reason() {
    // 1008 is the server refusing us, not a transient drop: not resumed.
    let mock = MockGemini::start(GeminiScript {
        close_after_turn: Some(1),
        close_code: 1008,
        playback_speed: 100.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert!(evs.iter().any(|e| matches!(e, ModelEvent::TurnComplete)));
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ServerClosed {
                code: 1008,
                reason: "Requested entity was not found.".into()
            },
            clean: false
        })
    );
    assert!(
        !evs.iter()
            .any(|e| matches!(e, ModelEvent::Reconnecting { .. })),
        "a policy close is not resumed"
    );
    assert_eq!(s.next_event().await, None);
    let outcome = s.close().await;
    assert!(matches!(
        outcome.reason,
        CloseReason::ServerClosed { code: 1008, .. }
    ));
    assert_eq!(mock.stats().connections, 1);
}

#[tokio::test]
async fn malformed_frames_become_error_events_and_the_session_goes_on() {
    let mock = MockGemini::start(GeminiScript {
        malformed_after_setup: true,
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    let errs = events_until(&mut s, |e| {
        matches!(
            e,
            ModelEvent::Error {
                kind: ErrorKind::UnknownMessage,
                ..
            }
        )
    })
    .await;
    let kinds = error_kinds(&errs);
    assert_eq!(
        kinds,
        [
            ErrorKind::MalformedMessage,
            ErrorKind::MalformedMessage,
            ErrorKind::UnknownMessage
        ]
    );
    send_frames(&mut s, &caller_turn(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&evs) > 1000);
    assert!(s.close().await.clean);
}

#[tokio::test]
async fn talking_over_the_reply_interrupts_it() {
    let mock = MockGemini::start(GeminiScript::default()).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let first = events_until(&mut s, |e| matches!(e, ModelEvent::GenerationComplete)).await;
    assert!(audio_ms(&first) > 1000);
    // The reply plays in real time (1.75 s); barge in at once.
    send_frames(&mut s, &caller_turn(300, 0));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, ModelEvent::Interrupted | ModelEvent::TurnComplete))
            .collect::<Vec<_>>(),
        [&ModelEvent::Interrupted, &ModelEvent::TurnComplete]
    );
    assert!(s.close().await.clean);
    mock.assert_no_violations();
}

#[tokio::test]
async fn end_call_after_two_turns_is_a_typed_event_and_can_be_answered() {
    let mock = MockGemini::start(GeminiScript {
        end_call_after_turns: Some(2),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let one = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(!one.iter().any(|e| matches!(e, ModelEvent::EndCall { .. })));
    send_frames(&mut s, &caller_turn(400, 500));
    let two = events_until(&mut s, |e| matches!(e, ModelEvent::EndCall { .. })).await;
    let Some(ModelEvent::EndCall { id, reason }) = two.last().cloned() else {
        panic!("{:?}", summary(&two))
    };
    assert_eq!(reason.as_deref(), Some("the caller's request is handled"));
    s.send_tool_result(id.clone(), ToolResult::Ok(serde_json::json!("hanging up")))
        .await
        .unwrap();
    // Answering twice is refused locally.
    assert!(matches!(
        s.send_tool_result(id, ToolResult::Ok(serde_json::json!(1)))
            .await,
        Err(Error::UnknownToolCall)
    ));
    assert!(s.close().await.clean);
    let (st, _) = mock
        .server()
        .wait_for(Duration::from_secs(1), |s| s.open_connections == 0)
        .await;
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(st.caller_turns, 2);
}

#[tokio::test]
async fn dtmf_digits_reach_the_model_as_text() {
    let mock = MockGemini::start(fast_script()).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    s.send_dtmf("12#").await.unwrap();
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(evs.iter().any(|e| matches!(e,
        ModelEvent::InputTranscript { text, .. } if text == "[The caller pressed the phone keys: 1 2 #]")));
    assert!(matches!(
        s.send_dtmf("9x").await,
        Err(Error::InvalidDtmf('x'))
    ));
    assert!(s.close().await.clean);
}

#[tokio::test]
async fn manual_turn_detection_uses_activity_signals() {
    let mock = MockGemini::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.turn_detection = TurnDetection::Manual;
    let mut s = open_with(cfg).await.unwrap();
    s.activity_start().await.unwrap();
    send_frames(&mut s, &caller_turn(200, 0));
    // Not valid in manual mode: skipped by the client, never sent.
    s.audio_stream_end().unwrap();
    s.activity_end().await.unwrap();
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&evs) > 1000);
    assert!(s.close().await.clean);
    let (st, _) = mock
        .server()
        .wait_for(Duration::from_secs(1), |s| s.open_connections == 0)
        .await;
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

/// Two turns against a mock that sends goAway in the middle of the second
/// reply; returns the events up to `Resumed` and the first handle.
async fn go_away_mid_reply(
    time_left: Duration,
    endless: bool,
) -> (
    MockGemini,
    callbridge_llm_bridge::ModelSession,
    Vec<ModelEvent>,
) {
    let book = ScriptBook {
        per_connection: vec![GeminiScript {
            go_away_mid_reply_at_turn: Some(2),
            go_away_time_left: time_left,
            endless_reply_at_turn: endless.then_some(2),
            ..fast_script()
        }],
        default: fast_script(),
    };
    let mock = MockGemini::start_with(book).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_frames(&mut s, &caller_turn(400, 500));
    let one = events_until(&mut s, |e| matches!(e, ModelEvent::ResumptionHandle(_))).await;
    assert!(
        matches!(one.last(), Some(ModelEvent::ResumptionHandle(_))),
        "{:?}",
        summary(&one)
    );
    send_frames(&mut s, &caller_turn(400, 500));
    let two = events_until(&mut s, |e| matches!(e, ModelEvent::Resumed)).await;
    assert!(
        matches!(two.last(), Some(ModelEvent::Resumed)),
        "{:?}",
        summary(&two)
    );
    assert!(
        !two.iter()
            .any(|e| matches!(e, ModelEvent::Error { .. } | ModelEvent::Closed { .. }))
    );
    (mock, s, two)
}

async fn finish_resumed(mock: MockGemini, mut s: callbridge_llm_bridge::ModelSession) {
    send_frames(&mut s, &caller_turn(400, 500));
    let three = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&three) > 1000, "the new connection answers");
    assert!(s.close().await.clean);
    let (st, _) = mock
        .server()
        .wait_for(Duration::from_secs(1), |s| s.open_connections == 0)
        .await;
    assert_eq!((st.setups, st.resumed_setups), (2, 1));
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

#[tokio::test]
async fn go_away_during_a_reply_waits_for_the_turn_to_end_before_resuming() {
    // The reply plays 35 ms; the switch may wait up to 1 s (half of 2 s).
    let (mock, s, two) = go_away_mid_reply(Duration::from_secs(2), false).await;
    let going = two
        .iter()
        .position(|e| matches!(e, ModelEvent::GoingAway { .. }))
        .expect("goAway");
    assert!(matches!(&two[going],
        ModelEvent::GoingAway { time_left: Some(t) } if *t == Duration::from_secs(2)));
    let complete = two
        .iter()
        .rposition(|e| matches!(e, ModelEvent::TurnComplete))
        .expect("turn end");
    assert!(
        going < complete,
        "the reply was not cut by the switch: {:?}",
        summary(&two)
    );
    finish_resumed(mock, s).await;
}

#[tokio::test]
async fn go_away_during_an_endless_reply_resumes_at_the_deadline() {
    // The reply never ends; the switch happens at half of 200 ms.
    let started = std::time::Instant::now();
    let (mock, s, two) = go_away_mid_reply(Duration::from_millis(200), true).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let going = two
        .iter()
        .position(|e| matches!(e, ModelEvent::GoingAway { .. }))
        .expect("goAway");
    assert!(
        !two[going..]
            .iter()
            .any(|e| matches!(e, ModelEvent::TurnComplete)),
        "{:?}",
        summary(&two)
    );
    finish_resumed(mock, s).await;
}

#[tokio::test]
async fn close_completes_even_when_nobody_reads_events() {
    let mock = MockGemini::start(GeminiScript::default()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.event_capacity = 2;
    cfg.greeting = callbridge_llm_bridge::Greeting::OnOpen {
        prompt: "greet".into(),
    };
    let s = open_with(cfg).await.unwrap();
    // The greeting's ~30 audio messages fill the 2-slot queue; the driver
    // waits for room, but a close request still gets through.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let outcome = tokio::time::timeout(Duration::from_secs(2), s.close())
        .await
        .expect("close returned");
    assert!(outcome.clean, "{outcome:?}");
    assert_eq!(outcome.reason, CloseReason::ClientClosed);
}

#[test]
fn handles_can_move_between_tasks() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<callbridge_llm_bridge::ModelSession>();
    assert_send::<callbridge_llm_bridge::ModelEvent>();
    let boxed: Box<dyn RealtimeModel> = Box::new(GeminiLive);
    assert_eq!(boxed.provider(), callbridge_llm_bridge::Provider::Gemini);
}
