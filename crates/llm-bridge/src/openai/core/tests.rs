use super::*;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

fn core() -> Core {
    let config = SessionConfig {
        model: "gpt-realtime".into(),
        ..Default::default()
    };
    Core::new(&config, AudioFormat::Pcmu)
}

fn drain(c: &mut Core) -> (Vec<ModelEvent>, Vec<Value>) {
    let (mut evs, mut sent) = (Vec::new(), Vec::new());
    while let Some(o) = c.poll_output() {
        match o {
            Output::Event(e) => evs.push(e),
            Output::Send(s) => sent.push(serde_json::from_str(&s).unwrap()),
        }
    }
    (evs, sent)
}

fn types(sent: &[Value]) -> Vec<&str> {
    sent.iter().map(|v| v["type"].as_str().unwrap()).collect()
}

fn created(c: &mut Core, id: &str) {
    c.handle_server(Inbound::ResponseCreated {
        response_id: id.into(),
    });
}

/// `ms` of µ-law audio for response `resp`, item `item`.
fn audio(c: &mut Core, resp: &str, item: &str, ms: usize) {
    c.handle_server(Inbound::AudioDelta {
        response_id: resp.into(),
        item_id: item.into(),
        data: Bytes::from(vec![0xFF; ms * 8]),
    });
}

fn done(c: &mut Core, id: &str) {
    c.handle_server(Inbound::ResponseDone {
        response_id: Some(id.into()),
        status: ResponseStatus::Completed,
        details: None,
        usage: None,
    });
}

fn speech_started(c: &mut Core) {
    c.handle_server(Inbound::SpeechStarted {
        item_id: "u1".into(),
        audio_start_ms: 0,
    });
}

fn call(c: &mut Core, id: &str, name: &str, args: &str) {
    c.handle_server(Inbound::FunctionCall {
        call_id: id.into(),
        name: Some(name.into()),
        arguments: args.into(),
    });
}

fn result(c: &mut Core, id: &str, name: &str) {
    c.handle_command(Command::ToolResult {
        id: ToolCallId(id.into()),
        name: name.into(),
        result: ToolResult::Ok(json!("ok")),
    });
}

