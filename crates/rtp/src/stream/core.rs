//! The state of one stream that its ticks work on: jitter buffer,
//! packetizer, latch, DTMF, the receiving ends of the playback queue and of
//! the received packets, and the call's event channel. It sits behind a
//! mutex in [`Shared`] because the ticks come from the media clock's
//! thread (or the stream's own task, with
//! [`Pacing::Runtime`](super::Pacing::Runtime)) while control (barge-in,
//! DTMF, a new peer address, the 5 s RTCP report) comes from the tokio
//! side. Received packets do not take the lock: the receiving task queues
//! them (bounded) and the tick handles them, so a runtime worker preempted
//! by the OS is rarely holding a stream's state when its tick is due.
//! Every use holds the lock for one tick's work: microseconds, no IO but
//! one non-blocking `sendto`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::{SockAddr, SockRef};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::event::{Frame, MediaEvent, MediaStats};
use crate::clock::{Paced, Tick};
use crate::dtmf::{DtmfGenerator, DtmfReceiver, TelephoneEvent};
use crate::ids::PayloadType;
use crate::jitter::JitterBuffer;
use crate::latch::{Latch, LatchDecision};
use crate::rtcp::{self, ReportBlock};
use crate::rtp::{RTP_HEADER_LEN, RtpPacket};
use crate::sender::{MAX_FRAME, RtpSender};

/// A datagram received on the RTP socket, waiting for the next tick.
pub(super) struct Inbound {
    pub(super) data: Bytes,
    pub(super) src: SocketAddr,
    pub(super) at: Instant,
}

/// What the stream's handle, its task and the clock share.
pub(super) struct Shared {
    /// `None` once the stream has stopped: the clock then forgets it.
    core: Mutex<Option<Core>>,
    /// The counters as of the last tick.
    stats: Mutex<MediaStats>,
    /// Datagrams dropped because the inbound queue was full.
    inbound_dropped: AtomicU64,
}

impl Shared {
    pub(super) fn new(core: Core) -> Shared {
        Shared {
            core: Mutex::new(Some(core)),
            stats: Mutex::new(MediaStats::default()),
            inbound_dropped: AtomicU64::new(0),
        }
    }

    /// Counts a datagram the full inbound queue could not take.
    pub(super) fn inbound_dropped(&self) {
        self.inbound_dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Option<Core>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the core unless the stream has stopped.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> Option<R> {
        self.lock().as_mut().map(f)
    }

    /// Stops the stream: takes the core out (closing the clock's use of
    /// the socket, the playback queue and the event channel).
    pub(super) fn stop(&self) -> Option<Core> {
        self.lock().take()
    }

    pub(super) fn stats(&self) -> MediaStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One tick from the stream's own task ([`Pacing::Runtime`](super::Pacing::Runtime)).
    pub(super) fn tick_now(&self, now: Instant) {
        if let Some(mut stats) = self.with(|core| core.tick(now)) {
            stats.inbound_dropped = self.inbound_dropped.load(Ordering::Relaxed);
            self.set_stats(stats);
        }
    }

    fn set_stats(&self, stats: MediaStats) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }

    /// The clock copies the counters only when no reader holds them (it
    /// never waits on a lock); the next tick copies them again.
    fn try_set_stats(&self, stats: MediaStats) {
        match self.stats.try_lock() {
            Ok(mut s) => *s = stats,
            Err(TryLockError::Poisoned(p)) => *p.into_inner() = stats,
            Err(TryLockError::WouldBlock) => {}
        }
    }
}

impl Paced for Shared {
    fn tick(&self, now: Instant) -> Tick {
        let mut guard = match self.core.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Tick::Busy,
        };
        let Some(core) = guard.as_mut() else {
            return Tick::Closed;
        };
        let mut stats = core.tick(now);
        drop(guard);
        stats.inbound_dropped = self.inbound_dropped.load(Ordering::Relaxed);
        self.try_set_stats(stats);
        Tick::Done
    }
}

/// See the module docs.
pub(super) struct Core {
    pub(super) telephone_event: Option<PayloadType>,
    pub(super) inactivity: Duration,
    pub(super) jitter: JitterBuffer,
    pub(super) sender: RtpSender,
    pub(super) latch: Latch,
    /// When the peer could first know our address (the answer went out):
    /// packets received before it cannot latch. `None` until then.
    pub(super) latch_open_at: Option<Instant>,
    /// Whether a rejected packet was reported to the call (once per stream).
    pub(super) rejection_reported: bool,
    pub(super) dtmf_rx: DtmfReceiver,
    /// Outgoing event in progress: generator and its start timestamp.
    pub(super) dtmf_tx: Option<(DtmfGenerator, u32)>,
    /// The RTP socket, shared with the task that receives on it; the tick
    /// sends on it without waiting (a full send buffer drops the packet).
    pub(super) rtp: Arc<UdpSocket>,
    pub(super) frames: mpsc::Receiver<Frame>,
    /// Datagrams the receiving task queued since the last tick.
    pub(super) inbound: mpsc::Receiver<Inbound>,
    pub(super) events: mpsc::Sender<MediaEvent>,
    pub(super) stats: MediaStats,
    pub(super) last_rx: Instant,
    pub(super) inactive_reported: bool,
}

