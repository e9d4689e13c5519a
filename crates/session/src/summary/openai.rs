//! [`OpenAiSummarizer`]: post-call summaries from OpenAI's Chat Completions
//! API, `POST {endpoint}/v1/chat/completions` with `Authorization: Bearer`.
//!
//! Request: `{"model": ..., "messages": [{"role": "system", "content": ...},
//! {"role": "user", "content": transcript}]}`. Response: the text is
//! `choices[0].message.content` (a string; `null` with a `refusal` is an
//! error).

use serde_json::json;

use super::http::{self, HttpSettings, SYSTEM_PROMPT};
use super::{Summarizer, SummaryError, SummaryFuture, TranscriptLine};

const PROVIDER: &str = "openai";

/// Summarizes with an OpenAI chat model (`/v1/chat/completions`).
///
/// `Debug` never shows the key.
///
/// ```
/// use callbridge_session::summary::OpenAiSummarizer;
/// let s = OpenAiSummarizer::new("sk-my-key")?.with_model("gpt-4o-mini");
/// assert!(!format!("{s:?}").contains("sk-my-key"));
/// # Ok::<(), callbridge_session::summary::SummaryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiSummarizer {
    settings: HttpSettings,
}

impl OpenAiSummarizer {
    /// The public OpenAI API.
    pub const DEFAULT_ENDPOINT: &'static str = "https://api.openai.com";
    /// The default model.
    pub const DEFAULT_MODEL: &'static str = "gpt-4o-mini";

    /// A summarizer with the default endpoint, model, 20 s timeout, 1 MiB
    /// response bound and 32 KiB transcript bound. Fails only when the
    /// HTTP client cannot be set up.
    pub fn new(key: impl Into<String>) -> Result<Self, SummaryError> {
        Ok(OpenAiSummarizer {
            settings: HttpSettings::new(
                Self::DEFAULT_ENDPOINT,
                Self::DEFAULT_MODEL,
                key.into(),
                PROVIDER,
            )?,
        })
    }

    /// Uses another model.
    pub fn with_model(mut self, model: impl AsRef<str>) -> Self {
        self.settings.model = model.as_ref().to_owned();
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
            "model": s.model,
            "messages": [
                { "role": "system", "content": SYSTEM_PROMPT },
                { "role": "user", "content": text },
            ],
        });
        let url = format!("{}/v1/chat/completions", s.endpoint);
        let auth = ("authorization", format!("Bearer {}", s.key.expose()));
        let answer = http::post_json(s, PROVIDER, &url, auth, &body).await?;
        parse(&answer)
    }
}

/// The summary text of a chat completion.
fn parse(answer: &serde_json::Value) -> Result<String, SummaryError> {
    let message = answer.pointer("/choices/0/message");
    let text = message
        .and_then(|m| m.get("content"))
        .and_then(|c| c.as_str())
        .map(str::trim)
        .unwrap_or_default();
    if !text.is_empty() {
        return Ok(text.to_owned());
    }
    let refused = message
        .and_then(|m| m.get("refusal"))
        .is_some_and(|r| r.is_string());
    Err(SummaryError::Provider(if refused {
        format!("{PROVIDER}: the model refused")
    } else {
        format!("{PROVIDER}: no summary text in response")
    }))
}

impl Summarizer for OpenAiSummarizer {
    fn summarize<'a>(&'a self, transcript: &'a [TranscriptLine]) -> SummaryFuture<'a> {
        Box::pin(self.run(transcript))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{Canned, serve_one};
    use super::*;
    use std::time::Duration;

    fn transcript() -> Vec<TranscriptLine> {
        vec![
            TranscriptLine {
                caller: true,
                text: "My internet is down.".into(),
            },
            TranscriptLine {
                caller: false,
                text: "A technician will call you tomorrow.".into(),
            },
        ]
    }

    const OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-test",
        "choices":[{"index":0,"message":{"role":"assistant",
        "content":" Outage reported; technician callback tomorrow. ","refusal":null},
        "finish_reason":"stop"}]}"#;

