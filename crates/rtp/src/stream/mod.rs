//! A call's handle on its media: [`MediaStream`], what the call task uses.
//! The media itself runs on a [`MediaEngine`] thread (the call's sockets
//! and its sans-IO [`MediaCore`]); the stream
//! exchanges frames, commands and events with it through preallocated
//! lock-free queues and never waits for it.
//!
//! Each 20 ms tick of the call
//!
//! - sends one packet: the next frame queued with [`MediaStream::play`],
//!   a pending DTMF event, or silence,
//! - takes one decoded frame out of the jitter buffer and hands it to the
//!   call as [`MediaEvent::Audio`] (silence while buffering), with the
//!   frame sent in the same tick,
//! - checks for RTP inactivity ([`MediaEvent::Inactive`]).
//!
//! Received datagrams go through the call's latch (the SDP peer first;
//! symmetric RTP to another source only under the
//! [`LatchRules`](crate::latch::LatchRules)) before they count; telephone
//! events become [`MediaEvent::Dtmf`]; an RTCP BYE becomes
//! [`MediaEvent::RtcpBye`]. Every 5 s an RTCP RR + SDES goes out when
//! RTCP is on, and a BYE on close.
//!
//! Everything is bounded: the playback queue and the event queue have
//! fixed capacities ([`MediaConfig::playback_capacity`],
//! [`MediaConfig::event_capacity`]), and a full event queue drops audio
//! events (counted) rather than holding up the engine.
//! [`MediaStream::close`] waits until the engine has let go of the call:
//! on return the sockets are closed and the port is back in the pool;
//! dropping the stream has the same effect at the engine's next pass.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::engine::link::{Control, Link};
use crate::engine::{CallIo, MediaEngine, Slot};
use crate::error::Error;
use crate::media::MediaCore;
pub use crate::media::{Frame, INBOUND_CAPACITY, MediaConfig, MediaEvent, MediaStats};
use crate::ports::{BoundPorts, PortPool};
/// Tick period: the packetization interval.
pub use crate::sender::PTIME;

/// Handle to one call's media stream. See the module docs.
pub struct MediaStream {
    local: SocketAddr,
    link: Arc<Link>,
}

