//! The OpenAI Realtime session logic, sans-IO: decoded server events and
//! handle commands in, [`ModelEvent`]s and client events out.
//!
//! Owns the little state the protocol needs once the session is set up
//! (protocols.md §2.4-2.6):
//! - the response in progress (from `response.created` to `response.done`),
//!   so that barge-in sends `response.cancel` only when one is running and
//!   `response.create` is never sent while one is (it would be refused with
//!   `conversation_already_has_active_response`; a refused one is retried
//!   after the running response is done);
//! - the assistant audio item being played and how much of it the caller
//!   heard (reported through the handle), so that barge-in on
//!   `input_audio_buffer.speech_started` truncates the item to exactly what
//!   was heard (`conversation.item.truncate`);
//! - unanswered function calls: one `response.create` once all are answered
//!   (none after `end_call`: the conversation is over);
//! - the transcript text already reported per item, so the `.done` /
//!   `.completed` events report only what the deltas did not.
//!
//! No IO, no clock: the driver feeds [`Core::handle_server`] /
//! [`Core::handle_command`] and drains [`Core::poll_output`].

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use bytes::BytesMut;

use super::wire::{self, DecodeError, Inbound, ResponseStatus};
use crate::audio::{AudioChunk, AudioFormat};
use crate::config::{BuiltinTools, Greeting, SessionConfig, TurnDetection};
use crate::event::{ErrorKind, ModelEvent, ToolCall, ToolCallId};
use crate::session::{Command, ToolResult};

/// Bound on unanswered function calls remembered.
const MAX_PENDING_CALLS: usize = 64;
/// Bound on transcript text remembered per item.
const MAX_TRANSCRIPT_BYTES: usize = 64 * 1024;
/// Server error code of a `response.cancel` that found nothing running
/// (expected when the server's own VAD cancelled first).
const CANCEL_NOT_ACTIVE: &str = "response_cancel_not_active";
/// Server error code of a `response.create` sent while a response was in
/// progress (a server-VAD response started in between).
const ALREADY_ACTIVE: &str = "conversation_already_has_active_response";

/// What the core asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Report an event to the handle.
    Event(ModelEvent),
    /// Send a client event (JSON text).
    Send(Cow<'static, str>),
}

/// The assistant audio item being played to the caller.
#[derive(Debug)]
struct PlayingItem {
    item_id: String,
    /// Audio received for it so far.
    received: Duration,
    /// Audio the caller has heard, as last reported (`None`: never reported).
    played: Option<Duration>,
}

/// Transcript text already reported for one item.
#[derive(Debug, Default)]
struct TranscriptSoFar {
    item_id: String,
    text: String,
    overflow: bool,
}

impl TranscriptSoFar {
    fn delta(&mut self, item_id: &str, text: &str) {
        if self.item_id != item_id {
            self.item_id.clear();
            self.item_id.push_str(item_id);
            self.text.clear();
            self.overflow = false;
        }
        if self.text.len() + text.len() <= MAX_TRANSCRIPT_BYTES {
            self.text.push_str(text);
        } else {
            self.overflow = true;
        }
    }

    /// What of the full `transcript` was not reported yet: the rest after
    /// the deltas, or all of it when the deltas do not prefix it (nothing
    /// when the deltas outgrew the bound).
    fn rest(&mut self, item_id: &str, transcript: String) -> String {
        let same = self.item_id == item_id;
        let rest = if same && self.overflow {
            String::new()
        } else if same && transcript.starts_with(&self.text) {
            transcript[self.text.len()..].to_owned()
        } else {
            transcript
        };
        self.item_id.clear();
        self.text.clear();
        self.overflow = false;
        rest
    }
}

/// The sans-IO OpenAI Realtime session (after setup).
#[derive(Debug)]
pub(crate) struct Core {
    output_format: AudioFormat,
    builtin: BuiltinTools,
    transcribe_out: bool,
    manual_turns: bool,
    /// Whether caller speech cuts off the model (server VAD `interrupt_response`).
    interrupt: bool,
    greeting_prompt: String,
    greeted: bool,
    /// The response in progress (between `response.created` and `response.done`).
    response: Option<String>,
    /// A `response.create` was sent and its `response.created` is not in yet.
    response_requested: bool,
    /// Send `response.create` once the response in progress is done.
    want_response: bool,
    /// A response this client cancelled; its late deltas are dropped.
    cancelled: Option<String>,
    playing: Option<PlayingItem>,
    pending_calls: HashSet<String>,
    /// Function names by call id, from `response.output_item.added` (bounded).
    call_names: VecDeque<(String, String)>,
    input_text: TranscriptSoFar,
    output_text: TranscriptSoFar,
    out: VecDeque<Output>,
}

