use super::*;
use crate::config::{BuiltinTools, Greeting};
use crate::event::ToolCallId;
use proptest::prelude::*;

fn cfg() -> SessionConfig {
    let mut c = SessionConfig {
        model: "gemini-3.1-flash-live-preview".into(),
        voice: Some("Kore".into()),
        instructions: "Be brief.".into(),
        greeting: Greeting::CallerFirst,
        ..Default::default()
    };
    c.tools.push(ToolSpec {
        name: "book_table".into(),
        description: "Book".into(),
        parameters: json!({"type": "object", "properties": {
            "people": {"type": "integer"}, "names": {"type": "array", "items": {"type": "string"}}}}),
    });
    c.transfer_targets.push(crate::config::TransferChoice {
        name: "sales".into(),
        number_prefix: None,
    });
    c
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn setup_carries_every_required_part() {
    let meta = CallMetadata {
        context: vec![("customer".into(), "Ada".into())],
        ..Default::default()
    };
    let v = parse(&setup_message(&cfg(), &meta, None));
    let s = &v["setup"];
    assert_eq!(s["model"], "models/gemini-3.1-flash-live-preview");
    assert_eq!(
        s["generationConfig"]["responseModalities"],
        json!(["AUDIO"])
    );
    assert_eq!(
        s["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"],
        "Kore"
    );
    let text = s["systemInstruction"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Be brief.") && text.contains("customer: Ada"));
    let decls = s["tools"][0]["functionDeclarations"].as_array().unwrap();
    let names: Vec<&str> = decls.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["book_table", "end_call", "transfer_call"]);
    // Current Live models default to NON_BLOCKING: each declares its own.
    let behaviors: Vec<&str> = decls
        .iter()
        .map(|d| d["behavior"].as_str().unwrap())
        .collect();
    assert_eq!(behaviors, ["NON_BLOCKING", "BLOCKING", "BLOCKING"]);
    assert_eq!(decls[0]["parameters"]["type"], "OBJECT");
    assert_eq!(
        decls[0]["parameters"]["properties"]["people"]["type"],
        "INTEGER"
    );
    assert_eq!(
        decls[0]["parameters"]["properties"]["names"]["items"]["type"],
        "STRING"
    );
    let aad = &s["realtimeInputConfig"]["automaticActivityDetection"];
    assert_eq!(aad["disabled"], false);
    assert_eq!(aad["silenceDurationMs"], 500);
    assert_eq!(
        s["realtimeInputConfig"]["activityHandling"],
        "START_OF_ACTIVITY_INTERRUPTS"
    );
    assert_eq!(s["inputAudioTranscription"], json!({}));
    assert_eq!(s["outputAudioTranscription"], json!({}));
    assert_eq!(s["sessionResumption"], json!({"transparent": true}));
    assert_eq!(s["contextWindowCompression"], json!({"slidingWindow": {}}));
}

#[test]
fn resumed_setup_carries_the_handle_and_manual_mode_disables_aad() {
    let mut c = cfg();
    c.turn_detection = TurnDetection::Manual;
    c.builtin_tools = BuiltinTools {
        end_call: false,
        transfer_call: false,
    };
    c.tools.clear();
    let v = parse(&setup_message(&c, &CallMetadata::default(), Some("h-7")));
    assert_eq!(
        v["setup"]["sessionResumption"],
        json!({"handle": "h-7", "transparent": true})
    );
    assert_eq!(
        v["setup"]["realtimeInputConfig"]["automaticActivityDetection"]["disabled"],
        true
    );
    assert!(v["setup"].get("tools").is_none());
}

#[test]
fn audio_encoding_is_byte_exact() {
    let mut out = BytesMut::new();
    encode_audio_into(&[0, 0, 1, 0], &mut out);
    assert_eq!(
        &out[..],
        br#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"AAABAA=="}}}"#
    );
    // Appends; a 20 ms frame is 640 bytes -> 856 base64 characters.
    let first = out.len();
    encode_audio_into(&[0u8; 640], &mut out);
    assert_eq!(
        out.len(),
        first + AUDIO_PREFIX.len() + 856 + AUDIO_SUFFIX.len()
    );
}

fn decode(s: &str) -> Result<Vec<Inbound>, DecodeError> {
    let mut v = Vec::new();
    decode_server_message(s.as_bytes(), &mut v).map(|()| v)
}

#[test]
fn content_parts_are_all_decoded_in_order() {
    let items = decode(
        r#"{"serverContent":{"modelTurn":{"parts":[
            {"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"AAABAA=="}},
            {"text":"thinking"},
            {"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"AgA="}}]},
          "outputTranscription":{"text":"Hi"},"inputTranscription":{"text":"yo","finished":true},
          "generationComplete":true,"turnComplete":true},
          "usageMetadata":{"promptTokenCount":3,"responseTokenCount":4,"totalTokenCount":7}}"#,
    )
    .unwrap();
    let audio = |b: &[u8]| {
        Inbound::Event(ModelEvent::Audio(AudioChunk {
            format: AudioFormat::PCM_24K,
            data: Bytes::copy_from_slice(b),
        }))
    };
    assert_eq!(
        items,
        vec![
            audio(&[0, 0, 1, 0]),
            audio(&[2, 0]),
            Inbound::Event(ModelEvent::InputTranscript {
                text: "yo".into(),
                finished: true
            }),
            Inbound::Event(ModelEvent::OutputTranscript {
                text: "Hi".into(),
                finished: false
            }),
            Inbound::Event(ModelEvent::GenerationComplete),
            Inbound::Event(ModelEvent::TurnComplete),
            Inbound::Event(ModelEvent::Usage(Usage {
                input_tokens: 3,
                output_tokens: 4,
                total_tokens: 7,
                split: None,
            })),
        ]
    );
}

#[test]
fn control_messages_decode() {
    assert_eq!(
        decode(r#"{"setupComplete":{}}"#).unwrap(),
        vec![Inbound::SetupComplete]
    );
    assert_eq!(
        decode(r#"{"goAway":{"timeLeft":"50s"}}"#).unwrap(),
        vec![Inbound::GoAway(Some(Duration::from_secs(50)))]
    );
    assert_eq!(
        decode(r#"{"goAway":{}}"#).unwrap(),
        vec![Inbound::GoAway(None)]
    );
    assert_eq!(
        decode(r#"{"sessionResumptionUpdate":{"newHandle":"","resumable":false}}"#).unwrap(),
        vec![Inbound::Resumption {
            handle: None,
            resumable: false,
            last_consumed: None,
        }]
    );
    assert_eq!(
        decode(r#"{"sessionResumptionUpdate":{"newHandle":"h1","resumable":true,"lastConsumedClientMessageIndex":"12"}}"#)
            .unwrap(),
        vec![Inbound::Resumption {
            handle: Some("h1".into()),
            resumable: true,
            last_consumed: Some(12),
        }]
    );
    // The index as a JSON number is taken too.
    assert_eq!(
        decode(r#"{"sessionResumptionUpdate":{"newHandle":"h2","resumable":true,"lastConsumedClientMessageIndex":7}}"#)
            .unwrap(),
        vec![Inbound::Resumption {
            handle: Some("h2".into()),
            resumable: true,
            last_consumed: Some(7),
        }]
    );
    assert_eq!(
        decode(r#"{"toolCall":{"functionCalls":[{"id":"c1","name":"end_call","args":{"reason":"bye"}}]}}"#)
            .unwrap(),
        vec![Inbound::Event(ModelEvent::ToolCall(ToolCall {
            id: ToolCallId("c1".into()),
            name: "end_call".into(),
            args: json!({"reason": "bye"})
        }))]
    );
    assert_eq!(
        decode(r#"{"toolCallCancellation":{"ids":["c1","c2"]}}"#).unwrap(),
        vec![Inbound::Event(ModelEvent::ToolCallCancelled {
            ids: vec![ToolCallId("c1".into()), ToolCallId("c2".into())]
        })]
    );
    assert!(
        decode(r#"{"serverContent":{"waitingForInput":true}}"#)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_messages_are_typed_errors_and_append_nothing() {
    assert!(matches!(decode("{not json"), Err(DecodeError::Json(_))));
    assert!(matches!(
        decode(r#"{"whatIsThis":{}}"#),
        Err(DecodeError::Unknown)
    ));
    assert!(matches!(decode("[]"), Err(DecodeError::Json(_))));
    let mut v = vec![Inbound::SetupComplete];
    let r = decode_server_message(
        br#"{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm","data":"AAAA"}},{"inlineData":{"mimeType":"audio/pcm","data":"!!"}}]}}}"#,
        &mut v,
    );
    assert_eq!(r, Err(DecodeError::Base64));
    assert_eq!(v, vec![Inbound::SetupComplete]);
}

/// The audio bytes of one `inlineData` part carrying `data`.
fn inline_audio(data: &str) -> Result<Vec<Inbound>, DecodeError> {
    decode(&format!(
        r#"{{"serverContent":{{"modelTurn":{{"parts":[{{"inlineData":{{"mimeType":"audio/pcm;rate=24000","data":"{data}"}}}}]}}}}}}"#
    ))
}

fn audio_of(b: &[u8]) -> Vec<Inbound> {
    vec![Inbound::Event(ModelEvent::Audio(AudioChunk {
        format: AudioFormat::PCM_24K,
        data: Bytes::copy_from_slice(b),
    }))]
}

// Bytes fb ff bf: `+/+/` in the standard alphabet, `-_-_` URL-safe;
// bytes fb ff: `+/8=` / `-_8=` padded, `+/8` / `-_8` not.
#[test]
fn inline_audio_in_url_safe_base64_padded_is_decoded() {
    assert_eq!(inline_audio("-_8="), Ok(audio_of(&[0xfb, 0xff])));
}

#[test]
fn inline_audio_in_url_safe_base64_unpadded_is_decoded() {
    assert_eq!(inline_audio("-_8"), Ok(audio_of(&[0xfb, 0xff])));
    assert_eq!(inline_audio("-_-_"), Ok(audio_of(&[0xfb, 0xff, 0xbf])));
}

#[test]
fn inline_audio_in_standard_base64_padded_or_not_is_decoded() {
    assert_eq!(inline_audio("+/8="), Ok(audio_of(&[0xfb, 0xff])));
    assert_eq!(inline_audio("+/8"), Ok(audio_of(&[0xfb, 0xff])));
    assert_eq!(inline_audio("+/+/"), Ok(audio_of(&[0xfb, 0xff, 0xbf])));
}

#[test]
fn inline_audio_mixing_the_alphabets_is_still_refused() {
    assert_eq!(inline_audio("+_8="), Err(DecodeError::Base64));
}

#[test]
fn durations_parse_like_proto_json() {
    assert_eq!(
        parse_duration(&json!("1.5s")),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_duration(&json!("10")), None);
    assert_eq!(parse_duration(&json!("-1s")), None);
    assert_eq!(parse_duration(&json!(5)), None);
}

proptest! {
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        let _ = decode_server_message(&bytes, &mut out);
    }

    #[test]
    fn audio_roundtrips_through_encode_and_decode(pcm in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut out = BytesMut::new();
        encode_audio_into(&pcm, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let data = v["realtimeInput"]["audio"]["data"].as_str().unwrap();
        let msg = format!(r#"{{"serverContent":{{"modelTurn":{{"parts":[{{"inlineData":{{"mimeType":"audio/pcm;rate=24000","data":"{data}"}}}}]}}}}}}"#);
        let mut items = Vec::new();
        decode_server_message(msg.as_bytes(), &mut items).unwrap();
        let expected: Vec<Inbound> = if pcm.is_empty() {
            vec![Inbound::Event(ModelEvent::Audio(AudioChunk { format: AudioFormat::PCM_24K, data: Bytes::new() }))]
        } else {
            vec![Inbound::Event(ModelEvent::Audio(AudioChunk { format: AudioFormat::PCM_24K, data: Bytes::from(pcm.clone()) }))]
        };
        prop_assert_eq!(items, expected);
    }
}

#[test]
fn responses_to_non_blocking_calls_are_scheduled_when_idle() {
    use crate::session::ToolResult;
    let v = parse(&tool_response_message(
        "c1",
        "book_table",
        &ToolResult::Ok(json!({"ok": true})),
    ));
    assert_eq!(
        v,
        json!({"toolResponse": {"functionResponses": [{"id": "c1", "name": "book_table",
            "response": {"output": {"ok": true}}, "scheduling": "WHEN_IDLE"}]}})
    );
    let v = parse(&tool_response_message(
        "c2",
        "collect_digits",
        &ToolResult::Err("timeout".into()),
    ));
    assert_eq!(
        v["toolResponse"]["functionResponses"][0]["scheduling"],
        "WHEN_IDLE"
    );
    // A BLOCKING call's response carries none (ignored there).
    let v = parse(&tool_response_message(
        "c3",
        "end_call",
        &ToolResult::Ok(json!({"status": "ending"})),
    ));
    assert!(
        v["toolResponse"]["functionResponses"][0]
            .get("scheduling")
            .is_none()
    );
}

#[test]
fn usage_metadata_splits_audio_and_text_tokens() {
    // The shape of a Live API `usageMetadata` (BidiGenerateContentServerMessage):
    // counts plus `ModalityTokenCount` lists per direction.
    let items = decode(
        r#"{"usageMetadata":{"promptTokenCount":120,"responseTokenCount":60,
          "totalTokenCount":180,"cachedContentTokenCount":0,
          "promptTokensDetails":[{"modality":"TEXT","tokenCount":20},{"modality":"AUDIO","tokenCount":100}],
          "responseTokensDetails":[{"modality":"AUDIO","tokenCount":55},{"modality":"TEXT","tokenCount":5}]}}"#,
    )
    .unwrap();
    assert_eq!(
        items,
        vec![Inbound::Event(ModelEvent::Usage(Usage {
            input_tokens: 120,
            output_tokens: 60,
            total_tokens: 180,
            split: Some(TokenSplit {
                input_audio: 100,
                input_text: 20,
                output_audio: 55,
                output_text: 5,
            }),
        }))]
    );
    // Only one direction detailed: no split (half a split would read as zero).
    let items = decode(
        r#"{"usageMetadata":{"promptTokenCount":5,"responseTokenCount":1,"totalTokenCount":6,
          "promptTokensDetails":[{"modality":"TEXT","tokenCount":5}]}}"#,
    )
    .unwrap();
    assert!(
        matches!(
            &items[..],
            [Inbound::Event(ModelEvent::Usage(Usage {
                split: None,
                input_tokens: 5,
                ..
            }))]
        ),
        "{items:?}"
    );
    // A count of the wrong type is a malformed message, not a zero.
    assert!(decode(r#"{"usageMetadata":{"promptTokenCount":"many"}}"#).is_err());
}
