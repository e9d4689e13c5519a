//! Session configuration, shared by every provider.
//!
//! Owns: [`SessionConfig`] and its parts, the secret [`ApiKey`] (never shown
//! by `Debug`, never in logs or errors), the [`RetryPolicy`] (default three
//! attempts with exponential backoff), and the per-call [`CallMetadata`]
//! (whose phone numbers are redacted in `Debug`). The tool declarations
//! ([`ToolSpec`], [`BuiltinTools`], [`TransferChoice`]) live in
//! [`crate::tools`] and are re-exported here.

use std::time::Duration;

use callbridge_redact::Secret;

use crate::error::Error;
use crate::format::AudioFormat;
use crate::tls::TlsRoots;
pub use crate::tools::{BuiltinTools, ToolSpec, TransferChoice};
use crate::tuning::OpenAiInput;
use crate::uplink::UplinkChunk;

/// An API key or token. `Debug` prints `ApiKey(<redacted>)`; there is no
/// `Display`. The value is only read when building the connection request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey(Secret<String>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(Secret::new(key.into()))
    }

    /// Reads the key from the environment variable `var`; `Ok(None)` when it
    /// is unset or empty.
    pub fn from_env(var: &'static str) -> Option<ApiKey> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| ApiKey::new(v.trim()))
    }

    /// Reads the key from `var`, failing with [`Error::MissingApiKey`].
    pub fn require_env(var: &'static str) -> Result<ApiKey, Error> {
        Self::from_env(var).ok_or(Error::MissingApiKey { var })
    }

    /// The secret, for the one place that puts it on the wire.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// When opening a session fails transiently, how often and how patiently to
/// try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (at least 1). Default 3.
    pub max_attempts: u32,
    /// Wait before the second attempt. Default 250 ms.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between attempts. Default 2 s.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): doubling
    /// from `initial_backoff`, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}

/// Whether and when the model speaks first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Greeting {
    /// The caller speaks first; the model waits for speech.
    #[default]
    CallerFirst,
    /// The model greets as soon as the session is open.
    OnOpen {
        /// The user-turn text that prompts the greeting.
        prompt: String,
    },
    /// The model greets when [`crate::ModelSession::start_greeting`] is
    /// called: open the session while the phone rings (pre-warming), start
    /// the greeting when the call is answered.
    OnRequest {
        /// The user-turn text that prompts the greeting.
        prompt: String,
    },
}

impl Greeting {
    /// The default prompt that makes a model greet the caller.
    pub const DEFAULT_PROMPT: &'static str =
        "The caller has just answered the phone. Greet them briefly and ask how you can help.";

    /// The greeting prompt, if the model speaks first.
    pub fn prompt(&self) -> Option<&str> {
        match self {
            Greeting::CallerFirst => None,
            Greeting::OnOpen { prompt } | Greeting::OnRequest { prompt } => Some(prompt),
        }
    }
}

/// Transcription of both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcription {
    /// Transcribe the caller (input transcript events).
    pub input: bool,
    /// Transcribe the model (output transcript events).
    pub output: bool,
    /// Transcription model, where the provider lets you pick one (OpenAI
    /// Realtime's `audio.input.transcription.model`; `None`:
    /// `gpt-4o-mini-transcribe`).
    pub model: Option<String>,
    /// BCP-47 language hint.
    pub language: Option<String>,
}

impl Default for Transcription {
    fn default() -> Self {
        Transcription {
            input: true,
            output: true,
            model: None,
            language: None,
        }
    }
}

/// VAD sensitivity, mapped to each provider's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sensitivity {
    /// The provider's default.
    #[default]
    Default,
    /// Reacts to quieter or shorter sounds.
    High,
    /// Needs clearer speech.
    Low,
}

/// Who decides when the caller's turn starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnDetection {
    /// The server's voice activity detection. The sensitivities and
    /// windows are Gemini's (`automaticActivityDetection`); OpenAI
    /// Realtime takes its own, [`SessionConfig::openai`], and only
    /// `interrupt_response` from here.
    Server {
        /// Start-of-speech sensitivity.
        start_sensitivity: Sensitivity,
        /// End-of-speech sensitivity.
        end_sensitivity: Sensitivity,
        /// Speech needed before a start is committed.
        prefix_padding: Duration,
        /// Silence needed before an end is committed.
        silence_duration: Duration,
        /// Whether caller speech cuts off the model's reply (barge-in).
        interrupt_response: bool,
    },
    /// The client signals activity with
    /// [`crate::ModelSession::activity_start`] / `activity_end`.
    Manual,
}