impl Core {
    /// A core for a session configured by `config` whose model sends audio
    /// in `output_format`.
    pub(crate) fn new(config: &SessionConfig, output_format: AudioFormat) -> Core {
        Core {
            output_format,
            builtin: config.builtin_tools,
            transcribe_out: config.transcription.output,
            manual_turns: matches!(config.turn_detection, TurnDetection::Manual),
            interrupt: match config.turn_detection {
                TurnDetection::Server {
                    interrupt_response, ..
                } => interrupt_response,
                TurnDetection::Manual => true,
            },
            greeting_prompt: config
                .greeting
                .prompt()
                .unwrap_or(Greeting::DEFAULT_PROMPT)
                .to_owned(),
            greeted: false,
            response: None,
            response_requested: false,
            want_response: false,
            cancelled: None,
            playing: None,
            pending_calls: HashSet::new(),
            call_names: VecDeque::new(),
            input_text: TranscriptSoFar::default(),
            output_text: TranscriptSoFar::default(),
            out: VecDeque::with_capacity(8),
        }
    }

    /// The next thing to do; call until `None` after every `handle_*`.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
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

    /// A server frame that could not be decoded: reported, then skipped.
    pub(crate) fn handle_decode_error(&mut self, e: &DecodeError) {
        let kind = match e {
            DecodeError::Unknown => ErrorKind::UnknownMessage,
            _ => ErrorKind::MalformedMessage,
        };
        self.error(kind, e.to_string());
    }

