//! The strict GPT-Live mock refuses what the real service would: each bad
//! input is answered with an `error` event and recorded as a violation.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use callbridge_llm_mock::gpt_live::{GptLiveScript, MockGptLive};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(mock: &MockGptLive) -> Ws {
    tokio_tungstenite::connect_async(mock.url())
        .await
        .unwrap()
        .0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next event of `ty` (audio and transcripts skipped).
async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    let read = async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == ty {
                    return v;
                }
            }
        }
        panic!("connection ended before {ty}");
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("no {ty}"))
}

fn start(session: Value) -> Value {
    json!({"type": "session.start", "session": session})
}

fn good_session() -> Value {
    json!({"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu", "rate": 8000}}})
}

/// A started connection.
async fn started(mock: &MockGptLive) -> Ws {
    let mut ws = connect(mock).await;
    send(&mut ws, start(good_session())).await;
    next_of(&mut ws, "session.started").await;
    ws
}

/// Sends `bad` and expects an error with `code` and one more violation.
async fn refused(mock: &MockGptLive, ws: &mut Ws, bad: Value, code: &str) {
    let before = mock.stats().violations.len();
    send(ws, bad.clone()).await;
    let err = next_of(ws, "error").await;
    assert_eq!(err["error"]["code"], code, "{bad} -> {err}");
    assert_eq!(mock.stats().violations.len(), before + 1, "{bad}");
}

#[tokio::test]
async fn events_before_session_started_are_refused() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = connect(&mock).await;
    let audio = json!({"type": "session.input_audio.append", "audio": "AAAA"});
    refused(&mock, &mut ws, audio, "session_not_started").await;
    refused(
        &mock,
        &mut ws,
        json!({"type": "session.close"}),
        "session_not_started",
    )
    .await;
    mock.shutdown().await;
}

#[tokio::test]
async fn unknown_fields_in_the_session_object_are_refused() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = connect(&mock).await;
    for bad in [
        json!({"model": "gpt-live-1", "voice": "marin"}),
        json!({"model": "gpt-live-1", "turn_detection": null}),
        json!({"model": "gpt-live-1", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}),
        json!({"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu", "rate": 8000, "channels": 1}}}),
        json!({"model": "gpt-live-1", "delegation": {"type": "responses", "responses": {"model": "m", "x": 1}}}),
        json!({"model": "gpt-live-1", "tools": []}),
    ] {
        refused(&mock, &mut ws, start(bad), "unknown_parameter").await;
    }
    // No start was accepted.
    assert_eq!(mock.stats().setups, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn bad_formats_are_refused_at_start() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = connect(&mock).await;
    for format in [
        json!({"type": "audio/pcmu", "rate": 16000}),
        json!({"type": "audio/pcma", "rate": 24000}),
        json!({"type": "audio/pcm", "rate": 8000}),
    ] {
        let bad = start(json!({"model": "gpt-live-1", "audio": {"format": format}}));
        refused(&mock, &mut ws, bad, "invalid_value").await;
    }
    refused(
        &mock,
        &mut ws,
        start(json!({"model": " "})),
        "invalid_value",
    )
    .await;
    mock.shutdown().await;
}

#[tokio::test]
async fn a_second_start_and_format_changes_after_start_are_refused() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = started(&mock).await;
    refused(
        &mock,
        &mut ws,
        start(good_session()),
        "session_already_started",
    )
    .await;
    let change = json!({"type": "session.update", "session": {
        "audio": {"format": {"type": "audio/pcm", "rate": 24000}}}});
    refused(&mock, &mut ws, change, "unknown_parameter").await;
    let voice = json!({"type": "session.update", "session": {
        "delegation": {"type": "client"}, "audio": {"output": {"voice": "cedar"}}}});
    refused(&mock, &mut ws, voice, "unknown_parameter").await;
    // The delegation alone may change.
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"delegation": {"type": "client"}}}),
    )
    .await;
    next_of(&mut ws, "session.updated").await;
    mock.shutdown().await;
}

#[tokio::test]
async fn bad_audio_is_refused() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = started(&mock).await;
    for bad in ["not base64!", "-_8=", "AAAA AAAA"] {
        let ev = json!({"type": "session.input_audio.append", "audio": bad});
        refused(&mock, &mut ws, ev, "invalid_base64").await;
    }
    let no_audio = json!({"type": "session.input_audio.append"});
    refused(&mock, &mut ws, no_audio, "unknown_parameter").await;
    let extra = json!({"type": "session.input_audio.append", "audio": "AAAA", "rate": 8000});
    refused(&mock, &mut ws, extra, "unknown_parameter").await;
    // Good audio is counted.
    send(
        &mut ws,
        json!({"type": "session.input_audio.append", "audio": "//////8="}),
    )
    .await;
    let (_, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.audio_bytes_in == 5)
        .await;
    assert!(ok);
    mock.shutdown().await;
}

