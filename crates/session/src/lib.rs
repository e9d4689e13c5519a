//! The call session for callbridge: the pure lifecycle state machine of one
//! call ([`lifecycle`]), the per-call media bridge that executes it
//! ([`bridge`]), the [`Manager`] that runs every call as one task tree,
//! the store writer thread ([`store_writer`]), live-resource [`gauges`], the
//! [`metrics`] registry. Post-call summaries are llm-bridge's `summary`:
//! the manager takes any [`Summarizer`].
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod amd;
pub mod bridge;
pub mod carrier;
pub mod dial_targets;
pub mod dns;
mod end_reason;
pub mod events;
pub mod gauges;
pub mod http_tool;
pub mod lifecycle;
mod log_name;
pub mod manager;
pub mod metrics;
pub mod profile;
pub mod signing;
mod srtp;
pub mod store_writer;
pub mod webhooks;

pub use bridge::ControlError;
/// The post-call summarizer the [`Manager`] takes (llm-bridge's
/// `summary`), re-exported for the callers that build one.
pub use callbridge_llm_bridge::summary::{FixedSummarizer, Summarizer};
pub use manager::{
    CallInfo, CarrierCall, EngineStatus, InboundOwners, Manager, ManagerConfig, ManagerError,
    OriginateRequest, OutboundAuth, Readiness, Snapshot,
};
pub use metrics::{HistogramSnapshot, MetricsSnapshot, ModelReachability, TokenPurpose};
