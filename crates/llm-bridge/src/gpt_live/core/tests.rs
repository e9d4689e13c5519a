use super::*;
use bytes::Bytes;
use serde_json::{Value, json};

fn cfg() -> SessionConfig {
    SessionConfig {
        greeting: Greeting::OnRequest {
            prompt: "Say hello.".into(),
        },
        ..Default::default()
    }
}

fn drain(core: &mut Core) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn sent(outs: &[Output]) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(s) => Some(serde_json::from_str(s).unwrap()),
            Output::Event(_) => None,
        })
        .collect()
}

fn events(outs: &[Output]) -> Vec<ModelEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            Output::Send(_) => None,
        })
        .collect()
}

#[test]
fn audio_is_passed_on_in_the_session_format_and_a_pause_ends_the_reply() {
    let t0 = Instant::now();
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    assert_eq!(c.poll_timeout(), None);
    c.handle_server(Inbound::Audio(Bytes::from_static(&[0xff; 160])), t0);
    let ev = events(&drain(&mut c));
    assert_eq!(
        ev,
        [ModelEvent::Audio(AudioChunk {
            format: AudioFormat::Pcmu,
            data: Bytes::from_static(&[0xff; 160])
        })]
    );
    let t1 = t0 + Duration::from_millis(100);
    c.handle_server(Inbound::Audio(Bytes::from_static(&[0x7f; 160])), t1);
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t1 + REPLY_GAP));
    // Not yet due: nothing.
    c.handle_timeout(t1 + REPLY_GAP - Duration::from_millis(1));
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(t1 + REPLY_GAP);
    assert_eq!(
        events(&drain(&mut c)),
        [ModelEvent::GenerationComplete, ModelEvent::TurnComplete]
    );
    assert_eq!(c.poll_timeout(), None);
    // Once only.
    c.handle_timeout(t1 + REPLY_GAP * 3);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn transcripts_are_unfinished_pieces_and_output_text_extends_the_reply() {
    let t0 = Instant::now();
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    c.handle_server(
        Inbound::InputTranscript {
            text: "hi".into(),
            start_ms: 0,
            end_ms: 300,
        },
        t0,
    );
    // A caller transcript alone starts no reply.
    assert_eq!(c.poll_timeout(), None);
    c.handle_server(Inbound::Audio(Bytes::from_static(&[0; 8])), t0);
    let later = t0 + Duration::from_millis(500);
    c.handle_server(
        Inbound::OutputTranscript {
            text: "Hello".into(),
            start_ms: 400,
            end_ms: 900,
        },
        later,
    );
    assert_eq!(c.poll_timeout(), Some(later + REPLY_GAP));
    let ev = events(&drain(&mut c));
    assert!(ev.contains(&ModelEvent::InputTranscript {
        text: "hi".into(),
        finished: false
    }));
    assert!(ev.contains(&ModelEvent::OutputTranscript {
        text: "Hello".into(),
        finished: false
    }));
}

#[test]
fn barge_in_and_activity_send_nothing() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    for cmd in [
        Command::Interrupt(Duration::from_millis(200)),
        Command::PlaybackProgress(Duration::from_millis(100)),
        Command::ActivityStart,
        Command::ActivityEnd,
        Command::AudioStreamEnd,
    ] {
        c.handle_command(cmd);
    }
    assert!(drain(&mut c).is_empty());
}

#[test]
fn greeting_and_dtmf_go_as_appended_instructions() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    c.handle_command(Command::StartGreeting);
    c.handle_command(Command::StartGreeting);
    c.handle_command(Command::Text(
        "[The caller pressed the phone keys: 1]".into(),
    ));
    let s = sent(&drain(&mut c));
    assert_eq!(
        s,
        [
            json!({"type": "session.instructions.append", "content": "Say hello.", "delegation_id": null}),
            json!({"type": "session.instructions.append",
                   "content": "[The caller pressed the phone keys: 1]", "delegation_id": null}),
        ]
    );
}

#[test]
fn client_delegations_are_answered_with_a_refusal_carrying_their_id() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    c.handle_server(
        Inbound::DelegationCreated {
            delegation_id: "del_7".into(),
            target: DelegationTarget::Client,
        },
        Instant::now(),
    );
    c.handle_server(
        Inbound::DelegationCreated {
            delegation_id: "del_8".into(),
            target: DelegationTarget::Responses,
        },
        Instant::now(),
    );
    let s = sent(&drain(&mut c));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["type"], "session.instructions.append");
    assert_eq!(s[0]["delegation_id"], "del_7");
    let content = s[0]["content"].as_str().unwrap();
    assert!(content.starts_with(CANNOT_DELEGATE), "{content}");
    assert!(
        content.contains("names none of this line's tools"),
        "{content}"
    );
}

