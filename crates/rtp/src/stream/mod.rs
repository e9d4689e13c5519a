//! The per-call media stream: thin drivers around the sans-IO parts of
//! this crate. Each 20 ms tick of a stream
//!
//! - sends one packet built by the [`RtpSender`]: the next frame queued
//!   with [`MediaStream::play`], a pending DTMF event, or silence,
//! - takes one decoded frame out of the [`JitterBuffer`] and hands it to the
//!   call as [`MediaEvent::Audio`] (silence while buffering),
//! - checks for RTP inactivity ([`MediaEvent::Inactive`]).
//!
//! The ticks come from the process's [media clock](crate::clock) (one OS
//! thread on absolute 20 ms deadlines for every stream, so pacing does not
//! wait for a busy tokio worker) or, with [`Pacing::Runtime`], from a tokio
//! interval in the stream's own task (tokio's clock, so tests run it with
//! `tokio::time::pause()`). One tokio task per stream owns receiving on the
//! RTP (and optional RTCP) socket from the [`PortPool`]: it queues received
//! datagrams (bounded, [`INBOUND_CAPACITY`]) for the next tick, which puts
//! them through the call's [`Latch`] (the SDP peer first; symmetric RTP to
//! another source only under the [`LatchRules`]) before it sends, turns
//! telephone events into
//! [`MediaEvent::Dtmf`] and feeds the jitter buffer; an RTCP BYE becomes
//! [`MediaEvent::RtcpBye`]. Every 5 s an RTCP RR + SDES goes out when RTCP
//! is on, and a BYE on close. The state the ticks work on lives in
//! the private `core` module behind a mutex.
//!
//! Everything is bounded: the playback queue and the event channel have
//! fixed capacities, and a full event channel drops audio events (counted)
//! rather than blocking the tick. [`MediaStream::close`] stops the task and
//! waits for it, so the sockets are closed, the clock has let go of the
//! stream and the port is back in the pool when it returns; dropping the
//! stream aborts the task with the same effect shortly after.

mod core;
mod event;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use self::core::{Core, Inbound, Shared};
pub use self::event::{Frame, MediaEvent, MediaStats};
use crate::clock;
use crate::dtmf::DtmfReceiver;
use crate::error::Error;
use crate::g711::Law;
use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::jitter::{JitterBuffer, JitterConfig};
use crate::latch::{Latch, LatchRules};
use crate::ports::{BoundPorts, PortLease, PortPool};
use crate::rtcp::RtcpCompound;
/// Tick period: the packetization interval.
pub use crate::sender::PTIME;
use crate::sender::RtpSender;

/// Largest datagram read; bigger ones are truncated and fail to parse.
const MAX_DATAGRAM: usize = 1500;
/// Receive buffer block size.
const RECV_BLOCK: usize = 64 * 1024;
/// Datagrams that may wait for the next tick (a peer sends one per 20 ms;
/// the rest is a burst or a flood, dropped and counted).
pub const INBOUND_CAPACITY: usize = 64;
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
    /// The peer's address from SDP: always heard, and sent to unless
    /// another source latched (see [`crate::latch`]).
    pub remote: Option<SocketAddr>,
    /// Which other sources may latch, and the allowlist nothing is taken
    /// from or sent to outside of. [`LatchRules::any`] by default.
    pub latch: LatchRules,
    /// Whether the peer may already know our address, so that a source
    /// the rules allow may latch from the start (true by default: an
    /// outbound offer carries it). An inbound call's stream starts closed
    /// and opens with [`MediaStream::answered`].
    pub latch_open: bool,
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
    /// Where the 20 ms ticks come from.
    pub pacing: Pacing,
}

/// Where a stream's 20 ms ticks come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pacing {
    /// The process's [media clock](crate::clock): a dedicated thread on
    /// absolute deadlines, independent of how busy the tokio runtime is.
    /// Real time only (it does not follow `tokio::time::pause()`).
    #[default]
    MediaClock,
    /// A tokio interval in the stream's own task: follows tokio's clock
    /// (so tests can pause it), but ticks only when a runtime worker gets
    /// to it, so it runs late on a busy runtime.
    Runtime,
}

