//! A mock OpenAI Realtime (GA) server (protocols.md §2) for tests and the demo.
//!
//! Owns: [`MockOpenAi`], its per-connection [`OpenAiScript`] and the
//! [`OpenAiLog`] of what clients asked for (cancels, truncations, function
//! outputs). It speaks the real event stream in text frames:
//! `session.created`, `session.updated`, the `input_audio_buffer.*` VAD
//! events, `response.created` ... `response.output_audio.delta` ...
//! `response.done`, transcripts both ways, function calls,
//! `rate_limits.updated` and `error`. Every client event is validated
//! strictly ([`super::openai_validate`]); a violation is recorded and
//! answered with an `error` event (the real server's behaviour: most
//! errors are recoverable).
//!
//! Audio: input is decoded from the session's input format (µ-law, A-law or
//! PCM 24 kHz) and run through the energy VAD; replies are served in the
//! session's output format (the committed 24 kHz clips, decimated to 8 kHz
//! and G.711-encoded when asked).
//!
//! Timing: a reply's audio is sent at once (faster than real time, like the
//! real server), then the response stays in progress while the reply
//! "plays" (clip duration / `playback_speed`); caller speech in that time
//! is a barge-in (`speech_started`, then `response.done` with status
//! `cancelled` when the session's VAD has `interrupt_response`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::clips::{self, Clip};
use super::openai_validate::{ClientEvent, SessionInfo, parse_client_event};
use super::server::{
    ConnectionHandler, Handshake, Incoming, MockConnection, MockServer, MockStats, ScriptBook,
};
use super::vad::{EnergyVad, VadEvent};
use crate::audio::{AudioFormat, alaw_to_linear, linear_to_ulaw, ulaw_to_linear};
use crate::provider::BoxFuture;

/// How the mock answers a new connection's session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionReply {
    /// `session.created` at once, `session.updated` for each update.
    #[default]
    Ready,
    /// `session.created` after this delay.
    Delay(Duration),
    /// Never send `session.created` (the client must time out).
    Never,
    /// Send `session.created` but never answer `session.update`.
    NeverUpdated,
    /// Answer `session.update` with an `error` event instead of `session.updated`.
    RejectUpdate,
    /// Close the connection with this code and reason instead.
    Close {
        /// Close code.
        code: u16,
        /// Reason text.
        reason: String,
    },
}

/// How a connection ends in the middle of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MidResponseClose {
    /// Drop the TCP connection (no close frame).
    Abort,
    /// Send a close frame.
    Close {
        /// Close code (1011, 1001...).
        code: u16,
        /// Reason text.
        reason: String,
    },
}

/// What one connection does.
#[derive(Debug, Clone)]
pub struct OpenAiScript {
    /// Upgrade behaviour.
    pub handshake: Handshake,
    /// Session setup behaviour.
    pub session: SessionReply,
    /// If set, the `Authorization` header must be `Bearer <this>`.
    pub expect_api_key: Option<String>,
    /// Send malformed frames (bad JSON, non-UTF-8 binary, an unknown event
    /// type, an audio delta without `delta`) right after `session.updated`.
    pub malformed_after_setup: bool,
    /// Call `end_call` in the reply to this caller turn (1-based).
    pub end_call_after_turns: Option<u32>,
    /// Call function `.1` with arguments `.2` in the reply to caller turn `.0`.
    pub tool_call_at_turn: Option<(u32, String, Value)>,
    /// End the connection this way in the middle of the reply to this turn.
    pub close_mid_response: Option<(u32, MidResponseClose)>,
    /// Send `rate_limits.updated` when a response starts.
    pub rate_limits: bool,
    /// Audio per delta, in milliseconds.
    pub chunk_ms: u32,
    /// How much faster than real time a reply "plays" before `response.done`.
    pub playback_speed: f64,
    /// VAD threshold (RMS in sample units).
    pub vad_threshold: u16,
    /// VAD end-of-turn silence.
    pub vad_silence_ms: u32,
}

