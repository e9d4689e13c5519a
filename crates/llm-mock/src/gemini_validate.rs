//! Strict validation of what a Gemini Live client sends (protocols.md §1.2-1.4),
//! written independently of the client's encoder so that a client bug is
//! not mirrored here.
//!
//! Owns: [`ClientMsg`] and [`parse_client_message`]. Rules: exactly one
//! top-level key among `setup`, `clientContent`, `realtimeInput`,
//! `toolResponse` (camelCase only); unknown fields anywhere are errors;
//! required fields must be present with the right types; `realtimeInput`
//! carries exactly one field; audio is `audio/pcm;rate=16000` base64 of an
//! even number of bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::validate::{R, obj, one_of, opt_bool, opt_uint, string};

/// A validated client message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// `setup`.
    Setup(SetupInfo),
    /// `realtimeInput.audio`, decoded s16le bytes.
    Audio(Vec<u8>),
    /// `realtimeInput.audioStreamEnd`.
    AudioStreamEnd,
    /// `realtimeInput.activityStart`.
    ActivityStart,
    /// `realtimeInput.activityEnd`.
    ActivityEnd,
    /// `realtimeInput.text`.
    Text(String),
    /// `clientContent` (joined text of the turns, and `turnComplete`).
    ClientContent {
        /// All text parts joined.
        text: String,
        /// Whether generation should start.
        turn_complete: bool,
    },
    /// `toolResponse`: (id, name, response) of each function response.
    ToolResponse(Vec<(String, String, Value)>),
}

/// What the mock needs to know from a `setup`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetupInfo {
    /// `models/...`.
    pub model: String,
    /// The resumption handle, when resuming.
    pub resume_handle: Option<String>,
    /// Whether automatic activity detection is disabled (manual turns).
    pub manual_activity: bool,
    /// Declared function names.
    pub functions: Vec<String>,
    /// Those declared `behavior: BLOCKING` (the others are non-blocking,
    /// the Live models' default).
    pub blocking: Vec<String>,
    /// Whether input / output transcription were requested.
    pub transcription: (bool, bool),
    /// System instruction text.
    pub instructions: String,
    /// `sessionResumption.transparent`: updates carry
    /// `lastConsumedClientMessageIndex`.
    pub transparent: bool,
}

fn text_parts(v: &Value, path: &str) -> R<String> {
    let m = obj(v, path, &["role", "parts"], &["parts"])?;
    one_of(m, "role", path, &["user", "model"])?;
    let parts = m
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{path}.parts: expected an array"))?;
    let mut text = String::new();
    for (i, p) in parts.iter().enumerate() {
        let pm = obj(p, &format!("{path}.parts[{i}]"), &["text"], &["text"])?;
        text.push_str(string(pm, "text", path)?);
    }
    Ok(text)
}

const SCHEMA_TYPES: &[&str] = &[
    "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL",
];

fn schema(v: &Value, path: &str) -> R<()> {
    let m = obj(
        v,
        path,
        &[
            "type",
            "description",
            "properties",
            "required",
            "items",
            "enum",
            "format",
            "nullable",
        ],
        &["type"],
    )?;
    one_of(m, "type", path, SCHEMA_TYPES)?;
    if let Some(props) = m.get("properties") {
        let pm = props
            .as_object()
            .ok_or_else(|| format!("{path}.properties: expected an object"))?;
        for (k, p) in pm {
            schema(p, &format!("{path}.properties.{k}"))?;
        }
    }
    if let Some(items) = m.get("items") {
        schema(items, &format!("{path}.items"))?;
    }
    Ok(())
}