impl MediaConfig {
    /// A configuration with defaults: 30 s inactivity, default jitter
    /// buffer, 5 s playback queue, 64 events, paced by the media clock,
    /// latching to any source ([`LatchRules::any`]; the session manager
    /// sets each call's rules).
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
            playback_capacity: 250,
            event_capacity: 64,
            cname: "callbridge".to_owned(),
            pacing: Pacing::MediaClock,
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
    #[must_use]
    pub fn with_rng<R: Rng + ?Sized>(
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

/// Handle to one call's media stream. See the module docs.
pub struct MediaStream {
    local: SocketAddr,
    frames: mpsc::Sender<Frame>,
    events: mpsc::Receiver<MediaEvent>,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MediaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStream")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The clock's reading, on tokio's clock (which is the system's monotonic
/// clock unless a test paused it).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl MediaStream {
    /// Binds a port from `pool`, starts the receiving task and puts the
    /// stream on its clock (first tick one period from now).
    ///
    /// # Errors
    /// [`Error::PortsExhausted`] or [`Error::Io`] (binding, or starting the
    /// media clock thread).
    pub fn open(pool: &PortPool, cfg: MediaConfig) -> Result<MediaStream, Error> {
        let BoundPorts { rtp, rtcp, lease } = pool.bind()?;
        let local = rtp.local_addr().map_err(Error::io("local_addr"))?;
        let rtp = Arc::new(rtp);
        let (frames_tx, frames_rx) = mpsc::channel(cfg.playback_capacity.max(1));
        let (events_tx, events_rx) = mpsc::channel(cfg.event_capacity.max(1));
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let opened = now();
        let shared = Arc::new(Shared::new(Core {
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
            latch_open_at: cfg.latch_open.then_some(opened),
            rejection_reported: false,
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            rtp: Arc::clone(&rtp),
            frames: frames_rx,
            inbound: inbound_rx,
            events: events_tx.clone(),
            stats: MediaStats::default(),
            last_rx: opened,
            inactive_reported: false,
        }));
        if cfg.pacing == Pacing::MediaClock {
            clock::register(Arc::clone(&shared) as Arc<dyn clock::Paced>, opened + PTIME)?;
        }
        let driver = Driver {
            shared: Arc::clone(&shared),
            inbound: inbound_tx,
            events: events_tx,
            rtp,
            rtcp,
            cname: cfg.cname,
            pacing: cfg.pacing,
            _lease: lease,
        };
        let task = tokio::spawn(driver.run(shutdown_rx));
        Ok(MediaStream {
            local,
            frames: frames_tx,
            events: events_rx,
            shared,
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

    /// Drops every queued frame (barge-in): the next tick sends what is
    /// queued after this call, or silence.
    pub fn clear_playback(&self) {
        self.shared.with(Core::clear_playback);
    }

    /// Sends a DTMF key (RFC 4733) lasting `duration` (e.g. 100 ms) in place
    /// of audio. Ignored without a negotiated telephone-event type.
    pub fn send_dtmf(&self, key: char, duration: Duration) {
        if let Some(event) = crate::dtmf::key_event(key) {
            let duration = u16::try_from(duration.as_millis() * 8).unwrap_or(u16::MAX);
            self.shared.with(|c| c.start_dtmf(event, duration));
        }
    }

    /// Changes the peer's SDP address (the outbound call's answer, a
    /// re-INVITE): a new address becomes the peer and any latch is
    /// dropped; the same address changes nothing.
    pub fn set_remote(&self, remote: Option<SocketAddr>) {
        self.shared.with(|c| c.latch.set_signalled(remote));
    }

    /// The answer with our address is going out: from now on a source the
    /// latch rules allow may latch (packets received before stay
    /// rejected, `before_answer`). Only for a stream opened with
    /// `latch_open: false`; an extra call is harmless.
    pub fn answered(&self) {
        let at = now();
        self.shared.with(|c| {
            c.latch_open_at.get_or_insert(at);
        });
    }

    /// The next event; `None` once the stream has stopped.
    pub async fn recv(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// The counters as of the last tick.
    #[must_use]
    pub fn stats(&self) -> MediaStats {
        self.shared.stats()
    }

    /// Stops the stream (sending an RTCP BYE when RTCP is on) and waits
    /// for its task: on return the sockets are closed, the clock no longer
    /// uses the stream and the port is back in the pool.
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

/// The stream's task: receives on its sockets, sends RTCP, and ticks the
/// stream itself with [`Pacing::Runtime`]. Dropping it (on return or
/// abort) stops the stream.
struct Driver {
    shared: Arc<Shared>,
    /// Received datagrams, for the next tick.
    inbound: mpsc::Sender<Inbound>,
    /// For an RTCP BYE (ticks send the rest).
    events: mpsc::Sender<MediaEvent>,
    rtp: Arc<UdpSocket>,
    rtcp: Option<UdpSocket>,
    cname: String,
    pacing: Pacing,
    _lease: PortLease,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The core holds the other reference to the RTP socket: taking it
        // out here (the clock waits for the lock, never the reverse) leaves
        // this task the only owner, so the socket closes with the task.
        drop(self.shared.stop());
    }
}

impl Driver {
    async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let start = tokio::time::Instant::now();
        let mut tick = (self.pacing == Pacing::Runtime).then(|| {
            let mut t = tokio::time::interval_at(start + PTIME, PTIME);
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            t
        });
        let mut rtcp_tick = tokio::time::interval_at(start + RTCP_INTERVAL, RTCP_INTERVAL);
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
                        let packet = Inbound { data: buf.split().freeze(), src, at: now() };
                        if self.inbound.try_send(packet).is_err() {
                            self.shared.inbound_dropped();
                        }
                    }
                }
                r = recv_opt(self.rtcp.as_ref(), &mut rtcp_buf) => {
                    if let Ok((n, _)) = r
                        && let Ok(c) = RtcpCompound::parse(&rtcp_buf[..n])
                        && c.bye_ssrcs().next().is_some()
                    {
                        let _ = self.events.try_send(MediaEvent::RtcpBye);
                    }
                }
                () = next_tick(tick.as_mut()) => self.shared.tick_now(now()),
                _ = rtcp_tick.tick() => self.send_rtcp(false).await,
            }
        }
        self.send_rtcp(true).await;
    }

    async fn send_rtcp(&mut self, bye: bool) {
        let Some(sock) = self.rtcp.as_ref() else {
            return;
        };
        let mut out = [0u8; 512];
        let Some(Some((n, remote))) = self
            .shared
            .with(|c| c.write_rtcp(&self.cname, bye, &mut out))
        else {
            return;
        };
        let _ = sock.send_to(&out[..n], remote).await;
    }
}

async fn next_tick(tick: Option<&mut Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
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
