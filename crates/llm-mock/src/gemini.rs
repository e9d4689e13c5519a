//! A mock Gemini Live server (protocols.md §1) for tests and the demo.
//!
//! Owns: [`MockGemini`] and its per-connection [`GeminiScript`]. It speaks
//! the real wire format (JSON in binary frames, base64 PCM 24 kHz out),
//! validates every client message strictly ([`super::gemini_validate`]; a
//! violation is recorded and the connection is closed with 1007 as the real
//! server does), answers each caller turn found by its energy VAD with a
//! speech clip and transcripts, and can be told to misbehave.
//!
//! Timing: reply audio is sent at once (faster than real time, like the real
//! server), then the reply "plays" for the clip's duration divided by
//! `playback_speed`; caller speech during that time interrupts it
//! (`interrupted`, then `turnComplete` and a resumable
//! `sessionResumptionUpdate`); otherwise `turnComplete`, `usageMetadata`
//! and a resumable `sessionResumptionUpdate` follow.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use callbridge_llm_bridge::BoxFuture;

use super::clips::{self, Clip};
use super::gemini_validate::{ClientMsg, SetupInfo, parse_client_message};
use super::server::{
    ConnectionHandler, Handshake, Incoming, MockConnection, MockServer, MockStats, ScriptBook,
};
use super::vad::{EnergyVad, VadEvent};

/// How the mock answers `setup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SetupReply {
    /// Send `setupComplete` at once.
    #[default]
    Complete,
    /// Send it after this delay.
    Delay(Duration),
    /// Never send it (the client must time out).
    Never,
    /// Close the connection with this code and reason instead.
    Close {
        /// Close code (1007, 1008, 1011...).
        code: u16,
        /// Reason text.
        reason: String,
    },
}

/// What one connection does.
#[derive(Debug, Clone)]
pub struct GeminiScript {
    /// Upgrade behaviour.
    pub handshake: Handshake,
    /// Answer to `setup`.
    pub setup: SetupReply,
    /// If set, the `x-goog-api-key` header must carry this value.
    pub expect_api_key: Option<String>,
    /// Send malformed frames (bad JSON, non-UTF-8 binary, unknown key)
    /// right after `setupComplete`.
    pub malformed_after_setup: bool,
    /// Call `end_call` with the reply to this caller turn (1-based).
    pub end_call_after_turns: Option<u32>,
    /// Call `transfer_call` with this target with the reply to this caller
    /// turn (1-based).
    pub transfer_after_turns: Option<(u32, String)>,
    /// Call the tool named here with these arguments with the reply to
    /// this caller turn (1-based; 0: with the greeting, before the caller
    /// says anything); the tool must have been declared in
    /// the setup (a violation otherwise), and its answer is kept in
    /// [`crate::server::MockStats::tool_responses`].
    pub tool_call_after_turns: Option<(u32, String, serde_json::Value)>,
    /// Send `goAway` once the reply to this caller turn has finished.
    pub go_away_after_turns: Option<u32>,
    /// Send `goAway` right after the reply audio to this caller turn, while
    /// the reply is still playing (the client must wait or switch at its
    /// deadline, not cut the reply).
    pub go_away_mid_reply_at_turn: Option<u32>,
    /// `goAway.timeLeft`; the mock closes the connection itself when it runs out.
    pub go_away_time_left: Duration,
    /// Drop the TCP connection (no close frame) in the middle of the reply
    /// to this caller turn.
    pub close_mid_response_at_turn: Option<u32>,
    /// Close the connection (with `close_code`, reason "Internal error
    /// occurred.") once the reply to this caller turn has finished.
    pub close_after_turn: Option<u32>,
    /// Close code for `close_after_turn` (the reason text is the real
    /// server's for that code: [`close_reason_text`]).
    pub close_code: u16,
    /// Drop the TCP connection (no close frame, 1006) once the reply to
    /// this caller turn has finished and its resumption handle was issued:
    /// the abnormal drop a client should resume from.
    pub abort_after_turn: Option<u32>,
    /// From this caller turn on (1-based), the model stalls: the turn is
    /// transcribed but never answered, and the connection stays open.
    pub stall_after_turns: Option<u32>,
    /// The reply to this caller turn never finishes playing (no
    /// `turnComplete` unless the caller interrupts it).
    pub endless_reply_at_turn: Option<u32>,
    /// Audio per `serverContent` message, in milliseconds.
    pub chunk_ms: u32,
    /// How much faster than real time a reply "plays" before `turnComplete`.
    pub playback_speed: f64,
    /// VAD threshold (RMS in sample units).
    pub vad_threshold: u16,
    /// VAD end-of-turn silence.
    pub vad_silence_ms: u32,
    /// `(n, k)`: once this connection has received `n` audio messages,
    /// report a resumable handle whose state leaves out the last `k` of
    /// them (`lastConsumedClientMessageIndex`, with `transparent`), then
    /// drop the TCP connection: a client doing transparent resumption
    /// replays those `k` first on the resumed connection.
    pub abort_mid_utterance: Option<(u32, u32)>,
    /// Keep the caller audio the "model" has taken into its session state
    /// across resumptions ([`MockGemini::model_audio`]) and check that a
    /// resumed connection starts with the audio its handle's state left
    /// out (a violation otherwise). Off by default: nothing is kept.
    pub track_model_audio: bool,
}

