use super::*;
use crate::config::{Greeting, ToolSpec};
use proptest::prelude::*;

fn cfg() -> SessionConfig {
    let mut c = SessionConfig {
        model: "gpt-realtime".into(),
        instructions: "Be brief.".into(),
        voice: Some("marin".into()),
        greeting: Greeting::CallerFirst,
        ..Default::default()
    };
    c.tools.push(ToolSpec {
        name: "lookup_order".into(),
        description: "Find an order".into(),
        parameters: json!({"type": "object", "properties": {"id": {"type": "string"}}}),
    });
    c.transfer_targets.push(crate::config::TransferChoice {
        name: "sales".into(),
        number_prefix: None,
    });
    c
}

#[test]
fn session_update_has_the_ga_shape_with_pcmu_both_ways() {
    let s = session_update_message(
        &cfg(),
        &CallMetadata::default(),
        AudioFormat::Pcmu,
        AudioFormat::Pcmu,
    );
    let v: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["type"], "session.update");
    let sess = &v["session"];
    assert_eq!(sess["type"], "realtime");
    assert_eq!(sess["output_modalities"], json!(["audio"]));
    assert_eq!(sess["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(sess["audio"]["output"]["format"]["type"], "audio/pcmu");
    assert_eq!(sess["audio"]["output"]["voice"], "marin");
    let td = &sess["audio"]["input"]["turn_detection"];
    assert_eq!(td["type"], "server_vad");
    assert_eq!(td["interrupt_response"], true);
    assert_eq!(
        sess["audio"]["input"]["transcription"]["model"],
        DEFAULT_TRANSCRIPTION_MODEL
    );
    let names: Vec<&str> = sess["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lookup_order", "end_call", "transfer_call"]);
    // No beta (flat) fields.
    for beta in [
        "input_audio_format",
        "output_audio_format",
        "voice",
        "modalities",
        "temperature",
    ] {
        assert!(sess.get(beta).is_none(), "{beta}");
    }
}

#[test]
fn manual_turns_send_null_turn_detection_and_pcm_has_rate() {
    let mut c = cfg();
    c.turn_detection = TurnDetection::Manual;
    c.transcription.input = false;
    let s = session_update_message(
        &c,
        &CallMetadata::default(),
        AudioFormat::PCM_24K,
        AudioFormat::PCM_24K,
    );
    let v: Value = serde_json::from_str(&s).unwrap();
    let input = &v["session"]["audio"]["input"];
    assert!(input["turn_detection"].is_null());
    assert!(input.get("transcription").is_none());
    assert_eq!(input["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert!(format_json(AudioFormat::PCM_16K).is_none());
}

/// The API's defaults by default: 300 ms prefix padding (the 20 ms sent
/// before clipped first syllables), no idle timeout, no noise reduction.
#[test]
fn session_update_carries_the_apis_vad_defaults() {
    let s = session_update_message(
        &cfg(),
        &CallMetadata::default(),
        AudioFormat::Pcmu,
        AudioFormat::Pcmu,
    );
    let v: Value = serde_json::from_str(&s).unwrap();
    let input = &v["session"]["audio"]["input"];
    assert_eq!(
        input["turn_detection"],
        json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
               "silence_duration_ms": 500, "create_response": true, "interrupt_response": true})
    );
    assert!(input["noise_reduction"].is_null());
}

