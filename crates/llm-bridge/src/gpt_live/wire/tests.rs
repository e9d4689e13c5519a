use super::*;
use proptest::prelude::*;
use serde_json::json;

fn client(v: Value) -> Result<ClientEvent, serde_json::Error> {
    serde_json::from_value(v)
}

#[test]
fn session_start_round_trips_and_unknown_fields_are_refused() {
    let ok = json!({"type": "session.start", "event_id": "e1", "session": {
        "model": "gpt-live-1", "instructions": "Be brief.",
        "audio": {"format": {"type": "audio/pcmu", "rate": 8000}, "output": {"voice": "marin"}},
        "delegation": {"type": "responses", "responses": {"model": "gpt-5.5",
            "tools": [{"type": "function", "name": "end_call", "parameters": {"type": "object"}}]}}}});
    let ev = client(ok.clone()).unwrap();
    assert_eq!(serde_json::to_value(&ev).unwrap(), ok);
    for bad in [
        json!({"type": "session.start", "session": {"model": "m", "voice": "marin"}}),
        json!({"type": "session.start", "session": {"model": "m", "audio": {"format": {"type": "audio/pcmu", "rate": 8000, "x": 1}}}}),
        json!({"type": "session.start", "session": {"model": "m", "audio": {"input": {}}}}),
        json!({"type": "session.start", "session": {"model": "m"}, "extra": true}),
        json!({"type": "session.start", "session": {"model": "m", "delegation": {"type": "client", "tools": []}}}),
        json!({"type": "session.start", "session": {"instructions": "no model"}}),
        json!({"type": "session.start", "session": {"model": "m", "audio": {"format": {"type": "audio/opus", "rate": 48000}}}}),
    ] {
        assert!(client(bad.clone()).is_err(), "accepted {bad}");
    }
}

#[test]
fn every_client_event_the_bridge_sends_is_valid() {
    let mut out = BytesMut::new();
    encode_audio_into(&[1, 2, 3, 255], &mut out);
    assert_eq!(out.len(), audio_message_len(4));
    let sent = [
        String::from_utf8(out.to_vec()).unwrap(),
        instructions_append("hello", None),
        instructions_append("no", Some("del_1")),
        function_output("call_1", "{}"),
        RESPONSE_CREATE.to_owned(),
        SESSION_CLOSE.to_owned(),
    ];
    for s in sent {
        let ev: ClientEvent = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            serde_json::from_str::<Value>(&ev.to_json()).unwrap(),
            serde_json::from_str::<Value>(&s).unwrap()
        );
    }
    let v: Value = serde_json::from_str(&instructions_append("x", None)).unwrap();
    assert_eq!(
        v["delegation_id"],
        Value::Null,
        "delegation_id is required, null here"
    );
}

#[test]
fn append_events_need_their_delegation_id_field() {
    let missing = json!({"type": "session.instructions.append", "content": "x"});
    assert!(client(missing).is_err());
    let null = json!({"type": "session.thinking.append", "content": "x", "delegation_id": null});
    assert!(client(null).is_ok());
}

#[test]
fn audio_append_carries_standard_base64() {
    let mut out = BytesMut::new();
    encode_audio_into(&[0xfb, 0xff], &mut out);
    let ev: ClientEvent = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        ev,
        ClientEvent::InputAudioAppend {
            event_id: None,
            audio: "+/8=".into()
        }
    );
}

#[test]
fn formats_map_both_ways() {
    assert_eq!(
        FormatWire::of(AudioFormat::Pcmu),
        Some(FormatWire::Pcmu { rate: 8000 })
    );
    assert_eq!(
        FormatWire::of(AudioFormat::Pcma),
        Some(FormatWire::Pcma { rate: 8000 })
    );
    assert_eq!(
        FormatWire::of(AudioFormat::PCM_24K),
        Some(FormatWire::Pcm { rate: 24000 })
    );
    assert_eq!(
        FormatWire::of(AudioFormat::PCM_16K),
        Some(FormatWire::Pcm { rate: 16000 })
    );
    assert_eq!(FormatWire::of(AudioFormat::PCM_8K), None);
    assert_eq!(FormatWire::Pcmu { rate: 16000 }.format(), None);
    assert_eq!(FormatWire::Pcm { rate: 8000 }.format(), None);
    assert_eq!(
        FormatWire::Pcm { rate: 16000 }.format(),
        Some(AudioFormat::PCM_16K)
    );
}