fn setup(v: &Value) -> R<SetupInfo> {
    let p = "setup";
    let m = obj(
        v,
        p,
        &[
            "model",
            "generationConfig",
            "systemInstruction",
            "tools",
            "realtimeInputConfig",
            "inputAudioTranscription",
            "outputAudioTranscription",
            "sessionResumption",
            "contextWindowCompression",
            "proactivity",
            "historyConfig",
        ],
        &["model"],
    )?;
    let mut info = SetupInfo {
        model: string(m, "model", p)?.to_owned(),
        ..Default::default()
    };
    if !info.model.starts_with("models/") || info.model.len() <= "models/".len() {
        return Err(format!(
            "setup.model must be models/<id>, got {:?}",
            info.model
        ));
    }
    if let Some(g) = m.get("generationConfig") {
        let gp = "setup.generationConfig";
        let gm = obj(
            g,
            gp,
            &[
                "responseModalities",
                "speechConfig",
                "temperature",
                "topP",
                "topK",
                "maxOutputTokens",
                "thinkingConfig",
                "mediaResolution",
                "enableAffectiveDialog",
            ],
            &[],
        )?;
        if let Some(rm) = gm.get("responseModalities")
            && rm != &serde_json::json!(["AUDIO"])
        {
            return Err(format!(
                "{gp}.responseModalities must be [\"AUDIO\"], got {rm}"
            ));
        }
        if let Some(sc) = gm.get("speechConfig") {
            let sp = format!("{gp}.speechConfig");
            let sm = obj(sc, &sp, &["voiceConfig", "languageCode"], &[])?;
            if let Some(vc) = sm.get("voiceConfig") {
                let vm = obj(
                    vc,
                    &format!("{sp}.voiceConfig"),
                    &["prebuiltVoiceConfig"],
                    &["prebuiltVoiceConfig"],
                )?;
                let pv = vm.get("prebuiltVoiceConfig").unwrap_or(&Value::Null);
                let pm = obj(
                    pv,
                    &format!("{sp}.voiceConfig.prebuiltVoiceConfig"),
                    &["voiceName"],
                    &["voiceName"],
                )?;
                string(pm, "voiceName", &sp)?;
            }
        }
    }
    if let Some(si) = m.get("systemInstruction") {
        info.instructions = text_parts(si, "setup.systemInstruction")?;
    }
    if let Some(tools) = m.get("tools") {
        let arr = tools.as_array().ok_or("setup.tools: expected an array")?;
        for (i, t) in arr.iter().enumerate() {
            let tp = format!("setup.tools[{i}]");
            let tm = obj(
                t,
                &tp,
                &["functionDeclarations", "googleSearch", "codeExecution"],
                &[],
            )?;
            if let Some(fd) = tm.get("functionDeclarations") {
                let fds = fd
                    .as_array()
                    .ok_or_else(|| format!("{tp}.functionDeclarations: expected an array"))?;
                for (j, f) in fds.iter().enumerate() {
                    let fp = format!("{tp}.functionDeclarations[{j}]");
                    let fm = obj(
                        f,
                        &fp,
                        &["name", "description", "parameters", "behavior"],
                        &["name"],
                    )?;
                    let name = string(fm, "name", &fp)?.to_owned();
                    // google-genai `Behavior`: UNSPECIFIED, BLOCKING, NON_BLOCKING.
                    one_of(
                        fm,
                        "behavior",
                        &fp,
                        &["UNSPECIFIED", "BLOCKING", "NON_BLOCKING"],
                    )?;
                    if fm.get("behavior") == Some(&Value::from("BLOCKING")) {
                        info.blocking.push(name.clone());
                    }
                    info.functions.push(name);
                    if let Some(params) = fm.get("parameters") {
                        schema(params, &format!("{fp}.parameters"))?;
                    }
                }
            }
        }
    }
    if let Some(ric) = m.get("realtimeInputConfig") {
        let rp = "setup.realtimeInputConfig";
        let rm = obj(
            ric,
            rp,
            &[
                "automaticActivityDetection",
                "activityHandling",
                "turnCoverage",
            ],
            &[],
        )?;
        one_of(
            rm,
            "activityHandling",
            rp,
            &["START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"],
        )?;
        one_of(
            rm,
            "turnCoverage",
            rp,
            &[
                "TURN_INCLUDES_ONLY_ACTIVITY",
                "TURN_INCLUDES_ALL_INPUT",
                "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
            ],
        )?;
        if let Some(aad) = rm.get("automaticActivityDetection") {
            let ap = "setup.realtimeInputConfig.automaticActivityDetection";
            let am = obj(
                aad,
                ap,
                &[
                    "disabled",
                    "startOfSpeechSensitivity",
                    "endOfSpeechSensitivity",
                    "prefixPaddingMs",
                    "silenceDurationMs",
                ],
                &[],
            )?;
            info.manual_activity = opt_bool(am, "disabled", ap)?.unwrap_or(false);
            one_of(
                am,
                "startOfSpeechSensitivity",
                ap,
                &["START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"],
            )?;
            one_of(
                am,
                "endOfSpeechSensitivity",
                ap,
                &["END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"],
            )?;
            opt_uint(am, "prefixPaddingMs", ap)?;
            opt_uint(am, "silenceDurationMs", ap)?;
        }
    }
    for (key, slot) in [
        ("inputAudioTranscription", 0),
        ("outputAudioTranscription", 1),
    ] {
        if let Some(t) = m.get(key) {
            obj(
                t,
                &format!("setup.{key}"),
                &[
                    "languageCodes",
                    "customVocabulary",
                    "wordTimestamp",
                    "diarization",
                ],
                &[],
            )?;
            if slot == 0 {
                info.transcription.0 = true;
            } else {
                info.transcription.1 = true;
            }
        }
    }
    if let Some(sr) = m.get("sessionResumption") {
        let sp = "setup.sessionResumption";
        let sm = obj(sr, sp, &["handle", "transparent"], &[])?;
        info.transparent = opt_bool(sm, "transparent", sp)?.unwrap_or(false);
        if sm.contains_key("handle") {
            let h = string(sm, "handle", sp)?;
            if h.is_empty() {
                return Err("setup.sessionResumption.handle is empty".into());
            }
            info.resume_handle = Some(h.to_owned());
        }
    }
    if let Some(cwc) = m.get("contextWindowCompression") {
        let cp = "setup.contextWindowCompression";
        let cm = obj(cwc, cp, &["triggerTokens", "slidingWindow"], &[])?;
        opt_uint(cm, "triggerTokens", cp)?;
        if let Some(sw) = cm.get("slidingWindow") {
            let swm = obj(sw, &format!("{cp}.slidingWindow"), &["targetTokens"], &[])?;
            opt_uint(swm, "targetTokens", cp)?;
        }
    }
    Ok(info)
}

