//! The tokio driver of one carrier stream: the call's media transport when
//! its audio comes over a carrier WebSocket. It feeds the socket's
//! messages to the [`CarrierCore`] (converting audio with a
//! [`Transcoder`]) and runs a 20 ms tick, like the RTP
//! media stream: each tick yields one caller frame (or silence) and sends
//! at most one frame of ours, so our audio goes out paced in real time and
//! never floods the carrier's finite buffer.
//!
//! [`accept`] runs the stream's handshake (Twilio `connected` + `start`,
//! Vonage's metadata frame) before the call is admitted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use callbridge_rtp::stream::Frame;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use callbridge_carrier::hangup::{CarrierHangup, HANGUP_TIMEOUT, HangupTarget};
use callbridge_carrier::{
    Carrier, CarrierCore, CarrierError, CarrierEvent, CarrierSocket, StartInfo, WsMessage,
};

use super::audio::Transcoder;

/// Our frames waiting for their tick (the bridge keeps the rest, so a
/// barge-in drops them at once).
pub const PLAY_DEPTH: usize = 3;
/// Most messages read before the stream must have started.
pub const MAX_HANDSHAKE_MESSAGES: usize = 32;
/// The close code sent when the call ends (RFC 6455 section 7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;

const SILENCE: Frame = [0i16; 160];

/// A started carrier stream: its sans-IO core and the conversion of its
/// audio, ready to be a call's media.
pub struct CarrierStream {
    core: CarrierCore,
    audio: Transcoder,
}

impl std::fmt::Debug for CarrierStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierStream")
            .field("core", &self.core)
            .field("audio", &self.audio)
            .finish()
    }
}

impl CarrierStream {
    /// The stream's core.
    pub fn core(&self) -> &CarrierCore {
        &self.core
    }
}

/// Runs the handshake of a new carrier socket: reads until the stream
/// starts (bounded by `timeout` and [`MAX_HANDSHAKE_MESSAGES`]) and returns
/// the stream, ready for the call, with what the carrier said.
///
/// # Errors
/// The socket closed, the start did not come in time, or the start was
/// malformed or for a media format this bridge does not speak.
pub async fn accept(
    carrier: Carrier,
    socket: &mut CarrierSocket,
    timeout: Duration,
) -> Result<(CarrierStream, StartInfo), CarrierError> {
    let mut core = CarrierCore::new(carrier);
    let deadline = tokio::time::Instant::now() + timeout;
    for _ in 0..MAX_HANDSHAKE_MESSAGES {
        let msg = match tokio::time::timeout_at(deadline, socket.rx.recv()).await {
            Err(_) => return Err(CarrierError::StartTimeout { carrier }),
            Ok(None) | Ok(Some(WsMessage::Close(_))) => {
                return Err(CarrierError::ClosedEarly { carrier });
            }
            Ok(Some(m)) => m,
        };
        core.handle_message(&msg)?;
        while let Some(e) = core.poll_event() {
            if let CarrierEvent::Started(s) = e {
                let format = core.format().ok_or(CarrierError::Protocol {
                    carrier,
                    what: "started without a media format",
                })?;
                let audio = Transcoder::new(format)?;
                return Ok((CarrierStream { core, audio }, s));
            }
        }
    }
    Err(CarrierError::Protocol {
        carrier,
        what: "no start within the first messages",
    })
}

/// What the carrier transport reports to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one event per 20 ms tick, moved once; boxing would allocate per frame"
)]
pub enum CarrierMediaEvent {
    /// One 20 ms tick passed.
    Audio {
        /// The caller's frame (silence when none arrived).
        pcm: Frame,
        /// Whether a caller frame arrived for this tick.
        packet: bool,
        /// Our frame sent this tick (silence when none).
        sent: Frame,
    },
    /// The caller pressed a key.
    Dtmf(char),
    /// The stream ended (the carrier said `stop` or closed the socket).
    Stopped,
}

/// A carrier stream driven for one call (see the module docs).
pub struct CarrierMedia {
    core: CarrierCore,
    audio: Transcoder,
    socket: CarrierSocket,
    tick: tokio::time::Interval,
    play: VecDeque<Frame>,
    hangup: Arc<dyn CarrierHangup>,
    target: HangupTarget,
    socket_done: bool,
    hung_up: bool,
}

