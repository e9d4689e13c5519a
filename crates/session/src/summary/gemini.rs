//! [`GeminiSummarizer`]: post-call summaries from the Gemini API's text
//! endpoint, `POST {endpoint}/v1beta/models/{model}:generateContent`, with
//! the key in the `x-goog-api-key` header (never in the URL).
//!
//! Request: `{"system_instruction": {"parts": [{"text": ...}]}, "contents":
//! [{"role": "user", "parts": [{"text": transcript}]}]}`. Response: the text
//! is `candidates[0].content.parts[*].text` (thought parts skipped).

use serde_json::json;

use super::http::{self, HttpSettings, SYSTEM_PROMPT};
use super::{Summarizer, SummaryError, SummaryFuture, TranscriptLine};

const PROVIDER: &str = "gemini";

/// Summarizes with a Gemini text model (`generateContent`).
///
/// `Debug` never shows the key.
///
/// ```
/// use callbridge_session::summary::GeminiSummarizer;
/// let s = GeminiSummarizer::new("my-key")?
///     .with_model("gemini-2.5-flash")
///     .with_timeout(std::time::Duration::from_secs(10));
/// assert!(!format!("{s:?}").contains("my-key"));
/// # Ok::<(), callbridge_session::summary::SummaryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GeminiSummarizer {
    settings: HttpSettings,
}

impl GeminiSummarizer {
    /// The public Gemini API.
    pub const DEFAULT_ENDPOINT: &'static str = "https://generativelanguage.googleapis.com";
    /// The default model.
    pub const DEFAULT_MODEL: &'static str = "gemini-2.5-flash";

    /// A summarizer with the default endpoint, model, 20 s timeout, 1 MiB
    /// response bound and 32 KiB transcript bound. Fails only when the
    /// HTTP client cannot be set up.
    pub fn new(key: impl Into<String>) -> Result<Self, SummaryError> {
        Ok(GeminiSummarizer {
            settings: HttpSettings::new(
                Self::DEFAULT_ENDPOINT,
                Self::DEFAULT_MODEL,
                key.into(),
                PROVIDER,
            )?,
        })
    }

    /// Uses another model (`models/` prefix optional).
    pub fn with_model(mut self, model: impl AsRef<str>) -> Self {
        let model = model.as_ref();
        self.settings.model = model.strip_prefix("models/").unwrap_or(model).to_owned();
        self
    }

    http::settings_builder!();

    async fn run(&self, transcript: &[TranscriptLine]) -> Result<String, SummaryError> {
        if transcript.is_empty() {
            return Err(SummaryError::Empty);
        }
        let s = &self.settings;
        let text = http::render_transcript(transcript, s.max_transcript_bytes);
        let body = json!({
            "system_instruction": { "parts": [{ "text": SYSTEM_PROMPT }] },
            "contents": [{ "role": "user", "parts": [{ "text": text }] }],
        });
        let url = format!("{}/v1beta/models/{}:generateContent", s.endpoint, s.model);
        let auth = ("x-goog-api-key", s.key.expose().to_owned());
        let answer = http::post_json(s, PROVIDER, &url, auth, &body).await?;
        parse(&answer)
    }
}

/// The summary text of a `generateContent` answer.
fn parse(answer: &serde_json::Value) -> Result<String, SummaryError> {
    let candidate = answer.pointer("/candidates/0");
    let parts = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(|p| p.as_array());
    let text: String = parts
        .into_iter()
        .flatten()
        .filter(|p| p.get("thought").and_then(|t| t.as_bool()) != Some(true))
        .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
        .collect();
    let text = text.trim();
    if !text.is_empty() {
        return Ok(text.to_owned());
    }
    let reason = answer
        .pointer("/promptFeedback/blockReason")
        .or_else(|| candidate.and_then(|c| c.get("finishReason")))
        .and_then(|r| r.as_str())
        .map(|r| r.chars().take(40).collect::<String>());
    Err(SummaryError::Provider(match reason {
        Some(r) => format!("{PROVIDER}: no summary text in response ({r})"),
        None => format!("{PROVIDER}: no summary text in response"),
    }))
}

