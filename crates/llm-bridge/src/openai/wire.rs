//! OpenAI Realtime (GA) wire format (sans-IO): client events out, server
//! events in. protocols.md §2.3-2.5.
//!
//! Owns: the `session.update` message (GA nested `audio.input` /
//! `audio.output` shape, never the beta flat fields), the client event
//! encoders (`input_audio_buffer.append` written straight into a
//! caller-owned buffer, `conversation.item.create`, `conversation.item.truncate`,
//! `response.create`, `response.cancel`, ...), and the decoder of server
//! events into [`Inbound`] items. Every event is one JSON object with a
//! `type` field, in a text frame.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audio::{AudioFormat, SampleRate};
use crate::config::{CallMetadata, SessionConfig, TurnDetection};
use crate::event::{RateLimit, TokenSplit, Usage};
use crate::session::ToolResult;
use crate::tuning::OpenAiVad;

/// Input transcription model used when the configuration names none.
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-4o-mini-transcribe";

/// The GA `format` object of an audio format (`audio/pcm` is 24 kHz only);
/// `None` for formats the API does not take.
pub fn format_json(format: AudioFormat) -> Option<Value> {
    match format {
        AudioFormat::Pcm16 { rate } if rate == SampleRate::HZ_24000 => {
            Some(json!({"type": "audio/pcm", "rate": 24000}))
        }
        AudioFormat::Pcm16 { .. } => None,
        AudioFormat::Pcmu => Some(json!({"type": "audio/pcmu"})),
        AudioFormat::Pcma => Some(json!({"type": "audio/pcma"})),
    }
}

/// The `turn_detection` object of `vad`, with the caller's barge-in
/// choice (`interrupt_response`); the server always answers a finished
/// turn (`create_response`).
fn turn_detection_json(vad: &OpenAiVad, interrupt_response: bool) -> Value {
    match vad {
        OpenAiVad::Server(v) => {
            let mut m = Map::new();
            m.insert("type".into(), json!("server_vad"));
            m.insert("threshold".into(), json!(v.threshold));
            m.insert(
                "prefix_padding_ms".into(),
                json!(v.prefix_padding.as_millis() as u64),
            );
            m.insert(
                "silence_duration_ms".into(),
                json!(v.silence_duration.as_millis() as u64),
            );
            if let Some(t) = v.idle_timeout {
                m.insert("idle_timeout_ms".into(), json!(t.as_millis() as u64));
            }
            m.insert("create_response".into(), json!(true));
            m.insert("interrupt_response".into(), json!(interrupt_response));
            Value::Object(m)
        }
        OpenAiVad::Semantic { eagerness } => json!({
            "type": "semantic_vad",
            "eagerness": eagerness.as_str(),
            "create_response": true,
            "interrupt_response": interrupt_response,
        }),
    }
}

/// The `session.update` event (protocols.md §2.3, GA shape) for a session
/// with `input` / `output` audio formats (both must be ones
/// [`format_json`] accepts; others are left out).
pub fn session_update_message(
    config: &SessionConfig,
    metadata: &CallMetadata,
    input: AudioFormat,
    output: AudioFormat,
) -> String {
    let mut audio_in = Map::new();
    if let Some(f) = format_json(input) {
        audio_in.insert("format".into(), f);
    }
    let turn_detection = match &config.turn_detection {
        TurnDetection::Server {
            interrupt_response, ..
        } => turn_detection_json(&config.openai.vad, *interrupt_response),
        TurnDetection::Manual => Value::Null,
    };
    audio_in.insert("turn_detection".into(), turn_detection);
    let noise = match config.openai.noise_reduction.as_str() {
        Some(kind) => json!({ "type": kind }),
        None => Value::Null,
    };
    audio_in.insert("noise_reduction".into(), noise);
    if config.transcription.input {
        let mut t = Map::new();
        let model = config
            .transcription
            .model
            .as_deref()
            .unwrap_or(DEFAULT_TRANSCRIPTION_MODEL);
        t.insert("model".into(), json!(model));
        if let Some(lang) = &config.transcription.language {
            t.insert("language".into(), json!(lang));
        }
        audio_in.insert("transcription".into(), Value::Object(t));
    }
    let mut audio_out = Map::new();
    if let Some(f) = format_json(output) {
        audio_out.insert("format".into(), f);
    }
    if let Some(voice) = &config.voice {
        audio_out.insert("voice".into(), json!(voice));
    }

    let mut session = Map::new();
    session.insert("type".into(), json!("realtime"));
    session.insert("model".into(), json!(config.model));
    session.insert(
        "instructions".into(),
        json!(metadata.instructions_with_context(&config.instructions)),
    );
    session.insert("output_modalities".into(), json!(["audio"]));
    session.insert(
        "audio".into(),
        json!({"input": audio_in, "output": audio_out}),
    );
    let tools = crate::tools::all_specs(
        &config.tools,
        config.builtin_tools,
        &config.transfer_targets,
    );
    if !tools.is_empty() {
        let decls: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "name": t.name, "description": t.description,
                       "parameters": t.parameters})
            })
            .collect();
        session.insert("tools".into(), Value::Array(decls));
        session.insert("tool_choice".into(), json!("auto"));
    }
    json!({"type": "session.update", "session": session}).to_string()
}

