//! What one call's media is configured with: the negotiated codec, the
//! SDP peer and the latch rules, the pinned random starting points, the
//! queue bounds and the inactivity time.

use std::net::SocketAddr;
use std::time::Duration;

use crate::g711::Law;
use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::jitter::JitterConfig;
use crate::latch::LatchRules;
use crate::srtp::SrtpKeys;

/// The configuration of one call's media ([`MediaCore`](super::MediaCore)
/// and the stream that carries it).
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The negotiated law.
    pub law: Law,
    /// Its payload type (0 or 8).
    pub payload_type: PayloadType,
    /// The negotiated telephone-event payload type, if any.
    pub telephone_event: Option<PayloadType>,
    /// The peer's address from SDP: always heard, and sent to unless
    /// another source latched (see [`crate::latch`]).
    pub remote: Option<SocketAddr>,
    /// Which other sources may latch, and the allowlist nothing is taken
    /// from or sent to outside of. [`LatchRules::any`] by default.
    pub latch: LatchRules,
    /// Whether the peer may already know our address, so that a source
    /// the rules allow may latch from the start (true by default: an
    /// outbound offer carries it). An inbound call's media starts closed
    /// and opens with [`MediaCore::answered`](super::MediaCore::answered).
    pub latch_open: bool,
    /// No RTP for this long raises [`MediaEvent::Inactive`](super::MediaEvent::Inactive).
    pub inactivity: Duration,
    /// Jitter buffer settings.
    pub jitter: JitterConfig,
    /// Our SSRC (random; injected).
    pub ssrc: Ssrc,
    /// First sequence number (random; injected).
    pub first_seq: SeqNo,
    /// First timestamp (random; injected).
    pub first_timestamp: u32,
    /// Frames that may wait to be played (backpressure beyond).
    pub playback_capacity: usize,
    /// Events that may wait for the call to read them.
    pub event_capacity: usize,
    /// The SDES CNAME for RTCP.
    pub cname: String,
    /// Whether the call's media is SRTP, and its keys once known.
    pub srtp: MediaSrtp,
}

/// The SRTP setting of a call's media.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MediaSrtp {
    /// Plain RTP.
    #[default]
    Off,
    /// SRTP was offered and the answer with the peer's key has not come:
    /// nothing is sent and nothing is taken until
    /// [`MediaCore::set_srtp`](super::MediaCore::set_srtp).
    Awaiting,
    /// SRTP with these keys (negotiated with `RTP/SAVP`): everything sent
    /// is protected and everything received must authenticate. (Its
    /// `Debug` prints the suite only.)
    Keys(SrtpKeys),
}

impl MediaConfig {
    /// A configuration with defaults: 30 s inactivity, default jitter
    /// buffer, a 500 ms playback queue (the call keeps its own longer
    /// queue), 32 events, latching to any source ([`LatchRules::any`];
    /// the session manager sets each call's rules).
    #[must_use]
    pub fn new(
        law: Law,
        remote: Option<SocketAddr>,
        ssrc: Ssrc,
        first_seq: SeqNo,
        first_timestamp: u32,
    ) -> MediaConfig {
        MediaConfig {
            law,
            payload_type: match law {
                Law::MuLaw => PayloadType::PCMU,
                Law::ALaw => PayloadType::PCMA,
            },
            telephone_event: PayloadType::new(101),
            remote,
            latch: LatchRules::any(),
            latch_open: true,
            inactivity: Duration::from_secs(30),
            jitter: JitterConfig::default(),
            ssrc,
            first_seq,
            first_timestamp,
            playback_capacity: 25,
            event_capacity: 32,
            cname: "callbridge".to_owned(),
            srtp: MediaSrtp::Off,
        }
    }

    /// [`MediaConfig::new`] with the SSRC, the first sequence number and
    /// the first timestamp drawn from `rng` (RFC 3550 section 5.1: all
    /// three start random). Seed the generator to pin them in a test.
    ///
    /// ```
    /// use callbridge_rtp::g711::Law;
    /// use callbridge_rtp::stream::MediaConfig;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let a = MediaConfig::with_rng(Law::MuLaw, None, &mut rng);
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let b = MediaConfig::with_rng(Law::MuLaw, None, &mut rng);
    /// assert_eq!((a.ssrc, a.first_seq, a.first_timestamp), (b.ssrc, b.first_seq, b.first_timestamp));
    /// ```
    #[cfg(feature = "driver")]
    #[must_use]
    pub fn with_rng<R: rand::Rng + ?Sized>(
        law: Law,
        remote: Option<SocketAddr>,
        rng: &mut R,
    ) -> MediaConfig {
        let ssrc = Ssrc(rng.next_u32());
        // The low 16 bits of a uniform u32 are uniform.
        let first_seq = SeqNo(rng.next_u32() as u16);
        let first_timestamp = rng.next_u32();
        MediaConfig::new(law, remote, ssrc, first_seq, first_timestamp)
    }
}
