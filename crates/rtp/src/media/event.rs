//! What a call's media hands the call: one [`Frame`] of audio each way per
//! tick and the [`MediaEvent`]s, and the [`MediaStats`] counters. A leaf
//! module: the [`MediaCore`](super::MediaCore), the engine and the
//! stream's handle all use it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dtmf::Digit;
use crate::jitter::{JitterStats, Playout};
use crate::latch::{RejectReason, RejectedPackets};
use crate::sender::MAX_FRAME;

/// One 20 ms frame at 8 kHz.
pub type Frame = [i16; MAX_FRAME];

/// What the stream reports to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "boxing the frame would allocate every 20 ms; events sit in a bounded channel"
)]
pub enum MediaEvent {
    /// One 20 ms tick: the caller's audio received and the agent's audio
    /// sent in the same tick, both at 8 kHz, aligned for the recorder.
    Audio {
        /// Caller audio out of the jitter buffer.
        pcm: Frame,
        /// Where it came from (audio, concealment, buffering silence).
        playout: Playout,
        /// What this tick sent (zeros for silence or a DTMF event).
        sent: Frame,
    },
    /// A completed DTMF key press.
    Dtmf(Digit),
    /// We send to this address from now on: a source latched, or the SDP
    /// peer was heard after another source had latched.
    Latched(SocketAddr),
    /// The first packet the latch rejected (reported once per stream; the
    /// rest are only counted in [`MediaStats::rejected`]).
    Rejected {
        /// Its source.
        from: SocketAddr,
        /// Why.
        reason: RejectReason,
    },
    /// No RTP for the configured time (reported once until RTP resumes).
    Inactive {
        /// Time since the last packet (or since the stream opened).
        silent_for: Duration,
    },
    /// The peer sent an RTCP BYE.
    RtcpBye,
}

/// Counters of the stream (plus the jitter buffer's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets received and accepted by the latch.
    pub packets_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// Datagrams that did not parse as RTP.
    pub malformed: u64,
    /// Packets the latch rejected, by reason.
    pub rejected: RejectedPackets,
    /// Audio events dropped because the call did not read them in time
    /// (or because the core's own queue was not polled).
    pub events_dropped: u64,
    /// Send errors (no route, ...).
    pub send_errors: u64,
    /// The jitter buffer's counters.
    pub jitter: JitterStats,
    /// The audio in the jitter buffer after the last tick's playout
    /// ([`JitterBuffer::buffered`](crate::jitter::JitterBuffer::buffered)).
    pub jitter_depth: Duration,
    /// Datagrams dropped because more than
    /// [`INBOUND_CAPACITY`](super::INBOUND_CAPACITY) arrived between two
    /// ticks.
    pub inbound_dropped: u64,
}
