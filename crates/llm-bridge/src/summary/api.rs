//! What differs between the providers' text APIs, as data: [`TextApi`]
//! says where to POST, how the key is sent, what the request body is and
//! where the answer's text is. The one HTTP path that uses it is
//! [`super::http`].
//!
//! - Gemini API `generateContent`: `POST {endpoint}/v1beta/models/{model}:
//!   generateContent`, the key in the `x-goog-api-key` header (never in the
//!   URL). Request `{"system_instruction": {"parts": [{"text": ...}]},
//!   "contents": [{"role": "user", "parts": [{"text": transcript}]}]}`;
//!   the text is `candidates[0].content.parts[*].text`, thought parts
//!   skipped.
//! - OpenAI Chat Completions: `POST {endpoint}/v1/chat/completions` with
//!   `Authorization: Bearer`. Request `{"model": ..., "messages": [{"role":
//!   "system", ...}, {"role": "user", "content": transcript}]}`; the text is
//!   `choices[0].message.content` (a string; `null` with a `refusal` is an
//!   error).
//!
//! Both answers report the request's token usage, read by [`TextApi::usage`]:
//! Gemini `usageMetadata {promptTokenCount, candidatesTokenCount,
//! thoughtsTokenCount?, totalTokenCount}` (thinking tokens are billed as
//! output: they count as output here), OpenAI `usage {prompt_tokens,
//! completion_tokens, total_tokens}` (reasoning tokens are already in
//! `completion_tokens`).

use serde_json::{Value, json};

use super::summarizer::SummaryError;
use crate::Usage;

/// A provider's text API, as the summarizer speaks it.
///
/// ```
/// use callbridge_llm_bridge::summary::TextApi;
/// assert_eq!(TextApi::Gemini.default_model(), "gemini-2.5-flash");
/// assert_eq!(TextApi::OpenAi.default_endpoint(), "https://api.openai.com");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TextApi {
    /// The Gemini API's `generateContent`.
    Gemini,
    /// OpenAI's Chat Completions.
    OpenAi,
}

impl TextApi {
    /// The name in error messages and logs (`gemini`, `openai`).
    pub const fn name(self) -> &'static str {
        match self {
            TextApi::Gemini => "gemini",
            TextApi::OpenAi => "openai",
        }
    }

    /// The public API's base URL.
    pub const fn default_endpoint(self) -> &'static str {
        match self {
            TextApi::Gemini => "https://generativelanguage.googleapis.com",
            TextApi::OpenAi => "https://api.openai.com",
        }
    }

    /// The model used unless another is set.
    pub const fn default_model(self) -> &'static str {
        match self {
            TextApi::Gemini => "gemini-2.5-flash",
            TextApi::OpenAi => "gpt-4o-mini",
        }
    }

    /// `model` as the API names it (Gemini's `models/` prefix is optional).
    pub(super) fn model_name(self, model: &str) -> String {
        match self {
            TextApi::Gemini => model.strip_prefix("models/").unwrap_or(model).to_owned(),
            TextApi::OpenAi => model.to_owned(),
        }
    }

    /// The URL to POST to.
    pub(super) fn url(self, endpoint: &str, model: &str) -> String {
        match self {
            TextApi::Gemini => format!("{endpoint}/v1beta/models/{model}:generateContent"),
            TextApi::OpenAi => format!("{endpoint}/v1/chat/completions"),
        }
    }

    /// The header that carries `key`: (name, value).
    pub(super) fn auth(self, key: &str) -> (&'static str, String) {
        match self {
            TextApi::Gemini => ("x-goog-api-key", key.to_owned()),
            TextApi::OpenAi => ("authorization", format!("Bearer {key}")),
        }
    }

    /// The request body: the `system` instruction and the transcript `text`.
    pub(super) fn request(self, model: &str, system: &str, text: &str) -> Value {
        match self {
            TextApi::Gemini => json!({
                "system_instruction": { "parts": [{ "text": system }] },
                "contents": [{ "role": "user", "parts": [{ "text": text }] }],
            }),
            TextApi::OpenAi => json!({
                "model": model,
                "messages": [
                    { "role": "system", "content": system },
                    { "role": "user", "content": text },
                ],
            }),
        }
    }

    /// The token usage a 2xx answer reports; `None` when it reports none
    /// (or not as a count). No audio/text split: the input is text.
    pub(super) fn usage(self, answer: &Value) -> Option<Usage> {
        let count = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
        let (input, output, total) = match self {
            TextApi::Gemini => {
                let m = answer.get("usageMetadata")?;
                let input = count(m, "promptTokenCount")?;
                let output = count(m, "candidatesTokenCount")
                    .unwrap_or(0)
                    .saturating_add(count(m, "thoughtsTokenCount").unwrap_or(0));
                (input, output, count(m, "totalTokenCount"))
            }
            TextApi::OpenAi => {
                let u = answer.get("usage")?;
                let input = count(u, "prompt_tokens")?;
                (
                    input,
                    count(u, "completion_tokens")?,
                    count(u, "total_tokens"),
                )
            }
        };
        Some(Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: total.unwrap_or(input.saturating_add(output)),
            split: None,
        })
    }

    /// The summary text of a 2xx answer.
    pub(super) fn parse(self, answer: &Value) -> Result<String, SummaryError> {
        match self {
            TextApi::Gemini => parse_gemini(answer),
            TextApi::OpenAi => parse_openai(answer),
        }
    }
}

