//! Failure behaviour of the OpenAI Realtime client against the mock:
//! connect retries, giving up, setup timeouts and rejections, the server
//! closing mid-response, malformed frames.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{ApiKey, CloseReason, ConnectFailure, ErrorKind, ModelEvent};
use callbridge_llm_mock::clips;
use callbridge_llm_mock::openai::{MidResponseClose, MockOpenAi, OpenAiScript, SessionReply};
use callbridge_llm_mock::{Handshake, ScriptBook};
use common::openai::*;
use common::*;

fn script(handshake: Handshake) -> OpenAiScript {
    OpenAiScript {
        handshake,
        ..fast_script()
    }
}

/// A mock that answers the session setup with `reply`.
async fn mock_answering(reply: SessionReply) -> MockOpenAi {
    MockOpenAi::start(OpenAiScript {
        session: reply,
        ..fast_script()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn connect_retries_after_refusals_then_succeeds() {
    let mock = MockOpenAi::start_with(ScriptBook {
        per_connection: vec![
            script(Handshake::RejectHttp(503)),
            script(Handshake::DropTcp),
        ],
        default: fast_script(),
    })
    .await
    .unwrap();
    let s = open(mock.url()).await.unwrap();
    assert!(s.close().await.clean);
    let stats = mock.stats();
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.setups, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn gives_up_after_three_failures_with_a_clear_error_without_the_key() {
    let mock = MockOpenAi::start(script(Handshake::RejectHttp(503)))
        .await
        .unwrap();
    let mut cfg = config(mock.url());
    cfg.api_key = Some(ApiKey::new("sk-super-secret-value"));
    let err = open_with(cfg).await.unwrap_err();
    assert!(
        matches!(connect_failure(&err, 3), ConnectFailure::HttpStatus(503)),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("OpenAI Realtime") && text.contains("after 3 attempt(s)"),
        "{text}"
    );
    assert!(!text.contains("sk-super-secret") && !format!("{err:?}").contains("sk-super"));
    assert_eq!(mock.stats().connections, 3);
    mock.shutdown().await;
}

#[tokio::test]
async fn server_that_never_sends_session_created_times_out() {
    let mock = mock_answering(SessionReply::Never).await;
    let err = open_with(impatient(config(mock.url()))).await.unwrap_err();
    assert!(
        matches!(connect_failure(&err, 3), ConnectFailure::SetupTimeout(_)),
        "{err:?}"
    );
    let (stats, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.open_connections == 0)
        .await;
    assert!(ok, "timed-out attempts must not leave connections open");
    assert_eq!(stats.connections, 3);
    // Each timed-out attempt ended with the client's close frame (1000),
    // not a dropped connection (1006).
    assert_eq!(stats.client_close_codes, [1000, 1000, 1000]);
    assert!(
        stats.violations.is_empty(),
        "nothing may be sent before session.created"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn server_that_never_answers_session_update_times_out() {
    let mock = mock_answering(SessionReply::NeverUpdated).await;
    let mut cfg = impatient(config(mock.url()));
    cfg.retry.max_attempts = 1;
    let err = open_with(cfg).await.unwrap_err();
    assert!(
        matches!(connect_failure(&err, 1), ConnectFailure::SetupTimeout(_)),
        "{err:?}"
    );
    assert_eq!(mock.stats().setups, 0);
    let (stats, ended) = mock
        .server()
        .wait_for(Duration::from_secs(5), |s| !s.client_close_codes.is_empty())
        .await;
    assert!(ended, "{stats:?}");
    assert_eq!(stats.client_close_codes, [1000], "a close frame, not 1006");
    mock.shutdown().await;
}

#[tokio::test]
async fn rejected_session_update_fails_once_without_retrying() {
    let mock = mock_answering(SessionReply::RejectUpdate).await;
    let err = open(mock.url()).await.unwrap_err();
    assert!(
        matches!(connect_failure(&err, 1), ConnectFailure::Protocol(_)),
        "{err:?}"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn slow_session_created_within_the_timeout_is_fine() {
    let mock = mock_answering(SessionReply::Delay(Duration::from_millis(100))).await;
    let s = open(mock.url()).await.unwrap();
    assert!(s.close().await.clean);
    assert_eq!(mock.stats().connections, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn server_close_frame_mid_response_ends_with_its_code_and_reason() {
    let mock = MockOpenAi::start(OpenAiScript {
        close_mid_response: Some((
            1,
            MidResponseClose::Close {
                code: 1011,
                reason: "internal server error".into(),
            },
        )),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert!(audio_ms(&evs) > 0);
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ServerClosed {
                code: 1011,
                reason: "internal server error".into()
            },
            clean: false
        })
    );
    assert!(s.next_event().await.is_none());
    let outcome = s.close().await;
    assert!(!outcome.clean);
    mock.shutdown().await;
}

#[tokio::test]
async fn dropped_connection_mid_response_ends_with_connection_lost() {
    let mock = MockOpenAi::start(OpenAiScript {
        close_mid_response: Some((1, MidResponseClose::Abort)),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::Closed { .. })).await;
    assert_eq!(
        evs.last(),
        Some(&ModelEvent::Closed {
            reason: CloseReason::ConnectionLost,
            clean: false
        })
    );
    let outcome = s.close().await;
    assert_eq!(outcome.reason, CloseReason::ConnectionLost);
    mock.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_become_error_events_and_the_session_continues() {
    let mock = MockOpenAi::start(OpenAiScript {
        malformed_after_setup: true,
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    let bad = events_until(&mut s, |e| {
        matches!(e, ModelEvent::Error { kind: ErrorKind::MalformedMessage, message }
            if message.contains("delta"))
    })
    .await;
    let kinds = error_kinds(&bad);
    assert_eq!(
        kinds,
        [
            ErrorKind::MalformedMessage,
            ErrorKind::MalformedMessage,
            ErrorKind::UnknownMessage,
            ErrorKind::MalformedMessage
        ]
    );
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let reply = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert_eq!(output_text(&reply), clips::REPLY_TEXT);
    assert!(s.close().await.clean);
    assert_eq!(mock.stats().clean_closes, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn beta_header_is_never_sent_and_the_model_is_in_the_url() {
    // The mock closes with 4000 on an OpenAI-Beta header and records a
    // violation when the URL lacks `model=`.
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let s = open(mock.url()).await.unwrap();
    assert!(s.close().await.clean);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}
