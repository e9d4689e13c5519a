//! Gemini Live wire format (sans-IO): client messages out, server messages in.
//!
//! Owns: the `setup` message, the `realtimeInput` / `clientContent` /
//! `toolResponse` encoders (audio written straight into a caller-owned
//! buffer), and the decoder of server messages into [`Inbound`] items.
//! Conventions per protocols.md §1.2: the client sends lowerCamelCase and one
//! field per `realtimeInput`; server JSON may arrive in text or binary
//! frames; a server message may carry several keys at once, all handled;
//! int64 values are strings.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audio::{AudioChunk, AudioFormat, SampleRate};
use crate::config::{CallMetadata, Sensitivity, SessionConfig, ToolSpec, TurnDetection};
use crate::event::{ModelEvent, TokenSplit, ToolCall, ToolCallId, Usage};

/// The input audio MIME type (16 kHz s16le).
pub const INPUT_MIME: &str = "audio/pcm;rate=16000";

/// The `models/...` form of a model id.
pub fn model_path(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("projects/") {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

/// Converts a JSON Schema's `type` values to Gemini's upper-case schema
/// types (`object` -> `OBJECT`), recursively.
fn gemini_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, val) in m {
                let conv = if k == "type" {
                    match val {
                        Value::String(s) => Value::String(s.to_ascii_uppercase()),
                        other => other.clone(),
                    }
                } else if k == "properties" {
                    match val {
                        Value::Object(props) => Value::Object(
                            props
                                .iter()
                                .map(|(pk, pv)| (pk.clone(), gemini_schema(pv)))
                                .collect(),
                        ),
                        other => other.clone(),
                    }
                } else if k == "items" {
                    gemini_schema(val)
                } else {
                    val.clone()
                };
                out.insert(k.clone(), conv);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Whether a function is declared `behavior: BLOCKING`.
///
/// The google-genai types (`Behavior`, on `FunctionDeclaration`):
/// `BLOCKING` "the system will wait to receive the function response
/// before continuing the conversation"; `NON_BLOCKING` "will not wait ...
/// handle function responses as they become available while maintaining
/// the conversation"; unset keeps the model's default, and on current Live
/// models every call is non-blocking by default (Vertex AI, *Asynchronous
/// function calling with the Live API*; *Migrate to Gemini 3.8 Live*:
/// blocking only when declared, and new input during a blocking call
/// cancels it). So each tool declares what it needs: `end_call` and
/// `transfer_call` are BLOCKING (the model must not talk on while the call
/// ends or moves); HTTP tools and `collect_digits` are NON_BLOCKING, so a
/// prompt filler can be spoken and the caller can talk while a tool runs
/// or digits are typed (a blocking `collect_digits` would be cancelled by
/// the caller's first sound).
pub fn blocking(name: &str) -> bool {
    crate::tools::is_builtin(name)
}

fn function_declaration(t: &ToolSpec) -> Value {
    let behavior = if blocking(&t.name) {
        "BLOCKING"
    } else {
        "NON_BLOCKING"
    };
    json!({"name": t.name, "description": t.description,
           "parameters": gemini_schema(&t.parameters), "behavior": behavior})
}

fn sensitivity(s: Sensitivity, start: bool) -> Option<&'static str> {
    match (s, start) {
        (Sensitivity::Default, _) => None,
        (Sensitivity::High, true) => Some("START_SENSITIVITY_HIGH"),
        (Sensitivity::Low, true) => Some("START_SENSITIVITY_LOW"),
        (Sensitivity::High, false) => Some("END_SENSITIVITY_HIGH"),
        (Sensitivity::Low, false) => Some("END_SENSITIVITY_LOW"),
    }
}

/// The `setup` message (protocols.md §1.3). `resume` carries the latest
/// session resumption handle when reconnecting.
pub fn setup_message(
    config: &SessionConfig,
    metadata: &CallMetadata,
    resume: Option<&str>,
) -> String {
    let mut speech = Map::new();
    if let Some(voice) = &config.voice {
        speech.insert(
            "voiceConfig".into(),
            json!({"prebuiltVoiceConfig": {"voiceName": voice}}),
        );
    }
    if let Some(lang) = &config.transcription.language {
        speech.insert("languageCode".into(), json!(lang));
    }
    let mut generation = Map::new();
    generation.insert("responseModalities".into(), json!(["AUDIO"]));
    if !speech.is_empty() {
        generation.insert("speechConfig".into(), Value::Object(speech));
    }

    let mut setup = Map::new();
    setup.insert("model".into(), json!(model_path(&config.model)));
    setup.insert("generationConfig".into(), Value::Object(generation));
    let instructions = metadata.instructions_with_context(&config.instructions);
    if !instructions.is_empty() {
        setup.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": instructions}]}),
        );
    }
    let tools = crate::tools::all_specs(
        &config.tools,
        config.builtin_tools,
        &config.transfer_targets,
    );
    if !tools.is_empty() {
        let decls: Vec<Value> = tools.iter().map(function_declaration).collect();
        setup.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    let realtime = match &config.turn_detection {
        TurnDetection::Server {
            start_sensitivity,
            end_sensitivity,
            prefix_padding,
            silence_duration,
            interrupt_response,
        } => {
            let mut aad = Map::new();
            aad.insert("disabled".into(), json!(false));
            if let Some(s) = sensitivity(*start_sensitivity, true) {
                aad.insert("startOfSpeechSensitivity".into(), json!(s));
            }
            if let Some(s) = sensitivity(*end_sensitivity, false) {
                aad.insert("endOfSpeechSensitivity".into(), json!(s));
            }
            aad.insert(
                "prefixPaddingMs".into(),
                json!(prefix_padding.as_millis() as u64),
            );
            aad.insert(
                "silenceDurationMs".into(),
                json!(silence_duration.as_millis() as u64),
            );
            let handling = if *interrupt_response {
                "START_OF_ACTIVITY_INTERRUPTS"
            } else {
                "NO_INTERRUPTION"
            };
            json!({"automaticActivityDetection": aad, "activityHandling": handling})
        }
        TurnDetection::Manual => json!({
            "automaticActivityDetection": {"disabled": true},
            "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"
        }),
    };
    setup.insert("realtimeInputConfig".into(), realtime);
    if config.transcription.input {
        setup.insert("inputAudioTranscription".into(), json!({}));
    }
    if config.transcription.output {
        setup.insert("outputAudioTranscription".into(), json!({}));
    }
    // `transparent`: every `sessionResumptionUpdate` says which client
    // message it includes (`lastConsumedClientMessageIndex`), so what was
    // sent after it can be replayed on a resumed connection.
    let resumption = match resume {
        Some(h) => json!({"handle": h, "transparent": true}),
        None => json!({"transparent": true}),
    };
    setup.insert("sessionResumption".into(), resumption);
    setup.insert(
        "contextWindowCompression".into(),
        json!({"slidingWindow": {}}),
    );
    json!({"setup": setup}).to_string()
}

const AUDIO_PREFIX: &[u8] =
    b"{\"realtimeInput\":{\"audio\":{\"mimeType\":\"audio/pcm;rate=16000\",\"data\":\"";
const AUDIO_SUFFIX: &[u8] = b"\"}}}";

/// Length of the `realtimeInput.audio` message of `pcm_len` bytes of audio
/// (what [`encode_audio_into`] appends).
pub fn audio_message_len(pcm_len: usize) -> usize {
    AUDIO_PREFIX.len() + base64::encoded_len(pcm_len, true).unwrap_or(0) + AUDIO_SUFFIX.len()
}

/// Encodes one chunk of 16 kHz s16le audio as a `realtimeInput.audio`
/// message, appended to `out` (no allocation when `out` has room).
pub fn encode_audio_into(pcm: &[u8], out: &mut BytesMut) {
    let b64_len = base64::encoded_len(pcm.len(), true).unwrap_or(0);
    out.reserve(audio_message_len(pcm.len()));
    out.put_slice(AUDIO_PREFIX);
    let start = out.len();
    out.resize(start + b64_len, 0);
    // The slice is exactly encoded_len long, so encoding cannot run out of room.
    let written = B64.encode_slice(pcm, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.put_slice(AUDIO_SUFFIX);
}

/// `realtimeInput.text`: user text (also DTMF digits as text).
pub fn text_message(text: &str) -> String {
    json!({"realtimeInput": {"text": text}}).to_string()
}

/// `clientContent` with one complete user turn (starts generation; used for
/// the greeting prompt).
pub fn user_turn_message(text: &str) -> String {
    json!({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": true}})
        .to_string()
}

/// `realtimeInput.audioStreamEnd`.
pub fn audio_stream_end_message() -> &'static str {
    r#"{"realtimeInput":{"audioStreamEnd":true}}"#
}

/// `realtimeInput.activityStart` (manual turn detection only).
pub fn activity_start_message() -> &'static str {
    r#"{"realtimeInput":{"activityStart":{}}}"#
}

/// `realtimeInput.activityEnd` (manual turn detection only).
pub fn activity_end_message() -> &'static str {
    r#"{"realtimeInput":{"activityEnd":{}}}"#
}

/// `toolResponse` for one call (`response.output` or `response.error`).
///
/// A response to a NON_BLOCKING call carries `scheduling: WHEN_IDLE`
/// ("add the result to the conversation context, and prompt to generate
/// output without interrupting ongoing generation": a filler sentence is
/// finished, then the answer spoken). The types say `scheduling` is "only
/// applicable to NON_BLOCKING function calls, is ignored otherwise.
/// Defaults to WHEN_IDLE"; it is sent anyway, so the choice does not
/// rest on a default, and left out for BLOCKING ones.
pub fn tool_response_message(id: &str, name: &str, result: &crate::session::ToolResult) -> String {
    let response = match result {
        crate::session::ToolResult::Ok(v) => json!({"output": v}),
        crate::session::ToolResult::Err(e) => json!({"error": e}),
    };
    let mut fr = json!({"id": id, "name": name, "response": response});
    if !blocking(name)
        && let Some(m) = fr.as_object_mut()
    {
        m.insert("scheduling".into(), json!("WHEN_IDLE"));
    }
    json!({"toolResponse": {"functionResponses": [fr]}}).to_string()
}

// ---- server -> client ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServerMessage<'a> {
    setup_complete: Option<Value>,
    #[serde(borrow)]
    server_content: Option<ServerContent<'a>>,
    tool_call: Option<ToolCallMsg>,
    tool_call_cancellation: Option<ToolCallCancellation>,
    go_away: Option<GoAway>,
    session_resumption_update: Option<ResumptionUpdate>,
    usage_metadata: Option<UsageMetadata>,
    voice_activity: Option<Value>,
}