/// A mid-session `session.update` that replaces only the instructions
/// (the fields absent from an update keep their values).
pub fn instructions_update_message(instructions: &str) -> String {
    json!({"type": "session.update",
           "session": {"type": "realtime", "instructions": instructions}})
    .to_string()
}

const APPEND_PREFIX: &[u8] = b"{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
const APPEND_SUFFIX: &[u8] = b"\"}";

/// Length of the `input_audio_buffer.append` event of `audio_len` bytes of
/// audio (what [`encode_audio_into`] appends).
pub fn audio_message_len(audio_len: usize) -> usize {
    APPEND_PREFIX.len() + base64::encoded_len(audio_len, true).unwrap_or(0) + APPEND_SUFFIX.len()
}

/// Encodes audio already in the session's input format as an
/// `input_audio_buffer.append` event, appended to `out` (no allocation when
/// `out` has room).
pub fn encode_audio_into(audio: &[u8], out: &mut BytesMut) {
    let b64_len = base64::encoded_len(audio.len(), true).unwrap_or(0);
    out.reserve(audio_message_len(audio.len()));
    out.put_slice(APPEND_PREFIX);
    let start = out.len();
    out.resize(start + b64_len, 0);
    // The slice is exactly encoded_len long, so encoding cannot run out of room.
    let written = B64.encode_slice(audio, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.put_slice(APPEND_SUFFIX);
}

/// `conversation.item.create` with a user text message (also the greeting
/// prompt and DTMF digits as text).
pub fn user_text_message(text: &str) -> String {
    json!({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": text}]}})
    .to_string()
}

/// The `output` string of a tool result: a JSON string is sent as is, any
/// other value as its JSON text, an error as `{"error": message}`.
pub fn tool_output(result: &ToolResult) -> String {
    match result {
        ToolResult::Ok(Value::String(s)) => s.clone(),
        ToolResult::Ok(v) => v.to_string(),
        ToolResult::Err(e) => json!({ "error": e }).to_string(),
    }
}

/// `conversation.item.create` with a `function_call_output` item.
pub fn function_output_message(call_id: &str, output: &str) -> String {
    json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": call_id, "output": output}})
    .to_string()
}

/// `response.create` (default response parameters).
pub fn response_create_message() -> &'static str {
    r#"{"type":"response.create"}"#
}

/// `response.cancel` of the response `response_id`.
pub fn response_cancel_message(response_id: &str) -> String {
    json!({"type": "response.cancel", "response_id": response_id}).to_string()
}

/// `conversation.item.truncate`: cut assistant item `item_id` to what the
/// caller heard.
pub fn truncate_message(item_id: &str, audio_end_ms: u64) -> String {
    json!({"type": "conversation.item.truncate", "item_id": item_id,
           "content_index": 0, "audio_end_ms": audio_end_ms})
    .to_string()
}

/// `input_audio_buffer.commit` (manual turn detection).
pub fn commit_message() -> &'static str {
    r#"{"type":"input_audio_buffer.commit"}"#
}

/// `input_audio_buffer.clear` (manual turn detection).
pub fn clear_message() -> &'static str {
    r#"{"type":"input_audio_buffer.clear"}"#
}