impl Default for OpenAiScript {
    fn default() -> Self {
        OpenAiScript {
            handshake: Handshake::Accept,
            session: SessionReply::Ready,
            expect_api_key: None,
            malformed_after_setup: false,
            end_call_after_turns: None,
            tool_call_at_turn: None,
            close_mid_response: None,
            rate_limits: true,
            chunk_ms: 100,
            playback_speed: 1.0,
            vad_threshold: 500,
            vad_silence_ms: 400,
        }
    }
}

/// A truncation the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The assistant item.
    pub item_id: String,
    /// Milliseconds kept.
    pub audio_end_ms: u64,
    /// Milliseconds of audio the mock had sent for the item.
    pub item_audio_ms: u64,
}

/// What clients asked of the mock, over all connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenAiLog {
    /// Every accepted `session.update`.
    pub session_updates: Vec<SessionInfo>,
    /// `response.create` events.
    pub response_creates: u64,
    /// `response.cancel` events (response id if given).
    pub cancels: Vec<Option<String>>,
    /// `conversation.item.truncate` events.
    pub truncations: Vec<Truncation>,
    /// `function_call_output` items (call id, output).
    pub function_outputs: Vec<(String, String)>,
    /// User text messages (greeting prompts, text, DTMF).
    pub user_messages: Vec<String>,
}

/// A running mock OpenAI Realtime server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use callbridge_llm_bridge::mock::openai::{MockOpenAi, OpenAiScript};
/// use callbridge_llm_bridge::{AudioFormat, CallMetadata, OpenAiRealtime, RealtimeModel, SessionConfig};
/// let mock = MockOpenAi::start(OpenAiScript::default()).await.unwrap();
/// let mut config = SessionConfig::default();
/// config.endpoint = Some(mock.url());
/// config.model = "gpt-realtime".into();
/// config.input_format = AudioFormat::Pcmu;
/// config.output_format = AudioFormat::Pcmu;
/// let session = OpenAiRealtime.open(config, CallMetadata::default()).await.unwrap();
/// assert!(session.close().await.clean);
/// assert_eq!(mock.stats().setups, 1);
/// mock.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct MockOpenAi {
    server: MockServer,
    log: Arc<Mutex<OpenAiLog>>,
}

/// The path the mock is served under (any path is accepted).
pub const MOCK_PATH: &str = "v1/realtime";

impl MockOpenAi {
    /// Starts a mock where every connection follows `script`.
    pub async fn start(script: OpenAiScript) -> std::io::Result<MockOpenAi> {
        Self::start_with(ScriptBook::all(script)).await
    }

    /// Starts a mock with per-connection scripts.
    pub async fn start_with(book: ScriptBook<OpenAiScript>) -> std::io::Result<MockOpenAi> {
        let log = Arc::new(Mutex::new(OpenAiLog::default()));
        let handler = Arc::new(OpenAiHandler {
            book,
            log: log.clone(),
        });
        Ok(MockOpenAi {
            server: MockServer::start(handler).await?,
            log,
        })
    }

    /// The endpoint URL to put in [`crate::SessionConfig::endpoint`].
    pub fn url(&self) -> String {
        self.server.url(MOCK_PATH)
    }

    /// The shared counters now (`setups` counts `session.update` events).
    pub fn stats(&self) -> MockStats {
        self.server.stats()
    }

    /// What clients asked for so far.
    pub fn log(&self) -> OpenAiLog {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The underlying server (for `wait_for`).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Stops the server and waits for its tasks.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

#[derive(Debug)]
struct OpenAiHandler {
    book: ScriptBook<OpenAiScript>,
    log: Arc<Mutex<OpenAiLog>>,
}

impl ConnectionHandler for OpenAiHandler {
    fn handshake(&self, index: usize) -> Handshake {
        self.book.for_connection(index).handshake
    }

    fn run(self: Arc<Self>, conn: MockConnection) -> BoxFuture<'static, ()> {
        Box::pin(run_connection(self, conn))
    }
}

/// Encodes one PCM sample as G.711 A-law (Sun/CCITT reference algorithm).
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&e| v <= e).unwrap_or(8) as i32;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mant = if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (((seg << 4) | mant) ^ mask) as u8
}