impl std::fmt::Debug for MediaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStream")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl MediaStream {
    /// Binds a port from `pool` and puts the call on `engine` (its first
    /// tick one period from now on the engine's clock).
    ///
    /// # Errors
    /// [`Error::PortsExhausted`], [`Error::OutOfFileDescriptors`] or
    /// [`Error::Io`] (binding), [`Error::InvalidArgument`] when the
    /// engine has stopped.
    pub fn open(
        engine: &MediaEngine,
        pool: &PortPool,
        cfg: MediaConfig,
    ) -> Result<MediaStream, Error> {
        let BoundPorts { rtp, rtcp, lease } = pool.bind()?;
        let local = rtp.local_addr().map_err(Error::io("local_addr"))?;
        // Without kernel stamps, arrival is the time the engine reads.
        if let Err(e) = crate::engine::enable_timestamps(&rtp) {
            tracing::debug!(error = %e, "no kernel receive timestamps on an RTP socket");
        }
        let clock = Arc::clone(engine.clock());
        let (worker, index) = engine.pick();
        let link = Arc::new(Link::new(
            cfg.playback_capacity,
            cfg.event_capacity,
            worker,
            Arc::clone(&clock),
        ));
        let core = MediaCore::new(&cfg, clock.now(), rtcp.is_some());
        engine.add(
            index,
            Box::new(Slot {
                core,
                io: Some(CallIo {
                    rtp,
                    rtcp,
                    _lease: lease,
                }),
                link: Arc::clone(&link),
                rtcp_countdown: 1,
                stats_countdown: 1,
            }),
        )?;
        Ok(MediaStream { local, link })
    }

    /// Our RTP address (for the SDP answer).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn stopped(&self) -> bool {
        self.link.is_closing() || self.link.is_released()
    }

    /// Queues one frame to play; waits while the playback queue is full.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the stream has stopped.
    pub async fn play(&self, frame: Frame) -> Result<(), Error> {
        let mut frame = Some(frame);
        let queued = poll_fn(|cx| {
            let Some(f) = frame.take() else {
                return Poll::Ready(true);
            };
            if self.stopped() {
                return Poll::Ready(false);
            }
            match self.link.play.push(f) {
                Ok(()) => Poll::Ready(true),
                Err(f) => {
                    self.link.space_waker.register(cx.waker());
                    // The engine may have made room meanwhile.
                    match self.link.play.push(f) {
                        Ok(()) => Poll::Ready(true),
                        Err(f) => {
                            frame = Some(f);
                            Poll::Pending
                        }
                    }
                }
            }
        })
        .await;
        if queued {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                what: "media stream stopped",
            })
        }
    }

    /// Queues one frame if there is room; returns false when the queue is
    /// full or the stream has stopped.
    pub fn try_play(&self, frame: Frame) -> bool {
        !self.stopped() && self.link.play.push(frame).is_ok()
    }

    /// Drops every queued frame (barge-in): the next tick sends what is
    /// queued after this call, or silence.
    pub fn clear_playback(&self) {
        while self.link.play.pop().is_some() {}
        if !self.link.command(Control::Clear) {
            tracing::warn!("media command queue full: barge-in clear dropped");
        }
    }

    /// Sends a DTMF key (RFC 4733) lasting `duration` (e.g. 100 ms) in place
    /// of audio. Ignored without a negotiated telephone-event type.
    pub fn send_dtmf(&self, key: char, duration: Duration) {
        if let Some(event) = crate::dtmf::key_event(key) {
            let duration = u16::try_from(duration.as_millis() * 8).unwrap_or(u16::MAX);
            if !self.link.command(Control::Dtmf { event, duration }) {
                tracing::warn!("media command queue full: DTMF dropped");
            }
        }
    }

    /// Changes the peer's SDP address (the outbound call's answer, a
    /// re-INVITE): a new address becomes the peer and any latch is
    /// dropped; the same address changes nothing.
    pub fn set_remote(&self, remote: Option<SocketAddr>) {
        if !self.link.command(Control::SetRemote(remote)) {
            tracing::warn!("media command queue full: new peer address dropped");
        }
    }

    /// The call's signalling peer is now at `ip`: an outbound INVITE
    /// failed over to another server (RFC 3263 section 4.3), and the
    /// `signalling-ip` latch policy follows it.
    pub fn set_signalling_ip(&self, ip: Option<std::net::IpAddr>) {
        if !self.link.command(Control::SetSignallingIp(ip)) {
            tracing::warn!("media command queue full: new signalling IP dropped");
        }
    }

    /// The SRTP keys negotiated for the stream (an outbound call's answer,
    /// a re-INVITE that changes them): from the next tick on, what is sent
    /// is protected and what is received checked with them. The same keys
    /// again change nothing.
    pub fn set_srtp(&self, keys: crate::srtp::SrtpKeys) {
        if !self.link.command(Control::SetSrtp(Box::new(keys))) {
            tracing::warn!("media command queue full: SRTP keys dropped (the media stays shut)");
        }
    }

    /// The answer with our address is going out: from now on a source the
    /// latch rules allow may latch (packets received before stay
    /// rejected, `before_answer`). Only for a stream opened with
    /// `latch_open: false`; an extra call is harmless.
    pub fn answered(&self) {
        let at = self.link.clock.now();
        if !self.link.command(Control::Answered(at)) {
            tracing::warn!("media command queue full: answer not noted");
        }
    }

    /// The next event; `None` once the stream has stopped. Cancel-safe.
    pub async fn recv(&mut self) -> Option<MediaEvent> {
        poll_fn(|cx| {
            if let Some(ev) = self.took(self.link.events.pop()) {
                return Poll::Ready(Some(ev));
            }
            self.link.event_waker.register(cx.waker());
            if let Some(ev) = self.took(self.link.events.pop()) {
                return Poll::Ready(Some(ev));
            }
            if self.link.is_released() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// Lets a simulated clock that runs ahead know the event was taken.
    fn took(&self, ev: Option<MediaEvent>) -> Option<MediaEvent> {
        if ev.is_some() && self.link.clock.wakes_on_consume() {
            self.link.worker.unpark();
        }
        ev
    }

    /// The counters as the engine last handed them over: every 25 ticks,
    /// and at the tick after a call of this (each call asks for the next
    /// tick's), so a caller that reads every tick sees every tick's.
    #[must_use]
    pub fn stats(&self) -> MediaStats {
        self.link.stats()
    }

    /// Stops the stream (sending an RTCP BYE when RTCP is on) and waits
    /// until the engine has let go of it: on return the sockets are closed
    /// and the port is back in the pool. Returns the final counters.
    pub async fn close(self) -> MediaStats {
        self.link.close();
        poll_fn(|cx| {
            if self.link.is_released() {
                return Poll::Ready(());
            }
            self.link.event_waker.register(cx.waker());
            if self.link.is_released() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
        self.link.stats()
    }
}

impl Drop for MediaStream {
    fn drop(&mut self) {
        self.link.close();
    }
}
