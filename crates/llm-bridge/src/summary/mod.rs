//! Post-call summaries (feature `summary`): after a call ends, its
//! transcript is handed to a pluggable [`Summarizer`] (a provider's text
//! API in production, the [`FixedSummarizer`] in tests and the demo). The
//! session layer stores the result; a failure is logged and never changes
//! the call's record.
//!
//! One summarizer speaks every provider: [`HttpSummarizer`], one HTTP path
//! (bounded POST, bounded answer, errors without the key) for the text APIs
//! that [`TextApi`] describes as data (Gemini `generateContent`, OpenAI Chat
//! Completions); [`summarizer_for`] picks the API from the realtime
//! [`crate::Provider`]. Outbound TLS trusts the [`crate::TlsRoots`] given.
//!
//! Modules, leaves first: `summarizer` (the trait and its types), `api`
//! (the providers' differences), `http` (the client).

mod api;
mod http;
mod summarizer;
#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

pub use api::TextApi;
pub use http::{HttpSummarizer, summarizer_for};
pub use summarizer::{
    FixedSummarizer, Summarizer, Summary, SummaryError, SummaryFuture, TranscriptLine,
};
