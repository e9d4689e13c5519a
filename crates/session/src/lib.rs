//! The call session for callbridge: the pure lifecycle state machine of one
//! call ([`lifecycle`]), the per-call media bridge that executes it
//! ([`bridge`]), the [`Manager`] that runs every call as one task tree,
//! the store writer thread ([`store_writer`]), live-resource [`gauges`], the
//! [`metrics`] registry and post-call [`summary`] support.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bridge;
pub mod carrier;
pub mod dial_targets;
mod end_reason;
pub mod gauges;
pub mod lifecycle;
pub mod manager;
pub mod metrics;
pub mod store_writer;
pub mod summary;

/// The llm-bridge mock model servers (feature `mock`), for the keyless
/// demo: start a `mock::gemini::MockGemini` and point the manager's model
/// endpoint at its URL.
#[cfg(feature = "mock")]
pub use callbridge_llm_bridge::mock;
pub use manager::{
    CallInfo, CarrierCall, Manager, ManagerConfig, ManagerError, OriginateRequest, OutboundAuth,
    Readiness, Snapshot,
};
pub use metrics::{HistogramSnapshot, MetricsSnapshot, ModelReachability};
pub use summary::{
    FixedSummarizer, GeminiSummarizer, OpenAiSummarizer, Summarizer, summarizer_for,
};
