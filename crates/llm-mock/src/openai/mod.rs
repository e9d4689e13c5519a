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

use std::sync::{Arc, Mutex};

use callbridge_llm_bridge::BoxFuture;
use serde_json::json;

use crate::server::{
    ConnectionHandler, Handshake, Incoming, MockConnection, MockServer, MockStats, ScriptBook,
};

mod conversation;
mod encode;
mod script;

use conversation::Conversation;
pub use encode::{clip_in_format, linear_to_alaw};
use script::OpenAiHandler;
pub use script::{MidResponseClose, OpenAiLog, OpenAiScript, SessionReply, Truncation};

/// A running mock OpenAI Realtime server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use callbridge_llm_mock::openai::{MockOpenAi, OpenAiScript};
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

    /// The endpoint URL to put in [`callbridge_llm_bridge::SessionConfig::endpoint`].
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

impl ConnectionHandler for OpenAiHandler {
    fn handshake(&self, index: usize) -> Handshake {
        self.book.for_connection(index).handshake
    }

    fn run(self: Arc<Self>, conn: MockConnection) -> BoxFuture<'static, ()> {
        Box::pin(run_connection(self, conn))
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
