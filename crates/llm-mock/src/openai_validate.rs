//! Strict validation of what an OpenAI Realtime (GA) client sends
//! (protocols.md §2.3-2.4), written independently of the client's encoder
//! so that a client bug is not mirrored here.
//!
//! Owns: [`ClientEvent`] and [`parse_client_event`]. Rules: every event is
//! an object with a known client `type` and an optional `event_id`; unknown
//! fields anywhere are errors (GA rejects beta-named fields such as
//! `input_audio_format`, `modalities` or `temperature`); required fields
//! must be present with the right types; `session.type` is `realtime`;
//! audio formats are `audio/pcm` (rate 24000), `audio/pcmu` or
//! `audio/pcma`; appended audio is base64 (an even byte count for PCM).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use callbridge_llm_bridge::audio::AudioFormat;

use super::validate::{R, obj, opt_kind, opt_string, string, uint};

/// A validated client event.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `session.update`.
    SessionUpdate(SessionInfo),
    /// `input_audio_buffer.append`, decoded bytes (in the session's input format).
    Append(Vec<u8>),
    /// `input_audio_buffer.commit`.
    Commit,
    /// `input_audio_buffer.clear`.
    Clear,
    /// `conversation.item.create` with a message (role, joined text).
    Message {
        /// `user`, `system` or `assistant`.
        role: String,
        /// All text parts joined.
        text: String,
    },
    /// `conversation.item.create` with a `function_call_output`.
    FunctionOutput {
        /// The call answered.
        call_id: String,
        /// The output string.
        output: String,
    },
    /// `conversation.item.truncate`.
    Truncate {
        /// The assistant item.
        item_id: String,
        /// Audio the caller heard.
        audio_end_ms: u64,
    },
    /// `conversation.item.delete` / `conversation.item.retrieve`.
    ItemOther,
    /// `response.create`.
    ResponseCreate,
    /// `response.cancel`, with the response id if given.
    ResponseCancel(Option<String>),
}

/// What the mock needs to know from a `session.update` (fields absent from
/// the update are `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionInfo {
    /// `session.model`.
    pub model: Option<String>,
    /// `session.instructions`.
    pub instructions: Option<String>,
    /// `audio.input.format`.
    pub input_format: Option<AudioFormat>,
    /// `audio.output.format`.
    pub output_format: Option<AudioFormat>,
    /// `audio.input.turn_detection`: `Some(None)` is `null` (manual turns),
    /// `Some(Some(interrupt_response))` is VAD.
    pub turn_detection: Option<Option<bool>>,
    /// Whether `audio.input.transcription` was set.
    pub transcription: Option<bool>,
    /// `audio.input.transcription.model`.
    pub transcription_model: Option<String>,
    /// `audio.input.turn_detection` as sent (validated).
    pub turn_detection_json: Option<Value>,
    /// `audio.input.noise_reduction`: `Some(None)` is `null` (off),
    /// `Some(Some(type))` is `near_field` or `far_field`.
    pub noise_reduction: Option<Option<String>>,
    /// `audio.output.voice`.
    pub voice: Option<String>,
    /// Declared function names.
    pub tools: Option<Vec<String>>,
}

fn format(v: &Value, path: &str) -> R<AudioFormat> {
    let m = obj(v, path, &["type", "rate"], &["type"])?;
    match string(m, "type", path)? {
        "audio/pcm" => {
            if let Some(r) = m.get("rate")
                && r.as_u64() != Some(24000)
            {
                return Err(format!("{path}.rate: audio/pcm is 24000 Hz only"));
            }
            Ok(AudioFormat::PCM_24K)
        }
        "audio/pcmu" if !m.contains_key("rate") => Ok(AudioFormat::Pcmu),
        "audio/pcma" if !m.contains_key("rate") => Ok(AudioFormat::Pcma),
        other => Err(format!("{path}.type: unknown audio format `{other}`")),
    }
}

fn turn_detection(v: &Value, path: &str) -> R<Option<bool>> {
    if v.is_null() {
        return Ok(None);
    }
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{path}.type: required"))?;
    let m = match kind {
        "server_vad" => obj(
            v,
            path,
            &[
                "type",
                "threshold",
                "prefix_padding_ms",
                "silence_duration_ms",
                "create_response",
                "interrupt_response",
                "idle_timeout_ms",
            ],
            &["type"],
        )?,
        "semantic_vad" => obj(
            v,
            path,
            &["type", "eagerness", "create_response", "interrupt_response"],
            &["type"],
        )?,
        other => return Err(format!("{path}.type: unknown turn detection `{other}`")),
    };
    if let Some(t) = m.get("threshold") {
        match t.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => {}
            _ => return Err(format!("{path}.threshold: expected 0..=1")),
        }
    }
    if let Some(e) = m.get("eagerness") {
        match e.as_str() {
            Some("low" | "medium" | "high" | "auto") => {}
            _ => {
                return Err(format!(
                    "{path}.eagerness: expected `low`, `medium`, `high` or `auto`"
                ));
            }
        }
    }
    if let Some(t) = m.get("idle_timeout_ms")
        && !t.is_null()
        && !t.as_u64().is_some_and(|ms| (5_000..=30_000).contains(&ms))
    {
        return Err(format!("{path}.idle_timeout_ms: expected 5000..=30000"));
    }
    for k in ["prefix_padding_ms", "silence_duration_ms"] {
        opt_kind(m, k, path, Value::is_u64)?;
    }
    for k in ["create_response", "interrupt_response"] {
        opt_kind(m, k, path, Value::is_boolean)?;
    }
    Ok(Some(
        m.get("interrupt_response")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    ))
}

