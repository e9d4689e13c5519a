//! Test helpers that more than one crate's tests need, so each lives once:
//! a dev-dependency of the crates and of the end-to-end tests, never a
//! dependency of a library or a binary.
//!
//! - [`tmpfs`]: a small tmpfs for the durability tests (a disk that fills
//!   up, a read-only filesystem); root only, otherwise the test skips and
//!   says why.
//! - [`postgres`]: a throw-away PostgreSQL cluster (`initdb` in a temp
//!   dir, a free loopback port), for the store suite on PostgreSQL; skips
//!   loudly when PostgreSQL is not installed.
//! - [`tone`]: a sine, and a least-squares fit of one, for the resampler
//!   quality tests.
#![deny(missing_docs)]

pub mod postgres;
pub mod tmpfs;
pub mod tone;