#[test]
fn speech_stopped_ends_the_callers_turn_and_sends_nothing() {
    let mut c = core();
    drain(&mut c);
    c.handle_server(Inbound::SpeechStopped);
    let (evs, sent) = drain(&mut c);
    assert_eq!(evs, vec![ModelEvent::CallerTurnEnded]);
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn barge_in_during_a_response_interrupts_cancels_and_truncates_to_the_played_ms() {
    let mut c = core();
    created(&mut c, "r1");
    audio(&mut c, "r1", "i1", 200);
    audio(&mut c, "r1", "i1", 200);
    c.handle_command(Command::PlaybackProgress(Duration::from_millis(250)));
    drain(&mut c);
    speech_started(&mut c);
    let (evs, sent) = drain(&mut c);
    assert_eq!(evs, [ModelEvent::Interrupted]);
    assert_eq!(
        sent,
        [
            json!({"type": "response.cancel", "response_id": "r1"}),
            json!({"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, "audio_end_ms": 250}),
        ]
    );
    // Late deltas of the cancelled response are dropped, and so is its transcript.
    audio(&mut c, "r1", "i1", 20);
    c.handle_server(Inbound::OutputTranscriptDone {
        response_id: "r1".into(),
        item_id: "i1".into(),
        transcript: "never heard".into(),
    });
    done(&mut c, "r1");
    let (evs, sent) = drain(&mut c);
    assert_eq!(evs, [ModelEvent::TurnComplete]);
    assert!(sent.is_empty());
}

#[test]
fn an_interrupt_from_the_application_cancels_and_truncates_at_its_position() {
    let mut c = core();
    created(&mut c, "r1");
    audio(&mut c, "r1", "i1", 200);
    audio(&mut c, "r1", "i1", 200);
    drain(&mut c);
    c.handle_command(Command::Interrupt(Duration::from_millis(260)));
    let (evs, sent) = drain(&mut c);
    assert_eq!(evs, [ModelEvent::Interrupted]);
    assert_eq!(
        sent,
        [
            json!({"type": "response.cancel", "response_id": "r1"}),
            json!({"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, "audio_end_ms": 260}),
        ]
    );
    // The server's own barge-in that follows sends nothing more.
    speech_started(&mut c);
    let (evs, sent) = drain(&mut c);
    assert!(evs.is_empty() && sent.is_empty(), "{evs:?} {sent:?}");
}

#[test]
fn without_interrupt_response_caller_speech_does_not_cut_the_reply() {
    let config = SessionConfig {
        model: "m".into(),
        turn_detection: TurnDetection::Server {
            start_sensitivity: crate::config::Sensitivity::Default,
            end_sensitivity: crate::config::Sensitivity::Default,
            prefix_padding: Duration::from_millis(300),
            silence_duration: Duration::from_millis(500),
            interrupt_response: false,
        },
        ..Default::default()
    };
    let mut c = Core::new(&config, AudioFormat::Pcmu);
    created(&mut c, "r1");
    audio(&mut c, "r1", "i1", 200);
    c.handle_command(Command::PlaybackProgress(Duration::from_millis(100)));
    drain(&mut c);
    speech_started(&mut c);
    assert_eq!(drain(&mut c), (vec![], vec![]));
}

#[test]
fn playback_progress_is_clamped_to_the_audio_received() {
    let mut c = core();
    created(&mut c, "r1");
    audio(&mut c, "r1", "i1", 100);
    c.handle_command(Command::PlaybackProgress(Duration::from_secs(5)));
    done(&mut c, "r1");
    drain(&mut c);
    // Fully played and the response is over: the caller just talks.
    speech_started(&mut c);
    let (evs, sent) = drain(&mut c);
    assert!(evs.is_empty() && sent.is_empty(), "{evs:?} {sent:?}");
}

#[test]
fn barge_in_after_the_response_ended_truncates_what_is_still_playing() {
    let mut c = core();
    created(&mut c, "r1");
    audio(&mut c, "r1", "i1", 1000);
    done(&mut c, "r1");
    c.handle_command(Command::PlaybackProgress(Duration::from_millis(400)));
    drain(&mut c);
    speech_started(&mut c);
    let (evs, sent) = drain(&mut c);
    assert_eq!(evs, [ModelEvent::Interrupted]);
    assert_eq!(types(&sent), ["conversation.item.truncate"]);
    assert_eq!(sent[0]["audio_end_ms"], 400);
}

#[test]
fn a_new_item_resets_the_played_position() {
    let mut c = core();
    created(&mut c, "r1");
    audio(&mut c, "r1", "i1", 500);
    c.handle_command(Command::PlaybackProgress(Duration::from_millis(500)));
    audio(&mut c, "r1", "i2", 500);
    drain(&mut c);
    speech_started(&mut c);
    let (_, sent) = drain(&mut c);
    // No report for i2 yet: cancel only, no guess at a cut point.
    assert_eq!(types(&sent), ["response.cancel"]);
}

#[test]
fn tool_result_during_the_response_defers_response_create_until_it_is_done() {
    let mut c = core();
    created(&mut c, "r1");
    call(&mut c, "c1", "lookup", r#"{"id":"42"}"#);
    let (evs, _) = drain(&mut c);
    assert!(matches!(&evs[..], [ModelEvent::ToolCall(t)] if t.args == json!({"id": "42"})));
    result(&mut c, "c1", "lookup");
    let (_, sent) = drain(&mut c);
    assert_eq!(types(&sent), ["conversation.item.create"]);
    assert_eq!(
        sent[0]["item"],
        json!({"type": "function_call_output", "call_id": "c1", "output": "ok"})
    );
    done(&mut c, "r1");
    let (_, sent) = drain(&mut c);
    assert_eq!(types(&sent), ["response.create"]);
}

#[test]
fn parallel_calls_get_one_response_create_after_the_last_answer() {
    let mut c = core();
    created(&mut c, "r1");
    call(&mut c, "c1", "a", "{}");
    call(&mut c, "c2", "b", "");
    done(&mut c, "r1");
    result(&mut c, "c1", "a");
    let (_, sent) = drain(&mut c);
    assert_eq!(types(&sent), ["conversation.item.create"]);
    result(&mut c, "c2", "b");
    let (_, sent) = drain(&mut c);
    assert_eq!(
        types(&sent),
        ["conversation.item.create", "response.create"]
    );
    // Until response.created arrives, nothing more is requested.
    c.handle_command(Command::Text("hello".into()));
    let (_, sent) = drain(&mut c);
    assert_eq!(types(&sent), ["conversation.item.create"]);
}

#[test]
fn end_call_is_typed_and_its_answer_starts_no_response() {
    let mut c = core();
    call(&mut c, "c1", "end_call", r#"{"reason":"done"}"#);
    let (evs, _) = drain(&mut c);
    assert!(matches!(&evs[..], [ModelEvent::EndCall { reason: Some(r), .. }] if r == "done"));
    result(&mut c, "c1", "end_call");
    let (_, sent) = drain(&mut c);
    assert_eq!(types(&sent), ["conversation.item.create"]);
    call(&mut c, "c2", "transfer_call", r#"{"target":"sales"}"#);
    let (evs, _) = drain(&mut c);
    assert!(matches!(&evs[..], [ModelEvent::TransferCall { target, .. }] if target == "sales"));
}

#[test]
fn invalid_arguments_are_answered_to_the_model_not_the_caller() {
    let mut c = core();
    call(&mut c, "c1", "lookup", "{not json");
    let (evs, sent) = drain(&mut c);
    assert!(matches!(
        &evs[..],
        [ModelEvent::Error {
            kind: ErrorKind::MalformedMessage,
            ..
        }]
    ));
    assert_eq!(
        types(&sent),
        ["conversation.item.create", "response.create"]
    );
    assert_eq!(sent[0]["item"]["call_id"], "c1");
}

#[test]
fn a_call_without_a_name_takes_it_from_its_item_or_is_refused_to_the_model() {
    let mut c = core();
    c.handle_server(Inbound::FunctionCallItem {
        call_id: "c1".into(),
        name: "lookup".into(),
    });
    for id in ["c1", "c2"] {
        c.handle_server(Inbound::FunctionCall {
            call_id: id.into(),
            name: None,
            arguments: "{}".into(),
        });
    }
    let (evs, sent) = drain(&mut c);
    assert!(matches!(&evs[0], ModelEvent::ToolCall(t) if t.name == "lookup"));
    assert!(matches!(
        &evs[1],
        ModelEvent::Error {
            kind: ErrorKind::MalformedMessage,
            ..
        }
    ));
    assert_eq!(
        types(&sent),
        ["conversation.item.create", "response.create"]
    );
    assert_eq!(sent[0]["item"]["call_id"], "c2");
}

#[test]
fn server_errors_from_expected_races_are_not_reported() {
    let mut c = core();
    c.handle_command(Command::Text("hi".into()));
    drain(&mut c);
    c.handle_server(Inbound::Error {
        code: Some(CANCEL_NOT_ACTIVE.into()),
        message: "no active response".into(),
    });
    c.handle_server(Inbound::Error {
        code: Some(ALREADY_ACTIVE.into()),
        message: "busy".into(),
    });
    let (evs, sent) = drain(&mut c);
    assert!(evs.is_empty() && sent.is_empty());
    // The refused response.create is sent again once the running one is done.
    created(&mut c, "r-vad");
    done(&mut c, "r-vad");
    let (_, sent) = drain(&mut c);
    assert_eq!(types(&sent), ["response.create"]);
    c.handle_server(Inbound::Error {
        code: Some("session_expired".into()),
        message: "Your session hit the maximum duration of 60 minutes.".into(),
    });
    let (evs, _) = drain(&mut c);
    assert!(
        matches!(&evs[..], [ModelEvent::Error { kind: ErrorKind::Server, message }]
        if message.starts_with("session_expired: "))
    );
}

#[test]
fn transcript_completion_reports_only_what_the_deltas_did_not() {
    let mut c = core();
    c.handle_server(Inbound::InputTranscriptDelta {
        item_id: "u1".into(),
        text: "hello ".into(),
    });
    c.handle_server(Inbound::InputTranscriptCompleted {
        item_id: "u1".into(),
        transcript: "hello there".into(),
    });
    c.handle_server(Inbound::InputTranscriptCompleted {
        item_id: "u2".into(),
        transcript: "second".into(),
    });
    let (evs, _) = drain(&mut c);
    assert_eq!(
        evs,
        [
            ModelEvent::InputTranscript {
                text: "hello ".into(),
                finished: false
            },
            ModelEvent::InputTranscript {
                text: "there".into(),
                finished: true
            },
            ModelEvent::InputTranscript {
                text: "second".into(),
                finished: true
            },
        ]
    );
}

#[test]
fn greeting_is_sent_once_as_a_user_prompt_and_a_response() {
    let mut c = core();
    c.handle_command(Command::StartGreeting);
    c.handle_command(Command::StartGreeting);
    let (_, sent) = drain(&mut c);
    assert_eq!(
        types(&sent),
        ["conversation.item.create", "response.create"]
    );
    assert_eq!(
        sent[0]["item"]["content"][0]["text"],
        Greeting::DEFAULT_PROMPT
    );
}

#[test]
fn activity_signals_apply_only_to_manual_turns() {
    let mut c = core();
    c.handle_command(Command::ActivityStart);
    c.handle_command(Command::ActivityEnd);
    c.handle_command(Command::AudioStreamEnd);
    assert_eq!(drain(&mut c), (vec![], vec![]));
    let config = SessionConfig {
        model: "m".into(),
        turn_detection: TurnDetection::Manual,
        ..Default::default()
    };
    let mut c = Core::new(&config, AudioFormat::PCM_24K);
    c.handle_command(Command::ActivityStart);
    c.handle_command(Command::ActivityEnd);
    let (_, sent) = drain(&mut c);
    assert_eq!(
        types(&sent),
        [
            "input_audio_buffer.clear",
            "input_audio_buffer.commit",
            "response.create"
        ]
    );
}

fn inbound() -> impl Strategy<Value = Inbound> {
    let id = prop_oneof![Just("r1".to_owned()), Just("r2".to_owned())];
    let item = prop_oneof![Just("i1".to_owned()), Just("i2".to_owned())];
    prop_oneof![
        id.clone()
            .prop_map(|response_id| Inbound::ResponseCreated { response_id }),
        (id.clone(), item.clone(), 0usize..400).prop_map(|(r, i, n)| Inbound::AudioDelta {
            response_id: r,
            item_id: i,
            data: Bytes::from(vec![0u8; n]),
        }),
        id.clone().prop_map(|r| Inbound::ResponseDone {
            response_id: Some(r),
            status: ResponseStatus::Completed,
            details: None,
            usage: None,
        }),
        Just(Inbound::SpeechStarted {
            item_id: "u".into(),
            audio_start_ms: 0
        }),
        "[a-c]".prop_map(|c| Inbound::FunctionCall {
            call_id: c,
            name: Some("f".into()),
            arguments: "{}".into(),
        }),
        Just(Inbound::Error {
            code: Some(ALREADY_ACTIVE.into()),
            message: String::new()
        }),
        (item, ".{0,8}").prop_map(|(i, t)| Inbound::OutputTranscriptDelta {
            response_id: "r1".into(),
            item_id: i,
            text: t,
        }),
    ]
}

/// A handle command, as (which, call id, milliseconds) so it is `Clone`.
fn command() -> impl Strategy<Value = (u8, String, u64)> {
    (0u8..4, "[a-c]", 0u64..3000)
}

fn to_command((which, id, ms): (u8, String, u64)) -> Command {
    match which {
        0 => Command::Text("t".into()),
        1 => Command::ToolResult {
            id: ToolCallId(id),
            name: "f".into(),
            result: ToolResult::Ok(json!(1)),
        },
        2 => Command::PlaybackProgress(Duration::from_millis(ms)),
        _ => Command::StartGreeting,
    }
}

proptest! {
    /// Whatever the order of events, the core never asks for a response
    /// while one it knows of is in progress or already requested, and a
    /// truncation never goes past the audio received.
    #[test]
    fn never_two_responses_at_once_and_truncation_within_the_audio(
        steps in proptest::collection::vec(prop_oneof![
            inbound().prop_map(Ok), command().prop_map(Err)], 0..60)
    ) {
        let mut c = core();
        let mut active: Option<String> = None;
        let mut requested = false;
        let mut received_bytes: u64 = 0;
        for step in steps {
            match step {
                Ok(ev) => {
                    match &ev {
                        Inbound::ResponseCreated { response_id } => {
                            active = Some(response_id.clone());
                            requested = false;
                        }
                        Inbound::ResponseDone { response_id, .. } if *response_id == active => {
                            active = None;
                        }
                        Inbound::Error { .. } => requested = false,
                        Inbound::AudioDelta { data, .. } => received_bytes += data.len() as u64,
                        _ => {}
                    }
                    c.handle_server(ev);
                }
                Err(cmd) => c.handle_command(to_command(cmd)),
            }
            let (_, sent) = drain(&mut c);
            for m in &sent {
                match m["type"].as_str() {
                    Some("response.create") => {
                        prop_assert!(active.is_none() && !requested, "response.create while busy");
                        requested = true;
                    }
                    Some("conversation.item.truncate") => {
                        prop_assert!(m["audio_end_ms"].as_u64().unwrap() * 8 <= received_bytes);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// New instructions are one `session.update` with `instructions` only
/// (nothing else changes), and start no response by themselves.
#[test]
fn instruction_update_is_a_session_update_of_the_instructions_alone() {
    let mut c = core();
    c.handle_command(Command::UpdateInstructions("Speak French.".into()));
    let (evs, sent) = drain(&mut c);
    assert!(evs.is_empty(), "{evs:?}");
    assert_eq!(
        sent,
        [json!({"type": "session.update",
                "session": {"type": "realtime", "instructions": "Speak French."}})]
    );
}