impl Default for TurnDetection {
    fn default() -> Self {
        TurnDetection::Server {
            start_sensitivity: Sensitivity::Default,
            end_sensitivity: Sensitivity::Default,
            prefix_padding: Duration::from_millis(20),
            silence_duration: Duration::from_millis(500),
            interrupt_response: true,
        }
    }
}

/// Everything a session needs. Build with `Default` and set fields:
///
/// ```
/// use callbridge_llm_bridge::{SessionConfig, Greeting};
/// let mut config = SessionConfig::default();
/// config.model = "gemini-3.8-live".into();
/// config.instructions = "You are a friendly receptionist.".into();
/// config.greeting = Greeting::OnRequest { prompt: Greeting::DEFAULT_PROMPT.into() };
/// assert_eq!(config.retry.max_attempts, 3);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// WebSocket endpoint (`wss://...` or a mock's `ws://127.0.0.1:port/...`);
    /// `None` uses the provider's public endpoint.
    pub endpoint: Option<String>,
    /// The API key; `None` connects without one (mocks, proxies that add it).
    pub api_key: Option<ApiKey>,
    /// Model id (Gemini without the `models/` prefix is accepted).
    pub model: String,
    /// Voice name; `None` is the provider's default.
    pub voice: Option<String>,
    /// System instructions.
    pub instructions: String,
    /// Whether the model speaks first.
    pub greeting: Greeting,
    /// User tools.
    pub tools: Vec<ToolSpec>,
    /// Built-in telephony tools.
    pub builtin_tools: BuiltinTools,
    /// The targets `transfer_call` may name (its `target` is an enum of
    /// their names). Empty (the default): `transfer_call` is not declared.
    /// The application still checks every transfer against its own list.
    pub transfer_targets: Vec<TransferChoice>,
    /// Transcription settings.
    pub transcription: Transcription,
    /// Turn detection.
    pub turn_detection: TurnDetection,
    /// OpenAI Realtime's input tuning (its server VAD or semantic VAD,
    /// noise reduction); the API's defaults by default. Other providers
    /// ignore it.
    pub openai: OpenAiInput,
    /// Format the caller of the trait sends (converted to the model's input).
    pub input_format: AudioFormat,
    /// How much caller audio goes into one message to the model (20, 40 or
    /// 60 ms): longer chunks mean fewer messages and TCP sends, and up to
    /// one chunk less one frame of added delay. See [`crate::uplink`].
    pub uplink: UplinkChunk,
    /// Output format requested from the model where it offers a choice
    /// (OpenAI: `Pcmu` or PCM 24 kHz). Gemini always sends PCM 24 kHz.
    pub output_format: AudioFormat,
    /// Bound on TCP + TLS + WebSocket upgrade, per attempt.
    pub connect_timeout: Duration,
    /// Bound on the wait for the server's setup confirmation, per attempt.
    pub setup_timeout: Duration,
    /// Bound on the close handshake.
    pub close_timeout: Duration,
    /// Retries for opening (and for resumption reconnects).
    pub retry: RetryPolicy,
    /// Capacity of the command queue (audio frames and control messages).
    pub command_capacity: usize,
    /// Capacity of the event queue.
    pub event_capacity: usize,
    /// Input audio kept while a resumption reconnect is in progress, and
    /// (Gemini) the caller audio kept until the server reports it in its
    /// session state, replayed on a transparent resume: at most this much
    /// of the latest, kept as 8 kHz 4-bit ADPCM (4 kB a second per session;
    /// more is dropped oldest first and `ErrorKind::InputDropped` says so
    /// on the resume). Default 10 s.
    pub max_buffered_input: Duration,
    /// Attempts and backoff for resuming a session whose connection dropped
    /// unexpectedly mid-call (Gemini, with a known resumption handle).
    /// `max_attempts: 0` turns it off: a drop then ends the session.
    /// Default two attempts, 200 ms then 1 s apart at most.
    pub reconnect: RetryPolicy,
    /// Bound on the whole mid-call reconnect (every attempt and backoff);
    /// the caller hears silence meanwhile. Default 6 s.
    pub reconnect_budget: Duration,
    /// Which certificate authorities a `wss://` endpoint's TLS trusts.
    /// Default: the system trust store ([`TlsRoots::System`]).
    pub tls_roots: TlsRoots,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            endpoint: None,
            api_key: None,
            model: String::new(),
            voice: None,
            instructions: String::new(),
            greeting: Greeting::CallerFirst,
            tools: Vec::new(),
            builtin_tools: BuiltinTools::default(),
            transfer_targets: Vec::new(),
            transcription: Transcription::default(),
            turn_detection: TurnDetection::default(),
            openai: OpenAiInput::default(),
            input_format: AudioFormat::PCM_16K,
            uplink: UplinkChunk::default(),
            output_format: AudioFormat::PCM_24K,
            connect_timeout: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            command_capacity: 256,
            event_capacity: 512,
            max_buffered_input: Duration::from_secs(10),
            reconnect: RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(1),
            },
            reconnect_budget: Duration::from_secs(6),
            tls_roots: TlsRoots::default(),
        }
    }
}

