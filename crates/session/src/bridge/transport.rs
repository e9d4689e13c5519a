//! A call's media transport: RTP (an RFC 3550 media stream on a UDP
//! socket, negotiated with SDP over SIP) or a carrier WebSocket (Twilio
//! Media Streams, Vonage; [`crate::carrier`]). Both tick every 20 ms with
//! one 8 kHz caller frame and the frame we sent, so the call task, the
//! lifecycle machine, the playback queue, barge-in, timers, recording and
//! store code are the same for both; only what is specific to the wire
//! lives here.

use callbridge_rtp::jitter::Playout;
use callbridge_rtp::latch::RejectReason;
use callbridge_rtp::stream::{Frame, MediaEvent, MediaStats, MediaStream};
use tracing::{debug, info, warn};

use crate::carrier::media::{CarrierMedia, CarrierMediaEvent};
use crate::lifecycle::DtmfDigit;

/// The media of one call.
#[derive(Debug)]
pub enum Transport {
    /// RTP with a SIP peer.
    Rtp(MediaStream),
    /// A carrier's WebSocket.
    Carrier(Box<CarrierMedia>),
}

/// What a transport reports to the call task.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one event per 20 ms tick, moved once; boxing would allocate per frame"
)]
pub enum TransportEvent {
    /// One 20 ms tick: the caller's frame and ours, aligned for the
    /// recorder.
    Tick {
        /// Caller audio (silence or concealment when nothing arrived).
        pcm: Frame,
        /// Whether caller media arrived for this tick.
        heard: bool,
        /// What we sent this tick.
        sent: Frame,
    },
    /// The caller pressed a key.
    Dtmf(DtmfDigit),
    /// The carrier ended the stream (the caller hung up); RTP never says
    /// this (SIP BYE does).
    Hangup,
}

impl Transport {
    /// `sip` for RTP with a SIP peer, else the carrier's name (`twilio`,
    /// `vonage`): the `transport` of the call's log lines and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Transport::Rtp(_) => "sip",
            Transport::Carrier(m) => m.carrier().as_str(),
        }
    }

    /// The next event; `None` when the transport stopped by itself.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<TransportEvent> {
        loop {
            match self {
                Transport::Rtp(s) => match s.recv().await? {
                    MediaEvent::Audio { pcm, playout, sent } => {
                        return Some(TransportEvent::Tick {
                            pcm,
                            heard: matches!(playout, Playout::Audio { .. }),
                            sent,
                        });
                    }
                    MediaEvent::Dtmf(d) => {
                        if let Some(d) = DtmfDigit::from_event(d.event) {
                            return Some(TransportEvent::Dtmf(d));
                        }
                    }
                    MediaEvent::Inactive { silent_for } => {
                        // Measured from the stream's opening; the call's
                        // own check (from the answer) decides.
                        debug!(
                            silent_ms = u64::try_from(silent_for.as_millis()).unwrap_or(u64::MAX),
                            "media stream reports no RTP"
                        );
                    }
                    MediaEvent::RtcpBye => debug!("RTCP BYE from the peer"),
                    MediaEvent::Latched(to) => info!(%to, "RTP is sent to this address now"),
                    MediaEvent::Rejected { from, reason } if reason == RejectReason::SrtpAuth => {
                        warn!(
                            %from,
                            reason = reason.as_str(),
                            "SRTP/SRTCP packet failing authentication dropped (forged, \
                             replayed or plain; logged once per call; all are counted in \
                             callbridge_rtp_rejected_packets_total)"
                        );
                    }
                    MediaEvent::Rejected { from, reason } => warn!(
                        %from,
                        reason = reason.as_str(),
                        "RTP from a source that is not the call's media peer dropped \
                         (logged once per call; all are counted in \
                         callbridge_rtp_rejected_packets_total)"
                    ),
                    other => debug!(event = %crate::log_name::Variant(&other), "media event"),
                },
                Transport::Carrier(c) => match c.recv().await? {
                    CarrierMediaEvent::Audio { pcm, packet, sent } => {
                        return Some(TransportEvent::Tick {
                            pcm,
                            heard: packet,
                            sent,
                        });
                    }
                    CarrierMediaEvent::Dtmf(d) => {
                        if let Some(d) = DtmfDigit::new(d) {
                            return Some(TransportEvent::Dtmf(d));
                        }
                    }
                    CarrierMediaEvent::Stopped => return Some(TransportEvent::Hangup),
                },
            }
        }
    }

    /// Queues one frame of ours for a coming tick; false when the
    /// transport's own small queue is full.
    pub fn try_play(&mut self, frame: Frame) -> bool {
        match self {
            Transport::Rtp(s) => s.try_play(frame),
            Transport::Carrier(c) => c.try_play(frame),
        }
    }

    /// Barge-in: drops what is queued for sending (and, for a carrier,
    /// tells it to drop its own queue). Returns the frames the carrier
    /// confirmed played, where the transport can know it.
    pub fn clear_playback(&mut self) -> Option<u64> {
        match self {
            Transport::Rtp(s) => {
                s.clear_playback();
                None
            }
            Transport::Carrier(c) => Some(c.clear_playback()),
        }
    }

    /// Frames sent so far, where the transport confirms playout (carriers).
    pub fn frames_sent(&self) -> Option<u64> {
        match self {
            Transport::Rtp(_) => None,
            Transport::Carrier(c) => Some(c.frames_sent()),
        }
    }

    /// Frames the far end confirmed played, where it can (carrier marks).
    pub fn frames_played(&self) -> Option<u64> {
        match self {
            Transport::Rtp(_) => None,
            Transport::Carrier(c) => Some(c.frames_played()),
        }
    }

    /// The RTP stream, for what only RTP has (the peer's address).
    pub fn rtp(&self) -> Option<&MediaStream> {
        match self {
            Transport::Rtp(s) => Some(s),
            Transport::Carrier(_) => None,
        }
    }

    /// The RTP stream's counters (a carrier socket has none).
    pub fn stats(&self) -> Option<MediaStats> {
        self.rtp().map(MediaStream::stats)
    }

    /// Whether a carrier carries this call (no SIP dialog).
    pub fn is_carrier(&self) -> bool {
        matches!(self, Transport::Carrier(_))
    }

    /// Ends the call at the far end where that is the transport's job
    /// (a carrier's REST hangup; for RTP, SIP does it).
    pub async fn hangup(&mut self) {
        if let Transport::Carrier(c) = self {
            c.hangup().await;
        }
    }

    /// Closes the transport: the RTP socket goes back to the pool, the
    /// carrier socket gets a close frame. Returns the RTP stream's final
    /// counters.
    pub async fn close(self) -> Option<MediaStats> {
        match self {
            Transport::Rtp(s) => Some(s.close().await),
            Transport::Carrier(c) => {
                c.close();
                None
            }
        }
    }
}