    #[tokio::test]
    async fn success_posts_chat_completion_with_bearer_key_and_parses_content() {
        let (base, req) = serve_one(Canned::json(200, OK)).await;
        let s = OpenAiSummarizer::new("sk-secret")
            .unwrap()
            .with_endpoint(format!("{base}/"))
            .with_model("gpt-test");
        let summary = s.summarize(&transcript()).await.unwrap();
        assert_eq!(summary, "Outage reported; technician callback tomorrow.");

        let req = req.await.unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/chat/completions");
        assert_eq!(req.header("authorization"), Some("Bearer sk-secret"));
        let body = req.json();
        assert_eq!(body["model"], "gpt-test");
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(
            body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("summar")
        );
        assert_eq!(body["messages"][1]["role"], "user");
        assert_eq!(
            body["messages"][1]["content"],
            "Caller: My internet is down.\nAgent: A technician will call you tomorrow.\n"
        );
        assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn http_500_is_a_provider_error_with_status_and_without_the_key() {
        let (base, _req) = serve_one(Canned::json(500, "upstream broke for sk-secret")).await;
        let s = OpenAiSummarizer::new("sk-secret")
            .unwrap()
            .with_endpoint(&base);
        let err = s.summarize(&transcript()).await.unwrap_err();
        let SummaryError::Provider(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.contains("HTTP 500"), "{msg}");
        for shown in [err.to_string(), format!("{err:?}"), format!("{s:?}")] {
            assert!(!shown.contains("sk-secret"), "{shown}");
        }
    }

    #[tokio::test]
    async fn malformed_body_is_a_provider_error() {
        let (base, _req) = serve_one(Canned::json(200, r#"{"choices":[]}"#)).await;
        let s = OpenAiSummarizer::new("k").unwrap().with_endpoint(&base);
        let err = s.summarize(&transcript()).await.unwrap_err();
        assert!(
            matches!(err, SummaryError::Provider(ref m) if m.contains("no summary")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn oversized_response_is_refused() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
        let (base, _req) = serve_one(Canned::bytes(200, big.into_bytes())).await;
        let s = OpenAiSummarizer::new("k")
            .unwrap()
            .with_endpoint(&base)
            .with_max_response_bytes(1024);
        let err = s.summarize(&transcript()).await.unwrap_err();
        assert!(
            matches!(err, SummaryError::Provider(ref m) if m.contains("larger than 1024")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let (base, _req) = serve_one(Canned::silent()).await;
        let s = OpenAiSummarizer::new("k")
            .unwrap()
            .with_endpoint(&base)
            .with_timeout(Duration::from_millis(200));
        let err = s.summarize(&transcript()).await.unwrap_err();
        assert!(
            matches!(err, SummaryError::Provider(ref m) if m.contains("timed out")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn long_transcript_is_sent_truncated_keeping_the_end() {
        let (base, req) = serve_one(Canned::json(200, OK)).await;
        let s = OpenAiSummarizer::new("k")
            .unwrap()
            .with_endpoint(&base)
            .with_max_transcript_bytes(300);
        let mut t: Vec<_> = (0..200)
            .map(|i| TranscriptLine {
                caller: true,
                text: format!("filler line {i}"),
            })
            .collect();
        t.push(TranscriptLine {
            caller: false,
            text: "Final answer.".into(),
        });
        s.summarize(&t).await.unwrap();
        let sent = req.await.unwrap().json()["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(sent.len() <= 300, "{}", sent.len());
        assert!(sent.ends_with("Agent: Final answer.\n"));
        assert!(!sent.contains("filler line 0\n"));
    }

    #[tokio::test]
    async fn empty_transcript_is_empty_without_a_request() {
        let s = OpenAiSummarizer::new("k")
            .unwrap()
            .with_endpoint("http://127.0.0.1:9");
        assert_eq!(s.summarize(&[]).await, Err(SummaryError::Empty));
    }

    #[test]
    fn refusal_is_reported() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"choices":[{"message":{"role":"assistant","content":null,"refusal":"no"}}]}"#,
        )
        .unwrap();
        assert!(matches!(parse(&v), Err(SummaryError::Provider(m)) if m.contains("refused")));
    }
}