fn with_lookup_tool() -> SessionConfig {
    let mut c = cfg();
    c.tools.push(crate::tools::ToolSpec {
        name: "lookup_order".into(),
        description: "Looks up an order.".into(),
        parameters: json!({"type": "object", "properties": {"task": {"type": "string"}},
                           "required": ["task"]}),
    });
    c
}

fn delegate(c: &mut Core, said: &str, id: &str) -> Vec<Output> {
    let now = Instant::now();
    c.handle_server(
        Inbound::InputTranscript {
            text: said.into(),
            start_ms: 0,
            end_ms: 1,
        },
        now,
    );
    drain(c);
    c.handle_server(
        Inbound::DelegationCreated {
            delegation_id: id.into(),
            target: DelegationTarget::Client,
        },
        now,
    );
    drain(c)
}

#[test]
fn a_client_delegation_naming_a_tool_becomes_its_call_and_the_result_goes_back_as_commentary() {
    let mut c = Core::new(&with_lookup_tool(), AudioFormat::Pcmu);
    let outs = delegate(&mut c, "Please lookup order 42.", "del_1");
    assert!(sent(&outs).is_empty(), "{outs:?}");
    assert_eq!(
        events(&outs),
        [ModelEvent::ToolCall(ToolCall {
            id: ToolCallId("del_1".into()),
            name: "lookup_order".into(),
            args: json!({"task": "Please lookup order 42."}),
        })]
    );
    c.handle_command(Command::ToolResult {
        id: ToolCallId("del_1".into()),
        name: "lookup_order".into(),
        result: ToolResult::Ok(json!({"status": "shipped"})),
    });
    let s = sent(&drain(&mut c));
    assert_eq!(
        s,
        [json!({"type": "session.commentary.append",
                "content": "{\"status\":\"shipped\"}", "delegation_id": "del_1"})]
    );
    // An error is told as such; the task text starts afresh.
    let outs = delegate(&mut c, "lookup order 7", "del_2");
    assert!(
        matches!(&events(&outs)[..], [ModelEvent::ToolCall(t)] if t.args["task"] == "lookup order 7")
    );
    c.handle_command(Command::ToolResult {
        id: ToolCallId("del_2".into()),
        name: "lookup_order".into(),
        result: ToolResult::Err("timeout".into()),
    });
    let s = sent(&drain(&mut c));
    assert_eq!(s[0]["type"], "session.commentary.append");
    assert_eq!(s[0]["delegation_id"], "del_2");
    assert!(
        s[0]["content"]
            .as_str()
            .unwrap()
            .contains("failed: timeout")
    );
    // A Responses-style answer is not sent for a delegation.
    assert!(s.iter().all(|m| m["type"] != "response.create"));
}

#[test]
fn end_call_by_delegation_is_a_typed_event_answered_silently() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    let outs = delegate(&mut c, "thanks, goodbye, end call", "del_9");
    assert!(matches!(
        &events(&outs)[..],
        [ModelEvent::EndCall { id, .. }] if id.as_str() == "del_9"
    ));
    c.handle_command(Command::ToolResult {
        id: ToolCallId("del_9".into()),
        name: "end_call".into(),
        result: ToolResult::Ok(json!({"status": "ending"})),
    });
    let s = sent(&drain(&mut c));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["type"], "session.thinking.append");
    assert_eq!(s[0]["delegation_id"], "del_9");
}

#[test]
fn function_calls_become_typed_events_and_results_go_back_with_a_response_create() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    let now = Instant::now();
    c.handle_server(
        Inbound::FunctionCall {
            call_id: "call_1".into(),
            name: "transfer_call".into(),
            arguments: r#"{"target":"sales"}"#.into(),
        },
        now,
    );
    let ev = events(&drain(&mut c));
    assert!(matches!(&ev[..], [ModelEvent::TransferCall { target, .. }] if target == "sales"));
    c.handle_command(Command::ToolResult {
        id: ToolCallId("call_1".into()),
        name: "transfer_call".into(),
        result: ToolResult::Ok(json!({"ok": true})),
    });
    let s = sent(&drain(&mut c));
    assert_eq!(
        s,
        [
            json!({"type": "response.item.create", "item": {"type": "function_call_output",
                   "call_id": "call_1", "output": "{\"ok\":true}"}}),
            json!({"type": "response.create"}),
        ]
    );
}

#[test]
fn end_call_is_answered_without_a_new_response() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    c.handle_server(
        Inbound::FunctionCall {
            call_id: "c9".into(),
            name: "end_call".into(),
            arguments: String::new(),
        },
        Instant::now(),
    );
    let ev = events(&drain(&mut c));
    assert!(matches!(
        &ev[..],
        [ModelEvent::EndCall { reason: None, .. }]
    ));
    c.handle_command(Command::ToolResult {
        id: ToolCallId("c9".into()),
        name: "end_call".into(),
        result: ToolResult::Ok(json!("ok")),
    });
    let s = sent(&drain(&mut c));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["item"]["type"], "function_call_output");
}

