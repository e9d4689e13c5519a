//! A scripted fake carrier for the session tests: it plays Twilio Media
//! Streams or the Vonage WebSocket protocol on the far side of a
//! [`CarrierSocket`], as the carrier would: it starts the stream, sends
//! the caller's audio paced at 20 ms, answers our playout markers as the
//! audio is "played" (at once: we pace in real time), counts `clear`s and
//! decodes what it hears. Like a real carrier it streams the caller's
//! audio without pause: silence when the caller says nothing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use callbridge_carrier::{Carrier, CarrierSocket, SocketEnds, WsMessage};
use callbridge_llm_mock::clips;
use callbridge_rtp::g711;
use callbridge_rtp::resample::StreamResampler;

pub struct FakeCarrier {
    pub kind: Carrier,
    ends: SocketEnds,
    /// Answer markers (Twilio `mark`, Vonage `notify`) as they arrive.
    pub echo_marks: bool,
    /// Stop answering markers after this many (the rest "not played yet").
    pub echo_limit: Option<usize>,
    pub marks: Vec<u64>,
    pub clears: usize,
    pub media_frames: usize,
    pub closed: Option<Option<u16>>,
    /// Send silence on ticks when the caller has nothing to say.
    pub stream_silence: bool,
    down: Option<StreamResampler>,
    tick: tokio::time::Interval,
    talk: std::collections::VecDeque<WsMessage>,
}

pub fn twilio_start(call_sid: &str) -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","streamSid":"MZ{call_sid}","start":{{"streamSid":"MZ{call_sid}","accountSid":"ACtest","callSid":"{call_sid}","tracks":["inbound"],"customParameters":{{"from":"+15550001111"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
    )
}

impl FakeCarrier {
    /// A Twilio stream for `call_sid`: `connected` and `start` are sent.
    pub async fn twilio(call_sid: &str) -> (FakeCarrier, CarrierSocket) {
        let (socket, ends) = CarrierSocket::pair();
        ends.to_call
            .send(WsMessage::Text(
                r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into(),
            ))
            .await
            .unwrap();
        ends.to_call
            .send(WsMessage::Text(twilio_start(call_sid)))
            .await
            .unwrap();
        (FakeCarrier::new(Carrier::Twilio, ends), socket)
    }

    /// A Vonage stream at 16 kHz for `uuid`: the metadata frame is sent.
    pub async fn vonage(uuid: &str) -> (FakeCarrier, CarrierSocket) {
        let (socket, ends) = CarrierSocket::pair();
        ends.to_call
            .send(WsMessage::Text(format!(
                r#"{{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"{uuid}","from":"447700900001"}}"#
            )))
            .await
            .unwrap();
        let mut f = FakeCarrier::new(Carrier::Vonage, ends);
        f.down = Some(StreamResampler::new(16_000, 8000).unwrap());
        (f, socket)
    }

    fn new(kind: Carrier, ends: SocketEnds) -> FakeCarrier {
        FakeCarrier {
            kind,
            ends,
            echo_marks: true,
            echo_limit: None,
            marks: Vec::new(),
            clears: 0,
            media_frames: 0,
            closed: None,
            stream_silence: true,
            down: None,
            tick: tokio::time::interval(Duration::from_millis(20)),
            talk: std::collections::VecDeque::new(),
        }
    }

    fn caller_frame(&self, f: &[i16; 160], up: &mut StreamResampler) -> WsMessage {
        match self.kind {
            Carrier::Vonage => {
                let mut wide = [0i16; 320];
                up.process(f, &mut wide).unwrap();
                let mut b = vec![0u8; 640];
                for (o, s) in b.chunks_exact_mut(2).zip(wide) {
                    o.copy_from_slice(&s.to_le_bytes());
                }
                WsMessage::Binary(Bytes::from(b))
            }
            _ => {
                let mut b = [0u8; 160];
                g711::ulaw_encode(f, &mut b);
                WsMessage::Text(format!(
                    r#"{{"event":"media","streamSid":"MZ","media":{{"track":"inbound","payload":"{}"}}}}"#,
                    B64.encode(b)
                ))
            }
        }
    }

    async fn send(&self, m: WsMessage) {
        let _ = self.ends.to_call.send(m).await;
    }

