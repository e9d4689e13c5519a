//! Mock realtime model servers that speak the real wire protocols of Gemini
//! Live, OpenAI Realtime and OpenAI GPT-Live on 127.0.0.1, for callbridge's tests, the load
//! tool, the benchmarks and the keyless demo (`agent demo`).
//!
//! Owns: the shared scaffolding ([`server`]: bind 127.0.0.1:0, accept loop,
//! per-connection scripts, handshake refusal, counters), the energy VAD
//! ([`vad`]), the embedded speech clips ([`clips`]) and the Gemini Live mock
//! ([`gemini`], with its strict client-message validator
//! [`gemini_validate`]) and the OpenAI Realtime mock ([`openai`], validated
//! by [`openai_validate`]) and the GPT-Live mock ([`gpt_live`], validated with
//! the bridge's strict wire types). The clients it is tested against live in
//! `callbridge-llm-bridge`; this crate depends on that one (for the audio
//! codecs and the message bound), never the other way round.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
//! let mock = MockGemini::start(GeminiScript::default()).await.unwrap();
//! assert!(mock.url().starts_with("ws://127.0.0.1:"));
//! assert_eq!(mock.stats().connections, 0);
//! mock.shutdown().await;
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod clips;
pub mod gemini;
pub mod gemini_validate;
pub mod gpt_live;
pub mod openai;
pub mod openai_validate;
pub mod server;
pub mod vad;
mod validate;

pub use server::{Handshake, MockServer, MockStats, ScriptBook};
