//! Realtime voice model clients for callbridge (Gemini Live, OpenAI Realtime) behind one trait, and mock servers that speak both protocols.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
