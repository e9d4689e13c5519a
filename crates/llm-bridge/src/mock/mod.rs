//! Mock realtime model servers (feature `mock`) that speak the real wire
//! protocols, for this crate's tests, other crates' tests, the benchmarks
//! and the keyless demo.
//!
//! Owns: the shared scaffolding ([`server`]: bind 127.0.0.1:0, accept loop,
//! per-connection scripts, handshake refusal, counters), the energy VAD
//! ([`vad`]), the embedded speech clips ([`clips`]) and the Gemini Live mock
//! ([`gemini`], with its strict client-message validator
//! [`gemini_validate`]) and the OpenAI Realtime mock ([`openai`], validated
//! by [`openai_validate`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use callbridge_llm_bridge::mock::gemini::{GeminiScript, MockGemini};
//! let mock = MockGemini::start(GeminiScript::default()).await.unwrap();
//! assert!(mock.url().starts_with("ws://127.0.0.1:"));
//! assert_eq!(mock.stats().connections, 0);
//! mock.shutdown().await;
//! # }
//! ```

pub mod clips;
pub mod gemini;
pub mod gemini_validate;
pub mod openai;
pub mod openai_validate;
pub mod server;
pub mod vad;
mod validate;

pub use server::{Handshake, MockServer, MockStats, ScriptBook};