impl Default for GeminiScript {
    fn default() -> Self {
        GeminiScript {
            handshake: Handshake::Accept,
            setup: SetupReply::Complete,
            expect_api_key: None,
            malformed_after_setup: false,
            end_call_after_turns: None,
            transfer_after_turns: None,
            tool_call_after_turns: None,
            go_away_after_turns: None,
            go_away_mid_reply_at_turn: None,
            go_away_time_left: Duration::from_secs(10),
            close_mid_response_at_turn: None,
            close_after_turn: None,
            close_code: 1011,
            abort_after_turn: None,
            stall_after_turns: None,
            endless_reply_at_turn: None,
            chunk_ms: 100,
            playback_speed: 1.0,
            vad_threshold: 500,
            vad_silence_ms: 400,
            abort_mid_utterance: None,
            track_model_audio: false,
        }
    }
}

/// A running mock Gemini Live server.
#[derive(Debug)]
pub struct MockGemini {
    server: MockServer,
    handler: Arc<GeminiHandler>,
}

/// The path the mock is served under (any path is accepted).
pub const MOCK_PATH: &str =
    "ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

impl MockGemini {
    /// Starts a mock where every connection follows `script`.
    pub async fn start(script: GeminiScript) -> std::io::Result<MockGemini> {
        Self::start_with(ScriptBook::all(script)).await
    }

    /// Starts a mock with per-connection scripts.
    pub async fn start_with(book: ScriptBook<GeminiScript>) -> std::io::Result<MockGemini> {
        let handler = Arc::new(GeminiHandler {
            book,
            handles: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            model: Mutex::new(ModelState::default()),
        });
        Ok(MockGemini {
            server: MockServer::start(handler.clone()).await?,
            handler,
        })
    }

    /// The caller audio (PCM 16 kHz) the model's session state holds, in
    /// order, across resumptions (kept with
    /// [`GeminiScript::track_model_audio`]; a connection that ends without
    /// a drop adds all it received).
    pub fn model_audio(&self) -> Vec<u8> {
        self.handler
            .model
            .lock()
            .map(|m| m.audio.clone())
            .unwrap_or_default()
    }

    /// The endpoint URL to put in [`callbridge_llm_bridge::SessionConfig::endpoint`].
    pub fn url(&self) -> String {
        self.server.url(MOCK_PATH)
    }

    /// The counters now.
    pub fn stats(&self) -> MockStats {
        self.server.stats()
    }