fn realtime_input(v: &Value) -> R<ClientMsg> {
    let p = "realtimeInput";
    let m = obj(
        v,
        p,
        &[
            "audio",
            "audioStreamEnd",
            "activityStart",
            "activityEnd",
            "text",
            "video",
        ],
        &[],
    )?;
    if m.len() != 1 {
        return Err(format!(
            "realtimeInput must carry exactly one field, got {}",
            m.len()
        ));
    }
    if let Some(a) = m.get("audio") {
        let am = obj(
            a,
            "realtimeInput.audio",
            &["mimeType", "data"],
            &["mimeType", "data"],
        )?;
        let mime = string(am, "mimeType", "realtimeInput.audio")?;
        if mime != "audio/pcm;rate=16000" {
            return Err(format!(
                "realtimeInput.audio.mimeType must be audio/pcm;rate=16000, got {mime:?}"
            ));
        }
        let data = B64
            .decode(string(am, "data", "realtimeInput.audio")?)
            .map_err(|e| format!("realtimeInput.audio.data is not base64: {e}"))?;
        if data.len() % 2 != 0 {
            return Err("realtimeInput.audio.data has an odd number of bytes".into());
        }
        return Ok(ClientMsg::Audio(data));
    }
    if let Some(e) = m.get("audioStreamEnd") {
        return match e {
            Value::Bool(true) => Ok(ClientMsg::AudioStreamEnd),
            _ => Err("realtimeInput.audioStreamEnd must be true".into()),
        };
    }
    if let Some(a) = m.get("activityStart") {
        obj(a, "realtimeInput.activityStart", &[], &[])?;
        return Ok(ClientMsg::ActivityStart);
    }
    if let Some(a) = m.get("activityEnd") {
        obj(a, "realtimeInput.activityEnd", &[], &[])?;
        return Ok(ClientMsg::ActivityEnd);
    }
    if let Some(t) = m.get("text") {
        let t = t.as_str().ok_or("realtimeInput.text: expected a string")?;
        return Ok(ClientMsg::Text(t.to_owned()));
    }
    Err("realtimeInput.video is not expected from a phone bridge".into())
}

fn client_content(v: &Value) -> R<ClientMsg> {
    let p = "clientContent";
    let m = obj(v, p, &["turns", "turnComplete"], &[])?;
    let mut text = String::new();
    if let Some(turns) = m.get("turns") {
        let arr = turns
            .as_array()
            .ok_or("clientContent.turns: expected an array")?;
        for (i, t) in arr.iter().enumerate() {
            text.push_str(&text_parts(t, &format!("clientContent.turns[{i}]"))?);
        }
    }
    Ok(ClientMsg::ClientContent {
        text,
        turn_complete: opt_bool(m, "turnComplete", p)?.unwrap_or(false),
    })
}

fn tool_response(v: &Value) -> R<ClientMsg> {
    let m = obj(
        v,
        "toolResponse",
        &["functionResponses"],
        &["functionResponses"],
    )?;
    let arr = m
        .get("functionResponses")
        .and_then(Value::as_array)
        .ok_or("toolResponse.functionResponses: expected an array")?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, f) in arr.iter().enumerate() {
        let fp = format!("toolResponse.functionResponses[{i}]");
        let fm = obj(
            f,
            &fp,
            &["id", "name", "response", "scheduling", "willContinue"],
            &["id", "name", "response"],
        )?;
        if !fm.get("response").is_some_and(Value::is_object) {
            return Err(format!("{fp}.response: expected an object"));
        }
        // google-genai `FunctionResponseScheduling` and `will_continue`.
        one_of(
            fm,
            "scheduling",
            &fp,
            &["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"],
        )?;
        opt_bool(fm, "willContinue", &fp)?;
        out.push((
            string(fm, "id", &fp)?.to_owned(),
            string(fm, "name", &fp)?.to_owned(),
            fm.get("response").cloned().unwrap_or_default(),
        ));
    }
    Ok(ClientMsg::ToolResponse(out))
}