impl Core {
    fn on_datagram(&mut self, data: Bytes, src: SocketAddr, now: Instant) {
        let Ok(packet) = RtpPacket::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        if !self.latch.view().open && self.latch_open_at.is_some_and(|t| now >= t) {
            self.latch.open();
        }
        match self.latch.check(src) {
            LatchDecision::Reject(reason) => {
                self.stats.rejected.count(reason);
                if !self.rejection_reported {
                    self.rejection_reported = true;
                    let _ = self
                        .events
                        .try_send(MediaEvent::Rejected { from: src, reason });
                }
                return;
            }
            LatchDecision::Latched(addr) => {
                let _ = self.events.try_send(MediaEvent::Latched(addr));
            }
            LatchDecision::Returned(addr) => {
                // What the other source sent is not the caller's: none
                // of it is played.
                self.jitter.reset();
                let _ = self.events.try_send(MediaEvent::Latched(addr));
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
                    let _ = self.events.try_send(MediaEvent::Dtmf(d));
                }
            }
            return;
        }
        self.jitter.handle_packet(now, &packet);
    }

    /// Barge-in: drops every queued frame.
    pub(super) fn clear_playback(&mut self) {
        while self.frames.try_recv().is_ok() {}
    }

    /// Starts an RFC 4733 event unless one is in progress or none was
    /// negotiated.
    pub(super) fn start_dtmf(&mut self, event: u8, duration: u16) {
        if self.telephone_event.is_some() && self.dtmf_tx.is_none() {
            let start = self.sender.next_timestamp();
            self.dtmf_tx = Some((
                DtmfGenerator::new(event, duration, 10, MAX_FRAME as u16),
                start,
            ));
        }
    }

    /// One 20 ms tick: takes in the datagrams received since the last
    /// tick, sends the packet (DTMF, queued audio or silence), hands the call
    /// the caller's frame out of the jitter buffer and the frame sent,
    /// checks inactivity, and returns the counters.
    pub(super) fn tick(&mut self, now: Instant) -> MediaStats {
        // Received packets first: a latch they move applies to this
        // tick's packet already.
        while let Ok(Inbound { data, src, at }) = self.inbound.try_recv() {
            self.on_datagram(data, src, at);
        }
        let mut sent = [0i16; MAX_FRAME];
        let mut out = [0u8; RTP_HEADER_LEN + MAX_FRAME];
        let n = match (&mut self.dtmf_tx, self.telephone_event) {
            (Some((generator, start)), Some(pt)) => match generator.next() {
                Some(p) => self.sender.event_packet(&p, pt, *start, &mut out),
                None => {
                    self.dtmf_tx = None;
                    self.next_audio_packet(&mut out, &mut sent)
                }
            },
            _ => self.next_audio_packet(&mut out, &mut sent),
        };
        if let (Ok(n), Some(remote)) = (n, self.latch.remote()) {
            // A borrowed view of the socket: the send goes straight to the
            // kernel, independent of the runtime's readiness bookkeeping.
            match SockRef::from(&*self.rtp).send_to(&out[..n], &SockAddr::from(remote)) {
                Ok(_) => self.stats.packets_out += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
        let mut pcm = [0i16; MAX_FRAME];
        let playout = self.jitter.poll_frame(&mut pcm);
        if self
            .events
            .try_send(MediaEvent::Audio { pcm, playout, sent })
            .is_err()
        {
            self.stats.events_dropped += 1;
        }
        let silent_for = now.saturating_duration_since(self.last_rx);
        if silent_for >= self.inactivity && !self.inactive_reported {
            self.inactive_reported = true;
            let _ = self.events.try_send(MediaEvent::Inactive { silent_for });
        }
        self.stats.jitter = self.jitter.stats();
        self.stats.jitter_depth = self.jitter.buffered();
        self.stats
    }

    fn next_audio_packet(
        &mut self,
        out: &mut [u8],
        sent: &mut Frame,
    ) -> Result<usize, crate::Error> {
        match self.frames.try_recv() {
            Ok(frame) => {
                *sent = frame;
                self.sender.next_packet(Some(&frame[..]), out)
            }
            Err(_) => self.sender.next_packet(None, out),
        }
    }

    /// Writes an RTCP RR + SDES (+ BYE) into `out`; returns its length and
    /// where it goes (the RTP peer's port + 1), `None` without a peer.
    pub(super) fn write_rtcp(
        &self,
        cname: &str,
        bye: bool,
        out: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        let remote = self.latch.remote()?;
        let remote = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
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
        n += rtcp::write_sdes_cname(ssrc, cname.as_bytes(), &mut out[n..]).unwrap_or(0);
        if bye {
            n += rtcp::write_bye(&[ssrc], None, &mut out[n..]).unwrap_or(0);
        }
        Some((n, remote))
    }
}
