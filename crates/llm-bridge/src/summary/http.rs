//! The one HTTP summarizer, [`HttpSummarizer`]: a provider's text API
//! ([`TextApi`]: URL, auth header, request and answer JSON) behind one HTTP
//! path. Owns the HTTP client (reqwest on the shared rustls configuration,
//! [`TlsRoots`]; plain `http://` works for tests), the secret key wrapper,
//! the transcript rendering (bounded, keeps the end), the bounded POST and
//! the error mapping (status + short message, never the key), and
//! [`summarizer_for`], which picks the API from the realtime provider.

use std::sync::Arc;
use std::time::Duration;

use super::api::TextApi;
use super::summarizer::{Summarizer, Summary, SummaryError, SummaryFuture, TranscriptLine};
use crate::provider::Provider;
use crate::tls::TlsRoots;
use callbridge_redact::Secret;

/// Default per-request timeout (connect + request + response body).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound on a response body.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Default bound on the rendered transcript sent to the model (bytes).
const DEFAULT_MAX_TRANSCRIPT_BYTES: usize = 32 * 1024;
/// Longest provider error message kept in a [`SummaryError::Provider`].
const MAX_ERROR_MESSAGE: usize = 200;
/// Marker put before a transcript whose beginning was cut.
const OMITTED: &str = "[earlier part of the call omitted]\n";

/// The instruction every provider gets.
const SYSTEM_PROMPT: &str = "You summarize phone calls between a caller and an AI \
voice agent for a CRM record. Write a short summary of a few sentences in plain text: the \
outcome of the call, what the caller wanted, and any follow-ups that were promised or are \
needed. Do not invent details that are not in the transcript. The transcript follows, one \
line per turn, prefixed with \"Caller:\" or \"Agent:\".";

/// The API key, trimmed (`Debug` prints `<redacted>`).
fn secret(key: String) -> Secret<Arc<str>> {
    Secret::new(key.trim().into())
}

/// `text` with every occurrence of `key` replaced (a server echoing the key
/// back in an error message must not leak it).
fn scrub(key: &Secret<Arc<str>>, text: &str) -> String {
    let k = key.expose();
    if k.is_empty() {
        text.to_owned()
    } else {
        text.replace(&**k, "<redacted>")
    }
}

/// Summarizes with a provider's text model over HTTPS (or plain HTTP for
/// a local endpoint): one POST per transcript, bounded in time and size.
///
/// `Debug` never shows the key.
///
/// ```
/// use callbridge_llm_bridge::summary::{HttpSummarizer, TextApi};
/// let s = HttpSummarizer::new(TextApi::Gemini, "my-key")?
///     .with_model("gemini-2.5-flash")
///     .with_timeout(std::time::Duration::from_secs(10));
/// assert!(!format!("{s:?}").contains("my-key"));
/// # Ok::<(), callbridge_llm_bridge::summary::SummaryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpSummarizer {
    api: TextApi,
    client: reqwest::Client,
    endpoint: String,
    model: String,
    key: Secret<Arc<str>>,
    timeout: Duration,
    max_response_bytes: usize,
    max_transcript_bytes: usize,
}

impl HttpSummarizer {
    /// A summarizer of `api` with its default endpoint and model, a 20 s
    /// timeout, a 1 MiB response bound and a 32 KiB transcript bound,
    /// trusting the system trust store ([`TlsRoots::System`]). Fails only
    /// when the HTTP client cannot be set up.
    pub fn new(api: TextApi, key: impl Into<String>) -> Result<Self, SummaryError> {
        Self::with_roots(api, key, TlsRoots::default())
    }

    /// [`HttpSummarizer::new`] trusting `roots`.
    pub fn with_roots(
        api: TextApi,
        key: impl Into<String>,
        roots: TlsRoots,
    ) -> Result<Self, SummaryError> {
        Ok(HttpSummarizer {
            api,
            client: client(api.name(), roots)?,
            endpoint: api.default_endpoint().to_owned(),
            model: api.default_model().to_owned(),
            key: secret(key.into()),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_transcript_bytes: DEFAULT_MAX_TRANSCRIPT_BYTES,
        })
    }

    /// Uses another model (Gemini's `models/` prefix is optional).
    pub fn with_model(mut self, model: impl AsRef<str>) -> Self {
        self.model = self.api.model_name(model.as_ref());
        self
    }

    /// Uses another base URL (scheme, host, port, without the API's
    /// version path; `http://` works).
    pub fn with_endpoint(mut self, endpoint: impl AsRef<str>) -> Self {
        self.endpoint = endpoint.as_ref().trim_end_matches('/').to_owned();
        self
    }

