//! Answering-machine detection (AMD) for outbound calls, without IO: who
//! answered — a person, a machine (and when its greeting ends), nobody, or
//! the network's "unreachable" tones — from the callee's 8 kHz audio and,
//! optionally, the words of its transcript (issue 19).
//!
//! | module | owns |
//! |---|---|
//! | [`detector`] | stage A: [`Detector`], the state machine of one call, 20 ms frames in, [`Decision`]s out |
//! | [`config`] | [`AmdConfig`]: every threshold, its default and its origin |
//! | [`frame`] | one frame's level, zero-crossing rate and strongest tone (a Goertzel bank) |
//! | [`tone`] | beeps and special information tones (ITU-T E.180, Telcordia) |
//! | [`vad`] | voiced frames (energy over a tracked noise floor, zero crossings), utterances, the greeting |
//! | [`words`] | stage B: [`WordEvidence`], the verdict of a transcript's words |
//! | [`verdict`] | [`Verdict`], [`Evidence`], [`Decision`] |
//!
//! The detector reads no clock and allocates nothing per frame: the call
//! passes each frame with its time and polls the decisions, as it does for
//! its other sans-IO parts. Stage A costs a few microseconds per frame
//! (`benches/amd.rs`).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use callbridge_amd::{AmdConfig, Detector, Verdict};
//!
//! let mut amd = Detector::new(AmdConfig::default())?;
//! let t0 = Instant::now();
//! let frame = |i: u32| -> [i16; 160] {
//!     // 300 ms of silence, a 400 ms 1 kHz beep at -12 dBFS, then silence.
//!     if (15..35).contains(&i) {
//!         std::array::from_fn(|n| {
//!             let t = (i as f32 * 160.0 + n as f32) / 8000.0;
//!             (8000.0 * (std::f32::consts::TAU * 1000.0 * t).sin()) as i16
//!         })
//!     } else {
//!         [0; 160]
//!     }
//! };
//! let mut verdicts = Vec::new();
//! for i in 0..120u32 {
//!     amd.push_frame(t0 + Duration::from_millis(20) * (i + 1), &frame(i));
//!     while let Some(d) = amd.poll_decision() {
//!         verdicts.push(d.verdict);
//!     }
//! }
//! assert_eq!(verdicts, [Verdict::Machine, Verdict::MachineEndBeep]);
//! # Ok::<(), callbridge_amd::ConfigError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod detector;
pub mod error;
pub mod frame;
pub mod tone;
pub mod vad;
pub mod verdict;
pub mod words;

pub use config::AmdConfig;
pub use detector::Detector;
pub use error::ConfigError;
pub use verdict::{Beep, Decision, Evidence, Sit, Verdict};
pub use words::{WordConfig, WordEvidence};
