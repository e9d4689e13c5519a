//! Post-call summaries: after a call ends, its transcript is handed to a
//! pluggable [`Summarizer`] (a provider's text API in production, the
//! [`FixedSummarizer`] in tests and the demo). The result is stored on the
//! session; a failure is logged and never changes the call's record.
//!
//! Providers: [`GeminiSummarizer`] (Gemini API `generateContent`) and
//! [`OpenAiSummarizer`] (OpenAI Chat Completions), both over HTTPS with
//! rustls; [`summarizer_for`] picks one from configuration.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use callbridge_llm_bridge::Provider;

mod gemini;
pub(crate) mod http;
mod openai;
#[cfg(test)]
mod test_server;

pub use gemini::GeminiSummarizer;
pub use openai::OpenAiSummarizer;

/// A boxed future, as [`Summarizer::summarize`] returns.
pub type SummaryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<String, SummaryError>> + Send + 'a>>;

/// Why a summary could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// The transcript was empty.
    #[error("empty transcript")]
    Empty,
    /// The provider failed.
    #[error("summary provider failed: {0}")]
    Provider(String),
}

/// One transcript line handed to a summarizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    /// `true` for the caller, `false` for the agent.
    pub caller: bool,
    /// What was said.
    pub text: String,
}

/// Makes a summary of a call's transcript.
pub trait Summarizer: Send + Sync {
    /// Summarizes `transcript` (in order).
    fn summarize<'a>(&'a self, transcript: &'a [TranscriptLine]) -> SummaryFuture<'a>;
}

/// Returns the same summary for every non-empty transcript (tests, demo).
#[derive(Debug, Clone)]
pub struct FixedSummarizer(pub String);

impl Summarizer for FixedSummarizer {
    fn summarize<'a>(&'a self, transcript: &'a [TranscriptLine]) -> SummaryFuture<'a> {
        Box::pin(async move {
            if transcript.is_empty() {
                Err(SummaryError::Empty)
            } else {
                Ok(self.0.clone())
            }
        })
    }
}

/// The summarizer for `provider`'s text API, with `endpoint` and `model`
/// when given (else the provider's defaults) and the API `key`.
///
/// Fails when the provider has no text summarizer or the HTTP client cannot
/// be set up.
///
/// ```
/// use callbridge_llm_bridge::Provider;
/// use callbridge_session::summary::summarizer_for;
/// let s = summarizer_for(Provider::Gemini, None, Some("gemini-2.5-flash"), "key".into())?;
/// # let _ = s;
/// # Ok::<(), callbridge_session::summary::SummaryError>(())
/// ```
pub fn summarizer_for(
    provider: Provider,
    endpoint: Option<&str>,
    model: Option<&str>,
    key: String,
) -> Result<Arc<dyn Summarizer>, SummaryError> {
    match provider {
        Provider::Gemini => {
            let mut s = GeminiSummarizer::new(key)?;
            if let Some(e) = endpoint {
                s = s.with_endpoint(e);
            }
            if let Some(m) = model {
                s = s.with_model(m);
            }
            Ok(Arc::new(s))
        }
        Provider::OpenAi => {
            let mut s = OpenAiSummarizer::new(key)?;
            if let Some(e) = endpoint {
                s = s.with_endpoint(e);
            }
            if let Some(m) = model {
                s = s.with_model(m);
            }
            Ok(Arc::new(s))
        }
        other => Err(SummaryError::Provider(format!(
            "no text summarizer for {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{Canned, serve_one};
    use super::*;

    #[tokio::test]
    async fn summarizer_for_builds_each_provider_with_endpoint_and_model() {
        let line = [TranscriptLine {
            caller: true,
            text: "hello".into(),
        }];
        let (base, req) = serve_one(Canned::json(
            200,
            r#"{"candidates":[{"content":{"parts":[{"text":"g"}]}}]}"#,
        ))
        .await;
        let s = summarizer_for(Provider::Gemini, Some(&base), Some("gm"), "k".into()).unwrap();
        assert_eq!(s.summarize(&line).await.unwrap(), "g");
        assert_eq!(req.await.unwrap().path, "/v1beta/models/gm:generateContent");

        let (base, req) = serve_one(Canned::json(
            200,
            r#"{"choices":[{"message":{"content":"o"}}]}"#,
        ))
        .await;
        let s = summarizer_for(Provider::OpenAi, Some(&base), Some("om"), "k".into()).unwrap();
        assert_eq!(s.summarize(&line).await.unwrap(), "o");
        assert_eq!(req.await.unwrap().json()["model"], "om");
    }

    /// An `https://` endpoint really goes through rustls (ring provider, no
    /// process-wide default needed): the first bytes the server sees are a
    /// TLS handshake record, and the failed handshake is a Provider error.
    #[tokio::test]
    async fn https_endpoint_starts_a_tls_handshake() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 3];
            sock.read_exact(&mut first).await.unwrap();
            first
            // Dropping the socket fails the handshake.
        });
        let s = OpenAiSummarizer::new("k")
            .unwrap()
            .with_endpoint(format!("https://{addr}"))
            .with_timeout(std::time::Duration::from_secs(10));
        let line = [TranscriptLine {
            caller: true,
            text: "hello".into(),
        }];
        let err = s.summarize(&line).await.unwrap_err();
        assert!(matches!(err, SummaryError::Provider(_)), "{err:?}");
        let first = server.await.unwrap();
        assert_eq!(first[0], 0x16, "TLS handshake record");
        assert_eq!(first[1], 0x03, "TLS major version");
    }

    #[test]
    fn defaults_are_the_public_endpoints() {
        let g = GeminiSummarizer::new("k").unwrap();
        assert_eq!(g.model(), GeminiSummarizer::DEFAULT_MODEL);
        let o = OpenAiSummarizer::new("k").unwrap();
        assert_eq!(o.model(), OpenAiSummarizer::DEFAULT_MODEL);
    }
}