fn decode(v: Value) -> Result<Inbound, DecodeError> {
    decode_server_event(v.to_string().as_bytes())
}

#[test]
fn session_started_and_closed() {
    let ev = decode(
        json!({"type": "session.started", "event_id": "ev1", "session": {
        "id": "sess_1", "expires_at": 1_900_000_000, "model": "gpt-live-1", "status": "active",
        "audio": {"format": {"type": "audio/pcmu", "rate": 8000}}}}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::SessionStarted {
            session_id: "sess_1".into(),
            expires_at: Some(1_900_000_000)
        })
    );
    let ev = decode(
        json!({"type": "session.closed", "event_id": "ev9", "reason": "close_requested",
        "session": {"id": "sess_1", "expires_at": 1, "model": "gpt-live-1", "status": "active"},
        "usage": {"seconds": 12.5}}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::Closed {
            reason: "close_requested".into()
        })
    );
}

#[test]
fn audio_delta_accepts_both_base64_alphabets_padded_or_not() {
    for delta in ["+/8=", "+/8", "-_8=", "-_8"] {
        let ev = decode(json!({"type": "session.output_audio.delta", "delta": delta}));
        assert_eq!(
            ev,
            Ok(Inbound::Audio(Bytes::from_static(&[0xfb, 0xff]))),
            "{delta}"
        );
    }
    assert_eq!(
        decode(json!({"type": "session.output_audio.delta", "delta": "!!!"})),
        Err(DecodeError::Base64)
    );
}