    /// One decoded server event.
    pub(crate) fn handle_server(&mut self, ev: Inbound) {
        match ev {
            Inbound::SessionCreated | Inbound::SessionUpdated | Inbound::Ignored => {}
            // Server VAD committed the caller's turn: a reply is due.
            Inbound::SpeechStopped => self.emit(ModelEvent::CallerTurnEnded),
            Inbound::SpeechStarted { .. } if self.interrupt => self.barge_in(),
            Inbound::SpeechStarted { .. } => {}
            Inbound::ResponseCreated { response_id } => {
                self.response = Some(response_id);
                self.response_requested = false;
            }
            Inbound::AudioDelta {
                response_id,
                item_id,
                data,
            } => {
                if self.cancelled.as_deref() == Some(response_id.as_str()) {
                    return;
                }
                let format = self.output_format;
                let dur = format.duration_of(data.len());
                match &mut self.playing {
                    Some(p) if p.item_id == item_id => p.received += dur,
                    _ => {
                        self.playing = Some(PlayingItem {
                            item_id,
                            received: dur,
                            played: None,
                        })
                    }
                }
                self.emit(ModelEvent::Audio(AudioChunk { format, data }));
            }
            Inbound::AudioDone => self.emit(ModelEvent::GenerationComplete),
            Inbound::OutputTranscriptDelta {
                response_id,
                item_id,
                text,
            } => {
                if self.transcribe_out && self.cancelled.as_deref() != Some(response_id.as_str()) {
                    self.output_text.delta(&item_id, &text);
                    self.emit(ModelEvent::OutputTranscript {
                        text,
                        finished: false,
                    });
                }
            }
            Inbound::OutputTranscriptDone {
                response_id,
                item_id,
                transcript,
            } => {
                let text = self.output_text.rest(&item_id, transcript);
                // A cancelled reply's full transcript includes what was never heard.
                if self.transcribe_out && self.cancelled.as_deref() != Some(response_id.as_str()) {
                    self.emit(ModelEvent::OutputTranscript {
                        text,
                        finished: true,
                    });
                }
            }
            Inbound::InputTranscriptDelta { item_id, text } => {
                self.input_text.delta(&item_id, &text);
                self.emit(ModelEvent::InputTranscript {
                    text,
                    finished: false,
                });
            }
            Inbound::InputTranscriptCompleted {
                item_id,
                transcript,
            } => {
                let text = self.input_text.rest(&item_id, transcript);
                self.emit(ModelEvent::InputTranscript {
                    text,
                    finished: true,
                });
            }
            Inbound::InputTranscriptFailed { message } => self.error(
                ErrorKind::Server,
                format!("input transcription failed: {message}"),
            ),
            Inbound::FunctionCallItem { call_id, name } => {
                if self.call_names.len() >= MAX_PENDING_CALLS {
                    self.call_names.pop_front();
                }
                self.call_names.push_back((call_id, name));
            }
            Inbound::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                let name = name.or_else(|| {
                    self.call_names
                        .iter()
                        .find(|(id, _)| *id == call_id)
                        .map(|(_, n)| n.clone())
                });
                match name {
                    Some(name) => self.on_function_call(call_id, name, &arguments),
                    None => self.refuse_call(&call_id, "function call without a name".into()),
                }
            }
            Inbound::ResponseDone {
                response_id,
                status,
                details,
                usage,
            } => {
                if response_id.is_none() || response_id == self.response {
                    self.response = None;
                }
                if let Some(u) = usage {
                    self.emit(ModelEvent::Usage(u));
                }
                if matches!(status, ResponseStatus::Failed | ResponseStatus::Incomplete) {
                    let details = details.as_deref().unwrap_or("no details");
                    self.error(
                        ErrorKind::Server,
                        format!("response ended {status:?}: {details}"),
                    );
                }
                self.emit(ModelEvent::TurnComplete);
                if self.want_response && self.pending_calls.is_empty() {
                    self.request_response();
                }
            }
            Inbound::RateLimits(limits) => self.emit(ModelEvent::RateLimits(limits)),
            Inbound::Error { code, message } => match code.as_deref() {
                Some(CANCEL_NOT_ACTIVE) => {
                    tracing::debug!("response.cancel raced the server's own cancel");
                }
                Some(ALREADY_ACTIVE) => {
                    tracing::debug!("response.create raced a server-created response; deferred");
                    self.response_requested = false;
                    self.want_response = true;
                }
                _ => {
                    tracing::warn!(?code, %message, "openai error event");
                    let message = match code {
                        Some(c) => format!("{c}: {message}"),
                        None => message,
                    };
                    self.error(ErrorKind::Server, message);
                }
            },
        }
    }

    fn on_function_call(&mut self, call_id: String, name: String, arguments: &str) {
        let args = match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(serde_json::Value::Null) => serde_json::json!({}),
            _ if arguments.trim().is_empty() => serde_json::json!({}),
            _ => {
                let why = format!("function call {name}: arguments are not a JSON object");
                return self.refuse_call(&call_id, why);
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

    /// A call the caller cannot act on: reported as an error, and answered
    /// to the model at once (it waits for an output) with a new response.
    fn refuse_call(&mut self, call_id: &str, why: String) {
        self.error(ErrorKind::MalformedMessage, why);
        let out = wire::tool_output(&ToolResult::Err(
            "the call was malformed (no name, or arguments that are not a JSON object)".into(),
        ));
        self.send(wire::function_output_message(call_id, &out));
        self.request_response();
    }

    /// Sends `response.create` now, or once the response in progress is done.
    fn request_response(&mut self) {
        if self.response.is_some() || self.response_requested {
            self.want_response = true;
            return;
        }
        self.want_response = false;
        self.response_requested = true;
        self.send(wire::response_create_message());
    }

    /// The caller started talking over the model (protocols.md §2.6):
    /// report it, cancel the response in progress, and cut the assistant
    /// item to what the caller actually heard. Without any playback report
    /// for the item the cut point is unknown and the item is left whole.
    fn barge_in(&mut self) {
        let playing = self.playing.take();
        let unheard = playing
            .as_ref()
            .is_some_and(|p| p.played.is_none_or(|played| played < p.received));
        // The response stays in progress until its `response.done` arrives.
        let to_cancel = self
            .response
            .clone()
            .filter(|id| self.cancelled.as_deref() != Some(id.as_str()));
        if to_cancel.is_some() || unheard {
            self.emit(ModelEvent::Interrupted);
        }
        if let Some(id) = to_cancel {
            self.send(wire::response_cancel_message(&id));
            self.cancelled = Some(id);
        }
        if let Some(p) = playing {
            match p.played {
                Some(played) if played < p.received => {
                    let ms = played.as_millis() as u64;
                    tracing::debug!(item = %p.item_id, ms, "truncating the interrupted reply");
                    self.send(wire::truncate_message(&p.item_id, ms));
                }
                Some(_) => {}
                None => tracing::debug!(
                    "barge-in without playback progress: the reply is not truncated"
                ),
            }
        }
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
            Command::ActivityStart if self.manual_turns => {
                self.barge_in();
                self.send(wire::clear_message());
            }
            Command::ActivityEnd if self.manual_turns => {
                self.send(wire::commit_message());
                self.request_response();
            }
            Command::AudioStreamEnd | Command::ActivityStart | Command::ActivityEnd => {
                tracing::debug!(
                    "activity signal does not apply to the configured turn detection; skipped"
                );
            }
            Command::Text(t) => {
                self.send(wire::user_text_message(&t));
                self.request_response();
            }
            Command::ToolResult { id, name, result } => {
                let output = wire::tool_output(&result);
                self.send(wire::function_output_message(id.as_str(), &output));
                self.pending_calls.remove(id.as_str());
                // After end_call the conversation is over: no new response.
                if name != crate::tools::END_CALL && self.pending_calls.is_empty() {
                    self.request_response();
                }
            }
            Command::PlaybackProgress(played) => {
                if let Some(p) = &mut self.playing {
                    p.played = Some(played.min(p.received));
                }
            }
            Command::Interrupt(played) => {
                if let Some(p) = &mut self.playing {
                    p.played = Some(played.min(p.received));
                }
                self.barge_in();
            }
            Command::UpdateInstructions(text) => {
                self.send(wire::instructions_update_message(&text));
            }
            Command::StartGreeting => {
                if !self.greeted {
                    self.greeted = true;
                    let prompt = std::mem::take(&mut self.greeting_prompt);
                    self.send(wire::user_text_message(&prompt));
                    self.request_response();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