impl ServerMessage<'_> {
    fn has_known_key(&self) -> bool {
        self.setup_complete.is_some()
            || self.server_content.is_some()
            || self.tool_call.is_some()
            || self.tool_call_cancellation.is_some()
            || self.go_away.is_some()
            || self.session_resumption_update.is_some()
            || self.usage_metadata.is_some()
            || self.voice_activity.is_some()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServerContent<'a> {
    #[serde(borrow)]
    model_turn: Option<Content<'a>>,
    #[serde(default)]
    interrupted: bool,
    #[serde(default)]
    generation_complete: bool,
    #[serde(default)]
    turn_complete: bool,
    input_transcription: Option<Transcript>,
    output_transcription: Option<Transcript>,
}

#[derive(Deserialize, Default)]
struct Content<'a> {
    #[serde(default, borrow)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow)]
    inline_data: Option<Blob<'a>>,
}

/// Borrowed from the frame when the JSON string has no escapes (base64
/// never does), so audio is decoded straight from the payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    #[serde(default, borrow)]
    mime_type: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Transcript {
    #[serde(default)]
    text: String,
    #[serde(default)]
    finished: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolCallMsg {
    #[serde(default)]
    function_calls: Vec<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: String,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
struct ToolCallCancellation {
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoAway {
    time_left: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResumptionUpdate {
    new_handle: Option<String>,
    #[serde(default)]
    resumable: bool,
    /// An int64: a JSON string in proto3 JSON, a number from some servers.
    last_consumed_client_message_index: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default, alias = "candidatesTokenCount")]
    response_token_count: u64,
    #[serde(default)]
    total_token_count: u64,
    /// `ModalityTokenCount`s of the prompt (`TEXT`, `AUDIO`, ...).
    #[serde(default)]
    prompt_tokens_details: Option<Vec<ModalityTokenCount>>,
    /// `ModalityTokenCount`s of the response.
    #[serde(default, alias = "candidatesTokensDetails")]
    response_tokens_details: Option<Vec<ModalityTokenCount>>,
}

/// One `ModalityTokenCount` of a `usageMetadata` (token usage, issue 22).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModalityTokenCount {
    modality: String,
    #[serde(default)]
    token_count: u64,
}

impl UsageMetadata {
    /// The provider-neutral usage; the split only when both directions
    /// came with their modality details.
    fn usage(&self) -> Usage {
        let split = match (&self.prompt_tokens_details, &self.response_tokens_details) {
            (Some(p), Some(r)) => {
                let (input_audio, input_text) = by_modality(p);
                let (output_audio, output_text) = by_modality(r);
                Some(TokenSplit {
                    input_audio,
                    input_text,
                    output_audio,
                    output_text,
                })
            }
            _ => None,
        };
        Usage {
            input_tokens: self.prompt_token_count,
            output_tokens: self.response_token_count,
            total_tokens: self.total_token_count,
            split,
        }
    }
}

/// `(audio, text)` tokens of a modality list (image and video tokens,
/// which a phone call does not send, are in neither).
fn by_modality(counts: &[ModalityTokenCount]) -> (u64, u64) {
    counts
        .iter()
        .fold((0u64, 0u64), |(a, t), c| match c.modality.as_str() {
            "AUDIO" => (a.saturating_add(c.token_count), t),
            "TEXT" => (a, t.saturating_add(c.token_count)),
            _ => (a, t),
        })
}

/// One thing a server message said, in the order it must be handled.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `setupComplete`.
    SetupComplete,
    /// A provider-neutral event to report (audio, transcripts, tool calls...).
    Event(ModelEvent),
    /// `goAway` with the time left, if parseable.
    GoAway(Option<Duration>),
    /// `sessionResumptionUpdate`.
    Resumption {
        /// The new handle (absent or empty while not resumable).
        handle: Option<String>,
        /// Whether the session can be resumed at this point.
        resumable: bool,
        /// The index of the last client message on this connection that
        /// the state of `handle` includes (transparent resumption).
        last_consumed: Option<u64>,
    },
}

