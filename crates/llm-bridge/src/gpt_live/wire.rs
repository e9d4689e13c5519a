//! OpenAI GPT-Live wire format (sans-IO): typed client events out, server
//! events in. The contract and its sources: `docs/providers/gpt-live.md`.
//!
//! Owns: the client events as strict serde types ([`ClientEvent`] and the
//! session object [`SessionObject`], `deny_unknown_fields` like the real
//! server: the mock validates what clients send with these same types),
//! the hot-path `session.input_audio.append` encoder (written straight
//! into a caller-owned buffer), the builders of every event the bridge
//! sends, and the decoder of server events into [`Inbound`] items.
//! Unknown fields in known *server* events are tolerated (the server may
//! grow); unknown event types are reported as [`DecodeError::Unknown`].

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audio::{AudioFormat, SampleRate};
use crate::session::ToolResult;

// ---- the session object (client → server, strict) ----

/// `session.audio.format`: one format for audio both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum FormatWire {
    /// Raw mono PCM16LE at 16000 or 24000 Hz.
    #[serde(rename = "audio/pcm")]
    Pcm {
        /// Sample rate in hertz.
        rate: u32,
    },
    /// G.711 µ-law at 8000 Hz.
    #[serde(rename = "audio/pcmu")]
    Pcmu {
        /// Sample rate in hertz (8000).
        rate: u32,
    },
    /// G.711 A-law at 8000 Hz.
    #[serde(rename = "audio/pcma")]
    Pcma {
        /// Sample rate in hertz (8000).
        rate: u32,
    },
}

impl FormatWire {
    /// The wire format of `format`; `None` for formats GPT-Live does not
    /// take (PCM other than 16 or 24 kHz).
    pub fn of(format: AudioFormat) -> Option<FormatWire> {
        match format {
            AudioFormat::Pcmu => Some(FormatWire::Pcmu { rate: 8000 }),
            AudioFormat::Pcma => Some(FormatWire::Pcma { rate: 8000 }),
            AudioFormat::Pcm16 { rate } if matches!(rate.hz(), 16000 | 24000) => {
                Some(FormatWire::Pcm { rate: rate.hz() })
            }
            AudioFormat::Pcm16 { .. } => None,
        }
    }

    /// The audio format it names; `None` for a rate the service refuses
    /// (G.711 other than 8000 Hz, PCM other than 16 or 24 kHz).
    pub fn format(self) -> Option<AudioFormat> {
        match self {
            FormatWire::Pcmu { rate: 8000 } => Some(AudioFormat::Pcmu),
            FormatWire::Pcma { rate: 8000 } => Some(AudioFormat::Pcma),
            FormatWire::Pcm {
                rate: r @ (16000 | 24000),
            } => Some(AudioFormat::Pcm16 {
                rate: SampleRate::new(r),
            }),
            _ => None,
        }
    }
}

/// A voice: a built-in name or a custom voice `{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Voice {
    /// A built-in voice name (`marin`, ...).
    Name(String),
    /// A custom voice.
    Custom {
        /// Its id.
        id: String,
    },
}

/// `session.audio.output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AudioOutput {
    /// The voice (default `marin`; immutable after start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
}

/// `session.audio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// The format both ways (WebSocket only; immutable after start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FormatWire>,
    /// The output voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutput>,
}

/// A tool of the Responses backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Tool {
    /// A function the application runs.
    #[serde(rename = "function")]
    Function {
        /// Its name.
        name: String,
        /// What it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// JSON Schema of its arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameters: Option<Value>,
        /// Whether the schema is followed exactly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
    /// The hosted web search.
    #[serde(rename = "web_search")]
    WebSearch {},
}

/// `delegation.responses`: the Responses backend the session delegates to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// The backend model.
    pub model: String,
    /// Backend instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Its tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `auto`, `none`, `required` or a named tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Output token cap per delegated response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Whether several tool calls may come in one response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning settings (passed through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    /// Service tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Text settings (passed through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
}

