//! The GPT-Live session logic, sans-IO: decoded server events, handle
//! commands and the time in; [`ModelEvent`]s and client events out, and
//! the next deadline.
//!
//! GPT-Live is full duplex with no turns on the wire: no interruption
//! event, no truncate, no response lifecycle, no transcript "done". So
//! the core infers the end of a reply itself: once model audio (or its
//! transcript) has stopped for [`REPLY_GAP`], it reports
//! `GenerationComplete` and `TurnComplete` (what the call's machine needs
//! to close the agent's turn and to hang up after a farewell). Barge-in is
//! the bridge's own (local detection flushes playback); nothing is sent.
//!
//! Under Responses delegation function calls arrive as
//! [`Inbound::FunctionCall`] and are answered with `response.item.create`
//! then `response.create` (none after `end_call`: the conversation is
//! over). Under client delegation a `session.delegation.created` is mapped
//! to one of the line's tools by the transcript since the previous one
//! ([`super::delegate`]): mapped, it is reported as the tool call it
//! becomes (its id the delegation's), and its result goes back as
//! `session.commentary.append` with the delegation's id (a silent
//! `session.thinking.append` after `end_call`); not mapped, the model is
//! told why with `session.instructions.append` carrying the id.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::delegate::{self, Mapping, TaskText};
use super::wire::{self, DecodeError, DelegationTarget, Inbound};
use crate::audio::{AudioChunk, AudioFormat};
use crate::config::{BuiltinTools, Greeting, SessionConfig};
use crate::event::{ErrorKind, ModelEvent, ToolCall, ToolCallId};
use crate::session::{Command, ToolResult};
use crate::tools::ToolSpec;

/// How long model output must pause before the reply counts as done.
pub(crate) const REPLY_GAP: Duration = Duration::from_millis(600);
/// Bound on unanswered function calls remembered.
const MAX_PENDING_CALLS: usize = 64;
/// What the bridge tells the model about work delegated to the client
/// that no tool of the line does (the reason follows).
pub(crate) const CANNOT_DELEGATE: &str = "This phone line cannot carry out that task. \
Tell the caller briefly that you cannot do that on this call, and carry on.";

/// What the core asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Report an event to the handle.
    Event(ModelEvent),
    /// Send a client event (JSON text).
    Send(Cow<'static, str>),
}

/// The sans-IO GPT-Live session (after `session.started`).
#[derive(Debug)]
pub(crate) struct Core {
    format: AudioFormat,
    builtin: BuiltinTools,
    transcribe_out: bool,
    greeting_prompt: String,
    greeted: bool,
    /// When the current reply's last output arrived (`None`: no reply).
    reply_last: Option<Instant>,
    pending_calls: HashSet<String>,
    /// The line's tools, for client delegations.
    specs: Vec<ToolSpec>,
    /// The transcript since the last delegation.
    task: TaskText,
    /// Client delegations running a tool: id → tool name.
    delegations: HashMap<String, String>,
    out: VecDeque<Output>,
}

impl Core {
    /// A core for a session in `format` (both ways).
    pub(crate) fn new(config: &SessionConfig, format: AudioFormat) -> Core {
        Core {
            format,
            builtin: config.builtin_tools,
            transcribe_out: config.transcription.output,
            greeting_prompt: config
                .greeting
                .prompt()
                .unwrap_or(Greeting::DEFAULT_PROMPT)
                .to_owned(),
            greeted: false,
            reply_last: None,
            pending_calls: HashSet::new(),
            specs: crate::tools::all_specs(
                &config.tools,
                config.builtin_tools,
                &config.transfer_targets,
            ),
            task: TaskText::default(),
            delegations: HashMap::new(),
            out: VecDeque::with_capacity(8),
        }
    }

