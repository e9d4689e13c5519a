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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::clips::Clip;
use super::openai_validate::SessionInfo;
use super::server::{
    ConnectionHandler, Handshake, Incoming, MockConnection, MockServer, MockStats, ScriptBook,
};
use crate::audio::{AudioFormat, linear_to_ulaw};
use crate::provider::BoxFuture;

mod conversation;

use conversation::Conversation;

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
    /// End the connection this way once the reply to this turn is done
    /// (`response.done` sent): a drop between turns.
    pub close_after_turn: Option<(u32, MidResponseClose)>,
    /// From this caller turn on (1-based), the model stalls: the turn is
    /// committed (and transcribed) but no response is ever created, and
    /// the connection stays open.
    pub stall_after_turns: Option<u32>,
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
            close_after_turn: None,
            stall_after_turns: None,
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
pub(super) struct OpenAiHandler {
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

pub(super) fn cached(which: usize, clip: &'static Clip, format: AudioFormat) -> Bytes {
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

pub(super) fn log(h: &OpenAiHandler, f: impl FnOnce(&mut OpenAiLog)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::alaw_to_linear;
    use crate::mock::clips;

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
