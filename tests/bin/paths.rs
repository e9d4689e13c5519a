//! The binaries under test: this package's fresh copies of `agent`,
//! `campaign` and `callbridge-load` (the `e2e-*` bins in Cargo.toml; cargo
//! sets `CARGO_BIN_EXE_*` only for bins of the test's own package). Every
//! test that starts a binary takes its path from here.
#![allow(dead_code, reason = "each test uses a subset")]

/// `agent`.
pub const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");
/// `campaign`.
pub const CAMPAIGN: &str = env!("CARGO_BIN_EXE_e2e-campaign");
/// `callbridge-load`.
pub const LOAD: &str = env!("CARGO_BIN_EXE_e2e-load");
