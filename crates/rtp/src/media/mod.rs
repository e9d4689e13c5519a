//! One call's media without IO: [`MediaCore`], in the shape of quinn-proto's
//! `Connection` and str0m's `Rtc`. It owns everything a call's RTP does
//! between the socket and the call (the [`Latch`] policy, the
//! [`JitterBuffer`], RFC 4733 DTMF both ways, RTCP reports and BYE, the
//! playback queue and the [`RtpSender`] that packetizes it) and nothing of
//! the IO: no socket, channel, lock, task or clock read. The driver (the
//! media engine, or a test) runs one loop:
//!
//! ```text
//!   datagram from the RTP socket  ──> handle_datagram(now, &[u8], src)
//!   datagram from the RTCP socket ──> handle_rtcp(now, &[u8], src)
//!   the call's commands           ──> play / clear_playback / start_dtmf /
//!                                     set_remote / answered / close
//!   at poll_timeout()             ──> handle_tick(now, &mut buf) until None,
//!                                     sending each Transmit's buf[..len]
//!   then                          ──> poll_event() until None, to the call
//! ```
//!
//! # Pacing
//!
//! Each 20 ms tick ([`PTIME`]) sends one packet (a pending DTMF event, the
//! next queued frame, or silence), takes one decoded frame out of the
//! jitter buffer and hands both to the call as [`MediaEvent::Audio`]
//! (aligned for the recorder), and checks RTP inactivity. The deadlines
//! are absolute ([`Periodic`]): a driver that wakes late gets every missed
//! tick back to back, at most [`MAX_CATCH_UP`], so a late wake-up costs
//! latency, never packets; beyond that the schedule restarts from now.
//! Every [`RTCP_INTERVAL`] an RR + SDES goes out on the RTCP socket when
//! RTCP is on, and a BYE after [`MediaCore::close`].
//!
//! # SRTP
//!
//! A call configured with [`MediaConfig::srtp`] protects every RTP and
//! RTCP packet [`MediaCore::handle_tick`] writes (in `out`, which has room
//! for the tag) and unprotects every datagram before anything else reads
//! it: a packet that fails (forged, replayed, plain RTP) is dropped and
//! counted as [`RejectReason::SrtpAuth`], so it can neither latch nor
//! play. A source the latch rules refuse is dropped before that, under
//! the latch's reason: an attacker's packets cost no cryptography.
//!
//! # Bounds
//!
//! Everything is bounded: the playback queue
//! ([`MediaConfig::playback_capacity`]), the events waiting to be polled
//! ([`EVENT_QUEUE`]: an unpolled audio event is dropped and counted in
//! [`MediaStats::events_dropped`], other events drop the oldest audio
//! first) and the datagrams taken between two ticks
//! ([`INBOUND_CAPACITY`], the rest counted in
//! [`MediaStats::inbound_dropped`]).

mod config;
mod event;
#[cfg(test)]
mod srtp_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use self::config::{MediaConfig, MediaSrtp};
pub use self::event::{Frame, MediaEvent, MediaStats};
use crate::dtmf::{DtmfGenerator, DtmfReceiver, TelephoneEvent};
use crate::ids::PayloadType;
use crate::jitter::JitterBuffer;
use crate::latch::{Latch, LatchDecision, RejectReason};
use crate::rtcp::{self, ReportBlock, RtcpCompound};
use crate::rtp::RtpPacket;
use crate::schedule::{Due, Periodic};
pub use crate::sender::PTIME;
use crate::sender::{MAX_FRAME, RtpSender};
use crate::srtp::{MAX_SRTP_PACKET, SrtpSession};

/// Datagrams taken between two ticks (a peer sends one per 20 ms; the rest
/// is a burst or a flood, dropped and counted).
pub const INBOUND_CAPACITY: usize = 64;

/// Events that wait for [`MediaCore::poll_event`]: enough for a full
/// catch-up burst plus the other events of one tick. The driver polls
/// after every [`MediaCore::handle_tick`] loop.
pub const EVENT_QUEUE: usize = 16;

