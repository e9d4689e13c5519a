//! Every message the Gemini Live client writes (`callbridge_llm_bridge::
//! gemini::wire`) passes the mock's strict client-message validator, so the
//! mock never rejects what the real client sends.

use bytes::BytesMut;
use callbridge_llm_bridge::gemini::wire::{
    activity_end_message, activity_start_message, audio_stream_end_message, encode_audio_into,
    setup_message, text_message, tool_response_message, user_turn_message,
};
use callbridge_llm_bridge::{
    CallMetadata, Greeting, SessionConfig, ToolResult, ToolSpec, TransferChoice,
};
use callbridge_llm_mock::gemini_validate::{ClientMsg, parse_client_message};
use serde_json::{Value, json};

/// The configuration of the client's own wire tests: a voice, a user tool
/// and a transfer target, so the setup message carries every part.
fn cfg() -> SessionConfig {
    let mut c = SessionConfig::default();
    c.model = "gemini-3.1-flash-live-preview".into();
    c.voice = Some("Kore".into());
    c.instructions = "Be brief.".into();
    c.greeting = Greeting::CallerFirst;
    c.tools.push(ToolSpec {
        name: "book_table".into(),
        description: "Book".into(),
        parameters: json!({"type": "object", "properties": {
            "people": {"type": "integer"}, "names": {"type": "array", "items": {"type": "string"}}}}),
    });
    c.transfer_targets.push(TransferChoice {
        name: "sales".into(),
        number_prefix: None,
    });
    c
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn every_client_message_passes_the_mock_validator() {
    let msgs = [
        setup_message(&cfg(), &CallMetadata::default(), Some("h")),
        text_message("hi"),
        user_turn_message(Greeting::DEFAULT_PROMPT),
        audio_stream_end_message().to_owned(),
        activity_start_message().to_owned(),
        activity_end_message().to_owned(),
        tool_response_message("c1", "f", &ToolResult::Ok(json!({"a": 1}))),
        tool_response_message("c1", "f", &ToolResult::Err("no".into())),
    ];
    for m in msgs {
        parse_client_message(&parse(&m)).unwrap_or_else(|e| panic!("{e}: {m}"));
    }
    let mut out = BytesMut::new();
    encode_audio_into(&[1, 0, 2, 0], &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        parse_client_message(&v).unwrap(),
        ClientMsg::Audio(vec![1, 0, 2, 0])
    );
}