    /// Bounds each request (connect, send, read) to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bounds the response body; a larger one is an error.
    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Bounds the transcript text sent (its end is kept).
    pub fn with_max_transcript_bytes(mut self, max: usize) -> Self {
        self.max_transcript_bytes = max;
        self
    }

    /// The text API spoken.
    pub fn api(&self) -> TextApi {
        self.api
    }

    /// The model used.
    pub fn model(&self) -> &str {
        &self.model
    }

    async fn run(&self, transcript: &[TranscriptLine]) -> Result<Summary, SummaryError> {
        if transcript.is_empty() {
            return Err(SummaryError::Empty);
        }
        let text = render_transcript(transcript, self.max_transcript_bytes);
        let body = self.api.request(&self.model, SYSTEM_PROMPT, &text);
        let url = self.api.url(&self.endpoint, &self.model);
        let answer = self.post_json(&url, &body).await?;
        Ok(Summary {
            text: self.api.parse(&answer)?,
            usage: self.api.usage(&answer),
            provider: self.api.name(),
        })
    }
}

impl Summarizer for HttpSummarizer {
    fn summarize<'a>(&'a self, transcript: &'a [TranscriptLine]) -> SummaryFuture<'a> {
        Box::pin(self.run(transcript))
    }
}

/// The summarizer for `provider`'s text API, with `endpoint` and `model`
/// when given (else the API's defaults), the API `key`, trusting `roots`.
///
/// Fails when the HTTP client cannot be set up (with [`TlsRoots::System`]:
/// also when the system trust store has no usable certificate).
///
/// ```
/// use callbridge_llm_bridge::summary::summarizer_for;
/// use callbridge_llm_bridge::{Provider, TlsRoots};
/// let s = summarizer_for(
///     Provider::Gemini,
///     None,
///     Some("gemini-2.5-flash"),
///     "key".into(),
///     TlsRoots::Bundled,
/// )?;
/// # let _ = s;
/// # Ok::<(), callbridge_llm_bridge::summary::SummaryError>(())
/// ```
pub fn summarizer_for(
    provider: Provider,
    endpoint: Option<&str>,
    model: Option<&str>,
    key: String,
    roots: TlsRoots,
) -> Result<Arc<dyn Summarizer>, SummaryError> {
    let api = match provider {
        Provider::Gemini => TextApi::Gemini,
        Provider::OpenAi | Provider::GptLive => TextApi::OpenAi,
    };
    let mut s = HttpSummarizer::with_roots(api, key, roots)?;
    if let Some(e) = endpoint {
        s = s.with_endpoint(e);
    }
    if let Some(m) = model {
        s = s.with_model(m);
    }
    Ok(Arc::new(s))
}

/// A reqwest client on the shared rustls configuration for `roots`
/// (`callbridge-tls`: the aws-lc-rs provider, no native TLS), without
/// redirects.
fn client(provider: &'static str, roots: TlsRoots) -> Result<reqwest::Client, SummaryError> {
    let tls = roots
        .client_config()
        .map_err(|e| SummaryError::Provider(format!("{provider}: {e}")))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .connect_timeout(DEFAULT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| SummaryError::Provider(format!("{provider}: HTTP client setup failed")))
}

/// Renders the transcript as `Caller: ...` / `Agent: ...` lines, at most
/// `max` bytes: when longer, the beginning is cut (at a line start where one
/// is in reach) and marked, since a call's outcome is at its end.
fn render_transcript(transcript: &[TranscriptLine], max: usize) -> String {
    let mut text = String::new();
    for line in transcript {
        text.push_str(if line.caller { "Caller: " } else { "Agent: " });
        text.push_str(line.text.trim());
        text.push('\n');
    }
    if text.len() <= max {
        return text;
    }
    let mut cut = text.len() - max.saturating_sub(OMITTED.len());
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    // Start at the next whole line when there is one.
    if let Some(nl) = text[cut..].find('\n')
        && cut + nl + 1 < text.len()
        && cut > 0
        && text.as_bytes()[cut - 1] != b'\n'
    {
        cut += nl + 1;
    }
    let mut out = String::with_capacity(OMITTED.len() + text.len() - cut);
    out.push_str(OMITTED);
    out.push_str(&text[cut..]);
    out
}