#[test]
fn malformed_arguments_are_refused_to_the_model_and_reported() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    c.handle_server(
        Inbound::FunctionCall {
            call_id: "c1".into(),
            name: "lookup".into(),
            arguments: "[1]".into(),
        },
        Instant::now(),
    );
    let outs = drain(&mut c);
    assert!(matches!(
        &events(&outs)[..],
        [ModelEvent::Error {
            kind: ErrorKind::MalformedMessage,
            ..
        }]
    ));
    let s = sent(&outs);
    assert_eq!(s[0]["item"]["call_id"], "c1");
    assert_eq!(s[1]["type"], "response.create");
}

#[test]
fn server_errors_and_decode_errors_are_reported() {
    let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
    c.handle_server(
        Inbound::Error {
            code: Some("unknown_parameter".into()),
            message: "m".into(),
        },
        Instant::now(),
    );
    c.handle_decode_error(&DecodeError::Unknown);
    c.handle_decode_error(&DecodeError::Base64);
    let kinds: Vec<ErrorKind> = events(&drain(&mut c))
        .into_iter()
        .filter_map(|e| match e {
            ModelEvent::Error { kind, .. } => Some(kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Server,
            ErrorKind::UnknownMessage,
            ErrorKind::MalformedMessage
        ]
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Audio(u8),
        OutText,
        InText,
        Delegation(bool),
        Call(bool),
        Answer,
        Greet,
        Text,
        Interrupt,
        Wait(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u8..=160).prop_map(Step::Audio),
            Just(Step::OutText),
            Just(Step::InText),
            any::<bool>().prop_map(Step::Delegation),
            any::<bool>().prop_map(Step::Call),
            Just(Step::Answer),
            Just(Step::Greet),
            Just(Step::Text),
            Just(Step::Interrupt),
            (0u16..2000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Whatever the order of events, commands and time: every client
        /// event sent is valid for the strict server types, each reply ends
        /// with exactly one GenerationComplete + TurnComplete pair once its
        /// output pauses, and the deadline is never in the past after a
        /// timeout was handled.
        #[test]
        fn any_sequence_keeps_the_invariants(steps in proptest::collection::vec(step(), 0..60)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut c = Core::new(&cfg(), AudioFormat::Pcmu);
            let mut calls = 0u32;
            let mut open_reply = false;
            for s in steps {
                match s {
                    Step::Audio(n) => c.handle_server(Inbound::Audio(Bytes::from(vec![0x7f; usize::from(n)])), now),
                    Step::OutText => c.handle_server(Inbound::OutputTranscript { text: "a ".into(), start_ms: 0, end_ms: 1 }, now),
                    Step::InText => c.handle_server(Inbound::InputTranscript { text: "b ".into(), start_ms: 0, end_ms: 1 }, now),
                    Step::Delegation(client) => c.handle_server(Inbound::DelegationCreated {
                        delegation_id: "del".into(),
                        target: if client { DelegationTarget::Client } else { DelegationTarget::Responses },
                    }, now),
                    Step::Call(end) => {
                        calls += 1;
                        let name = if end { "end_call" } else { "lookup" };
                        c.handle_server(Inbound::FunctionCall {
                            call_id: format!("c{calls}"), name: name.into(), arguments: "{}".into(),
                        }, now);
                    }
                    Step::Answer => c.handle_command(Command::ToolResult {
                        id: ToolCallId(format!("c{calls}")),
                        name: "lookup".into(),
                        result: ToolResult::Ok(json!({"ok": true})),
                    }),
                    Step::Greet => c.handle_command(Command::StartGreeting),
                    Step::Text => c.handle_command(Command::Text("[keys: 1]".into())),
                    Step::Interrupt => c.handle_command(Command::Interrupt(Duration::from_millis(5))),
                    Step::Wait(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        c.handle_timeout(now);
                        if let Some(due) = c.poll_timeout() {
                            prop_assert!(due > now);
                        }
                    }
                }
                let outs = drain(&mut c);
                for o in &outs {
                    match o {
                        Output::Send(msg) => {
                            prop_assert!(
                                serde_json::from_str::<super::super::wire::ClientEvent>(msg).is_ok(),
                                "invalid client event {}", msg
                            );
                        }
                        Output::Event(ModelEvent::Audio(_)) => open_reply = true,
                        Output::Event(ModelEvent::GenerationComplete) => {
                            prop_assert!(open_reply, "a reply end without a reply");
                        }
                        Output::Event(ModelEvent::TurnComplete) => {
                            prop_assert!(open_reply);
                            open_reply = false;
                        }
                        Output::Event(_) => {}
                    }
                }
            }
        }
    }
}
