//! What one mock OpenAI connection does ([`OpenAiScript`], [`SessionReply`],
//! [`MidResponseClose`]) and what clients asked of the mock ([`OpenAiLog`],
//! [`Truncation`]), with the handler state every connection shares.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::openai_validate::SessionInfo;
use crate::server::{Handshake, ScriptBook};

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

/// The state every connection of one mock shares: the scripts and the log.
#[derive(Debug)]
pub(super) struct OpenAiHandler {
    pub(super) book: ScriptBook<OpenAiScript>,
    pub(super) log: Arc<Mutex<OpenAiLog>>,
}

/// Records into the mock's log.
pub(super) fn log(h: &OpenAiHandler, f: impl FnOnce(&mut OpenAiLog)) {
    if let Ok(mut l) = h.log.lock() {
        f(&mut l);
    }
}