/// Why a server message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not UTF-8 JSON of the expected shape.
    #[error("malformed server message: {0}")]
    Json(String),
    /// An `inlineData` payload is not valid base64.
    #[error("invalid base64 in inlineData")]
    Base64,
    /// A JSON object with none of the known keys.
    #[error("server message with no known key")]
    Unknown,
}

/// Parses a duration like `"50s"` or `"1.5s"` (proto Duration JSON).
pub fn parse_duration(v: &Value) -> Option<Duration> {
    let s = v.as_str()?;
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (0.0..1e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

fn rate_of(mime: &str) -> SampleRate {
    mime.split(';')
        .filter_map(|p| p.trim().strip_prefix("rate="))
        .find_map(|r| r.parse::<u32>().ok())
        .filter(|r| (8000..=48000).contains(r))
        .map(SampleRate::new)
        .unwrap_or(SampleRate::HZ_24000)
}

/// Decodes one server message (text or binary frame payload), appending
/// what it says to `out` in handling order: setup, content (audio, then
/// transcripts, interrupted, generation/turn complete), tool calls, usage,
/// resumption, go-away.
/// On error nothing is appended.
pub fn decode_server_message(payload: &[u8], out: &mut Vec<Inbound>) -> Result<(), DecodeError> {
    let start = out.len();
    let r = decode_into(payload, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn decode_into(payload: &[u8], out: &mut Vec<Inbound>) -> Result<(), DecodeError> {
    let msg: ServerMessage<'_> =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    if !msg.has_known_key() {
        return Err(DecodeError::Unknown);
    }
    if msg.setup_complete.is_some() {
        out.push(Inbound::SetupComplete);
    }
    if let Some(sc) = msg.server_content {
        if let Some(turn) = sc.model_turn {
            for part in turn.parts {
                if let Some(blob) = part.inline_data {
                    if !blob.mime_type.starts_with("audio/pcm") {
                        continue;
                    }
                    // Either alphabet, padded or not: the SDK's own types
                    // serialise bytes as URL-safe base64.
                    let data =
                        crate::b64::decode_any(blob.data.as_bytes()).ok_or(DecodeError::Base64)?;
                    out.push(Inbound::Event(ModelEvent::Audio(AudioChunk {
                        format: AudioFormat::Pcm16 {
                            rate: rate_of(&blob.mime_type),
                        },
                        data: Bytes::from(data),
                    })));
                }
            }
        }
        if let Some(t) = sc.input_transcription {
            out.push(Inbound::Event(ModelEvent::InputTranscript {
                text: t.text,
                finished: t.finished,
            }));
        }
        if let Some(t) = sc.output_transcription {
            out.push(Inbound::Event(ModelEvent::OutputTranscript {
                text: t.text,
                finished: t.finished,
            }));
        }
        if sc.interrupted {
            out.push(Inbound::Event(ModelEvent::Interrupted));
        }
        if sc.generation_complete {
            out.push(Inbound::Event(ModelEvent::GenerationComplete));
        }
        if sc.turn_complete {
            out.push(Inbound::Event(ModelEvent::TurnComplete));
        }
    }
    if let Some(tc) = msg.tool_call {
        for fc in tc.function_calls {
            let args = match fc.args {
                Some(v @ Value::Object(_)) => v,
                _ => json!({}),
            };
            out.push(Inbound::Event(ModelEvent::ToolCall(ToolCall {
                id: ToolCallId(fc.id),
                name: fc.name,
                args,
            })));
        }
    }
    if let Some(c) = msg.tool_call_cancellation {
        out.push(Inbound::Event(ModelEvent::ToolCallCancelled {
            ids: c.ids.into_iter().map(ToolCallId).collect(),
        }));
    }
    if let Some(u) = msg.usage_metadata {
        out.push(Inbound::Event(ModelEvent::Usage(u.usage())));
    }
    if let Some(r) = msg.session_resumption_update {
        let last_consumed = match &r.last_consumed_client_message_index {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        out.push(Inbound::Resumption {
            handle: r.new_handle.filter(|h| !h.is_empty()),
            resumable: r.resumable,
            last_consumed,
        });
    }
    if let Some(g) = msg.go_away {
        out.push(Inbound::GoAway(
            g.time_left.as_ref().and_then(parse_duration),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
