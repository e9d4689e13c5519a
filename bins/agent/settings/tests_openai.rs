//! `[model.openai]`: the API's defaults when absent, each value onto
//! `session.update`'s tuning, and every bad value a named error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use callbridge_llm_bridge::tuning::{Eagerness, NoiseReduction, OpenAiVad, ServerVad};

use super::secrets::Secrets;
use super::*;

const GOOD: &str = r#"
[sip]
bind = "127.0.0.1:0"
[model]
provider = "mock"
[store]
database = "db.sqlite"
recordings_dir = "rec"
[http]
bind = "127.0.0.1:0"
"#;

fn settings(text: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_text(Path::new("agent.toml"), text, &env, Path::new("/etc/cb"))
        .map_err(|e| e.to_string())
}

#[test]
fn without_the_section_the_session_gets_the_apis_defaults() {
    let s = settings(GOOD, &[]).unwrap();
    let m = s.session_config(&Secrets::default(), None);
    assert_eq!(m.openai.vad, OpenAiVad::Server(ServerVad::default()));
    assert_eq!(m.openai.noise_reduction, NoiseReduction::Off);
    assert_eq!(
        m.transcription.model.as_deref(),
        Some("gpt-4o-mini-transcribe")
    );
}

#[test]
fn the_section_maps_onto_the_session() {
    let text = format!(
        "{GOOD}[model.openai]\nthreshold = 0.65\nprefix_padding_ms = 250\n\
         silence_duration_ms = 700\nidle_timeout_ms = 8000\nnoise_reduction = \"near_field\"\n\
         transcription_model = \"gpt-4o-transcribe\"\n"
    );
    let s = settings(&text, &[]).unwrap();
    let m = s.session_config(&Secrets::default(), None);
    assert_eq!(
        m.openai.vad,
        OpenAiVad::Server(ServerVad {
            threshold: 0.65,
            prefix_padding: Duration::from_millis(250),
            silence_duration: Duration::from_millis(700),
            idle_timeout: Some(Duration::from_secs(8)),
        })
    );
    assert_eq!(m.openai.noise_reduction, NoiseReduction::NearField);
    assert_eq!(m.transcription.model.as_deref(), Some("gpt-4o-transcribe"));
    assert!(m.validate().is_ok(), "{:?}", m.validate());

    // semantic_vad, from the environment; an integer threshold is a number.
    let s = settings(
        &format!("{GOOD}[model.openai]\nthreshold = 1\n"),
        &[
            ("CALLBRIDGE_MODEL_OPENAI_TURN_DETECTION", "semantic_vad"),
            ("CALLBRIDGE_MODEL_OPENAI_EAGERNESS", "high"),
            ("CALLBRIDGE_MODEL_OPENAI_NOISE_REDUCTION", "far_field"),
        ],
    )
    .unwrap();
    assert_eq!(
        s.openai.input.vad,
        OpenAiVad::Semantic {
            eagerness: Eagerness::High
        }
    );
    assert_eq!(s.openai.input.noise_reduction, NoiseReduction::FarField);
}

#[test]
fn each_bad_value_is_an_error_naming_its_key() {
    let cases = [
        (
            "threshold = 1.5",
            "model.openai.threshold = 1.5",
            "from 0.0 to 1.0",
        ),
        ("threshold = \"high\"", "model.openai.threshold", "a number"),
        (
            "prefix_padding_ms = 20000",
            "model.openai.prefix_padding_ms = 20000",
            "0 to 10000",
        ),
        (
            "silence_duration_ms = 0",
            "model.openai.silence_duration_ms = 0",
            "1 to 10000",
        ),
        (
            "idle_timeout_ms = 1000",
            "model.openai.idle_timeout_ms = 1000",
            "5000 to 30000",
        ),
        (
            "turn_detection = \"vad\"",
            "model.openai.turn_detection = \"vad\"",
            "\"semantic_vad\"",
        ),
        (
            "eagerness = \"eager\"",
            "model.openai.eagerness = \"eager\"",
            "\"medium\"",
        ),
        (
            "noise_reduction = \"on\"",
            "model.openai.noise_reduction = \"on\"",
            "\"far_field\"",
        ),
        (
            "transcription_model = \"gpt 4o\"",
            "model.openai.transcription_model",
            "a model id",
        ),
        (
            "threshhold = 0.5",
            "unknown key model.openai.threshhold",
            "threshold",
        ),
    ];
    for (line, key, expected) in cases {
        let m = settings(&format!("{GOOD}[model.openai]\n{line}\n"), &[]).unwrap_err();
        assert!(m.contains(key), "{line}: {m}");
        assert!(m.contains(expected), "{line}: {m}");
    }
}