    /// Panics (for tests) if the client broke the protocol.
    pub fn assert_no_violations(&self) {
        self.server.assert_no_violations();
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
struct GeminiHandler {
    book: ScriptBook<GeminiScript>,
    handles: Mutex<HashSet<String>>,
    next_id: AtomicU64,
    model: Mutex<ModelState>,
}

/// The session state's caller audio, for scripts that track it.
#[derive(Debug, Default)]
struct ModelState {
    /// The audio taken into the state, in order.
    audio: Vec<u8>,
    /// Per issued handle: the length of `audio` its state holds, and the
    /// audio its connection received after it (what a resume must replay).
    handles: HashMap<String, (usize, Vec<u8>)>,
}

impl GeminiHandler {
    fn issue_handle(&self) -> String {
        let h = format!(
            "mock-handle-{}",
            self.next_id.fetch_add(1, Ordering::SeqCst)
        );
        if let Ok(mut set) = self.handles.lock()
            && set.len() < 100_000
        {
            set.insert(h.clone());
        }
        h
    }

    fn knows(&self, h: &str) -> bool {
        self.handles.lock().map(|s| s.contains(h)).unwrap_or(false)
    }
}

impl ConnectionHandler for GeminiHandler {
    fn handshake(&self, index: usize) -> Handshake {
        self.book.for_connection(index).handshake
    }

    fn run(self: Arc<Self>, conn: MockConnection) -> BoxFuture<'static, ()> {
        Box::pin(run_connection(self, conn))
    }
}

const INVALID_ARGUMENT: &str = "Request contains an invalid argument.";

/// The close reason the real server sends with `code` (protocols.md §1.7).
pub fn close_reason_text(code: u16) -> &'static str {
    match code {
        1000 => "",
        1007 => INVALID_ARGUMENT,
        1008 => "Requested entity was not found.",
        1013 => "The service is currently unavailable.",
        _ => "Internal error occurred.",
    }
}

async fn send(conn: &mut MockConnection, v: Value) -> bool {
    conn.send_json(&v, true).await.is_ok()
}