/// `session.delegation`: who handles delegated work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Delegation {
    /// The application (the default).
    #[serde(rename = "client")]
    Client {},
    /// A Responses backend run by the service.
    #[serde(rename = "responses")]
    Responses {
        /// Its configuration (boxed: the client variant is empty).
        responses: Box<ResponsesConfig>,
    },
}

/// The session object of `session.start` (strict: unknown fields are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionObject {
    /// The Live model (`gpt-live-1`).
    pub model: String,
    /// Conversation instructions (immutable after start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Format and voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Delegation (absent: client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
    /// Text history before start (not sent by the bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<Value>>,
    /// Whether the session is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Frontend capabilities (WebRTC; not sent by the bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Value>,
}

/// `session.update`'s session: only the delegation can change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdate {
    /// The new delegation.
    pub delegation: Delegation,
}

/// The `session.*.append` payload: `delegation_id` is required and nullable.
fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Every client event, strict (what the real server accepts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientEvent {
    /// Starts the session; first, and only once.
    #[serde(rename = "session.start")]
    SessionStart {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// The configuration.
        session: SessionObject,
    },
    /// Changes the delegation.
    #[serde(rename = "session.update")]
    SessionUpdate {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// The change.
        session: SessionUpdate,
    },
    /// Caller audio, base64 in the session format.
    #[serde(rename = "session.input_audio.append")]
    InputAudioAppend {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Base64 audio.
        audio: String,
    },
    /// Mutes the model's input.
    #[serde(rename = "session.input_audio.mute")]
    InputAudioMute {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Unmutes the model's input.
    #[serde(rename = "session.input_audio.unmute")]
    InputAudioUnmute {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Appends instructions (≤ 500 tokens).
    #[serde(rename = "session.instructions.append")]
    InstructionsAppend {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Plain text.
        content: String,
        /// A client delegation's id, or null.
        #[serde(deserialize_with = "required_nullable")]
        delegation_id: Option<String>,
    },
    /// Appends thinking for a delegation.
    #[serde(rename = "session.thinking.append")]
    ThinkingAppend {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Plain text.
        content: String,
        /// A client delegation's id, or null.
        #[serde(deserialize_with = "required_nullable")]
        delegation_id: Option<String>,
    },
    /// Appends commentary for a delegation.
    #[serde(rename = "session.commentary.append")]
    CommentaryAppend {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Plain text.
        content: String,
        /// A client delegation's id, or null.
        #[serde(deserialize_with = "required_nullable")]
        delegation_id: Option<String>,
    },
    /// Adds an item to the Responses backend (Responses delegation only).
    #[serde(rename = "response.item.create")]
    ResponseItemCreate {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// A Responses input item (the bridge sends `function_call_output`).
        item: Value,
    },
    /// Asks the Responses backend to go on (Responses delegation only).
    #[serde(rename = "response.create")]
    ResponseCreate {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Asks the session to close (`session.closed` follows).
    #[serde(rename = "session.close")]
    SessionClose {
        /// Correlation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
}

impl ClientEvent {
    /// The event as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail (string keys, no maps of
        // non-string keys); an empty object is a safe fallback.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// `session.instructions.append` (general context when `delegation_id`
/// is `None`).
pub fn instructions_append(content: &str, delegation_id: Option<&str>) -> String {
    ClientEvent::InstructionsAppend {
        event_id: None,
        content: content.to_owned(),
        delegation_id: delegation_id.map(str::to_owned),
    }
    .to_json()
}

/// `session.commentary.append`: speakable context, the result of a
/// client delegation when `delegation_id` is set.
pub fn commentary_append(content: &str, delegation_id: Option<&str>) -> String {
    ClientEvent::CommentaryAppend {
        event_id: None,
        content: content.to_owned(),
        delegation_id: delegation_id.map(str::to_owned),
    }
    .to_json()
}

/// `session.thinking.append`: silent context (progress of a client
/// delegation when `delegation_id` is set).
pub fn thinking_append(content: &str, delegation_id: Option<&str>) -> String {
    ClientEvent::ThinkingAppend {
        event_id: None,
        content: content.to_owned(),
        delegation_id: delegation_id.map(str::to_owned),
    }
    .to_json()
}

/// The `output` string of a tool result: a JSON string as is, any other
/// value as its JSON text, an error as `{"error": message}`.
pub fn tool_output(result: &ToolResult) -> String {
    match result {
        ToolResult::Ok(Value::String(s)) => s.clone(),
        ToolResult::Ok(v) => v.to_string(),
        ToolResult::Err(e) => serde_json::json!({ "error": e }).to_string(),
    }
}

/// `response.item.create` with a `function_call_output` item.
pub fn function_output(call_id: &str, output: &str) -> String {
    ClientEvent::ResponseItemCreate {
        event_id: None,
        item: serde_json::json!({"type": "function_call_output", "call_id": call_id, "output": output}),
    }
    .to_json()
}

/// `response.create`.
pub const RESPONSE_CREATE: &str = r#"{"type":"response.create"}"#;

/// `session.close`.
pub const SESSION_CLOSE: &str = r#"{"type":"session.close"}"#;

const APPEND_PREFIX: &[u8] = b"{\"type\":\"session.input_audio.append\",\"audio\":\"";
const APPEND_SUFFIX: &[u8] = b"\"}";

/// Length of the `session.input_audio.append` event of `audio_len` bytes.
pub fn audio_message_len(audio_len: usize) -> usize {
    APPEND_PREFIX.len() + base64::encoded_len(audio_len, true).unwrap_or(0) + APPEND_SUFFIX.len()
}

/// Encodes audio in the session format as a `session.input_audio.append`
/// event appended to `out` (standard padded base64; no allocation when
/// `out` has room).
pub fn encode_audio_into(audio: &[u8], out: &mut BytesMut) {
    let b64_len = base64::encoded_len(audio.len(), true).unwrap_or(0);
    out.reserve(audio_message_len(audio.len()));
    out.put_slice(APPEND_PREFIX);
    let start = out.len();
    out.resize(start + b64_len, 0);
    // The slice is exactly encoded_len long: encoding cannot run out of room.
    let written = B64.encode_slice(audio, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.put_slice(APPEND_SUFFIX);
}

/// Decodes base64 in either alphabet (standard or URL-safe), padded or
/// not. The docs do not name the alphabet; accepting both costs nothing
/// and is what proto3-style JSON parsers do.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    crate::b64::decode_any(s)
}

// ---- server → client ----

#[derive(Deserialize)]
struct RawSession {
    id: String,
    #[serde(default)]
    expires_at: Option<i64>,
}

#[derive(Deserialize)]
struct RawDelegation {
    id: String,
    target: String,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Raw {
    #[serde(rename = "session.started")]
    Started { session: RawSession },
    #[serde(rename = "session.output_audio.delta")]
    AudioDelta { delta: String },
    #[serde(rename = "session.input_transcript.delta")]
    InputTranscript {
        delta: String,
        start_ms: u64,
        end_ms: u64,
    },
    #[serde(rename = "session.output_transcript.delta")]
    OutputTranscript {
        delta: String,
        start_ms: u64,
        end_ms: u64,
    },
    #[serde(rename = "session.delegation.created")]
    DelegationCreated { delegation: RawDelegation },
    #[serde(rename = "response.event")]
    ResponseEvent { event: Value },
    #[serde(rename = "error")]
    Error { error: RawError },
    #[serde(rename = "session.closed")]
    Closed { reason: String },
    // Token usage (issue 22): the live session's cumulative audio.
    #[serde(rename = "session.usage.updated")]
    UsageUpdated { usage: RawLiveUsage },
    #[serde(other)]
    Other,
}

/// `session.usage.updated`'s `usage` (`openai.types.live.SessionUsage`):
/// the session's cumulative audio in seconds, a total and not an
/// increment. The live session reports no tokens.
#[derive(Deserialize)]
struct RawLiveUsage {
    seconds: f64,
}

/// The cumulative audio of a `session.usage.updated`; `None` for a value
/// that is not a finite, non-negative number of seconds (bounded to a
/// day: a phone call is shorter).
fn live_audio(u: &RawLiveUsage) -> Option<Duration> {
    (u.seconds.is_finite() && u.seconds >= 0.0)
        .then(|| Duration::from_secs_f64(u.seconds.min(86_400.0)))
}

#[derive(Deserialize)]
struct Tag {
    #[serde(rename = "type")]
    kind: String,
}

/// The nested Responses event of a `response.event` the bridge acts on.
#[derive(Deserialize)]
struct NestedItemDone {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    item: Option<NestedItem>,
}

#[derive(Deserialize)]
struct NestedItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Where the model delegated work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationTarget {
    /// The application.
    Client,
    /// The Responses backend.
    Responses,
}

/// One server event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `session.started`.
    SessionStarted {
        /// The session id.
        session_id: String,
        /// When it expires (Unix seconds), if said.
        expires_at: Option<i64>,
    },
    /// `session.output_audio.delta`: audio in the session format.
    Audio(Bytes),
    /// `session.input_transcript.delta`.
    InputTranscript {
        /// Text fragment.
        text: String,
        /// Start on the session timeline (ms).
        start_ms: u64,
        /// End on the session timeline (ms).
        end_ms: u64,
    },
    /// `session.output_transcript.delta`.
    OutputTranscript {
        /// Text fragment.
        text: String,
        /// Start on the session timeline (ms).
        start_ms: u64,
        /// End on the session timeline (ms).
        end_ms: u64,
    },
    /// `session.delegation.created`.
    DelegationCreated {
        /// Its id.
        delegation_id: String,
        /// Who handles it.
        target: DelegationTarget,
    },
    /// A function call of the Responses backend (`response.event` with a
    /// nested `response.output_item.done` of a `function_call` item).
    FunctionCall {
        /// Answer with it.
        call_id: String,
        /// The function.
        name: String,
        /// JSON text of the arguments.
        arguments: String,
    },
    /// `error`.
    Error {
        /// `error.code`.
        code: Option<String>,
        /// `error.type: error.message`.
        message: String,
    },
    /// `session.closed`.
    Closed {
        /// Why.
        reason: String,
    },
    /// `session.usage.updated`: the session's cumulative billed audio.
    AudioUsage(Duration),
    /// The token usage of one delegated Responses response (a nested
    /// `response.completed`, `response.incomplete` or `response.failed`
    /// whose `response.usage` is set): an increment, one per response.
    DelegationUsage(crate::Usage),
    /// A known event the bridge needs no action for.
    Ignored,
}

/// Why a server event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON of an object with a string `type`, or a known event with
    /// a missing or mistyped field.
    #[error("malformed GPT-Live server event: {0}")]
    Json(String),
    /// Audio that is not base64.
    #[error("invalid base64 in an audio delta")]
    Base64,
    /// An event type this client does not know.
    #[error("unknown GPT-Live server event type")]
    Unknown,
}

/// Known server events the bridge does not act on.
const IGNORED: &[&str] = &[
    "session.updated",
    "session.input_audio.muted",
    "session.input_audio.unmuted",
    "session.instructions.appended",
    "session.thinking.appended",
    "session.commentary.appended",
    "session.input_audio.append",
    "info",
    "transport.dtmf.received",
    "transport.dtmf.send",
    "transport.ringing",
    "transport.answered",
    "transport.failed",
];

/// The Responses API's `ResponseUsage` (`openai.types.responses.
/// ResponseUsage`): `input_tokens`, `output_tokens`, `total_tokens`, and
/// details (cached input, reasoning output) that are parts of those, not
/// additions. No audio/text split: the backend is a text model.
#[derive(Deserialize)]
struct RawResponsesUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// A nested terminal Responses event with its response's usage.
#[derive(Deserialize)]
struct NestedDone {
    response: NestedResponse,
}

#[derive(Deserialize)]
struct NestedResponse {
    #[serde(default)]
    usage: Option<RawResponsesUsage>,
}

/// What a `response.event` carries that the bridge acts on: a function
/// call, or the usage of a finished delegated response.
fn nested_event(event: Value) -> Inbound {
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    ) {
        return match serde_json::from_value::<NestedDone>(event) {
            Ok(NestedDone {
                response: NestedResponse { usage: Some(u) },
            }) => Inbound::DelegationUsage(crate::Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                total_tokens: u
                    .total_tokens
                    .unwrap_or(u.input_tokens.saturating_add(u.output_tokens)),
                split: None,
            }),
            _ => Inbound::Ignored,
        };
    }
    function_call(event)
}

fn function_call(event: Value) -> Inbound {
    let Ok(n) = serde_json::from_value::<NestedItemDone>(event) else {
        return Inbound::Ignored;
    };
    match (n.kind.as_str(), n.item) {
        ("response.output_item.done", Some(item)) if item.kind == "function_call" => {
            match (item.call_id, item.name) {
                (Some(call_id), Some(name)) => Inbound::FunctionCall {
                    call_id,
                    name,
                    arguments: item.arguments.unwrap_or_default(),
                },
                _ => Inbound::Ignored,
            }
        }
        _ => Inbound::Ignored,
    }
}

/// Decodes one server event (a text frame's payload).
pub fn decode_server_event(payload: &[u8]) -> Result<Inbound, DecodeError> {
    let raw = match serde_json::from_slice::<Raw>(payload) {
        Ok(raw) => raw,
        Err(e) => {
            // A known type with a bad field is malformed; anything else
            // (no type at all, not JSON) too.
            return Err(DecodeError::Json(e.to_string()));
        }
    };
    Ok(match raw {
        Raw::Started { session } => Inbound::SessionStarted {
            session_id: session.id,
            expires_at: session.expires_at,
        },
        Raw::AudioDelta { delta } => Inbound::Audio(Bytes::from(
            decode_base64(&delta).ok_or(DecodeError::Base64)?,
        )),
        Raw::InputTranscript {
            delta,
            start_ms,
            end_ms,
        } => Inbound::InputTranscript {
            text: delta,
            start_ms,
            end_ms,
        },
        Raw::OutputTranscript {
            delta,
            start_ms,
            end_ms,
        } => Inbound::OutputTranscript {
            text: delta,
            start_ms,
            end_ms,
        },
        Raw::DelegationCreated { delegation } => Inbound::DelegationCreated {
            target: if delegation.target == "responses" {
                DelegationTarget::Responses
            } else {
                DelegationTarget::Client
            },
            delegation_id: delegation.id,
        },
        Raw::ResponseEvent { event } => nested_event(event),
        Raw::Error { error } => Inbound::Error {
            message: format!(
                "{}: {}",
                error.kind.as_deref().unwrap_or("error"),
                error.message.as_deref().unwrap_or("no message")
            ),
            code: error.code,
        },
        Raw::Closed { reason } => Inbound::Closed { reason },
        Raw::UsageUpdated { usage } => match live_audio(&usage) {
            Some(total) => Inbound::AudioUsage(total),
            None => {
                return Err(DecodeError::Json(
                    "session.usage.updated: usage.seconds is not a duration".into(),
                ));
            }
        },
        Raw::Other => {
            let tag: Tag =
                serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
            if IGNORED.contains(&tag.kind.as_str()) {
                Inbound::Ignored
            } else {
                return Err(DecodeError::Unknown);
            }
        }
    })
}

#[cfg(test)]
mod tests;