/// RTCP report interval.
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// How early a deadline may be served to share a wake-up with an earlier
/// one: an interval error this small is far below a receiver's jitter
/// buffer, and it bounds a driver's wake-ups to about
/// `PTIME / WAKE_TOLERANCE` per period however many calls there are.
pub const WAKE_TOLERANCE: Duration = Duration::from_micros(500);

/// Missed periods caught up back to back when the driver ran late (the
/// packets keep their place in the schedule); beyond this the schedule
/// restarts from now rather than flooding the peer.
pub const MAX_CATCH_UP: u32 = 5;

/// Buffer size [`MediaCore::handle_tick`] needs: the largest packet it
/// writes (an RTP packet of one frame, or an RTCP RR + SDES + BYE), with
/// room for SRTP's index and tag.
pub const TRANSMIT_BUFFER: usize = 512;

// The claim above, checked: an RTP packet of one frame (the sender
// writes no CSRCs or extensions) and what SRTP adds to it.
const _: () =
    assert!(TRANSMIT_BUFFER >= crate::rtp::RTP_HEADER_LEN + MAX_FRAME + crate::srtp::MAX_OVERHEAD);

/// Which of the call's sockets a [`Transmit`] goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// The RTP socket.
    Rtp,
    /// The RTCP socket (the RTP port + 1).
    Rtcp,
}

/// One datagram to send: the first `len` bytes of the buffer passed to
/// [`MediaCore::handle_tick`], to `destination`, on `socket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// Its length in the buffer.
    pub len: usize,
    /// Which socket sends it.
    pub socket: Socket,
}

/// RTCP still to go out before the next tick's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RtcpDue {
    None,
    Report,
    Bye,
}

/// One call's media. See the module docs.
///
/// ```
/// use std::time::{Duration, Instant};
/// use callbridge_rtp::g711::Law;
/// use callbridge_rtp::media::{MediaConfig, MediaCore, MediaEvent, TRANSMIT_BUFFER};
/// use callbridge_rtp::{SeqNo, Ssrc};
///
/// let peer = "127.0.0.1:4000".parse().unwrap();
/// let t0 = Instant::now();
/// let cfg = MediaConfig::new(Law::MuLaw, Some(peer), Ssrc(1), SeqNo(0), 0);
/// let mut core = MediaCore::new(&cfg, t0, false);
/// core.play([1000; 160]);
/// // Simulated time: one tick at its deadline.
/// let now = core.poll_timeout().unwrap();
/// let mut buf = [0u8; TRANSMIT_BUFFER];
/// let t = core.handle_tick(now, &mut buf).unwrap();
/// assert_eq!((t.destination, t.len), (peer, 172));
/// assert!(core.handle_tick(now, &mut buf).is_none());
/// assert!(matches!(core.poll_event(), Some(MediaEvent::Audio { .. })));
/// assert_eq!(now - t0, Duration::from_millis(20));
/// ```
#[derive(Debug)]
pub struct MediaCore {
    telephone_event: Option<PayloadType>,
    inactivity: Duration,
    jitter: JitterBuffer,
    sender: RtpSender,
    latch: Latch,
    /// When the peer could first know our address (the answer went out):
    /// packets received before it cannot latch. `None` until then.
    latch_open_at: Option<Instant>,
    /// Whether a rejected packet was reported to the call (once per call).
    rejection_reported: bool,
    dtmf_rx: DtmfReceiver,
    /// Outgoing event in progress: generator and its start timestamp.
    dtmf_tx: Option<(DtmfGenerator, u32)>,
    playback: VecDeque<Frame>,
    playback_capacity: usize,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    last_rx: Instant,
    inactive_reported: bool,
    /// Datagrams taken since the last tick.
    inbound: usize,
    ticks: Periodic,
    /// The next RTCP report, when RTCP is on.
    next_rtcp: Option<Instant>,
    rtcp_due: RtcpDue,
    cname: String,
    closed: bool,
    srtp: Srtp,
}

