//! What a summarizer is: the [`Summarizer`] trait, its input
//! ([`TranscriptLine`]), its error ([`SummaryError`]) and the
//! [`FixedSummarizer`] of the tests and the demo. A leaf module: the HTTP
//! summarizer and the session layer name it, it names neither.

use std::future::Future;
use std::pin::Pin;

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
