//! What the two text-API summarizers share: the HTTP client (reqwest over
//! rustls on the ring provider, webpki roots; plain `http://` works for
//! tests), the secret key wrapper, the transcript rendering (bounded, keeps
//! the end), the bounded POST and the error mapping (status + short message,
//! never the key).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{SummaryError, TranscriptLine};

/// The builder methods every HTTP summarizer shares, written once: invoked
/// inside `impl` blocks of types with a `settings: HttpSettings` field.
macro_rules! settings_builder {
    () => {
        /// Uses another base URL (scheme, host, port, without the API's
        /// version path; `http://` works).
        pub fn with_endpoint(mut self, endpoint: impl AsRef<str>) -> Self {
            self.settings.endpoint = endpoint.as_ref().trim_end_matches('/').to_owned();
            self
        }

        /// Bounds each request (connect, send, read) to `timeout`.
        pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.timeout = timeout;
            self
        }

        /// Bounds the response body; a larger one is an error.
        pub fn with_max_response_bytes(mut self, max: usize) -> Self {
            self.settings.max_response_bytes = max;
            self
        }

        /// Bounds the transcript text sent (its end is kept).
        pub fn with_max_transcript_bytes(mut self, max: usize) -> Self {
            self.settings.max_transcript_bytes = max;
            self
        }

        /// The model used.
        pub fn model(&self) -> &str {
            &self.settings.model
        }
    };
}
pub(crate) use settings_builder;

/// Default per-request timeout (connect + request + response body).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound on a response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Default bound on the rendered transcript sent to the model (bytes).
pub(crate) const DEFAULT_MAX_TRANSCRIPT_BYTES: usize = 32 * 1024;
/// Longest provider error message kept in a [`SummaryError::Provider`].
const MAX_ERROR_MESSAGE: usize = 200;
/// Marker put before a transcript whose beginning was cut.
const OMITTED: &str = "[earlier part of the call omitted]\n";

/// The instruction both providers get.
pub(crate) const SYSTEM_PROMPT: &str = "You summarize phone calls between a caller and an AI \
voice agent for a CRM record. Write a short summary of a few sentences in plain text: the \
outcome of the call, what the caller wanted, and any follow-ups that were promised or are \
needed. Do not invent details that are not in the transcript. The transcript follows, one \
line per turn, prefixed with \"Caller:\" or \"Agent:\".";

/// An API key: `Debug` prints `<redacted>`, there is no `Display`.
#[derive(Clone)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(key: String) -> Self {
        Secret(key.trim().into())
    }

    /// The key, for the one place that puts it in a header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced (a server echoing
    /// the key back in an error message must not leak it).
    fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&*self.0, "<redacted>")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Connection settings shared by both summarizers.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub(crate) client: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) model: String,
    pub(crate) key: Secret,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_transcript_bytes: usize,
}

impl HttpSettings {
    /// Settings with the defaults and a fresh client.
    pub(crate) fn new(
        endpoint: &str,
        model: &str,
        key: String,
        provider: &'static str,
    ) -> Result<Self, SummaryError> {
        Ok(HttpSettings {
            client: client(provider)?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            key: Secret::new(key),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_transcript_bytes: DEFAULT_MAX_TRANSCRIPT_BYTES,
        })
    }
}

/// A reqwest client on rustls with the ring provider and the webpki roots
/// (no aws-lc, no platform verifier, no native TLS).
pub(crate) fn client(provider: &'static str) -> Result<reqwest::Client, SummaryError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| SummaryError::Provider(format!("{provider}: TLS setup failed")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(DEFAULT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| SummaryError::Provider(format!("{provider}: HTTP client setup failed")))
}

/// Renders the transcript as `Caller: ...` / `Agent: ...` lines, at most
/// `max` bytes: when longer, the beginning is cut (at a line start where one
/// is in reach) and marked, since a call's outcome is at its end.
pub(crate) fn render_transcript(transcript: &[TranscriptLine], max: usize) -> String {
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

/// POSTs `body` as JSON to `url` with `auth` (header name, value), and
/// returns the parsed JSON of a 2xx answer. The body is read up to the
/// settings' bound; non-2xx answers become `Provider("<provider> HTTP
/// <status>: <message>")`.
pub(crate) async fn post_json(
    settings: &HttpSettings,
    provider: &'static str,
    url: &str,
    auth: (&'static str, String),
    body: &serde_json::Value,
) -> Result<serde_json::Value, SummaryError> {
    let payload = serde_json::to_vec(body)
        .map_err(|_| SummaryError::Provider(format!("{provider}: request encoding failed")))?;
    let request = settings
        .client
        .post(url)
        .timeout(settings.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(auth.0, auth.1)
        .body(payload);
    let work = async {
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(settings, provider, e))?;
        let status = response.status();
        let bytes = read_bounded(settings, provider, &mut response).await?;
        Ok::<_, SummaryError>((status, bytes))
    };
    let (status, bytes) = work.await?;
    if !status.is_success() {
        tracing::warn!(provider, status = status.as_u16(), "summary request failed");
        let message = error_message(&bytes);
        return Err(SummaryError::Provider(format!(
            "{provider} HTTP {}: {}",
            status.as_u16(),
            settings.key.scrub(&message)
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| SummaryError::Provider(format!("{provider}: response is not valid JSON")))
}

/// Reads the response body, failing past `max_response_bytes`.
async fn read_bounded(
    settings: &HttpSettings,
    provider: &'static str,
    response: &mut reqwest::Response,
) -> Result<Vec<u8>, SummaryError> {
    let max = settings.max_response_bytes;
    let too_large =
        || SummaryError::Provider(format!("{provider}: response larger than {max} bytes"));
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(settings, provider, e))?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short description of a transport failure (no URL, never the key).
fn transport_error(
    settings: &HttpSettings,
    provider: &'static str,
    e: reqwest::Error,
) -> SummaryError {
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        settings.key.scrub(&e.without_url().to_string())
    };
    tracing::warn!(provider, error = %what, "summary request failed");
    SummaryError::Provider(format!("{provider}: {what}"))
}

/// The `error.message` of a JSON error body (both providers use that
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
        let s = Secret::new("sk-123".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.scrub("key sk-123 bad"), "key <redacted> bad");
    }
}