/// The SRTP state of a call.
#[derive(Debug)]
enum Srtp {
    /// Plain RTP.
    Off,
    On(Box<SrtpSession>),
    /// SRTP without usable keys (not yet answered, or keys no session
    /// could be made from): nothing is sent and nothing is taken (never
    /// plain RTP instead).
    Shut,
}

impl Srtp {
    fn new(cfg: &MediaSrtp) -> Srtp {
        match cfg {
            MediaSrtp::Off => Srtp::Off,
            MediaSrtp::Awaiting => Srtp::Shut,
            MediaSrtp::Keys(keys) => match SrtpSession::new(keys) {
                Ok(s) => Srtp::On(Box::new(s)),
                Err(_) => Srtp::Shut,
            },
        }
    }
}

impl MediaCore {
    /// A call's media opened at `now`: its first tick is one period later.
    /// `rtcp`: whether the call has an RTCP socket (reports and BYE).
    #[must_use]
    pub fn new(cfg: &MediaConfig, now: Instant, rtcp: bool) -> MediaCore {
        MediaCore {
            telephone_event: cfg.telephone_event,
            inactivity: cfg.inactivity,
            jitter: JitterBuffer::new(cfg.jitter, cfg.law, cfg.payload_type),
            sender: RtpSender::new(
                cfg.law,
                cfg.payload_type,
                cfg.ssrc,
                cfg.first_seq,
                cfg.first_timestamp,
            ),
            latch: Latch::new(cfg.remote, cfg.latch.clone(), cfg.latch_open),
            latch_open_at: cfg.latch_open.then_some(now),
            rejection_reported: false,
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            playback: VecDeque::new(),
            playback_capacity: cfg.playback_capacity.max(1),
            events: VecDeque::new(),
            stats: MediaStats::default(),
            last_rx: now,
            inactive_reported: false,
            inbound: 0,
            ticks: Periodic::new(now + PTIME, PTIME, MAX_CATCH_UP),
            next_rtcp: rtcp.then_some(now + RTCP_INTERVAL),
            rtcp_due: RtcpDue::None,
            cname: cfg.cname.clone(),
            closed: false,
            srtp: Srtp::new(&cfg.srtp),
        }
    }