#[test]
fn transcripts_carry_their_times() {
    let ev = decode(
        json!({"type": "session.input_transcript.delta", "event_id": "e",
        "delta": "hello", "start_ms": 100, "end_ms": 400}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::InputTranscript {
            text: "hello".into(),
            start_ms: 100,
            end_ms: 400
        })
    );
    let ev = decode(
        json!({"type": "session.output_transcript.delta", "event_id": "e",
        "delta": "hi", "start_ms": 500, "end_ms": 500, "client_event_id": "c"}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::OutputTranscript {
            text: "hi".into(),
            start_ms: 500,
            end_ms: 500
        })
    );
    // start_ms is required.
    assert!(matches!(
        decode(json!({"type": "session.input_transcript.delta", "delta": "x", "end_ms": 1})),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn delegations_and_function_calls() {
    let ev = decode(
        json!({"type": "session.delegation.created", "event_id": "e", "offset_ms": 10,
        "delegation": {"id": "del_1", "target": "client", "type": "delegation"}}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::DelegationCreated {
            delegation_id: "del_1".into(),
            target: DelegationTarget::Client
        })
    );
    let ev = decode(
        json!({"type": "response.event", "event_id": "e", "delegation_id": "del_2",
        "event": {"type": "response.output_item.done", "output_index": 0, "item": {
            "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "end_call",
            "arguments": "{\"reason\":\"bye\"}", "status": "completed"}}}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::FunctionCall {
            call_id: "call_1".into(),
            name: "end_call".into(),
            arguments: "{\"reason\":\"bye\"}".into()
        })
    );
    // Other nested events need no action.
    let ev = decode(json!({"type": "response.event", "event_id": "e",
        "event": {"type": "response.output_text.delta", "delta": "x"}}));
    assert_eq!(ev, Ok(Inbound::Ignored));
}

#[test]
fn errors_ignored_and_unknown_events() {
    let ev = decode(json!({"type": "error", "event_id": "e", "error": {
        "type": "invalid_request_error", "code": "unknown_parameter",
        "message": "Unknown parameter: 'session.voice'.", "param": "session.voice"}}));
    assert_eq!(
        ev,
        Ok(Inbound::Error {
            code: Some("unknown_parameter".into()),
            message: "invalid_request_error: Unknown parameter: 'session.voice'.".into()
        })
    );
    let ev = decode(
        json!({"type": "session.usage.updated", "event_id": "e", "usage": {"seconds": 1.0}}),
    );
    // Usage (issue 22): no longer ignored, the session's cumulative audio.
    assert_eq!(
        ev,
        Ok(Inbound::AudioUsage(std::time::Duration::from_secs(1)))
    );
    assert_eq!(
        decode(json!({"type": "info", "event_id": "e", "code": "c", "message": "m"})),
        Ok(Inbound::Ignored)
    );
    assert_eq!(
        decode(json!({"type": "response.output_audio.delta"})),
        Err(DecodeError::Unknown)
    );
    assert!(matches!(
        decode(json!({"no": "type"})),
        Err(DecodeError::Json(_))
    ));
    assert!(matches!(
        decode_server_event(b"not json"),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn usage_updated_is_the_sessions_cumulative_audio() {
    // `openai.types.live.SessionUsageUpdatedEvent`: `usage.seconds` is a
    // running total; `context_window` may come beside it.
    let ev = decode(json!({"type": "session.usage.updated", "event_id": "e",
        "usage": {"seconds": 12.25},
        "context_window": {"tokens": 900, "limit": 32000}}));
    assert_eq!(
        ev,
        Ok(Inbound::AudioUsage(std::time::Duration::from_millis(
            12_250
        )))
    );
    for bad in [
        json!({"type": "session.usage.updated", "usage": {}}),
        json!({"type": "session.usage.updated", "usage": {"seconds": "12"}}),
        json!({"type": "session.usage.updated", "usage": {"seconds": -1.0}}),
        json!({"type": "session.usage.updated"}),
    ] {
        assert!(
            matches!(decode(bad.clone()), Err(DecodeError::Json(_))),
            "{bad}"
        );
    }
}

#[test]
fn a_delegated_responses_usage_is_read_from_its_terminal_event() {
    // The Responses API's streaming `response.completed` carries the
    // whole `Response`, its `usage` a `ResponseUsage`: input, output and
    // total tokens with details that are parts of them (cached input,
    // reasoning output), not additions.
    let ev = decode(
        json!({"type": "response.event", "event_id": "e", "delegation_id": "del_4",
        "event": {"type": "response.completed", "sequence_number": 7,
            "response": {"id": "resp_1", "object": "response", "status": "completed",
                "output": [],
                "usage": {"input_tokens": 328, "input_tokens_details": {"cached_tokens": 128},
                          "output_tokens": 52, "output_tokens_details": {"reasoning_tokens": 20},
                          "total_tokens": 380}}}}),
    );
    assert_eq!(
        ev,
        Ok(Inbound::DelegationUsage(crate::Usage {
            input_tokens: 328,
            output_tokens: 52,
            total_tokens: 380,
            split: None,
        }))
    );
    // A response cut short by max_output_tokens was billed too.
    let ev = decode(
        json!({"type": "response.event", "event": {"type": "response.incomplete",
        "response": {"status": "incomplete", "usage": {"input_tokens": 10, "output_tokens": 4}}}}),
    );
    assert!(
        matches!(ev, Ok(Inbound::DelegationUsage(u)) if u.total_tokens == 14),
        "{ev:?}"
    );
    // No usage (a failed response may have none), or a malformed one:
    // nothing to count, and nothing breaks.
    for quiet in [
        json!({"type": "response.failed", "response": {"status": "failed", "usage": null}}),
        json!({"type": "response.completed", "response": {"usage": {"input_tokens": "x"}}}),
        json!({"type": "response.completed"}),
        json!({"type": "response.created", "response": {"usage": {"input_tokens": 1, "output_tokens": 1}}}),
    ] {
        let ev = decode(json!({"type": "response.event", "event": quiet.clone()}));
        assert_eq!(ev, Ok(Inbound::Ignored), "{quiet}");
    }
}

proptest! {
    #[test]
    fn the_decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_server_event(&bytes);
    }

    #[test]
    fn the_decoder_never_panics_on_known_types_with_odd_fields(
        kind in prop::sample::select(vec![
            "session.started", "session.output_audio.delta", "session.input_transcript.delta",
            "session.output_transcript.delta", "session.delegation.created", "response.event",
            "error", "session.closed", "info", "x",
        ]),
        field in "[a-z_]{1,12}",
        value in prop_oneof![
            Just(Value::Null), any::<i64>().prop_map(Value::from), "[ -~]{0,16}".prop_map(Value::from),
            Just(json!({})), Just(json!([])),
        ],
    ) {
        let v = json!({"type": kind, field: value});
        let _ = decode_server_event(v.to_string().as_bytes());
    }

    #[test]
    fn audio_round_trips_through_the_encoder(audio in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut out = BytesMut::new();
        encode_audio_into(&audio, &mut out);
        prop_assert_eq!(out.len(), audio_message_len(audio.len()));
        let ev: ClientEvent = serde_json::from_slice(&out).unwrap();
        let ClientEvent::InputAudioAppend { audio: b64, .. } = ev else {
            panic!("not an append");
        };
        prop_assert_eq!(decode_base64(&b64).unwrap(), audio);
    }
}