// ---- server -> client ----

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    item_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    response_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    transcript: Option<Cow<'a, str>>,
    #[serde(default)]
    audio_start_ms: Option<u64>,
    #[serde(default)]
    response: Option<RawResponse>,
    #[serde(default)]
    rate_limits: Option<Vec<RawRateLimit>>,
    #[serde(default)]
    error: Option<RawError>,
    #[serde(default)]
    item: Option<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    status_details: Option<Value>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    total_tokens: u64,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_token_details: Option<RawTokenDetails>,
    #[serde(default)]
    output_token_details: Option<RawTokenDetails>,
}

/// `input_token_details` / `output_token_details` of a `response.done`'s
/// usage (token usage, issue 22); `cached_tokens` and image tokens are
/// not split out.
#[derive(Deserialize)]
struct RawTokenDetails {
    #[serde(default)]
    text_tokens: u64,
    #[serde(default)]
    audio_tokens: u64,
}

impl RawUsage {
    /// The provider-neutral usage; the split only when both directions
    /// came with their details.
    fn usage(&self) -> Usage {
        let split = match (&self.input_token_details, &self.output_token_details) {
            (Some(i), Some(o)) => Some(TokenSplit {
                input_audio: i.audio_tokens,
                input_text: i.text_tokens,
                output_audio: o.audio_tokens,
                output_text: o.text_tokens,
            }),
            _ => None,
        };
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self.total_tokens,
            split,
        }
    }
}

#[derive(Deserialize)]
struct RawRateLimit {
    #[serde(default)]
    name: String,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    remaining: u64,
    #[serde(default)]
    reset_seconds: f64,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// How a response ended (`response.done` `response.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// `completed`.
    Completed,
    /// `cancelled` (barge-in or `response.cancel`).
    Cancelled,
    /// `failed`.
    Failed,
    /// `incomplete` (token limit, content filter...).
    Incomplete,
    /// Anything else.
    Other,
}

/// One server event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `session.created`.
    SessionCreated,
    /// `session.updated`.
    SessionUpdated,
    /// `input_audio_buffer.speech_started`: the caller started talking.
    SpeechStarted {
        /// The user item the speech will become.
        item_id: String,
        /// Where in the input audio it started.
        audio_start_ms: u64,
    },
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped,
    /// `response.created`.
    ResponseCreated {
        /// The response id.
        response_id: String,
    },
    /// `response.output_audio.delta` (GA) or `response.audio.delta` (beta
    /// name): decoded audio bytes in the session's output format.
    AudioDelta {
        /// The response it belongs to.
        response_id: String,
        /// The assistant item it belongs to (the truncate target).
        item_id: String,
        /// Audio bytes.
        data: Bytes,
    },
    /// `response.output_audio.done`.
    AudioDone,
    /// `response.output_audio_transcript.delta`.
    OutputTranscriptDelta {
        /// The response it belongs to.
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// Text delta.
        text: String,
    },
    /// `response.output_audio_transcript.done` (the full transcript).
    OutputTranscriptDone {
        /// The response it belongs to.
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// The whole transcript of the item.
        transcript: String,
    },
    /// `conversation.item.input_audio_transcription.delta`.
    InputTranscriptDelta {
        /// The user item.
        item_id: String,
        /// Text delta.
        text: String,
    },
    /// `conversation.item.input_audio_transcription.completed`.
    InputTranscriptCompleted {
        /// The user item.
        item_id: String,
        /// The whole transcript.
        transcript: String,
    },
    /// `conversation.item.input_audio_transcription.failed`.
    InputTranscriptFailed {
        /// The server's message.
        message: String,
    },
    /// A `function_call` item announced by `response.output_item.added` /
    /// `.done` (its name, for servers whose arguments event lacks it).
    FunctionCallItem {
        /// The call id.
        call_id: String,
        /// Function name.
        name: String,
    },
    /// `response.function_call_arguments.done`.
    FunctionCall {
        /// The call id (answer with it).
        call_id: String,
        /// Function name (absent in the older event shape: then it comes
        /// from the [`Inbound::FunctionCallItem`] with the same call id).
        name: Option<String>,
        /// The arguments, a JSON text as sent.
        arguments: String,
    },
    /// `response.done`.
    ResponseDone {
        /// The response id.
        response_id: Option<String>,
        /// How it ended.
        status: ResponseStatus,
        /// `status_details` as JSON text, for failed or incomplete responses.
        details: Option<String>,
        /// Token usage, if reported.
        usage: Option<Usage>,
    },
    /// `rate_limits.updated`.
    RateLimits(Vec<RateLimit>),
    /// `error`.
    Error {
        /// `error.code` (e.g. `session_expired`), if any.
        code: Option<String>,
        /// `error.type` and `error.message`.
        message: String,
    },
    /// A known event this client needs no action for.
    Ignored,
}

