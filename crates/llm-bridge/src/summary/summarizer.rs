//! What a summarizer is: the [`Summarizer`] trait, its input
//! ([`TranscriptLine`]), its error ([`SummaryError`]) and the
//! [`FixedSummarizer`] of the tests and the demo. A leaf module: the HTTP
//! summarizer and the session layer name it, it names neither.

use std::future::Future;
use std::pin::Pin;

use crate::Usage;

/// A boxed future, as [`Summarizer::summarize`] returns.
pub type SummaryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Summary, SummaryError>> + Send + 'a>>;

/// A call's summary and what making it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The summary's text.
    pub text: String,
    /// The text API's token usage for it, when the answer reported one
    /// (Gemini `usageMetadata`, OpenAI Chat Completions `usage`); never
    /// an audio/text split.
    pub usage: Option<Usage>,
    /// Whose text API made it, as the metrics label providers (`gemini`,
    /// `openai`; `fixed` for the [`FixedSummarizer`]).
    pub provider: &'static str,
}

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

/// Returns the same summary for every non-empty transcript (tests, demo),
/// with the usage it is given (none by default).
///
/// ```
/// use callbridge_llm_bridge::Usage;
/// use callbridge_llm_bridge::summary::FixedSummarizer;
/// let s = FixedSummarizer::new("sum").with_usage("openai", Usage {
///     input_tokens: 200, output_tokens: 40, total_tokens: 240, split: None,
/// });
/// # let _ = s;
/// ```
#[derive(Debug, Clone)]
pub struct FixedSummarizer {
    text: String,
    usage: Option<Usage>,
    provider: &'static str,
}

impl FixedSummarizer {
    /// Summarizes every call as `text`, reporting no usage.
    pub fn new(text: impl Into<String>) -> Self {
        FixedSummarizer {
            text: text.into(),
            usage: None,
            provider: "fixed",
        }
    }

    /// Reports `usage` for each summary, as `provider`'s text API would.
    pub fn with_usage(mut self, provider: &'static str, usage: Usage) -> Self {
        self.usage = Some(usage);
        self.provider = provider;
        self
    }
}

impl Summarizer for FixedSummarizer {
    fn summarize<'a>(&'a self, transcript: &'a [TranscriptLine]) -> SummaryFuture<'a> {
        Box::pin(async move {
            if transcript.is_empty() {
                Err(SummaryError::Empty)
            } else {
                Ok(Summary {
                    text: self.text.clone(),
                    usage: self.usage,
                    provider: self.provider,
                })
            }
        })
    }
}