/// The summary text of a `generateContent` answer.
fn parse_gemini(answer: &Value) -> Result<String, SummaryError> {
    let provider = TextApi::Gemini.name();
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
        Some(r) => format!("{provider}: no summary text in response ({r})"),
        None => format!("{provider}: no summary text in response"),
    }))
}

/// The summary text of a chat completion.
fn parse_openai(answer: &Value) -> Result<String, SummaryError> {
    let provider = TextApi::OpenAi.name();
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
        format!("{provider}: the model refused")
    } else {
        format!("{provider}: no summary text in response")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_parse_skips_thought_parts() {
        let v: Value = serde_json::from_str(
            r#"{"candidates":[{"content":{"parts":[{"text":"thinking","thought":true},{"text":" Summary. "}]}}]}"#,
        )
        .unwrap();
        assert_eq!(TextApi::Gemini.parse(&v).unwrap(), "Summary.");
    }

    #[test]
    fn openai_refusal_is_reported() {
        let v: Value = serde_json::from_str(
            r#"{"choices":[{"message":{"role":"assistant","content":null,"refusal":"no"}}]}"#,
        )
        .unwrap();
        assert!(
            matches!(TextApi::OpenAi.parse(&v), Err(SummaryError::Provider(m)) if m.contains("refused"))
        );
    }

    #[test]
    fn each_api_reports_its_usage_as_the_service_does() {
        // generateContent (gemini-2.5-flash thinks: its thoughts are
        // billed as output).
        let g: Value = serde_json::from_str(
            r#"{"candidates":[{"content":{"parts":[{"text":"S."}]}}],
                "usageMetadata":{"promptTokenCount":412,"candidatesTokenCount":38,
                "thoughtsTokenCount":120,"totalTokenCount":570,
                "promptTokensDetails":[{"modality":"TEXT","tokenCount":412}]}}"#,
        )
        .unwrap();
        let u = TextApi::Gemini.usage(&g).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total_tokens, u.split),
            (412, 158, 570, None)
        );
        // Chat Completions.
        let o: Value = serde_json::from_str(
            r#"{"choices":[{"message":{"content":"S."}}],
                "usage":{"prompt_tokens":390,"completion_tokens":41,"total_tokens":431,
                "prompt_tokens_details":{"cached_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":0}}}"#,
        )
        .unwrap();
        let u = TextApi::OpenAi.usage(&o).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total_tokens),
            (390, 41, 431)
        );
        // None reported, or not as counts: none.
        let none: Value = serde_json::from_str(r#"{"choices":[]}"#).unwrap();
        assert_eq!(TextApi::OpenAi.usage(&none), None);
        assert_eq!(TextApi::Gemini.usage(&none), None);
        let bad: Value = serde_json::from_str(r#"{"usage":{"prompt_tokens":"9"}}"#).unwrap();
        assert_eq!(TextApi::OpenAi.usage(&bad), None);
    }

    #[test]
    fn gemini_model_prefix_is_optional() {
        assert_eq!(TextApi::Gemini.model_name("models/g"), "g");
        assert_eq!(TextApi::Gemini.model_name("g"), "g");
        assert_eq!(TextApi::OpenAi.model_name("models/o"), "models/o");
    }
}
