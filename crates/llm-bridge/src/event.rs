//! What a model session reports: the provider-neutral [`ModelEvent`] stream.
//!
//! Owns: [`ModelEvent`] and its payload types. Every session's stream ends
//! with exactly one [`ModelEvent::Closed`]; after it the stream yields `None`.

use std::fmt;
use std::time::Duration;

use crate::audio::AudioChunk;

/// A tool call id as issued by the model (opaque).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ToolCallId(pub String);

impl ToolCallId {
    /// The id as sent by the model.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ToolCallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ToolCallId({})", self.0)
    }
}

/// A function call requested by the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Answer with [`crate::ModelSession::send_tool_result`] using this id.
    pub id: ToolCallId,
    /// Function name.
    pub name: String,
    /// Arguments (a JSON object; `{}` when the model sent none).
    pub args: serde_json::Value,
}

/// Token usage reported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (response) tokens.
    pub output_tokens: u64,
    /// Total tokens as reported (may include thoughts and tool prompts).
    pub total_tokens: u64,
    /// The input and output tokens by modality, when the provider splits
    /// them (Gemini's `promptTokensDetails` / `responseTokensDetails`,
    /// OpenAI's `input_token_details` / `output_token_details`).
    pub split: Option<TokenSplit>,
}

impl Usage {
    /// Adds a later report to these figures (a call's running total: each
    /// report covers one response). The split stays known only while both
    /// sides have one.
    ///
    /// ```
    /// use callbridge_llm_bridge::Usage;
    /// let turn = Usage { input_tokens: 10, output_tokens: 5, total_tokens: 15, split: None };
    /// let mut call = turn;
    /// call.add(&turn);
    /// assert_eq!((call.input_tokens, call.output_tokens, call.total_tokens), (20, 10, 30));
    /// ```
    pub fn add(&mut self, later: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(later.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(later.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(later.total_tokens);
        self.split = match (self.split, later.split) {
            (Some(a), Some(b)) => Some(a.plus(b)),
            _ => None,
        };
    }
}

/// Tokens by modality (audio or text), input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenSplit {
    /// Input audio tokens.
    pub input_audio: u64,
    /// Input text tokens.
    pub input_text: u64,
    /// Output audio tokens.
    pub output_audio: u64,
    /// Output text tokens.
    pub output_text: u64,
}

impl TokenSplit {
    fn plus(self, o: TokenSplit) -> TokenSplit {
        TokenSplit {
            input_audio: self.input_audio.saturating_add(o.input_audio),
            input_text: self.input_text.saturating_add(o.input_text),
            output_audio: self.output_audio.saturating_add(o.output_audio),
            output_text: self.output_text.saturating_add(o.output_text),
        }
    }
}

/// One rate limit as reported by the provider (OpenAI `rate_limits.updated`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// What is limited (`requests` or `tokens`).
    pub name: String,
    /// The limit.
    pub limit: u64,
    /// What is left of it.
    pub remaining: u64,
    /// Time until the limit resets.
    pub reset: Duration,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`crate::ModelSession::close`] was called.
    ClientClosed,
    /// The server sent a close frame.
    ServerClosed {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// The connection ended without a close frame (TCP reset or EOF, 1006).
    ConnectionLost,
    /// A reconnect for session resumption failed.
    ResumptionFailed,
    /// The server broke the protocol so the session cannot go on.
    ProtocolError(&'static str),
    /// The handle was dropped without `close` (tasks were cancelled).
    Cancelled,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ClientClosed => f.write_str("closed by the client"),
            CloseReason::ServerClosed { code, reason } => {
                write!(f, "closed by the server (code {code}: {reason})")
            }
            CloseReason::ConnectionLost => f.write_str("connection lost without a close frame"),
            CloseReason::ResumptionFailed => f.write_str("session resumption failed"),
            CloseReason::ProtocolError(what) => write!(f, "protocol error: {what}"),
            CloseReason::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What kind of problem a [`ModelEvent::Error`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A server message could not be parsed (bad JSON or shape); it was skipped.
    MalformedMessage,
    /// The server reported an error (OpenAI `error` event).
    Server,
    /// Input audio was dropped (buffer bound reached during a reconnect).
    InputDropped,
    /// The server sent a message type this client does not know; skipped.
    UnknownMessage,
    /// A reconnect could not resume the conversation; it goes on in a new
    /// session without the earlier context.
    ContextLost,
}

/// Events from a model session, in arrival order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelEvent {
    /// Model speech.
    Audio(AudioChunk),
    /// Incremental transcript of the caller.
    InputTranscript {
        /// The text delta.
        text: String,
        /// Whether the transcript of this utterance is final.
        finished: bool,
    },
    /// Incremental transcript of the model's speech.
    OutputTranscript {
        /// The text delta.
        text: String,
        /// Whether the transcript of this reply is final.
        finished: bool,
    },
    /// The model finished generating the current reply (its audio may still
    /// be playing on the caller's side).
    GenerationComplete,
    /// The model's turn is over.
    TurnComplete,
    /// The caller barged in: flush queued playback now.
    Interrupted,
    /// A user tool call.
    ToolCall(ToolCall),
    /// The model withdrew tool calls (an interruption invalidated them).
    ToolCallCancelled {
        /// The withdrawn calls.
        ids: Vec<ToolCallId>,
    },
    /// The built-in `end_call` tool: the conversation is over; hang up once
    /// the farewell has played.
    EndCall {
        /// The call id, if the caller wants to answer it.
        id: ToolCallId,
        /// The model's reason, if given.
        reason: Option<String>,
    },
    /// The built-in `transfer_call` tool.
    TransferCall {
        /// Answer with the transfer's outcome using this id.
        id: ToolCallId,
        /// Where to transfer: the name of one of the configured targets,
        /// as the model said it (untrusted: the application checks it).
        target: String,
        /// The number to dial, for a target that covers a range of numbers
        /// (as the model said it; untrusted).
        number: Option<String>,
        /// Why, if given.
        reason: Option<String>,
    },
    /// The server will end this connection soon; the client reconnects by
    /// itself where the provider supports resumption.
    GoingAway {
        /// Time left before the server closes, if it said.
        time_left: Option<Duration>,
    },
    /// The connection dropped unexpectedly (TCP reset, close 1011, no
    /// `goAway` first) and the client is resuming the session on a new
    /// connection with the last resumption handle (Gemini). Input is held
    /// meanwhile; [`ModelEvent::Resumed`] or [`ModelEvent::Closed`] follows
    /// within [`crate::SessionConfig::reconnect_budget`]. A reply the drop
    /// cut short was ended with [`ModelEvent::TurnComplete`] first.
    Reconnecting {
        /// How the old connection ended.
        reason: CloseReason,
    },
    /// The session was resumed on a new connection (after a `GoingAway` or
    /// a [`ModelEvent::Reconnecting`]).
    Resumed,
    /// The model's turn detection ended the caller's turn: a reply is due
    /// (OpenAI `input_audio_buffer.speech_stopped`; Gemini: the caller's
    /// input transcription finished while no reply was being generated).
    CallerTurnEnded,
    /// The server issued a new session resumption handle.
    ResumptionHandle(String),
    /// Token usage of one response (Gemini `usageMetadata`, OpenAI
    /// `response.done`): each report adds to the session's total.
    Usage(Usage),
    /// The session's audio so far as the provider bills it (GPT-Live
    /// `session.usage.updated`: a running total, not an increment; GPT-Live
    /// reports no tokens for the live session itself).
    AudioUsage {
        /// Cumulative audio duration.
        total: Duration,
    },
    /// Token usage of one response of the text model the session
    /// delegated to (GPT-Live Responses delegation: the nested
    /// `response.completed`'s `response.usage`): an increment, like
    /// [`ModelEvent::Usage`], but of the delegation's backend model; no
    /// audio/text split.
    DelegationUsage(Usage),
    /// The provider's current rate limits (sent when a response starts).
    RateLimits(Vec<RateLimit>),
    /// A non-fatal problem; the session continues.
    Error {
        /// What kind.
        kind: ErrorKind,
        /// Details (never contains the API key).
        message: String,
    },
    /// The session ended; always the last event.
    Closed {
        /// Why.
        reason: CloseReason,
        /// Whether the close handshake completed (code 1000 both ways).
        clean: bool,
    },
}