#[test]
fn session_update_carries_the_configured_tuning() {
    use crate::tuning::{Eagerness, NoiseReduction, OpenAiVad, ServerVad};
    let mut c = cfg();
    c.openai.vad = OpenAiVad::Server(ServerVad {
        threshold: 0.7,
        prefix_padding: Duration::from_millis(250),
        silence_duration: Duration::from_millis(800),
        idle_timeout: Some(Duration::from_secs(8)),
    });
    c.openai.noise_reduction = NoiseReduction::NearField;
    c.transcription.model = Some("gpt-4o-transcribe".into());
    let s = session_update_message(
        &c,
        &CallMetadata::default(),
        AudioFormat::Pcmu,
        AudioFormat::Pcmu,
    );
    let v: Value = serde_json::from_str(&s).unwrap();
    let input = &v["session"]["audio"]["input"];
    let td = &input["turn_detection"];
    assert_eq!(td["threshold"], 0.7);
    assert_eq!(td["prefix_padding_ms"], 250);
    assert_eq!(td["silence_duration_ms"], 800);
    assert_eq!(td["idle_timeout_ms"], 8000);
    assert_eq!(input["noise_reduction"], json!({"type": "near_field"}));
    assert_eq!(input["transcription"]["model"], "gpt-4o-transcribe");

    c.openai.vad = OpenAiVad::Semantic {
        eagerness: Eagerness::Low,
    };
    c.openai.noise_reduction = NoiseReduction::FarField;
    let s = session_update_message(
        &c,
        &CallMetadata::default(),
        AudioFormat::Pcmu,
        AudioFormat::Pcmu,
    );
    let v: Value = serde_json::from_str(&s).unwrap();
    let input = &v["session"]["audio"]["input"];
    assert_eq!(
        input["turn_detection"],
        json!({"type": "semantic_vad", "eagerness": "low", "create_response": true,
               "interrupt_response": true})
    );
    assert_eq!(input["noise_reduction"], json!({"type": "far_field"}));
}

#[test]
fn append_is_valid_json_with_base64_audio() {
    let mut out = BytesMut::new();
    encode_audio_into(&[0xFF; 160], &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["type"], "input_audio_buffer.append");
    let audio = B64.decode(v["audio"].as_str().unwrap()).unwrap();
    assert_eq!(audio, vec![0xFF; 160]);
}

#[test]
fn decodes_audio_delta_and_beta_alias() {
    let data = B64.encode([1u8, 2, 3, 4]);
    for kind in ["response.output_audio.delta", "response.audio.delta"] {
        let msg = json!({"type": kind, "event_id": "e1", "response_id": "r1", "item_id": "i1",
                         "output_index": 0, "content_index": 0, "delta": data})
        .to_string();
        assert_eq!(
            decode_server_event(msg.as_bytes()).unwrap(),
            Inbound::AudioDelta {
                response_id: "r1".into(),
                item_id: "i1".into(),
                data: Bytes::from_static(&[1, 2, 3, 4]),
            }
        );
    }
}