    /// When [`handle_tick`](Self::handle_tick) has work next; `None` once
    /// closed and drained.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed && self.rtcp_due == RtcpDue::None {
            return None;
        }
        Some(self.ticks.deadline())
    }

    /// Whether the call's media has closed and has nothing left to send.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed && self.rtcp_due == RtcpDue::None
    }

    /// One datagram received on the RTP socket from `src` at `now`.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8], src: SocketAddr) {
        if self.closed {
            return;
        }
        if self.inbound >= INBOUND_CAPACITY {
            self.stats.inbound_dropped += 1;
            return;
        }
        self.inbound += 1;
        if !self.latch.view().open && self.latch_open_at.is_some_and(|t| now >= t) {
            self.latch.open();
        }
        // A source the latch rules refuse is dropped before SRTP: its
        // packets cost no authentication (nor key derivation for a forged
        // SSRC), and it is counted under the latch's reason.
        if let LatchDecision::Reject(reason) = self.latch.peek(src) {
            return self.reject(src, reason);
        }
        // The clear-text buffer only when SRTP is on: no 1,500-byte
        // memset per datagram on a plain call.
        let mut clear;
        let data = match &mut self.srtp {
            Srtp::Off => data,
            Srtp::On(s) => {
                clear = [0u8; MAX_SRTP_PACKET];
                match s.unprotect_rtp(data, &mut clear) {
                    Ok(n) => &clear[..n],
                    Err(_) => return self.reject(src, RejectReason::SrtpAuth),
                }
            }
            Srtp::Shut => return self.reject(src, RejectReason::SrtpAuth),
        };
        let Ok(packet) = RtpPacket::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        match self.latch.check(src) {
            LatchDecision::Reject(reason) => return self.reject(src, reason),
            LatchDecision::Latched(addr) => self.push_event(MediaEvent::Latched(addr)),
            LatchDecision::Returned(addr) => {
                // What the other source sent is not the caller's: none of
                // it is played.
                self.jitter.reset();
                self.push_event(MediaEvent::Latched(addr));
            }
            LatchDecision::Accept => {}
        }
        self.stats.packets_in += 1;
        self.last_rx = now;
        self.inactive_reported = false;
        if Some(packet.payload_type()) == self.telephone_event {
            if let Ok(ev) = TelephoneEvent::parse(packet.payload()) {
                for d in self
                    .dtmf_rx
                    .handle(packet.timestamp(), ev)
                    .into_iter()
                    .flatten()
                {
                    self.push_event(MediaEvent::Dtmf(d));
                }
            }
            return;
        }
        self.jitter.handle_packet(now, &packet);
    }

    /// One datagram received on the RTCP socket: a BYE from the peer
    /// becomes [`MediaEvent::RtcpBye`]; the rest is not used.
    /// An SRTP call's report that fails authentication is counted as
    /// [`RejectReason::SrtpAuth`].
    pub fn handle_rtcp(&mut self, _now: Instant, data: &[u8], src: SocketAddr) {
        let mut clear;
        let data = match &mut self.srtp {
            Srtp::Off => data,
            Srtp::On(s) => {
                clear = [0u8; MAX_SRTP_PACKET];
                match s.unprotect_rtcp(data, &mut clear) {
                    Ok(n) => &clear[..n],
                    Err(_) => return self.reject(src, RejectReason::SrtpAuth),
                }
            }
            Srtp::Shut => return self.reject(src, RejectReason::SrtpAuth),
        };
        if let Ok(c) = RtcpCompound::parse(data)
            && c.bye_ssrcs().next().is_some()
        {
            self.push_event(MediaEvent::RtcpBye);
        }
    }

    /// Queues one frame to play; false (the frame is not taken) when the
    /// playback queue is full or the media has closed.
    pub fn play(&mut self, frame: Frame) -> bool {
        if self.closed || self.playback.len() >= self.playback_capacity {
            return false;
        }
        self.playback.push_back(frame);
        true
    }

    /// Frames waiting to be played.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.playback.len()
    }

    /// Barge-in: drops every queued frame.
    pub fn clear_playback(&mut self) {
        self.playback.clear();
    }

    /// Starts an RFC 4733 event `event` lasting `duration` timestamp units
    /// unless one is in progress or none was negotiated.
    pub fn start_dtmf(&mut self, event: u8, duration: u16) {
        if self.telephone_event.is_some() && self.dtmf_tx.is_none() {
            let start = self.sender.next_timestamp();
            self.dtmf_tx = Some((
                DtmfGenerator::new(event, duration, 10, MAX_FRAME as u16),
                start,
            ));
        }
    }

    /// Changes the peer's SDP address (the outbound call's answer, a
    /// re-INVITE): a new address becomes the peer and any latch is
    /// dropped; the same address changes nothing.
    pub fn set_remote(&mut self, remote: Option<SocketAddr>) {
        self.latch.set_signalled(remote);
    }

    /// The call's signalling peer is now at `ip` (see
    /// [`crate::latch::Latch::set_signalling_ip`]).
    pub fn set_signalling_ip(&mut self, ip: Option<std::net::IpAddr>) {
        self.latch.set_signalling_ip(ip);
    }

    /// The answer with our address went out at `now`: from then on a
    /// source the latch rules allow may latch (packets received before
    /// stay rejected, `before_answer`). An extra call is harmless.
    pub fn answered(&mut self, now: Instant) {
        self.latch_open_at.get_or_insert(now);
    }

    /// The call's SRTP keys (an outbound call's answer, a re-INVITE): a
    /// new session replaces the old one (its replay windows and rollover
    /// counters start again); the keys in use change nothing.
    pub fn set_srtp(&mut self, keys: &crate::srtp::SrtpKeys) {
        if let Srtp::On(s) = &self.srtp
            && s.keys() == keys
        {
            return;
        }
        self.srtp = Srtp::new(&MediaSrtp::Keys(keys.clone()));
    }

    /// Where we send now: the SDP peer or the latched source.
    #[must_use]
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latch.remote()
    }

    /// Stops the media: no more ticks; the next
    /// [`handle_tick`](Self::handle_tick) returns the RTCP BYE (when RTCP
    /// is on and there is a peer), then `None`.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.playback.clear();
            self.rtcp_due = if self.next_rtcp.is_some() {
                RtcpDue::Bye
            } else {
                RtcpDue::None
            };
        }
    }

    /// The counters, as of the last tick for the jitter buffer's.
    #[must_use]
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// The driver's send of an RTP [`Transmit`] failed (no route, a full
    /// send buffer): counted in [`MediaStats::send_errors`] instead of
    /// [`MediaStats::packets_out`].
    pub fn handle_send_error(&mut self, socket: Socket) {
        if socket == Socket::Rtp {
            self.stats.packets_out = self.stats.packets_out.saturating_sub(1);
            self.stats.send_errors += 1;
        }
    }

    /// The driver could not hand `n` events to the call (its queue was
    /// full): counted in [`MediaStats::events_dropped`].
    pub fn handle_events_dropped(&mut self, n: u64) {
        self.stats.events_dropped += n;
    }

    /// The next event for the call.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Does the work due at `now` and returns the next datagram to send,
    /// written into `out` (at least [`TRANSMIT_BUFFER`] bytes); call until
    /// `None` (each call's `Transmit` refers to `out` until the next
    /// call). Extra calls are harmless: nothing is done before its
    /// deadline.
    pub fn handle_tick(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        loop {
            match std::mem::replace(&mut self.rtcp_due, RtcpDue::None) {
                RtcpDue::None => {}
                RtcpDue::Report => {
                    if let Some(t) = self.write_rtcp(false, out) {
                        return Some(t);
                    }
                }
                RtcpDue::Bye => {
                    if let Some(t) = self.write_rtcp(true, out) {
                        return Some(t);
                    }
                }
            }
            if self.closed {
                return None;
            }
            let Due::Tick(_deadline) = self.ticks.poll(now, WAKE_TOLERANCE) else {
                return None;
            };
            if let Some(at) = self.next_rtcp
                && now >= at
            {
                self.next_rtcp = Some(at + RTCP_INTERVAL);
                self.rtcp_due = RtcpDue::Report;
            }
            if let Some(t) = self.tick(now, out) {
                return Some(t);
            }
        }
    }

    /// Periods skipped because the driver was more than [`MAX_CATCH_UP`]
    /// periods late.
    #[must_use]
    pub fn skipped_ticks(&self) -> u64 {
        self.ticks.skipped()
    }

    /// One 20 ms tick: the packet (DTMF, queued audio or silence) into
    /// `out`, the caller's frame out of the jitter buffer and the frame
    /// sent to the call, the inactivity check.
    fn tick(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        self.inbound = 0;
        let mut sent = [0i16; MAX_FRAME];
        let n = match (&mut self.dtmf_tx, self.telephone_event) {
            (Some((generator, start)), Some(pt)) => match generator.next() {
                Some(p) => self.sender.event_packet(&p, pt, *start, out),
                None => {
                    self.dtmf_tx = None;
                    self.next_audio_packet(out, &mut sent)
                }
            },
            _ => self.next_audio_packet(out, &mut sent),
        };
        let mut pcm = [0i16; MAX_FRAME];
        let playout = self.jitter.poll_frame(&mut pcm);
        self.push_event(MediaEvent::Audio { pcm, playout, sent });
        let silent_for = now.saturating_duration_since(self.last_rx);
        if silent_for >= self.inactivity && !self.inactive_reported {
            self.inactive_reported = true;
            self.push_event(MediaEvent::Inactive { silent_for });
        }
        self.stats.jitter = self.jitter.stats();
        self.stats.jitter_depth = self.jitter.buffered();
        let (Ok(len), Some(destination)) = (n, self.latch.remote()) else {
            return None;
        };
        let len = self.protect(false, out, len)?;
        self.stats.packets_out += 1;
        Some(Transmit {
            destination,
            len,
            socket: Socket::Rtp,
        })
    }

    fn next_audio_packet(
        &mut self,
        out: &mut [u8],
        sent: &mut Frame,
    ) -> Result<usize, crate::Error> {
        match self.playback.pop_front() {
            Some(frame) => {
                *sent = frame;
                self.sender.next_packet(Some(&frame[..]), out)
            }
            None => self.sender.next_packet(None, out),
        }
    }

    /// Queues an event for the call. When the queue is full an audio
    /// event is dropped (the newest when `ev` is audio, else the oldest
    /// audio waiting) and counted; the rare other events are kept.
    fn push_event(&mut self, ev: MediaEvent) {
        if self.events.len() >= EVENT_QUEUE {
            if matches!(ev, MediaEvent::Audio { .. }) {
                self.stats.events_dropped += 1;
                return;
            }
            if let Some(i) = self
                .events
                .iter()
                .position(|e| matches!(e, MediaEvent::Audio { .. }))
            {
                self.events.remove(i);
                self.stats.events_dropped += 1;
            } else {
                // Only non-audio events (at most a handful per tick can
                // exist): the oldest goes.
                self.events.pop_front();
            }
        }
        self.events.push_back(ev);
    }

    /// An RTCP RR + SDES (+ BYE) into `out`, to the RTP peer's port + 1;
    /// `None` without a peer.
    fn write_rtcp(&mut self, bye: bool, out: &mut [u8]) -> Option<Transmit> {
        let remote = self.latch.remote()?;
        let destination = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
        let ssrc = self.sender.ssrc();
        let block = self.jitter.ssrc().map(|peer| ReportBlock {
            ssrc: peer.0,
            fraction_lost: 0,
            cumulative_lost: i32::try_from(self.jitter.stats().lost).unwrap_or(i32::MAX),
            highest_seq: self.jitter.highest_seq(),
            jitter: self.jitter.jitter(),
            last_sr: 0,
            delay_since_last_sr: 0,
        });
        let blocks = block.as_slice();
        let mut n = rtcp::write_receiver_report(ssrc, blocks, out).unwrap_or(0);
        n += rtcp::write_sdes_cname(ssrc, self.cname.as_bytes(), &mut out[n..]).unwrap_or(0);
        if bye {
            n += rtcp::write_bye(&[ssrc], None, &mut out[n..]).unwrap_or(0);
        }
        if n == 0 {
            return None;
        }
        let len = self.protect(true, out, n)?;
        Some(Transmit {
            destination,
            len,
            socket: Socket::Rtcp,
        })
    }

    /// An SRTP call's packet in `out[..len]` protected in place: its new
    /// length, or `None` (nothing is sent) when it cannot be.
    fn protect(&mut self, rtcp: bool, out: &mut [u8], len: usize) -> Option<usize> {
        match &mut self.srtp {
            Srtp::Off => Some(len),
            Srtp::On(s) if rtcp => s.protect_rtcp(out, len).ok(),
            Srtp::On(s) => s.protect_rtp(out, len).ok(),
            Srtp::Shut => None,
        }
    }

    /// A refused datagram: counted by reason, the first one reported.
    fn reject(&mut self, src: SocketAddr, reason: RejectReason) {
        self.stats.rejected.count(reason);
        if !self.rejection_reported {
            self.rejection_reported = true;
            self.push_event(MediaEvent::Rejected { from: src, reason });
        }
    }
}
