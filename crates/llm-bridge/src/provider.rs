//! Which realtime model service: [`Provider`], and the [`BoxFuture`] the
//! crate's object-safe traits return. A leaf module: errors, sessions and
//! the [`crate::RealtimeModel`] trait all name it, it names none of them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future (what `open` returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which realtime model service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// Google Gemini Live (`BidiGenerateContent`).
    Gemini,
    /// OpenAI Realtime (GA).
    OpenAi,
    /// OpenAI GPT-Live (`/v1/live/sessions`).
    GptLive,
}

impl Provider {
    /// The environment variable conventionally holding this provider's key.
    pub fn api_key_var(self) -> &'static str {
        match self {
            Provider::Gemini => "GEMINI_API_KEY",
            Provider::OpenAi | Provider::GptLive => "OPENAI_API_KEY",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Gemini => "Gemini Live",
            Provider::OpenAi => "OpenAI Realtime",
            Provider::GptLive => "OpenAI GPT-Live",
        })
    }
}
