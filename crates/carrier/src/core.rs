//! The sans-IO core of one carrier stream: WebSocket messages in, caller
//! [`WireFrame`]s and [`CarrierEvent`]s out; our [`WireFrame`]s in,
//! WebSocket messages out (one per 20 ms frame, plus a playout marker
//! every [`MARK_EVERY`] frames). No sockets, no clock, no tasks: a driver
//! (the session crate's carrier media) feeds it and paces it.
//!
//! Audio stays in the carrier's own format, one 20 ms frame at a time
//! ([`WireFormat`], known once the stream started): Twilio's G.711 µ-law
//! at 8 kHz (re-framed: its payloads need not be 160 bytes), Vonage's L16
//! at 8 or 16 kHz. Decoding and resampling to the call's media are the
//! adapter's business, so this crate needs no codec.
//!
//! Playout tracking: each marker is named after the number of frames sent
//! before it (Twilio `mark` name `m<N>`, Vonage `notify` payload
//! `{"mark":N}`); when it comes back, those N frames have been played. A
//! `clear` makes Twilio return the pending marks although their audio was
//! discarded, so markers sent before a clear are ignored once it is sent:
//! the played count only ever reports audio the caller heard.

use std::collections::VecDeque;

use bytes::Bytes;

use super::twilio::{self, Inbound};
use super::vonage::{self, L16Rate};
use super::{Carrier, CarrierCallId, CarrierError, WsMessage};

/// Frames between two playout markers (100 ms).
pub const MARK_EVERY: u64 = 5;
/// Caller frames buffered before the oldest is dropped (1 s).
pub const MAX_CALLER_FRAMES: usize = 50;
/// Events buffered before the oldest is dropped.
pub const MAX_EVENTS: usize = 32;
/// Outbound messages buffered (the driver drains them every tick).
pub const MAX_TRANSMIT: usize = 16;

/// µ-law bytes (or 8 kHz samples) in one 20 ms frame.
pub const FRAME: usize = 160;
/// Samples in one 20 ms frame at 16 kHz.
pub const WIDE_FRAME: usize = 320;

/// The audio format of a stream, as the carrier sends and takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireFormat {
    /// G.711 µ-law at 8 kHz (Twilio).
    Ulaw,
    /// 16-bit linear PCM at 8 kHz (Vonage `audio/l16;rate=8000`).
    L16Narrow,
    /// 16-bit linear PCM at 16 kHz (Vonage `audio/l16;rate=16000`).
    L16Wide,
}

/// One 20 ms frame of audio in a stream's [`WireFormat`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one frame per 20 ms tick, on the stack; boxing would allocate per frame"
)]
pub enum WireFrame {
    /// 160 G.711 µ-law bytes.
    Ulaw([u8; FRAME]),
    /// 160 samples at 8 kHz.
    L16Narrow([i16; FRAME]),
    /// 320 samples at 16 kHz.
    L16Wide([i16; WIDE_FRAME]),
}

impl WireFrame {
    /// The format of this frame.
    pub fn format(&self) -> WireFormat {
        match self {
            WireFrame::Ulaw(_) => WireFormat::Ulaw,
            WireFrame::L16Narrow(_) => WireFormat::L16Narrow,
            WireFrame::L16Wide(_) => WireFormat::L16Wide,
        }
    }

    /// A frame of silence in `format`.
    ///
    /// ```
    /// use callbridge_carrier::{WireFormat, WireFrame};
    /// // µ-law silence is 0xff (ITU-T G.711).
    /// assert_eq!(WireFrame::silence(WireFormat::Ulaw), WireFrame::Ulaw([0xff; 160]));
    /// ```
    pub fn silence(format: WireFormat) -> WireFrame {
        match format {
            WireFormat::Ulaw => WireFrame::Ulaw([0xff; FRAME]),
            WireFormat::L16Narrow => WireFrame::L16Narrow([0; FRAME]),
            WireFormat::L16Wide => WireFrame::L16Wide([0; WIDE_FRAME]),
        }
    }
}

