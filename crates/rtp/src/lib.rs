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
//! | [`srtp`] | sans-IO SRTP/SRTCP of one call (`SrtpSession`, on `rtc-srtp` and aws-lc-rs): protect, unprotect, replay windows, bounded per-SSRC state; keys wiped on drop | RFC 3711, RFC 7714 |
//! | [`sender`] | sans-IO outbound packetizer (silence, marker) | RFC 3551 |
//! | [`media`] | sans-IO media of one call (`MediaCore`): latch, jitter buffer, RTCP, DTMF, playback queue, 20 ms pacing | RFC 3550, 3551, 4733 |
//! | [`latch`] | sans-IO choice of the media peer: SDP peer first, symmetric-RTP latch only under the policy | RFC 4961 |
//! | [`schedule`] | sans-IO periodic absolute deadlines (`Periodic`: the 20 ms pacing policy) | RFC 3551 section 4.5 |
//! | [`ports`] | even-port pool for RTP (+ RTCP) sockets, ports drawn at random (`driver`) | |
//! | [`engine`] | the media engine: threads owning every call's sockets, `recvmmsg`/`sendmmsg`, lock-free queues to the calls, its own load (`driver`) | |
//! | [`clock`] | the engine's clock as a value: `SystemClock`, `SimClock` (`driver`) | |
//! | [`stream`] | a call's handle on its media (`MediaStream`) (`driver`) | |
//! | [`recorder`] | stereo 8 kHz WAV recorder (caller left, agent right) | |
//! | [`wav`] | WAV header inspection and repair (crash and full-disk recovery) | |
//! | [`transcode`] | offline conversion used by the `transcode` example | |
//!
//! # Features
//!
//! - `driver` (default): the IO side, [`ports`], [`engine`], [`clock`]
//!   and [`stream`]: sockets, the engine's threads (real-time priority
//!   only as a setting, with `thread-priority`), batched IO through nix.
//!   Without it the crate is its sans-IO cores (packets, jitter buffer,
//!   latch, DTMF, sender, schedule, the media core) plus the recorder and
//!   the offline transcoder: the compiler keeps the cores free of IO. No
//!   part of the crate depends on tokio.
//!
//! # Module graph
//!
//! Modules depend one way (an arrow reads "uses"); there is no cycle:
//!
//! ```text
//! stream ──> engine ──> engine::link (leaf) ──> clock, media::event
//!   │          ├──> engine::worker ──> engine::{io, load, priority}, media, ports, clock
//!   │          └──> ports
//!   └──> media ──> media::{config, event} (leaves), jitter, latch, rtcp, dtmf, sender, schedule, srtp
//! clock ──> media (constants)
//! sender ──> rtp, dtmf, ids, g711     jitter ──> rtp, ids, g711
//! rtp, rtcp ──> ids                    recorder ──> wav
//! transcode ──> resample, g711        srtp (leaf: rtc-srtp on aws-lc-rs)
//! (every module may use error)
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "driver")]
pub mod clock;
pub mod dtmf;
#[cfg(feature = "driver")]
pub mod engine;
pub mod error;
pub mod ids;
pub mod jitter;
pub mod latch;
pub mod media;
#[cfg(feature = "driver")]
pub mod ports;
pub mod recorder;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod schedule;
pub mod sender;
pub mod srtp;
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
