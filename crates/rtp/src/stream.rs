//! The per-call media stream: a thin tokio driver around the sans-IO parts
//! of this crate. One task per call owns the RTP (and optional RTCP)
//! socket from the [`PortPool`], and each 20 ms tick it
//!
//! - takes one decoded frame out of the [`JitterBuffer`] and hands it to the
//!   call as [`MediaEvent::Audio`] (silence while buffering),
//! - sends one packet built by the [`RtpSender`]: the next frame queued
//!   with [`MediaStream::play`], a pending DTMF event, or silence,
//! - checks for RTP inactivity ([`MediaEvent::Inactive`]).
//!
//! Received packets go through the symmetric-RTP [`Latch`]; telephone
//! events become [`MediaEvent::Dtmf`]; an RTCP BYE becomes
//! [`MediaEvent::RtcpBye`]. Every 5 s an RTCP RR + SDES goes out when RTCP
//! is on, and a BYE on close.
//!
//! Everything is bounded: the playback queue and the event channel have
//! fixed capacities, and a full event channel drops audio events (counted)
//! rather than blocking the socket. [`MediaStream::close`] stops the task
//! and waits for it, so the sockets are closed and the port is back in the
//! pool when it returns; dropping the stream aborts the task with the same
//! effect shortly after. The clock is tokio's, so tests run it with
//! `tokio::time::pause()`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::dtmf::{Digit, DtmfGenerator, DtmfReceiver, TelephoneEvent};
use crate::error::Error;
use crate::g711::Law;
use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::ports::{BoundPorts, PortLease, PortPool};
use crate::rtcp::{self, ReportBlock, RtcpCompound};
use crate::rtp::RtpPacket;
use crate::sender::{Latch, LatchDecision, MAX_FRAME, RtpSender};

/// One 20 ms frame at 8 kHz.
pub type Frame = [i16; MAX_FRAME];

/// Tick period.
pub const PTIME: Duration = Duration::from_millis(20);
/// Largest datagram read; bigger ones are truncated and fail to parse.
const MAX_DATAGRAM: usize = 1500;
/// Receive buffer block size.
const RECV_BLOCK: usize = 64 * 1024;
/// RTCP report interval.
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// Stream configuration.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The negotiated law.
    pub law: Law,
    /// Its payload type (0 or 8).
    pub payload_type: PayloadType,
    /// The negotiated telephone-event payload type, if any.
    pub telephone_event: Option<PayloadType>,
    /// The peer's address from SDP, used until its first packet arrives.
    pub remote: Option<SocketAddr>,
    /// Networks the peer may send from; empty accepts any.
    pub allow: Vec<IpNet>,
    /// No RTP for this long raises [`MediaEvent::Inactive`].
    pub inactivity: Duration,
    /// Jitter buffer settings.
    pub jitter: JitterConfig,
    /// Our SSRC (random; injected).
    pub ssrc: Ssrc,
    /// First sequence number (random; injected).
    pub first_seq: SeqNo,
    /// First timestamp (random; injected).
    pub first_timestamp: u32,
    /// Frames [`MediaStream::play`] may queue (backpressure beyond).
    pub playback_capacity: usize,
    /// Events that may wait for the call to read them.
    pub event_capacity: usize,
    /// The SDES CNAME for RTCP.
    pub cname: String,
}

impl MediaConfig {
    /// A configuration with defaults: 30 s inactivity, default jitter
    /// buffer, 5 s playback queue, 64 events.
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
            allow: Vec::new(),
            inactivity: Duration::from_secs(30),
            jitter: JitterConfig::default(),
            ssrc,
            first_seq,
            first_timestamp,
            playback_capacity: 250,
            event_capacity: 64,
            cname: "callbridge".to_owned(),
        }
    }
}

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
    /// The peer's first packet arrived from this address; we send there.
    Latched(SocketAddr),
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
    /// Packets from addresses the latch rejected.
    pub rejected_source: u64,
    /// Audio events dropped because the call did not read them in time.
    pub events_dropped: u64,
    /// Send errors (no route, ...).
    pub send_errors: u64,
    /// The jitter buffer's counters.
    pub jitter: JitterStats,
    /// The audio in the jitter buffer after the last tick's playout
    /// ([`JitterBuffer::buffered`](crate::jitter::JitterBuffer::buffered)).
    pub jitter_depth: Duration,
}

enum Control {
    ClearPlayback,
    Dtmf { event: u8, duration: u16 },
    SetRemote(Option<SocketAddr>),
}