impl L16Rate {
    fn wire_format(self) -> WireFormat {
        match self {
            L16Rate::Narrow => WireFormat::L16Narrow,
            L16Rate::Wide => WireFormat::L16Wide,
        }
    }
}

/// What the carrier told us about the call when its stream started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    /// The carrier's call id (Twilio CallSid; Vonage `uuid` header).
    pub call: CarrierCallId,
    /// Twilio's AccountSid (for the REST hangup).
    pub account: Option<String>,
    /// Twilio's StreamSid (echoed in every message we send).
    pub stream_sid: Option<String>,
    /// Twilio `customParameters` or Vonage NCCO `headers`.
    pub parameters: Vec<(String, String)>,
}

impl StartInfo {
    /// The parameter `key`, if the carrier passed it.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An event of the stream (caller audio is taken with
/// [`CarrierCore::pop_caller_frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarrierEvent {
    /// The stream started (Twilio `start`, Vonage `websocket:connected`).
    Started(StartInfo),
    /// The caller pressed a key.
    Dtmf(char),
    /// The stream ended (Twilio `stop`, or the socket closed).
    Stopped,
}

enum Proto {
    Twilio {
        stream_sid: Option<String>,
        partial: Vec<u8>,
    },
    Vonage {
        rate: Option<L16Rate>,
    },
}

/// One call's carrier stream (see the module docs).
///
/// ```
/// use bytes::Bytes;
/// use callbridge_carrier::{Carrier, CarrierCore, CarrierEvent, WireFrame, WsMessage};
///
/// let mut core = CarrierCore::new(Carrier::Vonage);
/// core.handle_message(&WsMessage::Text(
///     r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"u-1"}"#.into(),
/// ))?;
/// assert!(matches!(core.poll_event(), Some(CarrierEvent::Started(_))));
/// // 20 ms of 16 kHz L16 from the carrier: one caller frame.
/// core.handle_message(&WsMessage::Binary(Bytes::from(vec![0u8; 640])))?;
/// assert!(matches!(core.pop_caller_frame(), Some(WireFrame::L16Wide(_))));
/// # Ok::<(), callbridge_carrier::CarrierError>(())
/// ```
pub struct CarrierCore {
    carrier: Carrier,
    proto: Proto,
    started: bool,
    stopped: bool,
    caller: VecDeque<WireFrame>,
    events: VecDeque<CarrierEvent>,
    transmit: VecDeque<WsMessage>,
    sent: u64,
    played: u64,
    ignore_marks_upto: u64,
    dropped_caller: u64,
    dropped_transmit: u64,
    bytes: Vec<u8>,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for CarrierCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierCore")
            .field("carrier", &self.carrier)
            .field("started", &self.started)
            .field("sent", &self.sent)
            .field("played", &self.played)
            .finish()
    }
}

impl CarrierCore {
    /// A core waiting for the stream's start.
    pub fn new(carrier: Carrier) -> CarrierCore {
        let proto = match carrier {
            Carrier::Vonage => Proto::Vonage { rate: None },
            _ => Proto::Twilio {
                stream_sid: None,
                partial: Vec::with_capacity(twilio::MAX_PAYLOAD + FRAME),
            },
        };
        CarrierCore {
            carrier,
            proto,
            started: false,
            stopped: false,
            caller: VecDeque::with_capacity(MAX_CALLER_FRAMES),
            events: VecDeque::with_capacity(8),
            transmit: VecDeque::with_capacity(MAX_TRANSMIT),
            sent: 0,
            played: 0,
            ignore_marks_upto: 0,
            dropped_caller: 0,
            dropped_transmit: 0,
            bytes: vec![0; twilio::MAX_PAYLOAD],
            pcm: vec![0; twilio::MAX_PAYLOAD.max(640)],
        }
    }

    /// The carrier.
    pub fn carrier(&self) -> Carrier {
        self.carrier
    }

    /// Whether the stream has started.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// The stream's audio format, once it has started.
    pub fn format(&self) -> Option<WireFormat> {
        match &self.proto {
            Proto::Twilio { .. } if self.started => Some(WireFormat::Ulaw),
            Proto::Vonage { rate: Some(r) } => Some(r.wire_format()),
            _ => None,
        }
    }