impl SessionConfig {
    /// Checks what would fail later.
    pub fn validate(&self) -> Result<(), Error> {
        if self.model.trim().is_empty() {
            return Err(Error::Config("model is empty"));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::Config("retry.max_attempts must be at least 1"));
        }
        if self.command_capacity == 0 || self.event_capacity == 0 {
            return Err(Error::Config("queue capacities must be at least 1"));
        }
        self.openai.validate()?;
        if let Some(m) = &self.transcription.model
            && !crate::tuning::is_model_name(m)
        {
            return Err(Error::Config(
                "transcription model must be 1-64 characters of [a-zA-Z0-9._-]",
            ));
        }
        for t in &self.tools {
            if t.name.is_empty()
                || t.name.len() > 64
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(Error::Config(
                    "tool names must be 1-64 characters of [a-zA-Z0-9_]",
                ));
            }
            if crate::tools::is_builtin(&t.name) {
                return Err(Error::Config("a user tool uses a built-in tool's name"));
            }
        }
        Ok(())
    }
}

/// A phone number or name that must not appear in logs: `Debug` shows only
/// the last two characters (callbridge-redact's [`Masked`](callbridge_redact::Masked)).
pub type Redacted = callbridge_redact::Masked<String>;

/// Per-call facts. `call_id` goes into the tracing span; `context` lines are
/// appended to the system instructions (`key: value`), so put there only
/// what the model may know. Caller and callee numbers are never sent to the
/// model unless placed in `context`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallMetadata {
    /// The call's id (SIP Call-ID or session id) for logs.
    pub call_id: String,
    /// Caller number (redacted in `Debug`).
    pub caller: Option<Redacted>,
    /// Called number (redacted in `Debug`).
    pub callee: Option<Redacted>,
    /// Facts for the model, appended to the instructions.
    pub context: Vec<(String, String)>,
}

impl CallMetadata {
    /// Metadata with just a call id.
    pub fn with_call_id(call_id: impl Into<String>) -> Self {
        CallMetadata {
            call_id: call_id.into(),
            ..Default::default()
        }
    }

    /// The system instructions with the context lines appended.
    pub fn instructions_with_context(&self, instructions: &str) -> String {
        if self.context.is_empty() {
            return instructions.to_owned();
        }
        let mut s = String::with_capacity(instructions.len() + 64);
        s.push_str(instructions);
        s.push_str("\n\nCall context:\n");
        for (k, v) in &self.context {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(v);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_debug_never_shows_the_secret() {
        let k = ApiKey::new("sk-very-secret");
        assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
        let c = SessionConfig {
            api_key: Some(k),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(250));
        assert_eq!(p.backoff(2), Duration::from_millis(500));
        assert_eq!(p.backoff(10), Duration::from_secs(2));
    }

    #[test]
    fn redacted_numbers_keep_only_two_digits() {
        let m = CallMetadata {
            call_id: "c1".into(),
            caller: Some(Redacted::new("+15551234567".into())),
            ..Default::default()
        };
        let d = format!("{m:?}");
        assert!(!d.contains("555123"));
        assert!(d.contains("***67"));
    }

    #[test]
    fn validate_rejects_empty_model_and_builtin_name_clash() {
        let c = SessionConfig::default();
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let mut c = SessionConfig {
            model: "m".into(),
            ..Default::default()
        };
        c.tools.push(ToolSpec {
            name: "end_call".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        });
        assert!(matches!(c.validate(), Err(Error::Config(_))));
    }
}
