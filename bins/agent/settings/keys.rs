//! Every configuration key, once: its dotted path, its TOML type and its
//! default. `agent.example.toml` documents each of them; the environment
//! variable of a key is derived from its path ([`env_name`]), so a key
//! added here has its variable. Nothing else names the set of keys: the
//! file check, the environment overrides, `check-config --list-env` and
//! the typed reads all walk [`KEYS`] (a test proves that validation reads
//! every key here and no other).

use std::collections::BTreeSet;

/// Prefix of every override variable.
pub const ENV_PREFIX: &str = "CALLBRIDGE_";

/// Environment variables holding secrets, which look like keys but are not.
pub const SECRET_VARS: &[&str] = &[
    "CALLBRIDGE_SIP_TRUNK_PASSWORD",
    callbridge_crm_store::PASSWORD_ENV,
];

/// A key's TOML type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (durations, addresses and choices are strings too).
    Text,
    /// An integer.
    Int,
    /// `true` or `false`.
    Flag,
    /// A list of strings (comma separated in the environment).
    List,
    /// A number (an integer is taken too).
    Float,
}

impl Kind {
    /// What a value of this type looks like, for messages.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Int => "an integer",
            Kind::Flag => "true or false",
            Kind::List => "a list of strings",
            Kind::Float => "a number",
        }
    }
}

/// A key's value when nobody sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preset {
    /// No value: the key is optional (lists: empty).
    Unset,
    /// A string.
    Text(&'static str),
    /// An integer.
    Int(i64),
    /// A boolean.
    Flag(bool),
    /// A number.
    Float(f64),
}

/// One key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted path (`sip.trunk.username`).
    pub path: &'static str,
    /// Its TOML type.
    pub kind: Kind,
    /// Its default.
    pub default: Preset,
}

const fn text(path: &'static str, default: &'static str) -> Key {
    Key {
        path,
        kind: Kind::Text,
        default: Preset::Text(default),
    }
}

const fn optional(path: &'static str) -> Key {
    Key {
        path,
        kind: Kind::Text,
        default: Preset::Unset,
    }
}

const fn int(path: &'static str, default: i64) -> Key {
    Key {
        path,
        kind: Kind::Int,
        default: Preset::Int(default),
    }
}

const fn flag(path: &'static str, default: bool) -> Key {
    Key {
        path,
        kind: Kind::Flag,
        default: Preset::Flag(default),
    }
}

const fn float(path: &'static str, default: f64) -> Key {
    Key {
        path,
        kind: Kind::Float,
        default: Preset::Float(default),
    }
}

const fn list(path: &'static str) -> Key {
    Key {
        path,
        kind: Kind::List,
        default: Preset::Unset,
    }
}