#[tokio::test]
async fn odd_pcm_byte_counts_are_refused() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = connect(&mock).await;
    send(
        &mut ws,
        start(json!({"model": "gpt-live-1",
        "audio": {"format": {"type": "audio/pcm", "rate": 24000}}})),
    )
    .await;
    next_of(&mut ws, "session.started").await;
    let ev = json!({"type": "session.input_audio.append", "audio": "AAAA"});
    refused(&mock, &mut ws, ev, "invalid_value").await;
    mock.shutdown().await;
}

#[tokio::test]
async fn responses_events_need_responses_delegation_and_ids_must_exist() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = started(&mock).await;
    refused(
        &mock,
        &mut ws,
        json!({"type": "response.create"}),
        "delegation_not_responses",
    )
    .await;
    let item = json!({"type": "response.item.create", "item": {
        "type": "function_call_output", "call_id": "c1", "output": "{}"}});
    refused(&mock, &mut ws, item, "delegation_not_responses").await;
    let append =
        json!({"type": "session.instructions.append", "content": "x", "delegation_id": "del_nope"});
    refused(&mock, &mut ws, append, "unknown_delegation").await;
    let no_id = json!({"type": "session.instructions.append", "content": "x"});
    refused(&mock, &mut ws, no_id, "unknown_parameter").await;
    let empty =
        json!({"type": "session.instructions.append", "content": " ", "delegation_id": null});
    refused(&mock, &mut ws, empty, "invalid_value").await;
    refused(
        &mock,
        &mut ws,
        json!({"type": "response.cancel"}),
        "unknown_parameter",
    )
    .await;
    mock.shutdown().await;
}

#[tokio::test]
async fn appends_are_bounded_and_need_a_known_client_delegation() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = started(&mock).await;
    let long = "word ".repeat(450);
    let too_long =
        json!({"type": "session.thinking.append", "content": long, "delegation_id": null});
    refused(&mock, &mut ws, too_long, "invalid_value").await;
    let commentary =
        json!({"type": "session.commentary.append", "content": "x", "delegation_id": "del_nope"});
    refused(&mock, &mut ws, commentary, "unknown_delegation").await;
    let no_id = json!({"type": "session.commentary.append", "content": "x"});
    refused(&mock, &mut ws, no_id, "unknown_parameter").await;
    let extra = json!({"type": "session.thinking.append", "content": "x", "delegation_id": null,
                       "name": "lookup_order"});
    refused(&mock, &mut ws, extra, "unknown_parameter").await;
    mock.shutdown().await;
}

#[tokio::test]
async fn function_outputs_must_answer_a_call() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = connect(&mock).await;
    send(
        &mut ws,
        start(json!({"model": "gpt-live-1",
        "delegation": {"type": "responses", "responses": {"model": "gpt-5.5"}}})),
    )
    .await;
    next_of(&mut ws, "session.started").await;
    let unknown = json!({"type": "response.item.create", "item": {
        "type": "function_call_output", "call_id": "c1", "output": "{}"}});
    refused(&mock, &mut ws, unknown, "unknown_call_id").await;
    let shape = json!({"type": "response.item.create", "item": {
        "type": "function_call_output", "call_id": "c1", "output": {"not": "a string"}}});
    refused(&mock, &mut ws, shape, "invalid_value").await;
    let id =
        json!({"type": "session.instructions.append", "content": "x", "delegation_id": "del_1"});
    refused(&mock, &mut ws, id, "invalid_value").await;
    mock.shutdown().await;
}

#[tokio::test]
async fn close_answers_session_closed_and_nothing_may_follow() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = started(&mock).await;
    send(&mut ws, json!({"type": "session.close"})).await;
    let closed = next_of(&mut ws, "session.closed").await;
    assert_eq!(closed["reason"], "close_requested");
    assert!(closed["usage"]["seconds"].is_number());
    let audio = json!({"type": "session.input_audio.append", "audio": "AAAA"});
    refused(&mock, &mut ws, audio, "session_closing").await;
    mock.shutdown().await;
}

#[tokio::test]
async fn non_json_and_unknown_types_are_refused() {
    let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let mut ws = connect(&mock).await;
    let before = mock.stats().violations.len();
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let err = next_of(&mut ws, "error").await;
    assert_eq!(err["error"]["code"], "invalid_json");
    assert_eq!(mock.stats().violations.len(), before + 1);
    refused(
        &mock,
        &mut ws,
        json!({"type": "session.update_voice"}),
        "unknown_parameter",
    )
    .await;
    mock.shutdown().await;
}
