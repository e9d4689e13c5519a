//! Media for callbridge: RTP/RTCP packets, G.711, resampling, jitter buffer, RFC 4733 DTMF, the per-call media socket and the call recorder.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod dtmf;
pub mod error;
pub mod g711;
pub mod ids;
pub mod jitter;
pub mod ports;
pub mod recorder;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sender;
pub mod stream;
pub mod transcode;

pub use error::{Error, ParseError};
pub use ids::{ExtSeqNo, PayloadType, SeqNo, Ssrc};
pub use rtp::{HeaderExtension, RtpHeader, RtpPacket};