/// A 24 kHz s16le clip in `format` (decimated ×3 with a 3-tap average for
/// the 8 kHz G.711 formats).
pub fn clip_in_format(clip: &Clip, format: AudioFormat) -> Bytes {
    let samples = clip
        .pcm
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]));
    match format {
        AudioFormat::Pcm16 { .. } => clip.pcm.clone(),
        AudioFormat::Pcmu | AudioFormat::Pcma => {
            let all: Vec<i16> = samples.collect();
            let enc = if format == AudioFormat::Pcmu {
                linear_to_ulaw
            } else {
                linear_to_alaw
            };
            all.chunks(3)
                .map(|c| {
                    let sum: i32 = c.iter().map(|&s| i32::from(s)).sum();
                    enc((sum / c.len().max(1) as i32) as i16)
                })
                .collect::<Vec<u8>>()
                .into()
        }
    }
}

fn cached(which: usize, clip: &'static Clip, format: AudioFormat) -> Bytes {
    static CACHE: OnceLock<Mutex<HashMap<(usize, AudioFormat), Bytes>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(mut c) = cache.lock() {
        return c
            .entry((which, format))
            .or_insert_with(|| clip_in_format(clip, format))
            .clone();
    }
    clip_in_format(clip, format)
}

struct Session {
    input: AudioFormat,
    output: AudioFormat,
    /// `None`: manual turns; `Some(interrupt_response)`: server VAD.
    vad: Option<bool>,
    transcription: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            input: AudioFormat::PCM_24K,
            output: AudioFormat::PCM_24K,
            vad: Some(true),
            transcription: false,
        }
    }
}

impl Session {
    fn apply(&mut self, info: &SessionInfo) {
        if let Some(f) = info.input_format {
            self.input = f;
        }
        if let Some(f) = info.output_format {
            self.output = f;
        }
        if let Some(v) = info.turn_detection {
            self.vad = v;
        }
        if let Some(t) = info.transcription {
            self.transcription = t;
        }
    }
}

struct Playing {
    ends_at: Instant,
    response_id: String,
}

enum Flow {
    Continue,
    Stop,
    Abort,
}

struct Conversation {
    h: Arc<OpenAiHandler>,
    script: OpenAiScript,
    session: Session,
    vad: EnergyVad,
    vad_events: Vec<VadEvent>,
    pcm: Vec<i16>,
    turns: u32,
    replies: u32,
    next_id: u64,
    playing: Option<Playing>,
    outstanding: HashSet<String>,
    /// Audio milliseconds sent per assistant item (bounded).
    items: HashMap<String, u64>,
}

fn log(h: &OpenAiHandler, f: impl FnOnce(&mut OpenAiLog)) {
    if let Ok(mut l) = h.log.lock() {
        f(&mut l);
    }
}