impl std::fmt::Debug for CarrierMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierMedia")
            .field("core", &self.core)
            .field("call", &self.target.call)
            .finish()
    }
}

impl CarrierMedia {
    /// Drives `stream` (from [`accept`]) on `socket`; `hangup` ends the
    /// call at the carrier when we hang up.
    pub fn new(
        stream: CarrierStream,
        socket: CarrierSocket,
        start: &StartInfo,
        hangup: Arc<dyn CarrierHangup>,
    ) -> CarrierMedia {
        let mut tick = tokio::time::interval(callbridge_rtp::stream::PTIME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let CarrierStream { core, audio } = stream;
        CarrierMedia {
            core,
            audio,
            socket,
            tick,
            play: VecDeque::with_capacity(PLAY_DEPTH),
            hangup,
            target: HangupTarget {
                call: start.call.clone(),
                account: start.account.clone(),
            },
            socket_done: false,
            hung_up: false,
        }
    }

    /// The carrier.
    pub fn carrier(&self) -> Carrier {
        self.core.carrier()
    }

    /// The next event. Cancel-safe: nothing is lost when the future is
    /// dropped before it completes.
    pub async fn recv(&mut self) -> Option<CarrierMediaEvent> {
        loop {
            while let Some(e) = self.core.poll_event() {
                match e {
                    CarrierEvent::Dtmf(d) => return Some(CarrierMediaEvent::Dtmf(d)),
                    CarrierEvent::Stopped => return Some(CarrierMediaEvent::Stopped),
                    // `Started` came once, in `accept`; `CarrierEvent` is
                    // non-exhaustive.
                    _ => {}
                }
            }
            self.flush();
            tokio::select! {
                biased;
                m = self.socket.rx.recv(), if !self.socket_done => {
                    let m = m.unwrap_or(WsMessage::Close(None));
                    if matches!(m, WsMessage::Close(_)) {
                        self.socket_done = true;
                    }
                    if let Err(e) = self.core.handle_message(&m) {
                        warn!(error = %e, "carrier message refused");
                    }
                }
                _ = self.tick.tick() => {
                    let caller = self.core.pop_caller_frame();
                    let (pcm, packet) = match caller.and_then(|w| self.audio.to_call(&w)) {
                        Some(f) => (f, true),
                        None => (SILENCE, false),
                    };
                    let sent = match self.play.pop_front() {
                        Some(f) => {
                            if let Some(w) = self.audio.to_wire(&f) {
                                self.core.queue_frame(&w);
                            }
                            f
                        }
                        None => SILENCE,
                    };
                    self.flush();
                    return Some(CarrierMediaEvent::Audio { pcm, packet, sent });
                }
            }
        }
    }

    /// Sends what the core has queued, as far as the socket has room
    /// (the rest waits in the core, bounded).
    fn flush(&mut self) {
        while let Ok(permit) = self.socket.tx.try_reserve() {
            match self.core.poll_transmit() {
                Some(m) => permit.send(m),
                None => break,
            }
        }
    }

    /// Queues one frame for a coming tick; false when [`PLAY_DEPTH`]
    /// frames already wait.
    pub fn try_play(&mut self, frame: Frame) -> bool {
        if self.play.len() >= PLAY_DEPTH {
            return false;
        }
        self.play.push_back(frame);
        true
    }

    /// Barge-in: drops our waiting frames and tells the carrier to drop
    /// its queue (`clear`). Returns the frames confirmed played so far.
    pub fn clear_playback(&mut self) -> u64 {
        self.play.clear();
        let played = self.core.clear();
        self.flush();
        played
    }

    /// Frames sent to the carrier so far.
    pub fn frames_sent(&self) -> u64 {
        self.core.frames_sent()
    }

    /// Frames the carrier confirmed played (marks / notify).
    pub fn frames_played(&self) -> u64 {
        self.core.frames_played()
    }

    /// Ends the call at the carrier (REST hangup, bounded), once.
    pub async fn hangup(&mut self) {
        if self.hung_up || self.core.is_stopped() {
            return;
        }
        self.hung_up = true;
        let carrier = self.carrier();
        match tokio::time::timeout(HANGUP_TIMEOUT, self.hangup.hangup(self.target.clone())).await {
            Ok(Ok(())) => info!(%carrier, "carrier call hung up"),
            Ok(Err(e)) => warn!(error = %e, "carrier hangup failed; closing the socket"),
            Err(_) => warn!(%carrier, "carrier hangup timed out; closing the socket"),
        }
    }

    /// Closes the socket (close frame 1000 after what is queued; the
    /// socket's task ends when the channel closes).
    pub fn close(mut self) {
        self.flush();
        if !self.socket_done {
            let _ = self
                .socket
                .tx
                .try_send(WsMessage::Close(Some(CLOSE_NORMAL)));
        }
        let (caller, transmit) = self.core.dropped();
        debug!(
            sent = self.core.frames_sent(),
            played = self.core.frames_played(),
            caller_dropped = caller,
            transmit_dropped = transmit,
            "carrier stream closed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_carrier::RecordingHangup;

    const START: &str = r#"{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ1","callSid":"CA1","accountSid":"AC1"}}"#;

    #[tokio::test(start_paused = true)]
    async fn handshake_times_out_and_reports_early_close() {
        let (mut s, ends) = CarrierSocket::pair();
        let r = accept(Carrier::Twilio, &mut s, Duration::from_secs(2)).await;
        assert!(matches!(r, Err(CarrierError::StartTimeout { .. })));
        drop(ends);
        let r = accept(Carrier::Twilio, &mut s, Duration::from_secs(2)).await;
        assert!(matches!(r, Err(CarrierError::ClosedEarly { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn frames_go_out_one_per_tick_never_faster() {
        let (mut s, mut ends) = CarrierSocket::pair();
        ends.to_call
            .send(WsMessage::Text(r#"{"event":"connected"}"#.into()))
            .await
            .unwrap();
        ends.to_call
            .send(WsMessage::Text(START.into()))
            .await
            .unwrap();
        let (core, start) = accept(Carrier::Twilio, &mut s, Duration::from_secs(1))
            .await
            .unwrap();
        let hang = RecordingHangup::default();
        let mut m = CarrierMedia::new(core, s, &start, Arc::new(hang.clone()));
        let t0 = tokio::time::Instant::now();
        let mut queued = 0;
        let mut ticks = 0;
        while queued < 10 {
            while m.try_play([1000i16; 160]) {
                queued += 1;
            }
            let ev = m.recv().await.unwrap();
            assert!(matches!(ev, CarrierMediaEvent::Audio { packet: false, .. }));
            ticks += 1;
        }
        for _ in 0..PLAY_DEPTH {
            m.recv().await.unwrap();
            ticks += 1;
        }
        let mut media = 0;
        while let Ok(WsMessage::Text(t)) = ends.from_call.try_recv() {
            if t.contains(r#""event":"media""#) {
                media += 1;
            }
        }
        assert_eq!(media, 10);
        // The first tick is immediate; each later one 20 ms after.
        assert_eq!(t0.elapsed(), Duration::from_millis(20 * (ticks - 1)));
        m.hangup().await;
        m.hangup().await;
        assert_eq!(hang.calls().len(), 1, "one REST hangup");
        m.close();
        assert_eq!(
            ends.from_call.recv().await,
            Some(WsMessage::Close(Some(CLOSE_NORMAL)))
        );
        assert_eq!(ends.from_call.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_and_socket_end_are_reported() {
        let (mut s, ends) = CarrierSocket::pair();
        ends.to_call
            .send(WsMessage::Text(START.into()))
            .await
            .unwrap();
        let (core, start) = accept(Carrier::Twilio, &mut s, Duration::from_secs(1))
            .await
            .unwrap();
        let mut m = CarrierMedia::new(core, s, &start, Arc::new(RecordingHangup::default()));
        drop(ends);
        loop {
            match m.recv().await.unwrap() {
                CarrierMediaEvent::Stopped => break,
                CarrierMediaEvent::Audio { .. } => {}
                e => panic!("{e:?}"),
            }
        }
    }
}