#[test]
fn decodes_function_call_response_done_rate_limits_and_error() {
    let fc = json!({"type": "response.function_call_arguments.done", "call_id": "c1",
                    "name": "end_call", "arguments": "{\"reason\":\"bye\"}", "item_id": "i",
                    "response_id": "r", "output_index": 1});
    assert!(matches!(
        decode_server_event(fc.to_string().as_bytes()).unwrap(),
        Inbound::FunctionCall { call_id, name, .. } if call_id == "c1" && name.as_deref() == Some("end_call")
    ));
    let done = json!({"type": "response.done", "response": {"id": "r1", "status": "completed",
        "output": [], "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20}}});
    assert_eq!(
        decode_server_event(done.to_string().as_bytes()).unwrap(),
        Inbound::ResponseDone {
            response_id: Some("r1".into()),
            status: ResponseStatus::Completed,
            details: None,
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 20,
                total_tokens: 30,
                split: None,
            }),
        }
    );
    let rl = json!({"type": "rate_limits.updated", "rate_limits": [
        {"name": "requests", "limit": 100, "remaining": 99, "reset_seconds": 1.5}]});
    assert!(matches!(
        decode_server_event(rl.to_string().as_bytes()).unwrap(),
        Inbound::RateLimits(v) if v.len() == 1 && v[0].reset == Duration::from_millis(1500)
    ));
    let err = json!({"type": "error", "event_id": "e", "error": {"type": "invalid_request_error",
        "code": "session_expired", "message": "Your session hit the maximum duration of 60 minutes.",
        "param": null, "event_id": null}});
    assert!(matches!(
        decode_server_event(err.to_string().as_bytes()).unwrap(),
        Inbound::Error { code: Some(c), message } if c == "session_expired" && message.contains("60 minutes")
    ));
}

#[test]
fn missing_fields_unknown_types_and_bad_json_are_typed_errors() {
    assert!(matches!(
        decode_server_event(
            br#"{"type":"response.output_audio.delta","item_id":"i","response_id":"r"}"#
        ),
        Err(DecodeError::Missing { field: "delta", .. })
    ));
    assert!(matches!(
        decode_server_event(br#"{"type":"response.output_audio.delta","item_id":"i","response_id":"r","delta":"!!"}"#),
        Err(DecodeError::Base64)
    ));
    assert_eq!(
        decode_server_event(br#"{"type":"no.such.event"}"#),
        Err(DecodeError::Unknown)
    );
    assert!(matches!(
        decode_server_event(b"{\"type\":"),
        Err(DecodeError::Json(_))
    ));
    assert!(matches!(
        decode_server_event(br#"{"delta":"x"}"#),
        Err(DecodeError::Json(_))
    ));
    assert_eq!(
        decode_server_event(br#"{"type":"conversation.item.added","item":{}}"#),
        Ok(Inbound::Ignored)
    );
}

#[test]
fn function_call_items_carry_the_name_and_other_items_are_ignored() {
    let added = json!({"type": "response.output_item.added", "response_id": "r", "output_index": 1,
        "item": {"id": "i", "type": "function_call", "call_id": "c9", "name": "lookup", "arguments": ""}});
    assert_eq!(
        decode_server_event(added.to_string().as_bytes()).unwrap(),
        Inbound::FunctionCallItem {
            call_id: "c9".into(),
            name: "lookup".into()
        }
    );
    let msg = json!({"type": "response.output_item.done", "item": {"id": "i", "type": "message"}});
    assert_eq!(
        decode_server_event(msg.to_string().as_bytes()).unwrap(),
        Inbound::Ignored
    );
    let no_name = json!({"type": "response.function_call_arguments.done", "call_id": "c9",
        "arguments": "{}", "item_id": "i", "response_id": "r", "output_index": 1});
    assert!(matches!(
        decode_server_event(no_name.to_string().as_bytes()).unwrap(),
        Inbound::FunctionCall { name: None, .. }
    ));
}

#[test]
fn tool_output_strings_pass_through_and_errors_are_wrapped() {
    assert_eq!(tool_output(&ToolResult::Ok(json!("done"))), "done");
    assert_eq!(tool_output(&ToolResult::Ok(json!({"a": 1}))), "{\"a\":1}");
    assert_eq!(
        tool_output(&ToolResult::Err("no".into())),
        "{\"error\":\"no\"}"
    );
}

proptest! {
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_server_event(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_typed_objects(kind in "[a-z_.]{0,40}", delta in ".{0,40}") {
        let msg = json!({"type": kind, "delta": delta, "item_id": "i", "response_id": "r"}).to_string();
        let _ = decode_server_event(msg.as_bytes());
    }

    #[test]
    fn append_round_trips_any_audio(audio in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut out = BytesMut::new();
        encode_audio_into(&audio, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(B64.decode(v["audio"].as_str().unwrap()).unwrap(), audio);
    }
}

#[test]
fn response_done_usage_splits_audio_and_text_tokens() {
    // The `response.done` usage of the Realtime API (GA): token details
    // per direction, `cached_tokens` beside the modalities.
    let done = json!({"type": "response.done", "response": {"id": "r2", "status": "completed",
        "output": [], "usage": {"total_tokens": 253, "input_tokens": 165, "output_tokens": 88,
        "input_token_details": {"cached_tokens": 64, "text_tokens": 120, "audio_tokens": 45,
            "image_tokens": 0, "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0}},
        "output_token_details": {"text_tokens": 18, "audio_tokens": 70}}}});
    let Inbound::ResponseDone { usage, .. } =
        decode_server_event(done.to_string().as_bytes()).unwrap()
    else {
        panic!("not a response.done");
    };
    assert_eq!(
        usage,
        Some(Usage {
            input_tokens: 165,
            output_tokens: 88,
            total_tokens: 253,
            split: Some(TokenSplit {
                input_audio: 45,
                input_text: 120,
                output_audio: 70,
                output_text: 18,
            }),
        })
    );
    // A count of the wrong type is malformed, not a zero.
    let bad = json!({"type": "response.done", "response": {"id": "r3", "status": "completed",
        "usage": {"input_tokens": "lots"}}});
    assert!(decode_server_event(bad.to_string().as_bytes()).is_err());
}
