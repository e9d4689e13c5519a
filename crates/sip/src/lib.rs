//! SIP for callbridge: messages, SDP offer/answer, transactions and dialogs as a sans-IO core, digest auth, and a thin tokio UDP driver.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