/// `null` (off) or `{"type": "near_field" | "far_field"}`.
fn noise_reduction(v: &Value) -> R<Option<String>> {
    if v.is_null() {
        return Ok(None);
    }
    let path = "session.audio.input.noise_reduction";
    let m = obj(v, path, &["type"], &["type"])?;
    match string(m, "type", path)? {
        t @ ("near_field" | "far_field") => Ok(Some(t.to_owned())),
        other => Err(format!(
            "{path}.type: expected `near_field` or `far_field`, not `{other}`"
        )),
    }
}

fn tools(v: &Value, path: &str) -> R<Vec<String>> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{path}: expected an array"))?;
    let mut names = Vec::with_capacity(arr.len());
    for (i, t) in arr.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let m = obj(
            t,
            &p,
            &["type", "name", "description", "parameters"],
            &["type", "name"],
        )?;
        if string(m, "type", &p)? != "function" {
            return Err(format!("{p}.type: only `function` tools are used"));
        }
        let name = string(m, "name", &p)?;
        if name.is_empty() || name.len() > 64 {
            return Err(format!("{p}.name: 1-64 characters"));
        }
        opt_kind(m, "description", &p, Value::is_string)?;
        if let Some(params) = m.get("parameters")
            && params.get("type").and_then(Value::as_str) != Some("object")
        {
            return Err(format!("{p}.parameters: expected an object schema"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn session_update(v: &Value) -> R<SessionInfo> {
    let p = "session";
    let m = obj(
        v,
        p,
        &[
            "type",
            "model",
            "instructions",
            "output_modalities",
            "audio",
            "tools",
            "tool_choice",
            "max_output_tokens",
            "truncation",
            "tracing",
            "include",
            "prompt",
        ],
        &["type"],
    )?;
    if string(m, "type", p)? != "realtime" {
        return Err("session.type: expected `realtime`".into());
    }
    let mut info = SessionInfo {
        model: opt_string(m, "model", p)?,
        instructions: opt_string(m, "instructions", p)?,
        ..Default::default()
    };
    if let Some(om) = m.get("output_modalities")
        && *om != serde_json::json!(["audio"])
        && *om != serde_json::json!(["text"])
    {
        return Err("session.output_modalities: [\"audio\"] or [\"text\"]".into());
    }
    if let Some(tc) = m.get("tool_choice")
        && !(tc.is_string() || tc.is_object())
    {
        return Err("session.tool_choice: wrong type".into());
    }
    if let Some(t) = m.get("tools") {
        info.tools = Some(tools(t, "session.tools")?);
    }
    if let Some(audio) = m.get("audio") {
        let a = obj(audio, "session.audio", &["input", "output"], &[])?;
        if let Some(input) = a.get("input") {
            let p = "session.audio.input";
            let i = obj(
                input,
                p,
                &[
                    "format",
                    "turn_detection",
                    "transcription",
                    "noise_reduction",
                ],
                &[],
            )?;
            if let Some(f) = i.get("format") {
                info.input_format = Some(format(f, "session.audio.input.format")?);
            }
            if let Some(td) = i.get("turn_detection") {
                info.turn_detection =
                    Some(turn_detection(td, "session.audio.input.turn_detection")?);
                info.turn_detection_json = Some(td.clone());
            }
            if let Some(nr) = i.get("noise_reduction") {
                info.noise_reduction = Some(noise_reduction(nr)?);
            }
            if let Some(t) = i.get("transcription") {
                if t.is_null() {
                    info.transcription = Some(false);
                } else {
                    let tm = obj(
                        t,
                        "session.audio.input.transcription",
                        &["model", "language", "prompt"],
                        &[],
                    )?;
                    for k in ["model", "language", "prompt"] {
                        opt_kind(tm, k, "session.audio.input.transcription", Value::is_string)?;
                    }
                    info.transcription_model =
                        opt_string(tm, "model", "session.audio.input.transcription")?;
                    info.transcription = Some(true);
                }
            }
        }
        if let Some(output) = a.get("output") {
            let p = "session.audio.output";
            let o = obj(output, p, &["format", "voice", "speed"], &[])?;
            if let Some(f) = o.get("format") {
                info.output_format = Some(format(f, "session.audio.output.format")?);
            }
            info.voice = opt_string(o, "voice", p)?;
            opt_kind(o, "speed", p, Value::is_number)?;
        }
    }
    Ok(info)
}

fn item(v: &Value) -> R<ClientEvent> {
    let p = "item";
    match v.get("type").and_then(Value::as_str) {
        Some("message") => {
            let m = obj(
                v,
                p,
                &["type", "id", "role", "content"],
                &["type", "role", "content"],
            )?;
            let role = string(m, "role", p)?;
            if !matches!(role, "user" | "system" | "assistant") {
                return Err(format!("item.role: unknown role `{role}`"));
            }
            let parts = m
                .get("content")
                .and_then(Value::as_array)
                .ok_or("item.content: expected an array")?;
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let pp = format!("item.content[{i}]");
                let pm = obj(part, &pp, &["type", "text"], &["type", "text"])?;
                let kind = string(pm, "type", &pp)?;
                let ok = match role {
                    "assistant" => kind == "output_text",
                    _ => kind == "input_text",
                };
                if !ok {
                    return Err(format!("{pp}.type: `{kind}` not allowed for role {role}"));
                }
                text.push_str(string(pm, "text", &pp)?);
            }
            Ok(ClientEvent::Message {
                role: role.to_owned(),
                text,
            })
        }
        Some("function_call_output") => {
            let m = obj(
                v,
                p,
                &["type", "id", "call_id", "output"],
                &["type", "call_id", "output"],
            )?;
            Ok(ClientEvent::FunctionOutput {
                call_id: string(m, "call_id", p)?.to_owned(),
                output: string(m, "output", p)?.to_owned(),
            })
        }
        Some(other) => Err(format!("item.type: unexpected `{other}`")),
        None => Err("item.type: required".into()),
    }
}

/// Validates one client event.
pub fn parse_client_event(v: &Value, input: AudioFormat) -> R<ClientEvent> {
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or("client event without a string `type`")?;
    if let Some(id) = v.get("event_id")
        && !id.is_string()
    {
        return Err(format!("{kind}.event_id: expected a string"));
    }
    let p = kind;
    match kind {
        "session.update" => {
            let m = obj(v, p, &["type", "event_id", "session"], &["session"])?;
            session_update(&m["session"]).map(ClientEvent::SessionUpdate)
        }
        "input_audio_buffer.append" => {
            let m = obj(v, p, &["type", "event_id", "audio"], &["audio"])?;
            let audio = B64
                .decode(string(m, "audio", p)?)
                .map_err(|e| format!("{p}.audio: invalid base64: {e}"))?;
            if audio.len() % input.bytes_per_sample() != 0 {
                return Err(format!("{p}.audio: odd byte count for 16-bit PCM"));
            }
            Ok(ClientEvent::Append(audio))
        }
        "input_audio_buffer.commit" => {
            obj(v, p, &["type", "event_id"], &[])?;
            Ok(ClientEvent::Commit)
        }
        "input_audio_buffer.clear" => {
            obj(v, p, &["type", "event_id"], &[])?;
            Ok(ClientEvent::Clear)
        }
        "conversation.item.create" => {
            let m = obj(
                v,
                p,
                &["type", "event_id", "item", "previous_item_id"],
                &["item"],
            )?;
            opt_kind(m, "previous_item_id", p, Value::is_string)?;
            item(&m["item"])
        }
        "conversation.item.truncate" => {
            let m = obj(
                v,
                p,
                &[
                    "type",
                    "event_id",
                    "item_id",
                    "content_index",
                    "audio_end_ms",
                ],
                &["item_id", "content_index", "audio_end_ms"],
            )?;
            let item_id = string(m, "item_id", p)?.to_owned();
            uint(m, "content_index", p)?;
            Ok(ClientEvent::Truncate {
                item_id,
                audio_end_ms: uint(m, "audio_end_ms", p)?,
            })
        }
        "conversation.item.delete" | "conversation.item.retrieve" => {
            let m = obj(v, p, &["type", "event_id", "item_id"], &["item_id"])?;
            string(m, "item_id", p)?;
            Ok(ClientEvent::ItemOther)
        }
        "response.create" => {
            let m = obj(v, p, &["type", "event_id", "response"], &[])?;
            if let Some(r) = m.get("response") {
                obj(
                    r,
                    "response",
                    &[
                        "instructions",
                        "output_modalities",
                        "conversation",
                        "metadata",
                        "tool_choice",
                        "tools",
                        "max_output_tokens",
                        "input",
                        "audio",
                        "prompt",
                    ],
                    &[],
                )?;
            }
            Ok(ClientEvent::ResponseCreate)
        }
        "response.cancel" => {
            let m = obj(v, p, &["type", "event_id", "response_id"], &[])?;
            Ok(ClientEvent::ResponseCancel(opt_string(
                m,
                "response_id",
                p,
            )?))
        }
        other => Err(format!("unknown client event type `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_documented_ga_session_update() {
        let v = json!({"type": "session.update", "session": {
          "type": "realtime", "model": "gpt-realtime", "instructions": "hi",
          "output_modalities": ["audio"],
          "audio": {
            "input": {"format": {"type": "audio/pcmu"},
                      "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                         "silence_duration_ms": 500, "create_response": true, "interrupt_response": true},
                      "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                      "noise_reduction": {"type": "near_field"}},
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}},
          "tools": [{"type": "function", "name": "transfer_call", "description": "x",
                     "parameters": {"type": "object", "properties": {}}}],
          "tool_choice": "auto", "max_output_tokens": "inf"}});
        let ClientEvent::SessionUpdate(info) = parse_client_event(&v, AudioFormat::Pcmu).unwrap()
        else {
            panic!("not a session update");
        };
        assert_eq!(info.input_format, Some(AudioFormat::Pcmu));
        assert_eq!(info.turn_detection, Some(Some(true)));
        assert_eq!(info.tools.unwrap(), ["transfer_call"]);
    }

    #[test]
    fn rejects_beta_fields_unknown_types_and_missing_fields() {
        let beta = json!({"type": "session.update", "session": {"type": "realtime",
            "input_audio_format": "g711_ulaw"}});
        assert!(parse_client_event(&beta, AudioFormat::Pcmu).is_err());
        let no_type = json!({"type": "session.update", "session": {"instructions": "x"}});
        assert!(parse_client_event(&no_type, AudioFormat::Pcmu).is_err());
        let unknown = json!({"type": "input_audio_buffer.flush"});
        assert!(parse_client_event(&unknown, AudioFormat::Pcmu).is_err());
        let trunc =
            json!({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 5});
        assert!(parse_client_event(&trunc, AudioFormat::Pcmu).is_err());
        let pcm16k = json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}});
        assert!(parse_client_event(&pcm16k, AudioFormat::Pcmu).is_err());
    }

    /// The input tuning is held to the API's values: `eagerness` from its
    /// four, `idle_timeout_ms` 5-30 s and only for `server_vad`, noise
    /// reduction `near_field`, `far_field` or `null`.
    #[test]
    fn rejects_tuning_the_api_would_refuse() {
        let update = |input: Value| {
            json!({"type": "session.update", "session": {"type": "realtime",
                "audio": {"input": input}}})
        };
        let ok = |input: Value| parse_client_event(&update(input), AudioFormat::Pcmu).is_ok();
        assert!(ok(
            json!({"turn_detection": {"type": "semantic_vad", "eagerness": "low"}})
        ));
        assert!(!ok(
            json!({"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}})
        ));
        assert!(!ok(
            json!({"turn_detection": {"type": "semantic_vad", "idle_timeout_ms": 6000}})
        ));
        assert!(ok(
            json!({"turn_detection": {"type": "server_vad", "idle_timeout_ms": 6000}})
        ));
        assert!(!ok(
            json!({"turn_detection": {"type": "server_vad", "idle_timeout_ms": 1000}})
        ));
        assert!(!ok(
            json!({"turn_detection": {"type": "server_vad", "threshold": 1.2}})
        ));
        assert!(ok(json!({"noise_reduction": null})));
        assert!(ok(json!({"noise_reduction": {"type": "far_field"}})));
        assert!(!ok(json!({"noise_reduction": {"type": "off"}})));
        assert!(!ok(json!({"noise_reduction": "near_field"})));
        let ClientEvent::SessionUpdate(info) = parse_client_event(
            &update(json!({"noise_reduction": {"type": "near_field"},
                "transcription": {"model": "gpt-4o-transcribe"}})),
            AudioFormat::Pcmu,
        )
        .unwrap() else {
            panic!("not a session update");
        };
        assert_eq!(info.noise_reduction, Some(Some("near_field".into())));
        assert_eq!(
            info.transcription_model.as_deref(),
            Some("gpt-4o-transcribe")
        );
    }

    #[test]
    fn decodes_appended_audio_and_rejects_odd_pcm() {
        let v = json!({"type": "input_audio_buffer.append", "audio": B64.encode([1u8, 2, 3])});
        assert_eq!(
            parse_client_event(&v, AudioFormat::Pcmu).unwrap(),
            ClientEvent::Append(vec![1, 2, 3])
        );
        assert!(parse_client_event(&v, AudioFormat::PCM_24K).is_err());
    }
}