/// Handle to one call's media task. See the module docs.
#[derive(Debug)]
pub struct MediaStream {
    local: SocketAddr,
    frames: mpsc::Sender<Frame>,
    control: mpsc::Sender<Control>,
    events: mpsc::Receiver<MediaEvent>,
    stats: Arc<Mutex<MediaStats>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl MediaStream {
    /// Binds a port from `pool` and starts the media task.
    ///
    /// # Errors
    /// [`Error::PortsExhausted`] or [`Error::Io`].
    pub fn open(pool: &PortPool, cfg: MediaConfig) -> Result<MediaStream, Error> {
        let BoundPorts { rtp, rtcp, lease } = pool.bind()?;
        let local = rtp.local_addr().map_err(Error::io("local_addr"))?;
        let (frames_tx, frames_rx) = mpsc::channel(cfg.playback_capacity.max(1));
        let (control_tx, control_rx) = mpsc::channel(16);
        let (events_tx, events_rx) = mpsc::channel(cfg.event_capacity.max(1));
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let stats = Arc::new(Mutex::new(MediaStats::default()));
        let driver = Driver {
            jitter: JitterBuffer::new(cfg.jitter, cfg.law, cfg.payload_type),
            sender: RtpSender::new(
                cfg.law,
                cfg.payload_type,
                cfg.ssrc,
                cfg.first_seq,
                cfg.first_timestamp,
            ),
            latch: Latch::new(cfg.remote, cfg.allow.clone()),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            cfg,
            rtp,
            rtcp,
            _lease: lease,
            frames: frames_rx,
            control: control_rx,
            events: events_tx,
            stats: Arc::clone(&stats),
            local_stats: MediaStats::default(),
            last_rx: Instant::now(),
            inactive_reported: false,
        };
        let task = tokio::spawn(driver.run(shutdown_rx));
        Ok(MediaStream {
            local,
            frames: frames_tx,
            control: control_tx,
            events: events_rx,
            stats,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }

    /// Our RTP address (for the SDP answer).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues one frame to play; waits while the playback queue is full.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the stream has stopped.
    pub async fn play(&self, frame: Frame) -> Result<(), Error> {
        self.frames
            .send(frame)
            .await
            .map_err(|_| Error::InvalidArgument {
                what: "media stream stopped",
            })
    }

    /// Queues one frame if there is room; returns false when the queue is
    /// full or the stream has stopped.
    pub fn try_play(&self, frame: Frame) -> bool {
        self.frames.try_send(frame).is_ok()
    }

    /// Drops every queued frame at the next tick (barge-in).
    pub fn clear_playback(&self) {
        let _ = self.control.try_send(Control::ClearPlayback);
    }

    /// Sends a DTMF key (RFC 4733) lasting `duration` (e.g. 100 ms) in place
    /// of audio. Ignored without a negotiated telephone-event type.
    pub fn send_dtmf(&self, key: char, duration: Duration) {
        if let Some(event) = crate::dtmf::key_event(key) {
            let duration = u16::try_from(duration.as_millis() * 8).unwrap_or(u16::MAX);
            let _ = self.control.try_send(Control::Dtmf { event, duration });
        }
    }

    /// Changes the peer's address (re-INVITE); the latch starts over.
    pub fn set_remote(&self, remote: Option<SocketAddr>) {
        let _ = self.control.try_send(Control::SetRemote(remote));
    }

    /// The next event; `None` once the task has stopped.
    pub async fn recv(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// The counters as of the last tick.
    #[must_use]
    pub fn stats(&self) -> MediaStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the task (sending an RTCP BYE when RTCP is on) and waits for
    /// it: on return the sockets are closed and the port is back in the
    /// pool.
    pub async fn close(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MediaStream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Driver {
    cfg: MediaConfig,
    jitter: JitterBuffer,
    sender: RtpSender,
    latch: Latch,
    dtmf_rx: DtmfReceiver,
    /// Outgoing event in progress: generator and its start timestamp.
    dtmf_tx: Option<(DtmfGenerator, u32)>,
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
    _lease: PortLease,
    frames: mpsc::Receiver<Frame>,
    control: mpsc::Receiver<Control>,
    events: mpsc::Sender<MediaEvent>,
    stats: Arc<Mutex<MediaStats>>,
    local_stats: MediaStats,
    last_rx: Instant,
    inactive_reported: bool,
}

impl Driver {
    async fn run(mut self, mut shutdown: tokio::sync::oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval_at(Instant::now() + PTIME, PTIME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut rtcp_tick = tokio::time::interval_at(Instant::now() + RTCP_INTERVAL, RTCP_INTERVAL);
        // Datagrams are received into one large buffer and split off as
        // `Bytes` (the jitter buffer keeps them without copying); a new block
        // is allocated once per ~40 packets, or reclaimed when every packet
        // split from it has been played.
        let mut buf = BytesMut::with_capacity(RECV_BLOCK);
        let mut rtcp_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            if buf.capacity() < MAX_DATAGRAM {
                buf.reserve(RECV_BLOCK);
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                r = self.rtp.recv_buf_from(&mut buf) => {
                    if let Ok((_, src)) = r {
                        self.on_datagram(buf.split().freeze(), src);
                    }
                }
                r = recv_opt(self.rtcp.as_ref(), &mut rtcp_buf) => {
                    if let Ok((n, _)) = r {
                        self.on_rtcp(&rtcp_buf[..n]);
                    }
                }
                _ = tick.tick() => self.on_tick().await,
                _ = rtcp_tick.tick() => self.send_rtcp(false).await,
                Some(c) = self.control.recv() => self.on_control(c),
            }
        }
        self.send_rtcp(true).await;
    }

    fn on_datagram(&mut self, data: Bytes, src: SocketAddr) {
        let Ok(packet) = RtpPacket::parse(data) else {
            self.local_stats.malformed += 1;
            return;
        };
        match self.latch.check(src) {
            LatchDecision::Reject => {
                self.local_stats.rejected_source += 1;
                return;
            }
            LatchDecision::Latched(addr) => {
                tracing::debug!(%addr, "RTP latched");
                let _ = self.events.try_send(MediaEvent::Latched(addr));
            }
            LatchDecision::Accept => {}
        }
        self.local_stats.packets_in += 1;
        self.last_rx = Instant::now();
        self.inactive_reported = false;
        if Some(packet.payload_type()) == self.cfg.telephone_event {
            if let Ok(ev) = TelephoneEvent::parse(packet.payload()) {
                for d in self
                    .dtmf_rx
                    .handle(packet.timestamp(), ev)
                    .into_iter()
                    .flatten()
                {
                    let _ = self.events.try_send(MediaEvent::Dtmf(d));
                }
            }
            return;
        }
        self.jitter.handle_packet(self.last_rx.into_std(), &packet);
    }

    fn on_rtcp(&mut self, data: &[u8]) {
        if let Ok(c) = RtcpCompound::parse(data)
            && c.bye_ssrcs().next().is_some()
        {
            let _ = self.events.try_send(MediaEvent::RtcpBye);
        }
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::ClearPlayback => while self.frames.try_recv().is_ok() {},
            Control::Dtmf { event, duration } => {
                if self.cfg.telephone_event.is_some() && self.dtmf_tx.is_none() {
                    let start = self.sender.next_timestamp();
                    self.dtmf_tx = Some((
                        DtmfGenerator::new(event, duration, 10, MAX_FRAME as u16),
                        start,
                    ));
                }
            }
            Control::SetRemote(r) => self.latch.set_signalled(r),
        }
    }

    async fn on_tick(&mut self) {
        // Outbound: DTMF, queued audio, or silence; `sent` keeps the PCM
        // for the call's recording.
        let mut sent = [0i16; MAX_FRAME];
        let mut out = [0u8; 12 + MAX_FRAME];
        let n = match (&mut self.dtmf_tx, self.cfg.telephone_event) {
            (Some((generator, start)), Some(pt)) => match generator.next() {
                Some(p) => self.sender.event_packet(&p, pt, *start, &mut out),
                None => {
                    self.dtmf_tx = None;
                    self.next_audio_packet(&mut out, &mut sent)
                }
            },
            _ => self.next_audio_packet(&mut out, &mut sent),
        };
        // Inbound: one frame from the jitter buffer.
        let mut pcm = [0i16; MAX_FRAME];
        let playout = self.jitter.poll_frame(&mut pcm);
        if self
            .events
            .try_send(MediaEvent::Audio { pcm, playout, sent })
            .is_err()
        {
            self.local_stats.events_dropped += 1;
        }
        if let (Ok(n), Some(remote)) = (n, self.latch.remote()) {
            match self.rtp.send_to(&out[..n], remote).await {
                Ok(_) => self.local_stats.packets_out += 1,
                Err(_) => self.local_stats.send_errors += 1,
            }
        }
        // Inactivity.
        let silent_for = self.last_rx.elapsed();
        if silent_for >= self.cfg.inactivity && !self.inactive_reported {
            self.inactive_reported = true;
            let _ = self.events.try_send(MediaEvent::Inactive { silent_for });
        }
        self.local_stats.jitter = self.jitter.stats();
        self.local_stats.jitter_depth = self.jitter.buffered();
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = self.local_stats;
    }

    fn next_audio_packet(&mut self, out: &mut [u8], sent: &mut Frame) -> Result<usize, Error> {
        match self.frames.try_recv() {
            Ok(frame) => {
                *sent = frame;
                self.sender.next_packet(Some(&frame[..]), out)
            }
            Err(_) => self.sender.next_packet(None, out),
        }
    }

    async fn send_rtcp(&mut self, bye: bool) {
        let (Some(sock), Some(remote)) = (self.rtcp.as_ref(), self.latch.remote()) else {
            return;
        };
        let remote = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
        let mut out = [0u8; 512];
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
        let mut n = rtcp::write_receiver_report(ssrc, blocks, &mut out).unwrap_or(0);
        n += rtcp::write_sdes_cname(ssrc, self.cfg.cname.as_bytes(), &mut out[n..]).unwrap_or(0);
        if bye {
            n += rtcp::write_bye(&[ssrc], None, &mut out[n..]).unwrap_or(0);
        }
        let _ = sock.send_to(&out[..n], remote).await;
    }
}

async fn recv_opt(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
