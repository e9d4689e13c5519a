//! A strict mock OpenAI GPT-Live server (`docs/providers/gpt-live.md`) for
//! tests and demos.
//!
//! Owns: [`MockGptLive`], its per-connection [`GptLiveScript`] and the
//! [`GptLiveLog`] of what clients sent. Every client event is parsed with
//! the bridge's strict wire types
//! ([`callbridge_llm_bridge::gpt_live::wire::ClientEvent`]: unknown fields
//! and unknown types are errors) and checked against the session's state:
//! nothing but `session.start` before `session.started`, no second start,
//! G.711 only at 8000 Hz and PCM only at 16/24 kHz, no format or voice
//! change after start (the only `session.update` is of the delegation),
//! base64 audio in the standard alphabet, whole samples, Responses events
//! only under Responses delegation, delegation ids that exist (client
//! delegations only, never under Responses delegation), append contents
//! not empty and within 500 tokens, nothing after `session.close`. A violation is recorded and answered with an
//! `error` event, as the real service does.
//!
//! It speaks the server events: `session.started`, paced
//! `session.output_audio.delta` in the session format (the committed
//! clips; G.711 at 8 kHz with no resampling on the client's side),
//! `session.input_transcript.delta` / `session.output_transcript.delta`
//! with `start_ms`/`end_ms`, `session.delegation.created` in both
//! delegation modes (a client delegation after the scripted caller words
//! that carry its task), the model speaking a delegation's commentary, function calls wrapped in `response.event`, `error`
//! and `session.closed`. Full duplex: caller speech while a reply plays
//! stops the reply's audio (there is no interruption event).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callbridge_llm_bridge::BoxFuture;
use callbridge_llm_bridge::gpt_live::wire::SessionObject;
use serde_json::Value;

use crate::openai::MidResponseClose;
use crate::server::{
    ConnectionHandler, Handshake, MockConnection, MockServer, MockStats, ScriptBook,
};

mod conversation;

/// The path the mock is served under (any path is accepted).
pub const MOCK_PATH: &str = "v1/live/sessions";

/// Input tokens the mock's Responses backend reports for each delegated
/// response (`response.completed`'s `response.usage`, inside
/// `response.event`).
pub const DELEGATION_INPUT_TOKENS: u64 = 120;
/// Output tokens the mock's Responses backend reports for each delegated
/// response.
pub const DELEGATION_OUTPUT_TOKENS: u64 = 30;

/// How the mock answers `session.start`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartReply {
    /// `session.started` at once.
    #[default]
    Ready,
    /// `session.started` after this delay.
    Delay(Duration),
    /// Never answer (the client must time out).
    Never,
    /// Answer with an `error` event.
    Reject,
    /// Close the connection with this code and reason instead.
    Close {
        /// Close code.
        code: u16,
        /// Reason text.
        reason: String,
    },
}

/// What one connection does.
#[derive(Debug, Clone)]
pub struct GptLiveScript {
    /// Upgrade behaviour.
    pub handshake: Handshake,
    /// Start behaviour.
    pub start: StartReply,
    /// If set, the `Authorization` header must be `Bearer <this>`.
    pub expect_api_key: Option<String>,
    /// After the reply to this caller turn (1-based), call `end_call`
    /// (Responses delegation).
    pub end_call_after_turns: Option<u32>,
    /// At this caller turn, call `transfer_call` with this target
    /// (Responses delegation); the reply follows its output.
    pub transfer_at_turn: Option<(u32, String)>,
    /// At this caller turn, call function `.1` with arguments `.2`.
    pub tool_call_at_turn: Option<(u32, String, Value)>,
    /// At this caller turn, delegate work to the client
    /// (`session.delegation.created` with target `client`).
    pub client_delegation_at_turn: Option<u32>,
    /// What the caller says at the delegation turn (its
    /// `session.input_transcript.delta`, sent before the delegation; the
    /// task is in the transcript, not in the event). `None`: "caller turn N".
    pub delegation_task: Option<String>,
    /// End the connection this way once the reply to this turn is sent.
    pub close_after_turn: Option<(u32, MidResponseClose)>,
    /// Audio per delta, in milliseconds.
    pub chunk_ms: u32,
    /// How much faster than real time reply audio is sent.
    pub playback_speed: f64,
    /// VAD threshold (RMS in sample units).
    pub vad_threshold: u16,
    /// VAD end-of-turn silence.
    pub vad_silence_ms: u32,
}