    /// Handles one message from the agent; returns an 8 kHz frame for
    /// media, `None` for anything else.
    async fn handle(&mut self, m: WsMessage) -> Option<Vec<i16>> {
        match m {
            WsMessage::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).expect("agent sends JSON");
                if let Some(ev) = v.get("event").and_then(|e| e.as_str()) {
                    match ev {
                        "media" => {
                            let p = v["media"]["payload"].as_str().unwrap();
                            let bytes = B64.decode(p).unwrap();
                            assert_eq!(bytes.len(), 160, "one 20 ms frame per message");
                            let mut pcm = vec![0i16; 160];
                            g711::ulaw_decode(&bytes, &mut pcm);
                            self.media_frames += 1;
                            return Some(pcm);
                        }
                        "mark" => {
                            let name = v["mark"]["name"].as_str().unwrap().to_owned();
                            self.marks.push(name[1..].parse().unwrap());
                            if self.echo_marks
                                && self.echo_limit.is_none_or(|l| self.marks.len() <= l)
                            {
                                let sid = v["streamSid"].as_str().unwrap();
                                self.send(WsMessage::Text(format!(
                                    r#"{{"event":"mark","streamSid":"{sid}","mark":{{"name":"{name}"}}}}"#
                                )))
                                .await;
                            }
                        }
                        "clear" => self.clears += 1,
                        other => panic!("unexpected Twilio message {other}"),
                    }
                } else {
                    match v["action"].as_str() {
                        Some("notify") => {
                            let n = v["payload"]["mark"].as_u64().unwrap();
                            self.marks.push(n);
                            if self.echo_marks {
                                self.send(WsMessage::Text(format!(
                                    r#"{{"event":"websocket:notify","payload":{{"mark":{n}}}}}"#
                                )))
                                .await;
                            }
                        }
                        Some("clear") => {
                            self.clears += 1;
                            self.send(WsMessage::Text(r#"{"event":"websocket:cleared"}"#.into()))
                                .await;
                        }
                        other => panic!("unexpected Vonage message {other:?}"),
                    }
                }
                None
            }
            WsMessage::Binary(b) => {
                assert_eq!(b.len(), 640, "one 20 ms L16 16 kHz frame per message");
                let mut wide = [0i16; 320];
                for (o, c) in wide.iter_mut().zip(b.chunks_exact(2)) {
                    *o = i16::from_le_bytes([c[0], c[1]]);
                }
                let mut pcm = vec![0i16; 160];
                self.down
                    .as_mut()
                    .unwrap()
                    .process(&wide, &mut pcm)
                    .unwrap();
                self.media_frames += 1;
                Some(pcm)
            }
            WsMessage::Close(c) => {
                self.closed = Some(c);
                None
            }
        }
    }

    /// The next message within `within`, handled; `Err` when the agent
    /// closed the socket or nothing came.
    async fn step(&mut self, within: Duration) -> Result<Option<Vec<i16>>, ()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.closed.is_some() {
                return Err(());
            }
            tokio::select! {
                _ = self.tick.tick() => {
                    let m = match self.talk.pop_front() {
                        Some(m) => m,
                        None if self.stream_silence => {
                            let mut up = StreamResampler::new(8000, 16_000).unwrap();
                            self.caller_frame(&[0i16; 160], &mut up)
                        }
                        None => continue,
                    };
                    self.send(m).await;
                }
                m = tokio::time::timeout_at(deadline, self.ends.from_call.recv()) => {
                    return match m {
                        Ok(Some(m)) => Ok(self.handle(m).await),
                        Ok(None) => {
                            self.closed.get_or_insert(None);
                            Err(())
                        }
                        Err(_) => Err(()),
                    };
                }
            }
        }
    }

    /// Waits for a frame louder than `level`; returns the frames received.
    pub async fn hear(&mut self, level: f64, within: Duration) -> Option<u32> {
        let deadline = tokio::time::Instant::now() + within;
        let mut n = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.step(left).await {
                Ok(Some(pcm)) => {
                    n += 1;
                    if rms(&pcm) > level {
                        return Some(n);
                    }
                }
                Ok(None) => {}
                Err(()) => return None,
            }
        }
    }

    /// Waits until no audible frame arrives for `quiet` (the agent sends
    /// nothing while it has nothing to play).
    pub async fn until_quiet(&mut self, quiet: Duration, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut last_loud = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline {
            match self.step(Duration::from_millis(50)).await {
                Ok(Some(pcm)) if rms(&pcm) > 50.0 => last_loud = tokio::time::Instant::now(),
                Ok(_) => {}
                Err(()) if self.closed.is_some() => return false,
                Err(()) => {}
            }
            if last_loud.elapsed() >= quiet {
                return true;
            }
        }
        false
    }

    /// Plays the reply clip as the caller's speech, paced at 20 ms, while
    /// handling what the agent sends.
    pub async fn speak(&mut self) {
        let pcm = clips::reply().samples_at(8000);
        let mut up = StreamResampler::new(8000, 16_000).unwrap();
        for chunk in pcm.chunks(160) {
            let mut f = [0i16; 160];
            f[..chunk.len()].copy_from_slice(chunk);
            let m = self.caller_frame(&f, &mut up);
            self.talk.push_back(m);
        }
        while !self.talk.is_empty() && self.closed.is_none() {
            let _ = self.step(Duration::from_millis(20)).await;
        }
    }

    /// Presses a key.
    pub async fn dtmf(&self, digit: char) {
        let m = match self.kind {
            Carrier::Vonage => {
                format!(r#"{{"event":"websocket:dtmf","digit":"{digit}","duration":200}}"#)
            }
            _ => format!(
                r#"{{"event":"dtmf","streamSid":"MZ","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#
            ),
        };
        self.send(WsMessage::Text(m)).await;
    }

    /// The caller hangs up: Twilio sends `stop` and closes; Vonage closes.
    pub async fn hang_up(self) {
        if self.kind == Carrier::Twilio {
            self.send(WsMessage::Text(
                r#"{"event":"stop","streamSid":"MZ","stop":{"accountSid":"ACtest","callSid":"CA"}}"#
                    .into(),
            ))
            .await;
        }
        self.send(WsMessage::Close(Some(1000))).await;
    }

    /// Waits for the agent to close the socket; returns the close code.
    pub async fn closed_by_agent(&mut self, within: Duration) -> Option<Option<u16>> {
        let deadline = tokio::time::Instant::now() + within;
        while self.closed.is_none() && tokio::time::Instant::now() < deadline {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let _ = self.step(left).await;
        }
        self.closed
    }
}

pub use callbridge_audio::level::rms;