/// Every key, in the order of `agent.example.toml`. `[sip.trunk]`,
/// `[carrier.twilio]` and `[carrier.vonage]` are optional sections: their
/// defaults apply once the section is present.
pub const KEYS: &[Key] = &[
    text("sip.bind", "0.0.0.0:5060"),
    optional("sip.public_addr"),
    list("sip.allowed_peers"),
    text("sip.reject_unlisted", "forbidden"),
    text("sip.session_expires", "30m"),
    text("sip.min_se", "90s"),
    text("sip.min_se_floor", "90s"),
    optional("sip.tcp_bind"),
    optional("sip.tls_bind"),
    optional("sip.tls_cert"),
    optional("sip.tls_key"),
    optional("sip.tls_ca"),
    optional("sip.tls_client_cert"),
    optional("sip.tls_client_key"),
    int("sip.max_connections", 1024),
    int("sip.max_connections_per_ip", 16),
    text("sip.connection_idle_timeout", "10m"),
    flag("sip.udp_to_tcp", true),
    // --- issue 23 (prog) ---
    list("sip.keep_headers"),
    // --- end issue 23 (prog) ---
    // --- issue 20 (dns) ---
    list("sip.dns_servers"),
    // --- end issue 20 (dns) ---
    text("sip.trunk.registrar", ""),
    text("sip.trunk.username", ""),
    optional("sip.trunk.outbound_proxy"),
    text("sip.trunk.register_expires", "10m"),
    int("rtp.port_min", 20000),
    int("rtp.port_max", 20999),
    text("rtp.latch", "signalling-ip"),
    // trunk (issue 20): SRTP.
    text("rtp.srtp", "off"),
    int("media.engine_threads", 1),
    text("media.realtime_priority", "10"),
    int("media.admission_step", 100),
    int("calls.max_concurrent", 100),
    text("calls.no_speech_timeout", "30s"),
    text("calls.model_reply_timeout", "8s"),
    text("calls.max_duration", "30m"),
    text("calls.ring_timeout", "45s"),
    text("calls.rtp_inactivity", "30s"),
    text("calls.barge_in_after", "250ms"),
    text("calls.admission_wait", "2s"),
    text("calls.drain_timeout", "30s"),
    text("calls.on_model_failure", "answer-then-hangup"),
    optional("calls.fallback_clip"),
    // --- ops (issue 22): owners of inbound calls ---
    optional("calls.default_owner"),
    list("calls.inbound_owners"),
    // --- end ops ---
    optional("outbound.target"),
    text("outbound.from", "+15550100000"),
    text("model.provider", "gemini"),
    optional("model.endpoint"),
    text("model.model", ""),
    optional("model.voice"),
    optional("model.delegation_model"),
    optional("model.system_prompt"),
    optional("model.system_prompt_file"),
    text(
        "model.greeting",
        callbridge_llm_bridge::Greeting::DEFAULT_PROMPT,
    ),
    flag("model.tools", true),
    text("model.setup_timeout", "10s"),
    int("model.uplink_ms", 40),
    // [model.openai] (issue 18): OpenAI Realtime's input tuning; the
    // defaults are the API's own.
    text("model.openai.turn_detection", "server_vad"),
    float("model.openai.threshold", 0.5),
    int("model.openai.prefix_padding_ms", 300),
    int("model.openai.silence_duration_ms", 500),
    int("model.openai.idle_timeout_ms", 0),
    text("model.openai.eagerness", "auto"),
    text("model.openai.noise_reduction", "off"),
    text(
        "model.openai.transcription_model",
        callbridge_llm_bridge::openai::wire::DEFAULT_TRANSCRIPTION_MODEL,
    ),
    // [model.openai] ends.
    // --- deleg (issue 23): the other providers profiles may choose ---
    list("model.providers"),
    // --- end deleg ---
    list("transfer.targets"),
    // --- issue 23 (prog): routing profiles ([[profiles]] is read apart) ---
    optional("routing.default_profile"),
    text("routing.profiles_file", "profiles.json"),
    // --- end issue 23 (prog) ---
    text("amd.machine_policy", "hangup"),
    optional("amd.voicemail_prompt"),
    optional("amd.voicemail_file"),
    text("amd.unknown", "human"),
    text("amd.language", "en"),
    text("amd.no_speech", "4500ms"),
    text("amd.decision_timeout", "8s"),
    text("amd.human_max_greeting", "1500ms"),
    text("amd.human_silence", "800ms"),
    text("amd.human_quick_greeting", "600ms"),
    text("amd.human_quick_silence", "600ms"),
    text("amd.human_verdict_by", "1900ms"),
    text("amd.machine_speech", "2500ms"),
    text("amd.greeting_end_silence", "2s"),
    text("amd.after_beep", "1s"),
    int("amd.machine_words", 9),
    int("amd.human_max_words", 3),
    // [webhooks] (issue 23: call events out)
    list("webhooks.urls"),
    optional("webhooks.secret_env"),
    list("webhooks.events"),
    text("webhooks.timeout", "10s"),
    text("webhooks.retry_initial", "1s"),
    text("webhooks.retry_max", "5m"),
    text("webhooks.give_up_after", "24h"),
    text("webhooks.retention", "7d"),
    // end [webhooks]
    text("store.database", "callbridge.db"),
    optional("store.url"),
    optional("store.node"),
    text("store.recordings_dir", "recordings"),
    optional("store.spool_dir"),
    text("store.synchronous", "normal"),
    text("store.commit_window", "10ms"),
    // --- ops (issue 22): post-call summaries ---
    flag("summary.enabled", true),
    optional("summary.provider"),
    optional("summary.model"),
    optional("summary.endpoint"),
    // --- end ops ---
    // --- ops (issue 22): retention ---
    text("retention.recordings", "off"),
    text("retention.transcripts", "off"),
    text("retention.sessions", "off"),
    // --- end ops ---
    flag("files.group_readable", false),
    text("tls.roots", "system"),
    text("http.bind", "127.0.0.1:8080"),
    optional("http.public_bind"),
    optional("http.metrics_bind"),
    text("http.header_read_timeout", "10s"),
    text("http.body_read_timeout", "10s"),
    text("http.idle_timeout", "20s"),
    int("http.max_connections", 1024),
    int("http.max_connections_per_ip", 32),
    // issue 23: GET /api/calls/{id}/listen
    flag("http.listen", false),
    text("log.format", "text"),
    text("log.level", "info"),
    flag("carrier.twilio.enabled", false),
    text("carrier.twilio.public_url", ""),
    flag("carrier.twilio.verify_signatures", true),
    text("carrier.twilio.api_base", "https://api.twilio.com"),
    int("carrier.twilio.stream_token_ttl_s", 30),
    flag("carrier.vonage.enabled", false),
    text("carrier.vonage.public_url", ""),
    flag("carrier.vonage.verify_signatures", true),
    text("carrier.vonage.api_base", "https://api.nexmo.com"),
    int("carrier.vonage.stream_token_ttl_s", 30),
];

/// The key at dotted `path`.
pub fn key(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Whether `path` is a section (`sip`, `sip.trunk`, `carrier`).
pub fn is_section(path: &str) -> bool {
    KEYS.iter().any(|k| {
        k.path
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The names directly inside section `path` (`""`: the sections).
pub fn children(path: &str) -> BTreeSet<&'static str> {
    KEYS.iter()
        .filter_map(|k| {
            let rest = if path.is_empty() {
                k.path
            } else {
                k.path.strip_prefix(path)?.strip_prefix('.')?
            };
            rest.split('.').next()
        })
        .collect()
}

/// The variable that overrides dotted key `key`.
pub fn env_name(key: &str) -> String {
    let mut s = String::from(ENV_PREFIX);
    s.extend(key.chars().map(|c| match c {
        '.' | '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
    s
}

/// Every override variable, with its dotted key.
pub fn env_keys() -> Vec<(String, String)> {
    KEYS.iter()
        .map(|k| (env_name(k.path), k.path.to_owned()))
        .collect()
}
