//! Media for callbridge: RTP/RTCP packets, G.711, resampling, jitter buffer,
//! RFC 4733 DTMF, the per-call media socket and the call recorder.
//!
//! | module | owns | spec |
//! |---|---|---|
//! | [`rtp`], [`ids`] | RTP packet view and header writer; `Ssrc`, `SeqNo`, `ExtSeqNo`, `PayloadType` | RFC 3550 section 5 |
//! | [`rtcp`] | compound RTCP parser (SR, RR, SDES, BYE); RR, SDES CNAME and BYE writers | RFC 3550 section 6 |
//! | [`g711`] | mu-law and A-law on slices | ITU-T G.711 / G.191 |
//! | [`resample`] | 20 ms streaming resampler 8 kHz <-> 16/24 kHz (rubato `Fft`), 2 ms delay | |
//! | [`jitter`] | sans-IO jitter buffer with concealment and adaptive depth | RFC 3550 A.1, A.8 |
//! | [`dtmf`] | telephone-event payload, receiver, generator | RFC 4733 |
//! | [`sender`] | sans-IO outbound packetizer (silence, marker) | RFC 3551 |
//! | [`latch`] | sans-IO choice of the media peer: SDP peer first, symmetric-RTP latch only under the policy | RFC 4961 |
//! | [`ports`] | even-port pool for RTP (+ RTCP) sockets, ports drawn at random | |
//! | [`stream`] | the tokio driver: one receiving task per call, 20 ms ticks from the clock | |
//! | [`clock`] | the media clock: one thread pacing every stream on absolute 20 ms deadlines | RFC 3551 section 4.5 |
//! | [`recorder`] | stereo 8 kHz WAV recorder (caller left, agent right) | |
//! | [`wav`] | WAV header inspection and repair (crash and full-disk recovery) | |
//! | [`transcode`] | offline conversion used by the `transcode` example | |
//!
//! Everything but [`stream`], [`clock`] and [`ports`] is free of IO and of
//! tokio ([`clock`]'s table, [`clock::Schedule`], is free of IO too).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod dtmf;
pub mod error;
pub mod g711;
pub mod ids;
pub mod jitter;
pub mod latch;
pub mod ports;
pub mod recorder;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sender;
pub mod stream;
pub mod transcode;
pub mod wav;

pub use error::{Error, ParseError};
pub use ids::{ExtSeqNo, PayloadType, SeqNo, Ssrc};
pub use rtp::{HeaderExtension, RtpHeader, RtpPacket};

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