async fn run_connection(h: Arc<GeminiHandler>, mut conn: MockConnection) {
    let script = h.book.for_connection(conn.index());
    if let Some(key) = &script.expect_api_key
        && conn.header("x-goog-api-key") != Some(key.as_str())
    {
        conn.violation("missing or wrong x-goog-api-key header");
        conn.close(1008, "API key not valid").await;
        return;
    }
    let setup = match conn.recv().await {
        Incoming::Json(v) => match parse_client_message(&v) {
            Ok(ClientMsg::Setup(info)) => info,
            Ok(other) => {
                conn.violation(format!("first message must be setup, got {other:?}"));
                conn.close(1007, INVALID_ARGUMENT).await;
                return;
            }
            Err(e) => {
                conn.violation(e);
                conn.close(1007, INVALID_ARGUMENT).await;
                return;
            }
        },
        Incoming::NotJson(e) => {
            conn.violation(format!("first frame is not JSON: {e}"));
            conn.close(1007, INVALID_ARGUMENT).await;
            return;
        }
        Incoming::Closed { .. } | Incoming::Gone => return,
    };
    if let Some(handle) = &setup.resume_handle
        && !h.knows(handle)
    {
        conn.violation(format!("resumption with a handle never issued: {handle}"));
        conn.close(1008, "Invalid session handle").await;
        return;
    }
    match &script.setup {
        SetupReply::Complete => {}
        SetupReply::Delay(d) => tokio::time::sleep(*d).await,
        SetupReply::Never => loop {
            match conn.recv().await {
                Incoming::Json(_) | Incoming::NotJson(_) => {
                    conn.violation("message sent before setupComplete");
                }
                Incoming::Closed { .. } | Incoming::Gone => return,
            }
        },
        SetupReply::Close { code, reason } => {
            conn.close(*code, reason).await;
            return;
        }
    }
    conn.count_setup(setup.resume_handle.is_some());
    conn.record_instructions(&setup.instructions);
    if !send(&mut conn, json!({"setupComplete": {}})).await {
        return;
    }
    if script.malformed_after_setup {
        let _ = conn
            .send_raw(Message::Text("{\"serverContent\": {".into()))
            .await;
        let _ = conn
            .send_raw(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
            .await;
        let _ = conn
            .send_raw(Message::Text("{\"whatIsThis\": {}}".into()))
            .await;
    }
    let mut conv = Conversation::new(h, script, setup);
    conv.resume_state();
    conv.run(conn).await;
}

struct Playing {
    ends_at: Instant,
    /// A caller turn (not the greeting), whose number is recorded.
    turn: Option<u32>,
}

struct Conversation {
    h: Arc<GeminiHandler>,
    script: GeminiScript,
    setup: SetupInfo,
    vad: EnergyVad,
    vad_events: Vec<VadEvent>,
    turns: u32,
    playing: Option<Playing>,
    outstanding: HashSet<String>,
    go_away_deadline: Option<Instant>,
    /// Index of the next client message (`setup` was 0).
    next_index: u64,
    /// Audio messages received on this connection.
    audio_messages: u32,
    /// Tracked audio not yet in the state: (message index, PCM).
    pending: VecDeque<(u64, Vec<u8>)>,
    /// The last handle issued on this connection.
    last_handle: Option<String>,
    /// What the resumed connection must start with, and what came so far.
    replay_expect: Vec<u8>,
    replay_seen: Vec<u8>,
}

enum Flow {
    Continue,
    Stop,
    Abort,
}

impl Conversation {
    fn new(h: Arc<GeminiHandler>, script: GeminiScript, setup: SetupInfo) -> Self {
        let vad = EnergyVad::new(16000, script.vad_threshold, script.vad_silence_ms);
        Conversation {
            h,
            script,
            setup,
            vad,
            vad_events: Vec::new(),
            turns: 0,
            playing: None,
            outstanding: HashSet::new(),
            go_away_deadline: None,
            next_index: 1,
            audio_messages: 0,
            pending: VecDeque::new(),
            last_handle: None,
            replay_expect: Vec::new(),
            replay_seen: Vec::new(),
        }
    }

    /// A resumed connection of a tracking script: the state is the
    /// handle's, and what it left out must come first.
    fn resume_state(&mut self) {
        if !self.script.track_model_audio {
            return;
        }
        let Some(handle) = &self.setup.resume_handle else {
            return;
        };
        if let Ok(mut m) = self.h.model.lock()
            && let Some((len, tail)) = m.handles.get(handle).cloned()
        {
            m.audio.truncate(len);
            self.replay_expect = tail;
        }
    }

    /// A new handle whose state holds the client messages up to `last`:
    /// the `sessionResumptionUpdate` announcing it.
    fn issue_update(&mut self, last: u64) -> Value {
        let handle = self.h.issue_handle();
        if self.script.track_model_audio
            && let Ok(mut m) = self.h.model.lock()
        {
            while let Some((i, _)) = self.pending.front() {
                if *i > last {
                    break;
                }
                if let Some((_, pcm)) = self.pending.pop_front() {
                    m.audio.extend_from_slice(&pcm);
                }
            }
            let len = m.audio.len();
            if m.handles.len() < 10_000 {
                m.handles.insert(handle.clone(), (len, Vec::new()));
            }
        }
        self.last_handle = Some(handle.clone());
        let mut update = json!({"newHandle": handle, "resumable": true});
        if self.setup.transparent {
            // An int64: a string in proto3 JSON.
            update["lastConsumedClientMessageIndex"] = json!(last.to_string());
        }
        json!({ "sessionResumptionUpdate": update })
    }

    /// The connection ended: the audio after its last handle is what a
    /// resume must replay; unless it was dropped, the state took it.
    fn finish_tracking(&mut self, dropped: bool) {
        if !self.script.track_model_audio {
            return;
        }
        let tail: Vec<u8> = self.pending.drain(..).flat_map(|(_, p)| p).collect();
        if let Ok(mut m) = self.h.model.lock() {
            if let Some(h) = &self.last_handle
                && let Some(entry) = m.handles.get_mut(h)
            {
                entry.1 = tail.clone();
            }
            if !dropped {
                m.audio.extend_from_slice(&tail);
            }
        }
    }

    /// Audio on a tracked connection: kept until a handle includes it, and
    /// checked against what a resume must replay first ([`replay_matches`]).
    fn track_audio(&mut self, conn: &MockConnection, index: u64, pcm: &[u8]) {
        if !self.script.track_model_audio {
            return;
        }
        self.pending.push_back((index, pcm.to_vec()));
        let want = self.replay_expect.len();
        if want > 0 && self.replay_seen.len() < want {
            self.replay_seen.extend_from_slice(pcm);
            if self.replay_seen.len() >= want {
                if !replay_matches(&self.replay_expect, &self.replay_seen[..want]) {
                    conn.violation(format!(
                        "the resumed connection did not start with the {want} bytes of audio \
                         the handle's state left out (lastConsumedClientMessageIndex)"
                    ));
                }
                self.replay_expect.clear();
            }
        }
    }

    async fn run(&mut self, mut conn: MockConnection) {
        loop {
            let reply_end = self.playing.as_ref().map(|p| p.ends_at);
            let go_away = self.go_away_deadline;
            let flow = tokio::select! {
                inc = conn.recv() => self.on_incoming(&mut conn, inc).await,
                () = crate::server::sleep_until_opt(reply_end) => self.finish_reply(&mut conn).await,
                () = crate::server::sleep_until_opt(go_away) => {
                    conn.close(1000, "session time limit reached").await;
                    Flow::Stop
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => {
                    self.finish_tracking(false);
                    return;
                }
                Flow::Abort => {
                    self.finish_tracking(true);
                    conn.abort();
                    return;
                }
            }
        }
    }

    async fn on_incoming(&mut self, conn: &mut MockConnection, inc: Incoming) -> Flow {
        let v = match inc {
            Incoming::Json(v) => v,
            Incoming::NotJson(e) => {
                conn.violation(format!("frame is not JSON: {e}"));
                conn.close(1007, INVALID_ARGUMENT).await;
                return Flow::Stop;
            }
            Incoming::Closed { .. } | Incoming::Gone => return Flow::Stop,
        };
        let msg = match parse_client_message(&v) {
            Ok(m) => m,
            Err(e) => {
                conn.violation(e);
                conn.close(1007, INVALID_ARGUMENT).await;
                return Flow::Stop;
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        match msg {
            ClientMsg::Setup(_) => {
                conn.violation("second setup on one connection");
                conn.close(1007, INVALID_ARGUMENT).await;
                Flow::Stop
            }
            ClientMsg::Audio(pcm) => {
                conn.count_audio(pcm.len());
                self.track_audio(conn, index, &pcm);
                self.audio_messages += 1;
                if let Some((n, k)) = self.script.abort_mid_utterance
                    && self.audio_messages == n
                {
                    let last = index.saturating_sub(u64::from(k));
                    let update = self.issue_update(last);
                    let _ = send(conn, update).await;
                    // Let the client read the update before the drop (an
                    // RST may discard what it has not read yet).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Flow::Abort;
                }
                if self.setup.manual_activity {
                    return Flow::Continue;
                }
                let mut events = std::mem::take(&mut self.vad_events);
                events.clear();
                self.vad.push(
                    pcm.chunks_exact(2)
                        .map(|p| i16::from_le_bytes([p[0], p[1]])),
                    &mut events,
                );
                let mut flow = Flow::Continue;
                for ev in events.drain(..) {
                    flow = match ev {
                        VadEvent::SpeechStart(_) => self.on_speech_start(conn).await,
                        VadEvent::SpeechEnd(_) => self.on_caller_turn(conn, None).await,
                    };
                    if !matches!(flow, Flow::Continue) {
                        break;
                    }
                }
                self.vad_events = events;
                flow
            }
            ClientMsg::AudioStreamEnd => {
                if self.setup.manual_activity {
                    conn.violation("audioStreamEnd with automatic activity detection disabled");
                    return Flow::Continue;
                }
                let mut events = Vec::new();
                self.vad.flush(&mut events);
                if events.is_empty() {
                    Flow::Continue
                } else {
                    self.on_caller_turn(conn, None).await
                }
            }
            ClientMsg::ActivityStart | ClientMsg::ActivityEnd if !self.setup.manual_activity => {
                conn.violation("activityStart/activityEnd with automatic activity detection on");
                conn.close(1007, INVALID_ARGUMENT).await;
                Flow::Stop
            }
            ClientMsg::ActivityStart => self.on_speech_start(conn).await,
            ClientMsg::ActivityEnd => self.on_caller_turn(conn, None).await,
            ClientMsg::Text(t) => self.on_caller_turn(conn, Some(t)).await,
            ClientMsg::ClientContent { turn_complete, .. } => {
                if turn_complete {
                    self.interrupt_if_playing(conn).await;
                    self.start_reply(conn, clips::greeting(), None).await
                } else {
                    Flow::Continue
                }
            }
            ClientMsg::ToolResponse(responses) => {
                for (id, name, response) in responses {
                    if !self.outstanding.remove(&id) {
                        conn.violation(format!(
                            "toolResponse for unknown or answered call id {id}"
                        ));
                    }
                    conn.record_tool_response(&name, response);
                }
                Flow::Continue
            }
        }
    }

    async fn interrupt_if_playing(&mut self, conn: &mut MockConnection) -> bool {
        if self.playing.take().is_none() {
            return false;
        }
        let _ = send(conn, json!({"serverContent": {"interrupted": true}})).await;
        if !self.outstanding.is_empty() {
            let ids: Vec<String> = self.outstanding.drain().collect();
            let _ = send(conn, json!({"toolCallCancellation": {"ids": ids}})).await;
        }
        let _ = send(conn, json!({"serverContent": {"turnComplete": true}})).await;
        // Generation stopped: the session is at a resumable point again,
        // holding everything received so far.
        let update = self.issue_update(self.next_index - 1);
        let _ = send(conn, update).await;
        true
    }

    async fn on_speech_start(&mut self, conn: &mut MockConnection) -> Flow {
        self.interrupt_if_playing(conn).await;
        Flow::Continue
    }

    async fn on_caller_turn(&mut self, conn: &mut MockConnection, text: Option<String>) -> Flow {
        self.turns += 1;
        conn.count_turn();
        let transcript = text.unwrap_or_else(|| format!("caller turn {}", self.turns));
        if !send(
            conn,
            json!({"serverContent": {"inputTranscription": {"text": transcript, "finished": true}}}),
        )
        .await
        {
            return Flow::Stop;
        }
        self.interrupt_if_playing(conn).await;
        let turn = self.turns;
        if self.script.stall_after_turns.is_some_and(|n| turn >= n) {
            return Flow::Continue;
        }
        self.start_reply(conn, clips::reply(), Some(turn)).await
    }

    fn chunk_bytes(&self, clip: &Clip) -> usize {
        let n = (clip.rate as usize * self.script.chunk_ms.max(10) as usize / 1000) * 2;
        n.max(2)
    }

    async fn start_reply(
        &mut self,
        conn: &mut MockConnection,
        clip: &Clip,
        turn: Option<u32>,
    ) -> Flow {
        let _ = send(
            conn,
            json!({"sessionResumptionUpdate": {"resumable": false}}),
        )
        .await;
        let abort_mid = turn.is_some() && turn == self.script.close_mid_response_at_turn;
        let mime = format!("audio/pcm;rate={}", clip.rate);
        let step = self.chunk_bytes(clip);
        for (i, chunk) in clip.pcm.chunks(step).enumerate() {
            let mut content = json!({"modelTurn": {"parts": [{"inlineData": {"mimeType": mime, "data": B64.encode(chunk)}}]}});
            if i == 0 && self.setup.transcription.1 {
                content["outputTranscription"] = json!({"text": clip.transcript});
            }
            if !send(conn, json!({ "serverContent": content })).await {
                return Flow::Stop;
            }
            if abort_mid && i == 1 {
                return Flow::Abort;
            }
        }
        if !send(conn, json!({"serverContent": {"generationComplete": true}})).await {
            return Flow::Stop;
        }
        if turn.is_some()
            && turn == self.script.go_away_mid_reply_at_turn
            && self.go_away_deadline.is_none()
            && !self.send_go_away(conn).await
        {
            return Flow::Stop;
        }
        if turn.is_some() && turn == self.script.end_call_after_turns {
            let id = format!(
                "mock-call-{}",
                self.h.next_id.fetch_add(1, Ordering::SeqCst)
            );
            self.outstanding.insert(id.clone());
            let call = json!({"toolCall": {"functionCalls": [
                {"id": id, "name": "end_call", "args": {"reason": "the caller's request is handled"}}]}});
            if !send(conn, call).await {
                return Flow::Stop;
            }
        }
        if let Some((at, target)) = &self.script.transfer_after_turns
            && turn == Some(*at)
        {
            let id = format!(
                "mock-call-{}",
                self.h.next_id.fetch_add(1, Ordering::SeqCst)
            );
            self.outstanding.insert(id.clone());
            let call = json!({"toolCall": {"functionCalls": [
                    {"id": id, "name": "transfer_call", "args": {"target": target, "reason": "the caller asked for a person"}}]}});
            if !send(conn, call).await {
                return Flow::Stop;
            }
        }
        if let Some((at, name, args)) = &self.script.tool_call_after_turns
            && turn.unwrap_or(0) == *at
        {
            if !self.setup.functions.iter().any(|f| f == name) {
                conn.violation(format!(
                    "scripted tool {name} was not declared in the setup"
                ));
            }
            let id = format!(
                "mock-call-{}",
                self.h.next_id.fetch_add(1, Ordering::SeqCst)
            );
            self.outstanding.insert(id.clone());
            let call = json!({"toolCall": {"functionCalls": [
                    {"id": id, "name": name, "args": args}]}});
            if !send(conn, call).await {
                return Flow::Stop;
            }
        }
        let speed = if self.script.playback_speed > 0.0 {
            self.script.playback_speed
        } else {
            1.0
        };
        let plays_for = if turn.is_some() && turn == self.script.endless_reply_at_turn {
            Duration::from_secs(24 * 3600)
        } else {
            clip.duration().div_f64(speed)
        };
        self.playing = Some(Playing {
            ends_at: Instant::now() + plays_for,
            turn,
        });
        Flow::Continue
    }

    async fn send_go_away(&mut self, conn: &mut MockConnection) -> bool {
        let left = self.script.go_away_time_left;
        let time_left = format!("{}s", left.as_secs_f64());
        self.go_away_deadline = Some(Instant::now() + left);
        send(conn, json!({"goAway": {"timeLeft": time_left}})).await
    }

    async fn finish_reply(&mut self, conn: &mut MockConnection) -> Flow {
        let Some(playing) = self.playing.take() else {
            return Flow::Continue;
        };
        let update = self.issue_update(self.next_index - 1);
        let ok = send(conn, json!({"serverContent": {"turnComplete": true}})).await
            && send(
                conn,
                json!({"usageMetadata": {"promptTokenCount": 100, "responseTokenCount": 50, "totalTokenCount": 150,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 30}, {"modality": "AUDIO", "tokenCount": 70}],
                    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}]}}),
            )
            .await
            && send(conn, update).await;
        if !ok {
            return Flow::Stop;
        }
        if playing.turn.is_some()
            && playing.turn == self.script.go_away_after_turns
            && self.go_away_deadline.is_none()
            && !self.send_go_away(conn).await
        {
            return Flow::Stop;
        }
        if playing.turn.is_some() && playing.turn == self.script.close_after_turn {
            let code = self.script.close_code;
            conn.close(code, close_reason_text(code)).await;
            return Flow::Stop;
        }
        if playing.turn.is_some() && playing.turn == self.script.abort_after_turn {
            return Flow::Abort;
        }
        Flow::Continue
    }
}