    /// Whether the stream has stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn push_event(&mut self, e: CarrierEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn push_caller(&mut self, f: WireFrame) {
        if self.caller.len() >= MAX_CALLER_FRAMES {
            self.caller.pop_front();
            self.dropped_caller += 1;
        }
        self.caller.push_back(f);
    }

    fn push_transmit(&mut self, m: WsMessage) {
        if self.transmit.len() >= MAX_TRANSMIT {
            self.transmit.pop_front();
            self.dropped_transmit += 1;
        }
        self.transmit.push_back(m);
    }

    fn protocol(&self, what: &'static str) -> CarrierError {
        CarrierError::Protocol {
            carrier: self.carrier,
            what,
        }
    }

    /// Feeds one message from the carrier.
    ///
    /// # Errors
    /// A malformed or out-of-place message (a second start, audio before
    /// the start, a binary frame on Twilio...). The message is ignored;
    /// the stream goes on.
    pub fn handle_message(&mut self, msg: &WsMessage) -> Result<(), CarrierError> {
        if self.stopped {
            return Ok(());
        }
        match msg {
            WsMessage::Close(_) => {
                self.stopped = true;
                self.push_event(CarrierEvent::Stopped);
                Ok(())
            }
            WsMessage::Text(t) => match self.carrier {
                Carrier::Vonage => self.vonage_text(t),
                _ => self.twilio_text(t),
            },
            WsMessage::Binary(b) => match self.carrier {
                Carrier::Vonage => self.vonage_audio(b),
                _ => Err(self.protocol("binary frame on a Twilio stream")),
            },
        }
    }

    fn twilio_text(&mut self, t: &str) -> Result<(), CarrierError> {
        match twilio::parse(t)? {
            Inbound::Start(s) => {
                if self.started {
                    return Err(self.protocol("a second start on a live stream"));
                }
                let call = CarrierCallId::new(Carrier::Twilio, &s.call_sid)
                    .ok_or_else(|| self.protocol("start without a usable callSid"))?;
                if let Proto::Twilio { stream_sid, .. } = &mut self.proto {
                    *stream_sid = Some(s.stream_sid.clone());
                }
                self.started = true;
                self.push_event(CarrierEvent::Started(StartInfo {
                    call,
                    account: Some(s.account_sid),
                    stream_sid: Some(s.stream_sid),
                    parameters: s.parameters,
                }));
            }
            Inbound::Media { payload, .. } => {
                if !self.started {
                    return Err(self.protocol("media before start"));
                }
                let n = twilio::decode_payload(&payload, &mut self.bytes)?;
                let Proto::Twilio { partial, .. } = &mut self.proto else {
                    return Ok(());
                };
                partial.extend_from_slice(&self.bytes[..n]);
                let mut at = 0;
                while partial.len() - at >= FRAME {
                    let mut f = [0u8; FRAME];
                    f.copy_from_slice(&partial[at..at + FRAME]);
                    at += FRAME;
                    if self.caller.len() >= MAX_CALLER_FRAMES {
                        self.caller.pop_front();
                        self.dropped_caller += 1;
                    }
                    self.caller.push_back(WireFrame::Ulaw(f));
                }
                partial.drain(..at);
            }
            Inbound::Mark { name } => {
                if let Some(n) = name.strip_prefix('m').and_then(|n| n.parse::<u64>().ok()) {
                    self.on_marker(n);
                }
            }
            Inbound::Dtmf { digit } => self.push_event(CarrierEvent::Dtmf(digit)),
            Inbound::Stop => {
                self.stopped = true;
                self.push_event(CarrierEvent::Stopped);
            }
            Inbound::Connected | Inbound::Other => {}
        }
        Ok(())
    }

    fn vonage_text(&mut self, t: &str) -> Result<(), CarrierError> {
        match vonage::parse(t)? {
            vonage::Event::Connected(m) => {
                if self.started {
                    return Err(self.protocol("a second websocket:connected"));
                }
                let call = m
                    .header("uuid")
                    .and_then(|u| CarrierCallId::new(Carrier::Vonage, u))
                    .ok_or_else(|| self.protocol("metadata without a usable uuid header"))?;
                self.proto = Proto::Vonage { rate: Some(m.rate) };
                self.started = true;
                self.push_event(CarrierEvent::Started(StartInfo {
                    call,
                    account: None,
                    stream_sid: None,
                    parameters: m.headers,
                }));
            }
            vonage::Event::Dtmf { digit, .. } => self.push_event(CarrierEvent::Dtmf(digit)),
            vonage::Event::Notify { mark: Some(n) } => self.on_marker(n),
            vonage::Event::Notify { mark: None }
            | vonage::Event::Cleared
            | vonage::Event::Other(_) => {}
        }
        Ok(())
    }

    fn vonage_audio(&mut self, b: &[u8]) -> Result<(), CarrierError> {
        let Proto::Vonage { rate: Some(rate) } = self.proto else {
            return Err(self.protocol("audio before websocket:connected"));
        };
        vonage::decode_frame(rate, b, &mut self.pcm)?;
        let f = match rate {
            L16Rate::Wide => {
                let mut f = [0i16; WIDE_FRAME];
                f.copy_from_slice(&self.pcm[..WIDE_FRAME]);
                WireFrame::L16Wide(f)
            }
            L16Rate::Narrow => {
                let mut f = [0i16; FRAME];
                f.copy_from_slice(&self.pcm[..FRAME]);
                WireFrame::L16Narrow(f)
            }
        };
        self.push_caller(f);
        Ok(())
    }

    fn on_marker(&mut self, n: u64) {
        if n <= self.ignore_marks_upto || n > self.sent {
            return;
        }
        self.played = self.played.max(n);
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CarrierEvent> {
        self.events.pop_front()
    }

    /// Takes the oldest buffered caller frame (in the stream's
    /// [`WireFormat`]).
    pub fn pop_caller_frame(&mut self) -> Option<WireFrame> {
        self.caller.pop_front()
    }

    /// Sends one 20 ms frame of ours to the carrier (and a marker every
    /// [`MARK_EVERY`] frames). Ignored before the start, after the stop,
    /// and when the frame is not in the stream's [`WireFormat`].
    pub fn queue_frame(&mut self, frame: &WireFrame) {
        if !self.started || self.stopped || self.format() != Some(frame.format()) {
            return;
        }
        let msg = match (&self.proto, frame) {
            (Proto::Twilio { stream_sid, .. }, WireFrame::Ulaw(ulaw)) => {
                let Some(sid) = stream_sid.as_deref() else {
                    return;
                };
                let mut s = String::with_capacity(300);
                twilio::write_media(sid, ulaw, &mut s);
                WsMessage::Text(s)
            }
            (Proto::Vonage { .. }, WireFrame::L16Narrow(pcm)) => l16_message(pcm),
            (Proto::Vonage { .. }, WireFrame::L16Wide(pcm)) => l16_message(pcm),
            _ => return,
        };
        self.push_transmit(msg);
        self.sent += 1;
        if self.sent.is_multiple_of(MARK_EVERY) {
            self.queue_marker();
        }
    }

    fn queue_marker(&mut self) {
        let n = self.sent;
        let mut s = String::with_capacity(96);
        match &self.proto {
            Proto::Twilio {
                stream_sid: Some(sid),
                ..
            } => twilio::write_mark(sid, &format!("m{n}"), &mut s),
            Proto::Vonage { .. } => vonage::write_notify(n, &mut s),
            Proto::Twilio { .. } => return,
        }
        self.push_transmit(WsMessage::Text(s));
    }

    /// Barge-in: tells the carrier to drop its queued audio. Returns the
    /// frames confirmed played so far (markers before this clear no longer
    /// count).
    pub fn clear(&mut self) -> u64 {
        if self.started && !self.stopped {
            // What is queued here has not reached the carrier: drop it.
            self.transmit
                .retain(|m| !matches!(m, WsMessage::Binary(_)) && !is_media_text(m));
            let mut s = String::with_capacity(64);
            match &self.proto {
                Proto::Twilio {
                    stream_sid: Some(sid),
                    ..
                } => twilio::write_clear(sid, &mut s),
                Proto::Vonage { .. } => vonage::write_clear(&mut s),
                Proto::Twilio { .. } => {}
            }
            if !s.is_empty() {
                self.push_transmit(WsMessage::Text(s));
            }
        }
        self.ignore_marks_upto = self.sent;
        self.played
    }

    /// The next message to send to the carrier.
    pub fn poll_transmit(&mut self) -> Option<WsMessage> {
        self.transmit.pop_front()
    }

    /// Frames queued for sending so far.
    pub fn frames_sent(&self) -> u64 {
        self.sent
    }

    /// Frames the carrier confirmed played (by markers).
    pub fn frames_played(&self) -> u64 {
        self.played
    }

    /// Caller frames dropped because they came faster than 20 ms ticks
    /// took them, and outbound messages dropped because the socket stalled.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_caller, self.dropped_transmit)
    }
}