/// Why a server event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not UTF-8 JSON of an object with a string `type`.
    #[error("malformed server event: {0}")]
    Json(String),
    /// A known event without a field it must carry.
    #[error("server event {event} lacks `{field}`")]
    Missing {
        /// The event type.
        event: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// Audio that is not valid base64.
    #[error("invalid base64 in an audio delta")]
    Base64,
    /// An event type this client does not know.
    #[error("unknown server event type")]
    Unknown,
}

/// Server events that need no action here (protocols.md §2.5).
const IGNORED: &[&str] = &[
    "conversation.created",
    "conversation.item.added",
    "conversation.item.created",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.segment",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered",
    "input_audio_buffer.dtmf_event_received",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
    "output_audio_buffer.cleared",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.text.delta",
    "response.text.done",
    "response.function_call_arguments.delta",
    "transcription_session.updated",
];

fn owned(v: Option<Cow<'_, str>>) -> Option<String> {
    v.map(Cow::into_owned)
}

fn need(
    v: Option<Cow<'_, str>>,
    event: &'static str,
    field: &'static str,
) -> Result<String, DecodeError> {
    owned(v).ok_or(DecodeError::Missing { event, field })
}

fn status_of(s: Option<&str>) -> ResponseStatus {
    match s {
        Some("completed") => ResponseStatus::Completed,
        Some("cancelled") => ResponseStatus::Cancelled,
        Some("failed") => ResponseStatus::Failed,
        Some("incomplete") => ResponseStatus::Incomplete,
        _ => ResponseStatus::Other,
    }
}

/// Bound on rate-limit entries kept from one event.
const MAX_RATE_LIMITS: usize = 8;