impl Default for GptLiveScript {
    fn default() -> Self {
        GptLiveScript {
            handshake: Handshake::Accept,
            start: StartReply::Ready,
            expect_api_key: None,
            end_call_after_turns: None,
            transfer_at_turn: None,
            tool_call_at_turn: None,
            client_delegation_at_turn: None,
            delegation_task: None,
            close_after_turn: None,
            chunk_ms: 100,
            playback_speed: 1.0,
            vad_threshold: 500,
            vad_silence_ms: 400,
        }
    }
}

/// What clients sent the mock, over all connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GptLiveLog {
    /// Every accepted `session.start`'s session object.
    pub starts: Vec<SessionObject>,
    /// `session.instructions.append` contents with their delegation ids.
    pub instructions: Vec<(String, Option<String>)>,
    /// `session.commentary.append` contents with their delegation ids.
    pub commentary: Vec<(String, Option<String>)>,
    /// `session.thinking.append` contents with their delegation ids.
    pub thinking: Vec<(String, Option<String>)>,
    /// `function_call_output` items (call id, output).
    pub function_outputs: Vec<(String, String)>,
    /// `response.create` events.
    pub response_creates: u64,
    /// Replies whose audio was cut short by caller speech.
    pub barge_ins: u64,
    /// `session.close` events.
    pub closes: u64,
    /// Error codes sent to clients.
    pub errors: Vec<String>,
}

/// The state every connection of one mock shares.
#[derive(Debug)]
pub(crate) struct GptLiveHandler {
    pub(crate) book: ScriptBook<GptLiveScript>,
    pub(crate) log: Arc<Mutex<GptLiveLog>>,
}

impl GptLiveHandler {
    pub(crate) fn log(&self, f: impl FnOnce(&mut GptLiveLog)) {
        if let Ok(mut l) = self.log.lock() {
            f(&mut l);
        }
    }
}

/// A running mock GPT-Live server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use callbridge_llm_mock::gpt_live::{GptLiveScript, MockGptLive};
/// use callbridge_llm_bridge::{AudioFormat, CallMetadata, GptLive, RealtimeModel, SessionConfig};
/// let mock = MockGptLive::start(GptLiveScript::default()).await.unwrap();
/// let mut config = SessionConfig::default();
/// config.endpoint = Some(mock.url());
/// config.model = "gpt-live-1".into();
/// config.input_format = AudioFormat::Pcmu;
/// config.output_format = AudioFormat::Pcmu;
/// let session = GptLive::new().open(config, CallMetadata::default()).await.unwrap();
/// assert!(session.close().await.clean);
/// assert_eq!(mock.stats().setups, 1);
/// assert_eq!(mock.log().closes, 1);
/// mock.server().assert_no_violations();
/// mock.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct MockGptLive {
    server: MockServer,
    log: Arc<Mutex<GptLiveLog>>,
}

impl MockGptLive {
    /// Starts a mock where every connection follows `script`.
    pub async fn start(script: GptLiveScript) -> std::io::Result<MockGptLive> {
        Self::start_with(ScriptBook::all(script)).await
    }

    /// Starts a mock with per-connection scripts.
    pub async fn start_with(book: ScriptBook<GptLiveScript>) -> std::io::Result<MockGptLive> {
        let log = Arc::new(Mutex::new(GptLiveLog::default()));
        let handler = Arc::new(GptLiveHandler {
            book,
            log: log.clone(),
        });
        Ok(MockGptLive {
            server: MockServer::start(handler).await?,
            log,
        })
    }

    /// The endpoint URL to put in [`callbridge_llm_bridge::SessionConfig::endpoint`].
    pub fn url(&self) -> String {
        self.server.url(MOCK_PATH)
    }

    /// The shared counters now (`setups` counts accepted `session.start`s).
    pub fn stats(&self) -> MockStats {
        self.server.stats()
    }

    /// What clients sent so far.
    pub fn log(&self) -> GptLiveLog {
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

impl ConnectionHandler for GptLiveHandler {
    fn handshake(&self, index: usize) -> Handshake {
        self.book.for_connection(index).handshake
    }

    fn run(self: Arc<Self>, conn: MockConnection) -> BoxFuture<'static, ()> {
        Box::pin(conversation::run_connection(self, conn))
    }
}