/// The one HTTP path every [`TextApi`] takes.
impl HttpSummarizer {
    /// POSTs `body` as JSON to `url` with the API's auth header, and
    /// returns the parsed JSON of a 2xx answer. The body is read up to
    /// `max_response_bytes`; non-2xx answers become `Provider("<provider>
    /// HTTP <status>: <message>")`.
    async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, SummaryError> {
        let provider = self.api.name();
        let payload = serde_json::to_vec(body)
            .map_err(|_| SummaryError::Provider(format!("{provider}: request encoding failed")))?;
        let auth = self.api.auth(self.key.expose());
        let request = self
            .client
            .post(url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(auth.0, auth.1)
            .body(payload);
        let work = async {
            let mut response = request.send().await.map_err(|e| self.transport_error(e))?;
            let status = response.status();
            let bytes = self.read_bounded(&mut response).await?;
            Ok::<_, SummaryError>((status, bytes))
        };
        let (status, bytes) = work.await?;
        if !status.is_success() {
            tracing::warn!(provider, status = status.as_u16(), "summary request failed");
            let message = error_message(&bytes);
            return Err(SummaryError::Provider(format!(
                "{provider} HTTP {}: {}",
                status.as_u16(),
                scrub(&self.key, &message)
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|_| SummaryError::Provider(format!("{provider}: response is not valid JSON")))
    }

    /// Reads the response body, failing past `max_response_bytes`.
    async fn read_bounded(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, SummaryError> {
        let provider = self.api.name();
        let max = self.max_response_bytes;
        let too_large =
            || SummaryError::Provider(format!("{provider}: response larger than {max} bytes"));
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A short description of a transport failure (no URL, never the key).
    fn transport_error(&self, e: reqwest::Error) -> SummaryError {
        let provider = self.api.name();
        let what = if e.is_timeout() {
            "timed out".to_owned()
        } else if e.is_connect() {
            "connection failed".to_owned()
        } else {
            scrub(&self.key, &e.without_url().to_string())
        };
        tracing::warn!(provider, error = %what, "summary request failed");
        SummaryError::Provider(format!("{provider}: {what}"))
    }
}

/// The `error.message` of a JSON error body (every provider uses that
/// shape), else the start of the body as text; at most 200 characters.
fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_owned();
    }
    text.chars().take(MAX_ERROR_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(caller: bool, text: &str) -> TranscriptLine {
        TranscriptLine {
            caller,
            text: text.into(),
        }
    }

    #[test]
    fn transcript_renders_caller_and_agent_lines_in_order() {
        let t = [line(true, "Hi, I need a refill."), line(false, " Sure. ")];
        assert_eq!(
            render_transcript(&t, 1000),
            "Caller: Hi, I need a refill.\nAgent: Sure.\n"
        );
    }

    #[test]
    fn long_transcript_keeps_the_end_within_the_bound() {
        let t: Vec<_> = (0..1000)
            .map(|i| line(i % 2 == 0, &format!("turn number {i} with some words")))
            .collect();
        let out = render_transcript(&t, 500);
        assert!(out.len() <= 500, "{} bytes", out.len());
        assert!(out.starts_with(OMITTED));
        assert!(out.ends_with("Agent: turn number 999 with some words\n"));
        // Cut at a line start.
        let first = out[OMITTED.len()..].lines().next().unwrap_or_default();
        assert!(
            first.starts_with("Caller: ") || first.starts_with("Agent: "),
            "{first}"
        );
    }

    #[test]
    fn truncation_respects_multibyte_characters() {
        let t = [line(true, &"é".repeat(400))];
        let out = render_transcript(&t, 101);
        assert!(out.len() <= 101);
        assert!(out.ends_with("é\n"));
    }

    proptest::proptest! {
        #[test]
        fn rendered_transcript_is_bounded_and_keeps_the_end(
            lines in proptest::collection::vec((proptest::bool::ANY, "\\PC{0,80}"), 1..60),
            max in 40usize..2000,
        ) {
            let t: Vec<_> = lines.iter().map(|(c, s)| line(*c, s)).collect();
            let full = render_transcript(&t, usize::MAX);
            let out = render_transcript(&t, max);
            proptest::prop_assert!(out.len() <= max);
            if full.len() <= max {
                proptest::prop_assert_eq!(&out, &full);
            } else {
                proptest::prop_assert!(out.starts_with(OMITTED));
                proptest::prop_assert!(full.ends_with(&out[OMITTED.len()..]));
            }
        }
    }

    #[test]
    fn error_message_prefers_the_json_error_message_and_is_bounded() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","code":401}}"#),
            "bad key"
        );
        assert_eq!(error_message(b"  "), "(no message)");
        assert_eq!(error_message("x".repeat(1000).as_bytes()).len(), 200);
    }

    #[test]
    fn secret_is_redacted_in_debug_and_scrubbed_from_text() {
        let s = secret(" sk-123 ".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(scrub(&s, "key sk-123 bad"), "key <redacted> bad");
        assert_eq!(scrub(&secret(String::new()), "as is"), "as is");
    }
}