    /// The next thing to do; call until `None` after every `handle_*`.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Core::handle_timeout`] is due, if ever.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.reply_last.map(|t| t + REPLY_GAP)
    }

    fn emit(&mut self, ev: ModelEvent) {
        self.out.push_back(Output::Event(ev));
    }

    fn send(&mut self, msg: impl Into<Cow<'static, str>>) {
        self.out.push_back(Output::Send(msg.into()));
    }

    fn error(&mut self, kind: ErrorKind, message: String) {
        self.emit(ModelEvent::Error { kind, message });
    }

    /// The time passed: ends a reply whose output paused for [`REPLY_GAP`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|due| now >= due) {
            self.reply_last = None;
            self.emit(ModelEvent::GenerationComplete);
            self.emit(ModelEvent::TurnComplete);
        }
    }

    fn reply_output(&mut self, now: Instant) {
        self.reply_last = Some(now);
    }

    /// A server frame that could not be decoded: reported, then skipped.
    pub(crate) fn handle_decode_error(&mut self, e: &DecodeError) {
        let kind = match e {
            DecodeError::Unknown => ErrorKind::UnknownMessage,
            _ => ErrorKind::MalformedMessage,
        };
        self.error(kind, e.to_string());
    }

    /// One decoded server event at `now`.
    pub(crate) fn handle_server(&mut self, ev: Inbound, now: Instant) {
        match ev {
            Inbound::SessionStarted { .. } | Inbound::Ignored => {}
            Inbound::Audio(data) => {
                self.reply_output(now);
                self.emit(ModelEvent::Audio(AudioChunk {
                    format: self.format,
                    data,
                }));
            }
            Inbound::OutputTranscript { text, .. } => {
                self.task.push(&text, false);
                if self.transcribe_out {
                    if self.reply_last.is_some() {
                        self.reply_output(now);
                    }
                    self.emit(ModelEvent::OutputTranscript {
                        text,
                        finished: false,
                    });
                }
            }
            Inbound::InputTranscript { text, .. } => {
                self.task.push(&text, true);
                self.emit(ModelEvent::InputTranscript {
                    text,
                    finished: false,
                });
            }
            Inbound::DelegationCreated {
                delegation_id,
                target: DelegationTarget::Client,
            } => self.on_client_delegation(delegation_id),
            Inbound::DelegationCreated { .. } => {}
            Inbound::FunctionCall {
                call_id,
                name,
                arguments,
            } => self.on_function_call(call_id, name, &arguments),
            Inbound::Error { code, message } => {
                tracing::warn!(?code, %message, "gpt-live error event");
                let message = match code {
                    Some(c) => format!("{c}: {message}"),
                    None => message,
                };
                self.error(ErrorKind::Server, message);
            }
            Inbound::Closed { reason } => {
                tracing::info!(%reason, "gpt-live session closed by the server");
            }
            Inbound::AudioUsage(total) => self.emit(ModelEvent::AudioUsage { total }),
            Inbound::DelegationUsage(u) => self.emit(ModelEvent::DelegationUsage(u)),
        }
    }

    fn on_client_delegation(&mut self, delegation_id: String) {
        let text = self.task.take();
        match delegate::map(&text, &self.specs) {
            Mapping::Call { name, args } => {
                tracing::debug!(tool = %name, "client delegation runs a tool");
                if self.delegations.len() >= MAX_PENDING_CALLS {
                    self.delegations.clear();
                }
                self.delegations.insert(delegation_id.clone(), name.clone());
                let call = ToolCall {
                    id: ToolCallId(delegation_id),
                    name,
                    args,
                };
                let ev = crate::tools::classify(call, self.builtin);
                self.emit(ev);
            }
            Mapping::Decline(why) => {
                tracing::debug!(reason = %why, "client delegation declined");
                self.send(wire::instructions_append(
                    &format!("{CANNOT_DELEGATE} (Why: {why}.)"),
                    Some(&delegation_id),
                ));
            }
        }
    }

    fn on_function_call(&mut self, call_id: String, name: String, arguments: &str) {
        let args = match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(serde_json::Value::Null) => serde_json::json!({}),
            _ if arguments.trim().is_empty() => serde_json::json!({}),
            _ => {
                self.error(
                    ErrorKind::MalformedMessage,
                    format!("function call {name}: arguments are not a JSON object"),
                );
                let out = wire::tool_output(&ToolResult::Err(
                    "the call's arguments were not a JSON object".into(),
                ));
                self.send(wire::function_output(&call_id, &out));
                self.send(wire::RESPONSE_CREATE);
                return;
            }
        };
        if self.pending_calls.len() >= MAX_PENDING_CALLS {
            self.pending_calls.clear();
        }
        self.pending_calls.insert(call_id.clone());
        let call = ToolCall {
            id: ToolCallId(call_id),
            name,
            args,
        };
        let ev = crate::tools::classify(call, self.builtin);
        self.emit(ev);
    }

    /// A client delegation's result: spoken context for the model, or,
    /// after `end_call`, silent context (the conversation is over).
    fn delegation_result(&mut self, id: &str, name: &str, result: &ToolResult) {
        if name == crate::tools::END_CALL {
            self.send(wire::thinking_append("The call is ending.", Some(id)));
            return;
        }
        let content = match result {
            ToolResult::Ok(_) => delegate::result_text(&wire::tool_output(result)),
            ToolResult::Err(e) => {
                delegate::result_text(&format!("The task failed: {e}. Tell the caller briefly."))
            }
        };
        self.send(wire::commentary_append(&content, Some(id)));
    }

    /// One command from the handle.
    pub(crate) fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Audio(audio, _) => {
                // The driver encodes audio into its own buffer (hot path);
                // this is the same message for completeness.
                let mut buf = BytesMut::new();
                wire::encode_audio_into(&audio, &mut buf);
                self.send(String::from_utf8_lossy(&buf).into_owned());
            }
            // Full duplex: the model hears the caller in the audio itself;
            // there is no activity signal, no cancel and no truncate.
            Command::AudioStreamEnd
            | Command::ActivityStart
            | Command::ActivityEnd
            | Command::PlaybackProgress(_)
            | Command::Interrupt(_) => {}
            // The handle refuses instruction updates for GPT-Live
            // (`instructions` are immutable after start): never sent here.
            Command::UpdateInstructions(_) => {
                tracing::debug!("gpt-live takes no instruction update; skipped");
            }
            // No user-text message outside Responses delegation: text (DTMF)
            // goes as appended general instructions.
            Command::Text(t) => self.send(wire::instructions_append(&t, None)),
            Command::ToolResult { id, name, result } => {
                if self.delegations.remove(id.as_str()).is_some() {
                    self.delegation_result(id.as_str(), &name, &result);
                    return;
                }
                let output = wire::tool_output(&result);
                self.send(wire::function_output(id.as_str(), &output));
                self.pending_calls.remove(id.as_str());
                if name != crate::tools::END_CALL && self.pending_calls.is_empty() {
                    self.send(wire::RESPONSE_CREATE);
                }
            }
            Command::StartGreeting => {
                if !self.greeted {
                    self.greeted = true;
                    let prompt = std::mem::take(&mut self.greeting_prompt);
                    self.send(wire::instructions_append(&prompt, None));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