/// One binary L16 frame.
fn l16_message(pcm: &[i16]) -> WsMessage {
    let mut out = vec![0u8; pcm.len() * 2];
    vonage::encode_frame(pcm, &mut out);
    WsMessage::Binary(Bytes::from(out))
}

fn is_media_text(m: &WsMessage) -> bool {
    matches!(m, WsMessage::Text(t) if t.starts_with(r#"{"event":"media""#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;

    fn twilio_started() -> CarrierCore {
        let mut c = CarrierCore::new(Carrier::Twilio);
        c.handle_message(&WsMessage::Text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into(),
        ))
        .unwrap();
        c.handle_message(&WsMessage::Text(
            r#"{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ1","callSid":"CA1","accountSid":"AC1","customParameters":{"k":"v"}}}"#.into(),
        ))
        .unwrap();
        c
    }

    fn media(bytes: &[u8]) -> WsMessage {
        let p = base64::engine::general_purpose::STANDARD.encode(bytes);
        WsMessage::Text(format!(
            r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{p}"}}}}"#
        ))
    }

    fn texts(c: &mut CarrierCore) -> Vec<String> {
        std::iter::from_fn(|| c.poll_transmit())
            .map(|m| match m {
                WsMessage::Text(t) => t,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn twilio_start_then_a_second_start_is_refused() {
        let mut c = twilio_started();
        let Some(CarrierEvent::Started(s)) = c.poll_event() else {
            panic!()
        };
        assert_eq!(s.call.as_str(), "CA1");
        assert_eq!(s.parameter("k"), Some("v"));
        let again = c.handle_message(&WsMessage::Text(
            r#"{"event":"start","streamSid":"MZ2","start":{"streamSid":"MZ2","callSid":"CA2","accountSid":"AC1"}}"#.into(),
        ));
        assert!(matches!(again, Err(CarrierError::Protocol { .. })));
        assert_eq!(c.poll_event(), None, "no second Started");
    }

    #[test]
    fn twilio_media_is_reframed_to_20_ms() {
        let mut c = twilio_started();
        c.handle_message(&media(&[0xff; 100])).unwrap();
        assert!(
            c.pop_caller_frame().is_none(),
            "100 bytes are not a frame yet"
        );
        c.handle_message(&media(&[0xff; 300])).unwrap();
        assert!(c.pop_caller_frame().is_some());
        assert!(c.pop_caller_frame().is_some());
        assert!(c.pop_caller_frame().is_none(), "80 samples left over");
    }

    #[test]
    fn media_before_start_and_binary_frames_are_protocol_errors() {
        let mut c = CarrierCore::new(Carrier::Twilio);
        assert!(c.handle_message(&media(&[0; 160])).is_err());
        let mut c = twilio_started();
        assert!(
            c.handle_message(&WsMessage::Binary(Bytes::from_static(&[0; 4])))
                .is_err()
        );
    }

    #[test]
    fn twilio_frames_go_out_as_media_with_a_mark_every_five() {
        let mut c = twilio_started();
        for _ in 0..5 {
            c.queue_frame(&WireFrame::Ulaw([0xff; 160]));
        }
        let t = texts(&mut c);
        assert_eq!(t.len(), 6);
        assert!(
            t[..5]
                .iter()
                .all(|m| m.starts_with(r#"{"event":"media","streamSid":"MZ1""#))
        );
        assert_eq!(
            t[5],
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m5"}}"#
        );
    }

    #[test]
    fn marks_count_played_frames_and_marks_returned_by_clear_do_not() {
        let mut c = twilio_started();
        for _ in 0..15 {
            c.queue_frame(&WireFrame::Ulaw([0xff; 160]));
        }
        texts(&mut c);
        let mark = |n: u64| {
            WsMessage::Text(format!(
                r#"{{"event":"mark","streamSid":"MZ1","mark":{{"name":"m{n}"}}}}"#
            ))
        };
        c.handle_message(&mark(5)).unwrap();
        assert_eq!(c.frames_played(), 5);
        assert_eq!(c.clear(), 5);
        assert_eq!(
            texts(&mut c),
            vec![r#"{"event":"clear","streamSid":"MZ1"}"#]
        );
        // Twilio hands back the pending marks after a clear: not played.
        c.handle_message(&mark(10)).unwrap();
        c.handle_message(&mark(15)).unwrap();
        assert_eq!(c.frames_played(), 5);
        // A mark we never sent is ignored too.
        c.handle_message(&mark(99)).unwrap();
        assert_eq!(c.frames_played(), 5);
        for _ in 0..5 {
            c.queue_frame(&WireFrame::Ulaw([0xff; 160]));
        }
        c.handle_message(&mark(20)).unwrap();
        assert_eq!(c.frames_played(), 20);
    }

    #[test]
    fn clear_drops_unsent_audio() {
        let mut c = twilio_started();
        c.queue_frame(&WireFrame::Ulaw([0xff; 160]));
        c.queue_frame(&WireFrame::Ulaw([0xff; 160]));
        c.clear();
        assert_eq!(
            texts(&mut c),
            vec![r#"{"event":"clear","streamSid":"MZ1"}"#]
        );
    }

    #[test]
    fn twilio_stop_and_dtmf_are_events() {
        let mut c = twilio_started();
        c.poll_event();
        c.handle_message(&WsMessage::Text(
            r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"digit":"7"}}"#.into(),
        ))
        .unwrap();
        c.handle_message(&WsMessage::Text(
            r#"{"event":"stop","streamSid":"MZ1"}"#.into(),
        ))
        .unwrap();
        assert_eq!(c.poll_event(), Some(CarrierEvent::Dtmf('7')));
        assert_eq!(c.poll_event(), Some(CarrierEvent::Stopped));
        assert!(c.is_stopped());
        c.queue_frame(&WireFrame::Ulaw([0xff; 160]));
        assert!(c.poll_transmit().is_none(), "nothing is sent after stop");
    }

    fn vonage_started() -> CarrierCore {
        let mut c = CarrierCore::new(Carrier::Vonage);
        c.handle_message(&WsMessage::Text(
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"u-1","from":"447700900001"}"#.into(),
        ))
        .unwrap();
        c
    }

    #[test]
    fn vonage_wideband_frames_pass_as_16_khz_l16_both_ways() {
        let mut c = vonage_started();
        let Some(CarrierEvent::Started(s)) = c.poll_event() else {
            panic!()
        };
        assert_eq!(s.call.key(), "vonage:u-1");
        assert_eq!(s.parameter("from"), Some("447700900001"));
        assert_eq!(c.format(), Some(WireFormat::L16Wide));
        let mut le = vec![0u8; 640];
        le[2..4].copy_from_slice(&(-2i16).to_le_bytes());
        c.handle_message(&WsMessage::Binary(Bytes::from(le.clone())))
            .unwrap();
        let Some(WireFrame::L16Wide(f)) = c.pop_caller_frame() else {
            panic!("one 16 kHz frame")
        };
        assert_eq!(f[1], -2);
        assert!(
            c.handle_message(&WsMessage::Binary(Bytes::from(vec![0u8; 320])))
                .is_err()
        );
        // A frame in another format than the stream's is not sent.
        c.queue_frame(&WireFrame::L16Narrow([100; 160]));
        assert!(c.poll_transmit().is_none());
        for _ in 0..4 {
            c.queue_frame(&WireFrame::L16Wide([100; 320]));
        }
        c.queue_frame(&WireFrame::L16Wide(f));
        let msgs: Vec<_> = std::iter::from_fn(|| c.poll_transmit()).collect();
        assert_eq!(msgs.len(), 6);
        assert!(
            msgs[..5]
                .iter()
                .all(|m| matches!(m, WsMessage::Binary(b) if b.len() == 640))
        );
        assert_eq!(
            msgs[4],
            WsMessage::Binary(Bytes::from(le)),
            "bytes kept exactly"
        );
        assert_eq!(
            msgs[5],
            WsMessage::Text(r#"{"action":"notify","payload":{"mark":5}}"#.into())
        );
        c.handle_message(&WsMessage::Text(
            r#"{"event":"websocket:notify","payload":{"mark":5}}"#.into(),
        ))
        .unwrap();
        assert_eq!(c.frames_played(), 5);
    }

    #[test]
    fn vonage_metadata_without_uuid_is_refused_and_close_stops() {
        let mut c = CarrierCore::new(Carrier::Vonage);
        assert!(
            c.handle_message(&WsMessage::Text(
                r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#.into()
            ))
            .is_err()
        );
        let mut c = vonage_started();
        c.poll_event();
        c.handle_message(&WsMessage::Close(Some(1000))).unwrap();
        assert_eq!(c.poll_event(), Some(CarrierEvent::Stopped));
    }

    #[test]
    fn caller_frames_are_bounded() {
        let mut c = vonage_started();
        for _ in 0..(MAX_CALLER_FRAMES + 7) {
            c.handle_message(&WsMessage::Binary(Bytes::from(vec![0u8; 640])))
                .unwrap();
        }
        assert_eq!(c.dropped().0, 7);
        assert_eq!(
            std::iter::from_fn(|| c.pop_caller_frame()).count(),
            MAX_CALLER_FRAMES
        );
    }

    proptest! {
        #[test]
        fn any_message_sequence_keeps_bounds_and_never_panics(
            msgs in proptest::collection::vec(
                prop_oneof![
                    ".{0,80}".prop_map(WsMessage::Text),
                    proptest::collection::vec(any::<u8>(), 0..700).prop_map(|v| WsMessage::Binary(Bytes::from(v))),
                    Just(WsMessage::Text(r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000","uuid":"u"}"#.into())),
                    Just(WsMessage::Text(r#"{"event":"start","start":{"streamSid":"MZ1","callSid":"CA1","accountSid":"AC1"}}"#.into())),
                    (0u64..50).prop_map(|n| WsMessage::Text(format!(r#"{{"event":"mark","mark":{{"name":"m{n}"}}}}"#))),
                ],
                0..60),
            vonage in any::<bool>(),
        ) {
            let mut c = CarrierCore::new(if vonage { Carrier::Vonage } else { Carrier::Twilio });
            let mut started = 0;
            for m in &msgs {
                let _ = c.handle_message(m);
                if let Some(fmt) = c.format() {
                    c.queue_frame(&WireFrame::silence(fmt));
                }
                while let Some(e) = c.poll_event() {
                    if matches!(e, CarrierEvent::Started(_)) { started += 1; }
                }
                prop_assert!(c.frames_played() <= c.frames_sent());
            }
            prop_assert!(started <= 1, "one start per stream");
            prop_assert!(c.transmit.len() <= MAX_TRANSMIT);
            prop_assert!(c.caller.len() <= MAX_CALLER_FRAMES);
        }
    }
}
