//! callbridge connects phone calls (SIP and RTP with G.711) to realtime voice
//! models. This root package holds the workspace-level end-to-end tests
//! (`tests/`) and criterion benchmarks (`benches/`); the code lives in the
//! `callbridge-*` crates under `crates/` and the binaries under `bins/`.
#![deny(missing_docs)]

pub mod csv_cell;
pub mod range;