/// Whether `seen` (16 kHz s16le) is the replay of the left-out audio
/// `expect`: as long, and the same audio either exactly or as a client
/// that keeps it at telephone precision replays it (8 kHz 4-bit ADPCM
/// and back: in step or 4 ms later, the error at least 13 dB below the
/// audio, plus a floor for quiet audio; audio a quarter period off, a
/// chunk lost or repeated, errs by 3 dB more than the audio itself).
fn replay_matches(expect: &[u8], seen: &[u8]) -> bool {
    if expect.len() != seen.len() {
        return false;
    }
    if expect == seen {
        return true;
    }
    let samples = |b: &[u8]| -> Vec<f64> {
        b.chunks_exact(2)
            .map(|s| f64::from(i16::from_le_bytes([s[0], s[1]])))
            .collect()
    };
    let (e, s) = (samples(expect), samples(seen));
    // In step (kept from the 8 kHz audio the sent chunk was made of) or
    // 4 ms late (decimated and interpolated again).
    [0usize, 64].into_iter().any(|lag| {
        if e.len() <= lag {
            return false;
        }
        let n = e.len() - lag;
        let signal: f64 = e[..n].iter().map(|x| x * x).sum();
        let error: f64 = e[..n]
            .iter()
            .zip(&s[lag..])
            .map(|(x, y)| (x - y).powi(2))
            .sum();
        error <= signal / 20.0 + n as f64 * 64.0 * 64.0
    })
}

