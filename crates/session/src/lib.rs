//! The call session for callbridge: the pure lifecycle state machine of one
//! call ([`lifecycle`]). The session manager (one task tree per call) and the
//! media bridge build on it.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod lifecycle;
