//! Media for callbridge: RTP/RTCP packets, G.711, resampling, jitter buffer,
//! RFC 4733 DTMF, the per-call media socket and the call recorder.
//!
//! | module | owns | spec |
//! |---|---|---|
//! | [`rtp`], [`ids`] | RTP packet view and header writer; `Ssrc`, `SeqNo`, `ExtSeqNo`, `PayloadType` | RFC 3550 section 5 |
//! | [`rtcp`] | compound RTCP parser (SR, RR, SDES, BYE); RR, SDES CNAME and BYE writers | RFC 3550 section 6 |
//! | [`g711`] | mu-law and A-law on slices: `callbridge-audio`'s, re-exported | ITU-T G.711 / G.191 |
//! | [`resample`] | 20 ms streaming resampler 8 kHz <-> 16/24 kHz (`callbridge_audio`'s polyphase FIR), 2 ms delay | |
//! | [`jitter`] | sans-IO jitter buffer with concealment and adaptive depth | RFC 3550 A.1, A.8 |
//! | [`dtmf`] | telephone-event payload, receiver, generator | RFC 4733 |
//! | [`sender`] | sans-IO outbound packetizer (silence, marker) | RFC 3551 |
//! | [`latch`] | sans-IO choice of the media peer: SDP peer first, symmetric-RTP latch only under the policy | RFC 4961 |
//! | [`schedule`] | sans-IO table of periodic absolute deadlines (the media clock's) | |
//! | [`ports`] | even-port pool for RTP (+ RTCP) sockets, ports drawn at random (`driver`) | |
//! | [`stream`] | the tokio driver: one receiving task per call, 20 ms ticks from the clock (`driver`) | |
//! | [`clock`] | the media clock: one thread pacing every stream on absolute 20 ms deadlines (`driver`) | RFC 3551 section 4.5 |
//! | [`recorder`] | stereo 8 kHz WAV recorder (caller left, agent right) | |
//! | [`wav`] | WAV header inspection and repair (crash and full-disk recovery) | |
//! | [`transcode`] | offline conversion used by the `transcode` example | |
//!
//! # Features
//!
//! - `driver` (default): the IO side, [`ports`], [`stream`] and [`clock`]:
//!   sockets, tokio tasks and the media clock's thread (raised to a
//!   real-time priority with `thread-priority`). Without it the crate is
//!   its sans-IO cores (packets, jitter buffer, latch, DTMF, sender,
//!   schedule) plus the recorder and the offline transcoder, and tokio is
//!   not a dependency: the compiler keeps the cores free of it.
//!
//! # Module graph
//!
//! Modules depend one way (an arrow reads "uses"); there is no cycle:
//!
//! ```text
//! stream ──> stream::core ──> stream::event   (leaf: Frame, MediaEvent, MediaStats)
//!   │            │
//!   ├──> ports   ├──> clock ──> schedule, sender
//!   │            └──> jitter, latch, rtcp, dtmf, sender
//!   └──> clock, jitter, latch, rtcp, dtmf, sender, ids
//! sender ──> rtp, dtmf, ids, g711     jitter ──> rtp, ids, g711
//! rtp, rtcp ──> ids                    recorder ──> wav
//! transcode ──> resample, g711        (every module may use error)
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "driver")]
pub mod clock;
pub mod dtmf;
pub mod error;
pub mod ids;
pub mod jitter;
pub mod latch;
#[cfg(feature = "driver")]
pub mod ports;
pub mod recorder;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod schedule;
pub mod sender;
#[cfg(feature = "driver")]
pub mod stream;
pub mod transcode;
pub mod wav;

/// G.711 mu-law and A-law: the one implementation, `callbridge_audio::g711`.
pub use callbridge_audio::g711;
pub use error::{Error, ParseError};
pub use ids::{ExtSeqNo, PayloadType, SeqNo, Ssrc};
pub use rtp::{HeaderExtension, RtpHeader, RtpPacket};

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