#[cfg(test)]
mod tests {
    use super::replay_matches;

    fn pcm(samples: impl Iterator<Item = i16>) -> Vec<u8> {
        samples.flat_map(i16::to_le_bytes).collect()
    }

    fn tone(n: usize, level: f64) -> Vec<i16> {
        (0..n)
            .map(|k| ((k as f64 * std::f64::consts::TAU / 16.0).sin() * level) as i16)
            .collect()
    }

    #[test]
    fn a_replay_matches_exactly_or_4_ms_late_and_nothing_else() {
        let t = tone(1600, 10_000.0);
        let exact = pcm(t.iter().copied());
        assert!(replay_matches(&exact, &exact));
        // 4 ms late, the first 4 ms the filters' start.
        let late = pcm(std::iter::repeat_n(0, 64).chain(t[..1600 - 64].iter().copied()));
        assert!(replay_matches(&exact, &late));
        // In step with coding noise (every sample 5 % off).
        let noisy = pcm(t.iter().map(|&x| x + x / 20));
        assert!(replay_matches(&exact, &noisy));
        // Another stretch of the audio (a chunk lost or repeated), another
        // length, or silence: not the replay.
        let other = pcm(tone(1600, 10_000.0).iter().skip(4).copied().chain([0; 4]));
        assert!(!replay_matches(&exact, &other));
        assert!(!replay_matches(&exact, &exact[..exact.len() - 2]));
        assert!(!replay_matches(&exact, &pcm(std::iter::repeat_n(0, 1600))));
    }
}