async fn run_connection(h: Arc<OpenAiHandler>, mut conn: MockConnection) {
    let script = h.book.for_connection(conn.index());
    let mut c = Conversation::new(h, script);
    if conn.header("openai-beta").is_some() {
        conn.violation("OpenAI-Beta header sent to the GA interface");
        conn.close(4000, "beta_api_shape_disabled").await;
        return;
    }
    if let Some(key) = &c.script.expect_api_key {
        let want = format!("Bearer {key}");
        if conn.header("authorization") != Some(want.as_str()) {
            conn.violation("missing or wrong Authorization header");
            let _ = c
                .send(
                    &mut conn,
                    json!({"type": "error", "error": {"type": "invalid_request_error",
                    "code": "invalid_api_key", "message": "Incorrect API key provided."}}),
                )
                .await;
            conn.close(1008, "invalid_api_key").await;
            return;
        }
    }
    if !conn.header(":path").is_some_and(|p| p.contains("model=")) {
        conn.violation("connection URL without a model query parameter");
    }
    match c.script.session.clone() {
        SessionReply::Ready | SessionReply::RejectUpdate | SessionReply::NeverUpdated => {}
        SessionReply::Delay(d) => tokio::time::sleep(d).await,
        SessionReply::Never => loop {
            match conn.recv().await {
                Incoming::Json(_) | Incoming::NotJson(_) => {
                    conn.violation("event sent before session.created");
                }
                Incoming::Closed { .. } | Incoming::Gone => return,
            }
        },
        SessionReply::Close { code, reason } => {
            conn.close(code, &reason).await;
            return;
        }
    }
    let created = json!({"type": "session.created", "session": {
        "type": "realtime", "object": "realtime.session", "id": format!("sess_mock_{}", conn.index()),
        "model": "gpt-realtime", "output_modalities": ["audio"], "instructions": "",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {
                      "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                      "silence_duration_ms": 200, "create_response": true, "interrupt_response": true}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}}}});
    if !c.send(&mut conn, created).await {
        return;
    }
    c.run(conn).await;
}

impl Conversation {
    fn new(h: Arc<OpenAiHandler>, script: OpenAiScript) -> Self {
        let vad = EnergyVad::new(24000, script.vad_threshold, script.vad_silence_ms);
        Conversation {
            h,
            script,
            session: Session::default(),
            vad,
            vad_events: Vec::new(),
            pcm: Vec::with_capacity(4096),
            turns: 0,
            replies: 0,
            next_id: 0,
            playing: None,
            outstanding: HashSet::new(),
            items: HashMap::new(),
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_mock{}", self.next_id)
    }

    async fn send(&mut self, conn: &mut MockConnection, mut v: Value) -> bool {
        let event_id = self.id("event");
        if let Some(m) = v.as_object_mut() {
            m.insert("event_id".into(), json!(event_id));
        }
        conn.send_json(&v, false).await.is_ok()
    }

    async fn error(&mut self, conn: &mut MockConnection, code: &str, message: &str) -> bool {
        self.send(
            conn,
            json!({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                   "message": message, "param": null, "event_id": null}}),
        )
        .await
    }

    async fn run(&mut self, mut conn: MockConnection) {
        let mut updated = false;
        loop {
            let reply_end = self.playing.as_ref().map(|p| p.ends_at);
            let flow = tokio::select! {
                inc = conn.recv() => self.on_incoming(&mut conn, inc, &mut updated).await,
                () = sleep_opt(reply_end) => self.finish_reply(&mut conn).await,
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::Abort => {
                    conn.abort();
                    return;
                }
            }
        }
    }

    async fn on_incoming(
        &mut self,
        conn: &mut MockConnection,
        inc: Incoming,
        updated: &mut bool,
    ) -> Flow {
        let v = match inc {
            Incoming::Json(v) => v,
            Incoming::NotJson(e) => {
                conn.violation(format!("frame is not JSON: {e}"));
                self.error(conn, "invalid_json", "The event is not valid JSON.")
                    .await;
                return Flow::Continue;
            }
            Incoming::Closed { .. } | Incoming::Gone => return Flow::Stop,
        };
        let ev = match parse_client_event(&v, self.session.input) {
            Ok(ev) => ev,
            Err(e) => {
                conn.violation(e.clone());
                self.error(conn, "invalid_value", &e).await;
                return Flow::Continue;
            }
        };
        match ev {
            ClientEvent::SessionUpdate(info) => {
                if self.script.session == SessionReply::NeverUpdated {
                    return Flow::Continue;
                }
                if self.script.session == SessionReply::RejectUpdate {
                    self.error(conn, "invalid_value", "Invalid session configuration.")
                        .await;
                    return Flow::Continue;
                }
                conn.count_setup(false);
                self.session.apply(&info);
                let rate = self.session.input.rate().hz();
                self.vad =
                    EnergyVad::new(rate, self.script.vad_threshold, self.script.vad_silence_ms);
                log(&self.h, |l| {
                    if l.session_updates.len() < 10_000 {
                        l.session_updates.push(info);
                    }
                });
                if !self
                    .send(
                        conn,
                        json!({"type": "session.updated", "session": {"type": "realtime"}}),
                    )
                    .await
                {
                    return Flow::Stop;
                }
                if !*updated && self.script.malformed_after_setup {
                    self.send_malformed(conn).await;
                }
                *updated = true;
                Flow::Continue
            }
            ClientEvent::Append(bytes) => self.on_audio(conn, &bytes).await,
            ClientEvent::Commit => {
                if self.session.vad.is_some() {
                    conn.violation("input_audio_buffer.commit with server VAD on");
                }
                self.caller_turn(conn, false).await
            }
            ClientEvent::Clear => {
                self.send(conn, json!({"type": "input_audio_buffer.cleared"}))
                    .await;
                Flow::Continue
            }
            ClientEvent::Message { role, text } => {
                log(&self.h, |l| {
                    if l.user_messages.len() < 10_000 {
                        l.user_messages.push(text);
                    }
                });
                let id = self.id("item");
                self.send(
                    conn,
                    json!({"type": "conversation.item.added", "item": {
                    "id": id, "type": "message", "role": role, "content": []}}),
                )
                .await;
                Flow::Continue
            }
            ClientEvent::FunctionOutput { call_id, output } => {
                if !self.outstanding.remove(&call_id) {
                    conn.violation(format!("function_call_output for unknown call {call_id}"));
                }
                log(&self.h, |l| l.function_outputs.push((call_id, output)));
                Flow::Continue
            }
            ClientEvent::Truncate {
                item_id,
                audio_end_ms,
            } => {
                let Some(&item_audio_ms) = self.items.get(&item_id) else {
                    conn.violation(format!("truncate of unknown item {item_id}"));
                    self.error(conn, "item_not_found", "No such item.").await;
                    return Flow::Continue;
                };
                if audio_end_ms > item_audio_ms {
                    conn.violation(format!(
                        "truncate at {audio_end_ms} ms beyond the item's {item_audio_ms} ms"
                    ));
                    self.error(
                        conn,
                        "invalid_value",
                        "audio_end_ms is longer than the audio.",
                    )
                    .await;
                    return Flow::Continue;
                }
                log(&self.h, |l| {
                    l.truncations.push(Truncation {
                        item_id: item_id.clone(),
                        audio_end_ms,
                        item_audio_ms,
                    })
                });
                self.send(
                    conn,
                    json!({"type": "conversation.item.truncated", "item_id": item_id,
                    "content_index": 0, "audio_end_ms": audio_end_ms}),
                )
                .await;
                Flow::Continue
            }
            ClientEvent::ItemOther => Flow::Continue,
            ClientEvent::ResponseCreate => {
                log(&self.h, |l| l.response_creates += 1);
                if self.playing.is_some() {
                    conn.violation("response.create while a response is in progress");
                    self.error(
                        conn,
                        "conversation_already_has_active_response",
                        "Conversation already has an active response in progress.",
                    )
                    .await;
                    return Flow::Continue;
                }
                let clip = if self.replies == 0 && self.turns == 0 {
                    clips::greeting()
                } else {
                    clips::reply()
                };
                self.start_reply(conn, clip, None).await
            }
            ClientEvent::ResponseCancel(id) => {
                log(&self.h, |l| l.cancels.push(id.clone()));
                let active = self.playing.as_ref().map(|p| p.response_id.clone());
                match active {
                    Some(a) if id.as_deref().is_none_or(|i| i == a) => {
                        self.cancel(conn, "client_cancelled").await
                    }
                    _ => {
                        self.error(
                            conn,
                            "response_cancel_not_active",
                            "Cancellation failed: no active response found",
                        )
                        .await;
                        Flow::Continue
                    }
                }
            }
        }
    }

    async fn send_malformed(&mut self, conn: &mut MockConnection) {
        let _ = conn
            .send_raw(Message::Text(
                "{\"type\": \"response.output_audio.delta\", ".into(),
            ))
            .await;
        let _ = conn
            .send_raw(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
            .await;
        let _ = conn
            .send_raw(Message::Text("{\"type\": \"no.such.event\"}".into()))
            .await;
        let _ = conn
            .send_raw(Message::Text(
                "{\"type\": \"response.output_audio.delta\", \"response_id\": \"r\", \"item_id\": \"i\"}"
                    .into(),
            ))
            .await;
    }

    async fn on_audio(&mut self, conn: &mut MockConnection, bytes: &[u8]) -> Flow {
        conn.count_audio(bytes.len());
        if self.session.vad.is_none() {
            return Flow::Continue;
        }
        self.pcm.clear();
        match self.session.input {
            AudioFormat::Pcmu => self.pcm.extend(bytes.iter().map(|&b| ulaw_to_linear(b))),
            AudioFormat::Pcma => self.pcm.extend(bytes.iter().map(|&b| alaw_to_linear(b))),
            AudioFormat::Pcm16 { .. } => self.pcm.extend(
                bytes
                    .chunks_exact(2)
                    .map(|p| i16::from_le_bytes([p[0], p[1]])),
            ),
        }
        let mut events = std::mem::take(&mut self.vad_events);
        events.clear();
        self.vad.push(self.pcm.iter().copied(), &mut events);
        let rate = u64::from(self.session.input.rate().hz());
        let mut flow = Flow::Continue;
        for ev in events.drain(..) {
            flow = match ev {
                VadEvent::SpeechStart(at) => self.speech_started(conn, at * 1000 / rate).await,
                VadEvent::SpeechEnd(at) => {
                    let end = at * 1000 / rate;
                    self.send(
                        conn,
                        json!({"type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": end, "item_id": format!("item_user_{}", self.turns + 1)}),
                    )
                    .await;
                    self.caller_turn(conn, true).await
                }
            };
            if !matches!(flow, Flow::Continue) {
                break;
            }
        }
        self.vad_events = events;
        flow
    }

    async fn speech_started(&mut self, conn: &mut MockConnection, at_ms: u64) -> Flow {
        let item = format!("item_user_{}", self.turns + 1);
        if !self
            .send(
                conn,
                json!({"type": "input_audio_buffer.speech_started",
                "audio_start_ms": at_ms, "item_id": item}),
            )
            .await
        {
            return Flow::Stop;
        }
        if self.playing.is_some() && self.session.vad == Some(true) {
            return self.cancel(conn, "turn_detected").await;
        }
        Flow::Continue
    }

    async fn cancel(&mut self, conn: &mut MockConnection, reason: &str) -> Flow {
        let Some(p) = self.playing.take() else {
            return Flow::Continue;
        };
        let ok = self
            .send(
                conn,
                json!({"type": "response.done", "response": {
                "id": p.response_id, "object": "realtime.response", "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": reason}, "output": [],
                "usage": {"total_tokens": 20, "input_tokens": 15, "output_tokens": 5}}}),
            )
            .await;
        if ok { Flow::Continue } else { Flow::Stop }
    }

    async fn caller_turn(&mut self, conn: &mut MockConnection, respond: bool) -> Flow {
        self.turns += 1;
        conn.count_turn();
        let item = format!("item_user_{}", self.turns);
        let mut ok = self
            .send(conn, json!({"type": "input_audio_buffer.committed", "item_id": item,
                "previous_item_id": null}))
            .await
            && self
                .send(conn, json!({"type": "conversation.item.added", "item": {
                    "id": item, "type": "message", "role": "user", "content": [{"type": "input_audio"}]}}))
                .await;
        if ok && self.session.transcription {
            let text = format!("caller turn {}", self.turns);
            ok = self
                .send(
                    conn,
                    json!({"type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item, "content_index": 0, "delta": "caller "}),
                )
                .await
                && self
                    .send(
                        conn,
                        json!({"type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item, "content_index": 0, "transcript": text,
                        "usage": {"type": "duration", "seconds": 1}}),
                    )
                    .await;
        }
        if !ok {
            return Flow::Stop;
        }
        if !respond {
            return Flow::Continue;
        }
        if self.playing.is_some() {
            self.cancel(conn, "turn_detected").await;
        }
        let turn = self.turns;
        self.start_reply(conn, clips::reply(), Some(turn)).await
    }

    async fn function_call(
        &mut self,
        conn: &mut MockConnection,
        response_id: &str,
        name: &str,
        args: &Value,
    ) -> bool {
        let call_id = self.id("call");
        let item_id = self.id("item");
        let arguments = args.to_string();
        self.outstanding.insert(call_id.clone());
        self.send(conn, json!({"type": "response.output_item.added", "response_id": response_id,
            "output_index": 1, "item": {"id": item_id, "type": "function_call", "status": "in_progress",
            "call_id": call_id, "name": name, "arguments": ""}}))
            .await
            && self
                .send(conn, json!({"type": "response.function_call_arguments.delta",
                    "response_id": response_id, "item_id": item_id, "output_index": 1,
                    "call_id": call_id, "delta": arguments}))
                .await
            && self
                .send(conn, json!({"type": "response.function_call_arguments.done",
                    "response_id": response_id, "item_id": item_id, "output_index": 1,
                    "call_id": call_id, "name": name, "arguments": arguments}))
                .await
    }

    async fn start_reply(
        &mut self,
        conn: &mut MockConnection,
        clip: &'static Clip,
        turn: Option<u32>,
    ) -> Flow {
        self.replies += 1;
        let response_id = self.id("resp");
        let item_id = self.id("item");
        let format = self.session.output;
        let which = usize::from(std::ptr::eq(clip, clips::reply()));
        let audio = cached(which, clip, format);
        let mut ok = self
            .send(conn, json!({"type": "response.created", "response": {
                "id": response_id, "object": "realtime.response", "status": "in_progress", "output": []}}))
            .await;
        if ok && self.script.rate_limits {
            ok = self
                .send(conn, json!({"type": "rate_limits.updated", "rate_limits": [
                    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                    {"name": "tokens", "limit": 100000, "remaining": 99000, "reset_seconds": 0.6}]}))
                .await;
        }
        ok = ok
            && self
                .send(conn, json!({"type": "response.output_item.added", "response_id": response_id,
                    "output_index": 0, "item": {"id": item_id, "type": "message", "role": "assistant",
                    "status": "in_progress", "content": []}}))
                .await
            && self
                .send(conn, json!({"type": "response.content_part.added", "response_id": response_id,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": {"type": "audio", "transcript": ""}}))
                .await;
        if !ok {
            return Flow::Stop;
        }
        let close_mid = match &self.script.close_mid_response {
            Some((t, how)) if turn == Some(*t) => Some(how.clone()),
            _ => None,
        };
        let bytes_per_ms = format.rate().hz() as usize / 1000 * format.bytes_per_sample();
        let step = (bytes_per_ms * self.script.chunk_ms.max(10) as usize).max(2);
        let words: Vec<&str> = clip.transcript.split_inclusive(' ').collect();
        let chunks = audio.len().div_ceil(step).max(1);
        let mut sent_words = 0;
        for (i, chunk) in audio.chunks(step).enumerate() {
            ok = self
                .send(
                    conn,
                    json!({"type": "response.output_audio.delta", "response_id": response_id,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "delta": B64.encode(chunk)}),
                )
                .await;
            // Spread the transcript deltas over the audio.
            let due = (words.len() * (i + 1)).div_ceil(chunks);
            while ok && sent_words < due.min(words.len()) {
                ok = self
                    .send(
                        conn,
                        json!({"type": "response.output_audio_transcript.delta",
                        "response_id": response_id, "item_id": item_id, "output_index": 0,
                        "content_index": 0, "delta": words[sent_words]}),
                    )
                    .await;
                sent_words += 1;
            }
            if !ok {
                return Flow::Stop;
            }
            if i == 1 {
                match close_mid {
                    Some(MidResponseClose::Abort) => return Flow::Abort,
                    Some(MidResponseClose::Close { code, reason }) => {
                        conn.close(code, &reason).await;
                        return Flow::Stop;
                    }
                    None => {}
                }
            }
        }
        let audio_ms = (audio.len() / bytes_per_ms.max(1)) as u64;
        if self.items.len() < 10_000 {
            self.items.insert(item_id.clone(), audio_ms);
        }
        ok = self
            .send(conn, json!({"type": "response.output_audio.done", "response_id": response_id,
                "item_id": item_id, "output_index": 0, "content_index": 0}))
            .await
            && self
                .send(conn, json!({"type": "response.output_audio_transcript.done",
                    "response_id": response_id, "item_id": item_id, "output_index": 0,
                    "content_index": 0, "transcript": clip.transcript}))
                .await
            && self
                .send(conn, json!({"type": "response.content_part.done", "response_id": response_id,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": {"type": "audio", "transcript": clip.transcript}}))
                .await
            && self
                .send(conn, json!({"type": "response.output_item.done", "response_id": response_id,
                    "output_index": 0, "item": {"id": item_id, "type": "message", "role": "assistant",
                    "status": "completed", "content": []}}))
                .await;
        if ok && turn.is_some() && turn == self.script.end_call_after_turns {
            let args = json!({"reason": "the caller's request is handled"});
            ok = self
                .function_call(conn, &response_id, "end_call", &args)
                .await;
        }
        if let Some((t, name, args)) = self.script.tool_call_at_turn.clone() {
            if ok && turn == Some(t) {
                ok = self.function_call(conn, &response_id, &name, &args).await;
            }
        }
        if !ok {
            return Flow::Stop;
        }
        let speed = if self.script.playback_speed > 0.0 {
            self.script.playback_speed
        } else {
            1.0
        };
        self.playing = Some(Playing {
            ends_at: Instant::now() + clip.duration().div_f64(speed),
            response_id,
        });
        Flow::Continue
    }

    async fn finish_reply(&mut self, conn: &mut MockConnection) -> Flow {
        let Some(p) = self.playing.take() else {
            return Flow::Continue;
        };
        let ok = self
            .send(
                conn,
                json!({"type": "response.done", "response": {
                "id": p.response_id, "object": "realtime.response", "status": "completed",
                "status_details": null, "output": [],
                "usage": {"total_tokens": 150, "input_tokens": 100, "output_tokens": 50}}}),
            )
            .await;
        if ok { Flow::Continue } else { Flow::Stop }
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alaw_encoder_round_trips_with_the_decoder() {
        for s in [-32000i16, -1000, -8, 0, 8, 1000, 32000] {
            let back = alaw_to_linear(linear_to_alaw(s));
            assert!(
                (i32::from(back) - i32::from(s)).abs() <= 1024,
                "{s} -> {back}"
            );
        }
        assert_eq!(linear_to_alaw(0), 0xD5);
    }

    #[test]
    fn clips_convert_to_8k_g711_at_a_third_of_the_samples() {
        let clip = clips::reply();
        let mu = clip_in_format(clip, AudioFormat::Pcmu);
        assert_eq!(mu.len(), (clip.pcm.len() / 2).div_ceil(3));
        assert_eq!(clip_in_format(clip, AudioFormat::PCM_24K), clip.pcm);
    }
}