impl Summarizer for GeminiSummarizer {
    fn summarize<'a>(&'a self, transcript: &'a [TranscriptLine]) -> SummaryFuture<'a> {
        Box::pin(self.run(transcript))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{Canned, serve_one};
    use super::*;

    fn transcript() -> Vec<TranscriptLine> {
        vec![
            TranscriptLine {
                caller: true,
                text: "I'd like to move my appointment to Friday.".into(),
            },
            TranscriptLine {
                caller: false,
                text: "Done, Friday at 10.".into(),
            },
        ]
    }

    const OK: &str = r#"{"candidates":[{"content":{"role":"model","parts":[
        {"text":"Caller moved the appointment "},{"text":"to Friday 10:00."}]},
        "finishReason":"STOP"}]}"#;

    #[tokio::test]
    async fn success_posts_generate_content_with_header_key_and_parses_parts() {
        let (base, req) = serve_one(Canned::json(200, OK)).await;
        let s = GeminiSummarizer::new("g-secret-key")
            .unwrap()
            .with_endpoint(&base)
            .with_model("models/gemini-test");
        let summary = s.summarize(&transcript()).await.unwrap();
        assert_eq!(summary, "Caller moved the appointment to Friday 10:00.");

        let req = req.await.unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1beta/models/gemini-test:generateContent");
        assert!(!req.path.contains("key"), "key must not be in the URL");
        assert_eq!(req.header("x-goog-api-key"), Some("g-secret-key"));
        assert_eq!(req.header("authorization"), None);
        assert_eq!(req.header("content-type"), Some("application/json"));
        let body = req.json();
        let system = body
            .pointer("/system_instruction/parts/0/text")
            .and_then(|t| t.as_str())
            .unwrap();
        assert!(system.contains("summar"), "{system}");
        assert_eq!(
            body.pointer("/contents/0/parts/0/text")
                .and_then(|t| t.as_str()),
            Some(
                "Caller: I'd like to move my appointment to Friday.\nAgent: Done, Friday at 10.\n"
            )
        );
        assert_eq!(
            body.pointer("/contents/0/role").and_then(|t| t.as_str()),
            Some("user")
        );
    }

    #[tokio::test]
    async fn http_401_is_a_provider_error_with_status_and_without_the_key() {
        let body = r#"{"error":{"code":401,"message":"API key g-secret-key not valid","status":"UNAUTHENTICATED"}}"#;
        let (base, _req) = serve_one(Canned::json(401, body)).await;
        let s = GeminiSummarizer::new("g-secret-key")
            .unwrap()
            .with_endpoint(&base);
        let err = s.summarize(&transcript()).await.unwrap_err();
        let SummaryError::Provider(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.contains("401"), "{msg}");
        assert!(msg.contains("not valid"), "{msg}");
        for shown in [err.to_string(), format!("{err:?}"), format!("{s:?}")] {
            assert!(!shown.contains("g-secret-key"), "{shown}");
        }
    }

    #[tokio::test]
    async fn malformed_body_is_a_provider_error() {
        let (base, _req) = serve_one(Canned::json(200, "{not json")).await;
        let s = GeminiSummarizer::new("k").unwrap().with_endpoint(&base);
        let err = s.summarize(&transcript()).await.unwrap_err();
        assert!(
            matches!(err, SummaryError::Provider(ref m) if m.contains("JSON")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn answer_without_text_reports_the_block_reason() {
        let body = r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
        let (base, _req) = serve_one(Canned::json(200, body)).await;
        let s = GeminiSummarizer::new("k").unwrap().with_endpoint(&base);
        let err = s.summarize(&transcript()).await.unwrap_err();
        assert!(
            matches!(err, SummaryError::Provider(ref m) if m.contains("SAFETY")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn empty_transcript_is_empty_without_a_request() {
        // An endpoint nothing listens on: a request would fail as Provider.
        let s = GeminiSummarizer::new("k")
            .unwrap()
            .with_endpoint("http://127.0.0.1:9");
        assert_eq!(s.summarize(&[]).await, Err(SummaryError::Empty));
    }

    #[tokio::test]
    async fn key_unusable_as_a_header_is_an_error_that_does_not_show_it() {
        let s = GeminiSummarizer::new("bad\nkey-part")
            .unwrap()
            .with_endpoint("http://127.0.0.1:9");
        let err = s.summarize(&transcript()).await.unwrap_err();
        assert!(matches!(err, SummaryError::Provider(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("key-part"), "{err:?}");
    }

    #[test]
    fn parse_skips_thought_parts() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"candidates":[{"content":{"parts":[{"text":"thinking","thought":true},{"text":" Summary. "}]}}]}"#,
        )
        .unwrap();
        assert_eq!(parse(&v).unwrap(), "Summary.");
    }
}