/// Decodes one server event (a text or binary frame's payload).
pub fn decode_server_event(payload: &[u8]) -> Result<Inbound, DecodeError> {
    let raw: Raw<'_> =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    let ev = match raw.kind.as_ref() {
        "session.created" => Inbound::SessionCreated,
        "session.updated" => Inbound::SessionUpdated,
        "input_audio_buffer.speech_started" => Inbound::SpeechStarted {
            item_id: owned(raw.item_id).unwrap_or_default(),
            audio_start_ms: raw.audio_start_ms.unwrap_or(0),
        },
        "input_audio_buffer.speech_stopped" => Inbound::SpeechStopped,
        "response.created" => Inbound::ResponseCreated {
            response_id: raw
                .response
                .and_then(|r| r.id)
                .ok_or(DecodeError::Missing {
                    event: "response.created",
                    field: "response.id",
                })?,
        },
        "response.output_audio.delta" | "response.audio.delta" => {
            const E: &str = "response.output_audio.delta";
            let delta = raw.delta.ok_or(DecodeError::Missing {
                event: E,
                field: "delta",
            })?;
            let data = B64
                .decode(delta.as_bytes())
                .map_err(|_| DecodeError::Base64)?;
            Inbound::AudioDelta {
                response_id: need(raw.response_id, E, "response_id")?,
                item_id: need(raw.item_id, E, "item_id")?,
                data: Bytes::from(data),
            }
        }
        "response.output_audio.done" | "response.audio.done" => Inbound::AudioDone,
        "response.output_item.added" | "response.output_item.done" => match raw.item {
            Some(RawItem {
                kind: Some(kind),
                call_id: Some(call_id),
                name: Some(name),
            }) if kind == "function_call" => Inbound::FunctionCallItem { call_id, name },
            _ => Inbound::Ignored,
        },
        "response.output_audio_transcript.delta" | "response.audio_transcript.delta" => {
            const E: &str = "response.output_audio_transcript.delta";
            Inbound::OutputTranscriptDelta {
                response_id: owned(raw.response_id).unwrap_or_default(),
                item_id: owned(raw.item_id).unwrap_or_default(),
                text: need(raw.delta, E, "delta")?,
            }
        }
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            const E: &str = "response.output_audio_transcript.done";
            Inbound::OutputTranscriptDone {
                response_id: owned(raw.response_id).unwrap_or_default(),
                item_id: owned(raw.item_id).unwrap_or_default(),
                transcript: need(raw.transcript, E, "transcript")?,
            }
        }
        "conversation.item.input_audio_transcription.delta" => {
            const E: &str = "conversation.item.input_audio_transcription.delta";
            Inbound::InputTranscriptDelta {
                item_id: owned(raw.item_id).unwrap_or_default(),
                text: need(raw.delta, E, "delta")?,
            }
        }
        "conversation.item.input_audio_transcription.completed" => {
            const E: &str = "conversation.item.input_audio_transcription.completed";
            Inbound::InputTranscriptCompleted {
                item_id: owned(raw.item_id).unwrap_or_default(),
                transcript: need(raw.transcript, E, "transcript")?,
            }
        }
        "conversation.item.input_audio_transcription.failed" => Inbound::InputTranscriptFailed {
            message: raw
                .error
                .and_then(|e| e.message)
                .unwrap_or_else(|| "input transcription failed".into()),
        },
        "response.function_call_arguments.done" => {
            const E: &str = "response.function_call_arguments.done";
            Inbound::FunctionCall {
                call_id: need(raw.call_id, E, "call_id")?,
                name: owned(raw.name),
                arguments: need(raw.arguments, E, "arguments")?,
            }
        }
        "response.done" => {
            let r = raw.response.ok_or(DecodeError::Missing {
                event: "response.done",
                field: "response",
            })?;
            let status = status_of(r.status.as_deref());
            Inbound::ResponseDone {
                response_id: r.id,
                status,
                details: r
                    .status_details
                    .filter(|d| !d.is_null())
                    .map(|d| d.to_string().chars().take(512).collect()),
                usage: r.usage.as_ref().map(RawUsage::usage),
            }
        }
        "rate_limits.updated" => Inbound::RateLimits(
            raw.rate_limits
                .unwrap_or_default()
                .into_iter()
                .take(MAX_RATE_LIMITS)
                .map(|r| RateLimit {
                    name: r.name,
                    limit: r.limit,
                    remaining: r.remaining,
                    reset: Duration::try_from_secs_f64(r.reset_seconds).unwrap_or_default(),
                })
                .collect(),
        ),
        "error" => {
            let e = raw.error;
            let kind = e.as_ref().and_then(|e| e.kind.clone());
            let code = e.as_ref().and_then(|e| e.code.clone());
            let msg = e.and_then(|e| e.message).unwrap_or_default();
            let message = match kind {
                Some(k) => format!("{k}: {msg}"),
                None => msg,
            };
            Inbound::Error {
                code,
                message: message.chars().take(1024).collect(),
            }
        }
        other if IGNORED.contains(&other) => Inbound::Ignored,
        other if other.starts_with("mcp_list_tools.") || other.starts_with("response.mcp_call") => {
            Inbound::Ignored
        }
        _ => return Err(DecodeError::Unknown),
    };
    Ok(ev)
}

#[cfg(test)]
mod tests;
