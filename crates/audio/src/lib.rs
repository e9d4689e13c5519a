//! Audio sample helpers shared by callbridge's media crates: G.711 mu-law
//! and A-law, the signal level (RMS) and the one resampler. No IO, no
//! allocation on the sample paths; one dependency, `wide` (portable SIMD
//! for the resampler's dot products).
//!
//! | module | owns | spec |
//! |---|---|---|
//! | [`g711`] | mu-law and A-law, on slices and per sample, all 65,536 inputs and 256 codes tested against G.191 tables | ITU-T G.711 / G.191 |
//! | [`level`] | the RMS of 16-bit samples | |
//! | [`resample`] | streaming 8 kHz <-> 16/24 kHz polyphase FIR resampler, 2 ms delay, fixed point | Kaiser 1974 |
//!
//! `callbridge-rtp` (the telephone leg) and `callbridge-llm-bridge` (the
//! model leg) both use this crate and know nothing of each other.
//!
//! ```
//! use callbridge_audio::g711::Law;
//! use callbridge_audio::level::rms;
//!
//! let pcm = [1000i16; 160];
//! let mut codes = [0u8; 160];
//! Law::MuLaw.encode(&pcm, &mut codes)?;
//! let mut back = [0i16; 160];
//! Law::MuLaw.decode(&codes, &mut back)?;
//! assert!((rms(&back) - 1000.0).abs() < 20.0);
//! # Ok::<(), callbridge_audio::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod g711;
pub mod level;
pub mod resample;

pub use error::Error;
pub use g711::Law;
pub use resample::Resampler;