/// Validates one client message.
pub fn parse_client_message(v: &Value) -> R<ClientMsg> {
    let m = v.as_object().ok_or("client message is not a JSON object")?;
    if m.len() != 1 {
        return Err(format!(
            "client message must have exactly one top-level key, got {}",
            m.len()
        ));
    }
    let (k, inner) = m.iter().next().ok_or("empty client message")?;
    match k.as_str() {
        "setup" => setup(inner).map(ClientMsg::Setup),
        "realtimeInput" => realtime_input(inner),
        "clientContent" => client_content(inner),
        "toolResponse" => tool_response(inner),
        other => Err(format!(
            "unknown client message type `{other}` (camelCase expected)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_documented_setup_example() {
        let v = json!({"setup": {
          "model": "models/gemini-3.1-flash-live-preview",
          "generationConfig": {"responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}, "languageCode": "en-US"}},
          "systemInstruction": {"parts": [{"text": "You are a phone agent"}]},
          "tools": [{"functionDeclarations": [{"name": "transfer_call", "description": "x",
                     "parameters": {"type": "OBJECT", "properties": {"to": {"type": "STRING"}}}}]}],
          "realtimeInputConfig": {"automaticActivityDetection": {"disabled": false,
              "startOfSpeechSensitivity": "START_SENSITIVITY_LOW", "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
              "prefixPaddingMs": 20, "silenceDurationMs": 500},
            "activityHandling": "START_OF_ACTIVITY_INTERRUPTS"},
          "inputAudioTranscription": {}, "outputAudioTranscription": {},
          "sessionResumption": {},
          "contextWindowCompression": {"triggerTokens": 25600, "slidingWindow": {"targetTokens": 12800}}}});
        let ClientMsg::Setup(info) = parse_client_message(&v).unwrap() else {
            panic!()
        };
        assert_eq!(info.functions, vec!["transfer_call"]);
        assert_eq!(info.transcription, (true, true));
    }

    #[test]
    fn function_behavior_and_response_scheduling_take_only_the_published_values() {
        let setup = |behavior: &str| {
            json!({"setup": {"model": "models/m", "tools": [{"functionDeclarations": [
                {"name": "end_call", "behavior": behavior},
                {"name": "lookup", "behavior": "NON_BLOCKING"},
                {"name": "other"}]}]}})
        };
        let ClientMsg::Setup(info) = parse_client_message(&setup("BLOCKING")).unwrap() else {
            panic!()
        };
        assert_eq!(info.blocking, ["end_call"]);
        assert_eq!(info.functions, ["end_call", "lookup", "other"]);
        assert!(parse_client_message(&setup("UNSPECIFIED")).is_ok());
        for bad in ["blocking", "ASYNC", ""] {
            assert!(parse_client_message(&setup(bad)).is_err(), "{bad}");
        }
        let response = |extra: serde_json::Value| {
            let mut fr = json!({"id": "c1", "name": "lookup", "response": {"output": 1}});
            for (k, v) in extra.as_object().unwrap() {
                fr[k] = v.clone();
            }
            json!({"toolResponse": {"functionResponses": [fr]}})
        };
        for ok in ["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"] {
            assert!(parse_client_message(&response(json!({"scheduling": ok}))).is_ok());
        }
        assert!(parse_client_message(&response(json!({"scheduling": "when_idle"}))).is_err());
        assert!(parse_client_message(&response(json!({"scheduling": "LATER"}))).is_err());
        assert!(parse_client_message(&response(json!({"willContinue": false}))).is_ok());
        assert!(parse_client_message(&response(json!({"willContinue": "no"}))).is_err());
    }

    #[test]
    fn rejects_snake_case_unknown_fields_and_two_realtime_fields() {
        assert!(parse_client_message(&json!({"realtime_input": {"text": "x"}})).is_err());
        assert!(
            parse_client_message(&json!({"setup": {"model": "models/m", "bogus": 1}})).is_err()
        );
        assert!(parse_client_message(&json!({"setup": {"model": "gemini"}})).is_err());
        assert!(
            parse_client_message(&json!({"realtimeInput": {"text": "a", "audioStreamEnd": true}}))
                .is_err()
        );
        assert!(parse_client_message(&json!({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=8000", "data": ""}}})).is_err());
        assert!(
            parse_client_message(
                &json!({"toolResponse": {"functionResponses": [{"name": "f", "response": {}}]}})
            )
            .is_err()
        );
        assert!(parse_client_message(&json!({"setup": {}, "clientContent": {}})).is_err());
    }

    #[test]
    fn decodes_audio() {
        let v = json!({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AAABAA=="}}});
        assert_eq!(
            parse_client_message(&v).unwrap(),
            ClientMsg::Audio(vec![0, 0, 1, 0])
        );
    }
}
