//! The configuration file as written: `agent.example.toml` is the contract.
//!
//! Loading is three steps. The file is parsed as TOML and every key is
//! checked against the key tree of [`RawConfig`] (unknown keys and values
//! of the wrong TOML type are errors naming the key). Then environment
//! variables `CALLBRIDGE_<SECTION>_<KEY>` override keys; the list of keys,
//! and so of variables, is derived from [`RawConfig::key_tree`], which
//! builds every field (a struct literal, so a new field cannot be added
//! without it, and with it gets its variable). Finally the merged tree is
//! deserialized into [`RawConfig`]; [`crate::settings`] turns that into
//! typed settings. Secrets are not keys: they come from the environment
//! only (see [`crate::settings::Secrets`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// Prefix of every override variable.
pub const ENV_PREFIX: &str = "CALLBRIDGE_";

/// Environment variables holding secrets, which look like keys but are not.
pub const SECRET_VARS: &[&str] = &["CALLBRIDGE_SIP_TRUNK_PASSWORD"];

/// Why a configuration cannot be used. Every message names the key (or
/// variable), the value and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}: not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key that the configuration does not have.
    #[error("unknown key {key}{origin}: {hint}")]
    UnknownKey {
        /// Dotted path.
        key: String,
        /// Where it was found (` in FILE` or ` from VAR`).
        origin: String,
        /// What to do about it.
        hint: String,
    },
    /// A value that does not fit its key.
    #[error("{key}{origin} = {value}: expected {expected}")]
    Invalid {
        /// Dotted path.
        key: String,
        /// ` (from VAR)` when an environment variable set it.
        origin: String,
        /// The value as written (TOML notation).
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A key that must be set is not.
    #[error("{key} is missing: {expected}")]
    Missing {
        /// Dotted path.
        key: String,
        /// Why it is needed and what it takes.
        expected: String,
    },
    /// A secret the configuration needs is not in the environment.
    #[error("{var} is not set: {why}")]
    MissingSecret {
        /// The variable.
        var: &'static str,
        /// Which setting needs it.
        why: String,
    },
    /// A secret in the environment that cannot be used (the message
    /// never repeats the secret).
    #[error("{var} is not usable: {why}")]
    BadSecret {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// `[sip]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSip {
    /// SIP UDP bind address.
    pub bind: String,
    /// The address put in SDP and Contact.
    pub public_addr: Option<String>,
    /// Allowed peer networks (CIDR).
    pub allowed_peers: Vec<String>,
    /// `forbidden` or `drop`.
    pub reject_unlisted: String,
    /// The optional trunk.
    pub trunk: Option<RawTrunk>,
}

impl Default for RawSip {
    fn default() -> Self {
        RawSip {
            bind: "0.0.0.0:5060".into(),
            public_addr: None,
            allowed_peers: Vec::new(),
            reject_unlisted: "forbidden".into(),
            trunk: None,
        }
    }
}

/// `[sip.trunk]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTrunk {
    /// The registrar's SIP URI.
    pub registrar: String,
    /// Digest user name (the password comes from the environment).
    pub username: String,
    /// Where REGISTER and outbound INVITEs go (host:port).
    pub outbound_proxy: Option<String>,
    /// Requested registration lifetime.
    pub register_expires: Option<String>,
}

/// `[rtp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRtp {
    /// Lowest media port.
    pub port_min: i64,
    /// Highest media port.
    pub port_max: i64,
    /// Which sources other than the SDP address RTP may latch to:
    /// `signalling-ip`, `allowed-peers` or `strict`.
    pub latch: String,
}

impl Default for RawRtp {
    fn default() -> Self {
        RawRtp {
            port_min: 20000,
            port_max: 20999,
            latch: "signalling-ip".into(),
        }
    }
}

/// `[calls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCalls {
    /// Most calls at once.
    pub max_concurrent: i64,
    /// No caller speech for this long ends the call.
    pub no_speech_timeout: String,
    /// The model owing a reply (caller's turn over, or the greeting) and
    /// silent for this long ends the call as a model failure; `off`: never.
    pub model_reply_timeout: String,
    /// Longest call.
    pub max_duration: String,
    /// How long an outbound call may ring.
    pub ring_timeout: String,
    /// No RTP for this long ends the call.
    pub rtp_inactivity: String,
    /// Graceful shutdown drain.
    pub drain_timeout: String,
    /// `answer-then-hangup` or `reject`.
    pub on_model_failure: String,
    /// WAV played before hanging up when the model fails (None: built in).
    pub fallback_clip: Option<String>,
}

impl Default for RawCalls {
    fn default() -> Self {
        RawCalls {
            max_concurrent: 100,
            no_speech_timeout: "30s".into(),
            model_reply_timeout: "8s".into(),
            max_duration: "30m".into(),
            ring_timeout: "45s".into(),
            rtp_inactivity: "30s".into(),
            drain_timeout: "30s".into(),
            on_model_failure: "answer-then-hangup".into(),
            fallback_clip: None,
        }
    }
}

/// `[outbound]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutbound {
    /// Where outbound INVITEs go.
    pub target: Option<String>,
    /// Default caller id (E.164).
    pub from: String,
}

impl Default for RawOutbound {
    fn default() -> Self {
        RawOutbound {
            target: None,
            from: "+15550100000".into(),
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawModel {
    /// `gemini`, `openai` or `mock`.
    pub provider: String,
    /// WebSocket endpoint.
    pub endpoint: Option<String>,
    /// Model id; the provider's default when empty.
    pub model: String,
    /// Voice name.
    pub voice: Option<String>,
    /// Inline system prompt.
    pub system_prompt: Option<String>,
    /// System prompt file.
    pub system_prompt_file: Option<String>,
    /// What the model is asked to say when a call is answered.
    pub greeting: String,
    /// Built-in end/transfer tools.
    pub tools: bool,
    /// How long opening the model session may take.
    pub setup_timeout: String,
}

impl Default for RawModel {
    fn default() -> Self {
        RawModel {
            provider: "gemini".into(),
            endpoint: None,
            model: String::new(),
            voice: None,
            system_prompt: None,
            system_prompt_file: None,
            greeting: callbridge_llm_bridge::Greeting::DEFAULT_PROMPT.into(),
            tools: true,
            setup_timeout: "10s".into(),
        }
    }
}

/// `[transfer]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTransfer {
    /// Where the model's tools may send a call, `name=target` each (SIP
    /// URI, E.164 number, or E.164 prefix ending in `*`); empty: nowhere.
    pub targets: Vec<String>,
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// SQLite file.
    pub database: String,
    /// Recordings directory.
    pub recordings_dir: String,
    /// Where the store writer journals writes the database cannot take
    /// (unset: `spool` beside the database).
    pub spool_dir: Option<String>,
    /// SQLite `synchronous`: `normal` or `full`.
    pub synchronous: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            database: "callbridge.db".into(),
            recordings_dir: "recordings".into(),
            spool_dir: None,
            synchronous: "normal".into(),
        }
    }
}

/// `[files]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFiles {
    /// Files 0640 and directories 0750 instead of 0600 / 0700.
    pub group_readable: bool,
}

/// `[http]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// HTTP API bind address (the admin API; everything when the other
    /// two are not set).
    pub bind: String,
    /// Carrier webhooks and media WebSockets on a listener of their own.
    pub public_bind: Option<String>,
    /// `/metrics` on a listener of its own.
    pub metrics_bind: Option<String>,
    /// A request head must be complete this long after its first byte.
    pub header_read_timeout: String,
    /// A request body must be complete this long after its head.
    pub body_read_timeout: String,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: String,
    /// Most connections open at once, per listener.
    pub max_connections: i64,
    /// Most connections open at once from one client address, per listener.
    pub max_connections_per_ip: i64,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            bind: "127.0.0.1:8080".into(),
            public_bind: None,
            metrics_bind: None,
            header_read_timeout: "10s".into(),
            body_read_timeout: "10s".into(),
            idle_timeout: "20s".into(),
            max_connections: 1024,
            max_connections_per_ip: 32,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `text` or `json`.
    pub format: String,
    /// Level or filter directive.
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// The whole file. Absent keys take the defaults above.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[sip]`.
    pub sip: RawSip,
    /// `[rtp]`.
    pub rtp: RawRtp,
    /// `[calls]`.
    pub calls: RawCalls,
    /// `[outbound]`.
    pub outbound: RawOutbound,
    /// `[model]`.
    pub model: RawModel,
    /// `[transfer]`.
    pub transfer: RawTransfer,
    /// `[store]`.
    pub store: RawStore,
    /// `[files]`.
    pub files: RawFiles,
    /// `[http]`.
    pub http: RawHttp,
    /// `[log]`.
    pub log: RawLog,
    /// `[carrier.twilio]`, `[carrier.vonage]`.
    pub carrier: crate::http::carrier_config::RawCarrier,
}

/// Which override variable set each key (dotted path -> variable name).
pub type Origins = BTreeMap<String, String>;

impl RawConfig {
    /// Every key with a value of its type: the key tree that the schema
    /// check and the environment overrides walk. Struct literals without
    /// `..Default::default()`, so adding a field means adding it here.
    pub fn key_tree() -> Table {
        let s = || Some(String::new());
        let full = RawConfig {
            sip: RawSip {
                bind: String::new(),
                public_addr: s(),
                allowed_peers: Vec::new(),
                reject_unlisted: String::new(),
                trunk: Some(RawTrunk {
                    registrar: String::new(),
                    username: String::new(),
                    outbound_proxy: s(),
                    register_expires: s(),
                }),
            },
            rtp: RawRtp {
                port_min: 0,
                port_max: 0,
                latch: String::new(),
            },
            calls: RawCalls {
                max_concurrent: 0,
                no_speech_timeout: String::new(),
                model_reply_timeout: String::new(),
                max_duration: String::new(),
                ring_timeout: String::new(),
                rtp_inactivity: String::new(),
                drain_timeout: String::new(),
                on_model_failure: String::new(),
                fallback_clip: s(),
            },
            outbound: RawOutbound {
                target: s(),
                from: String::new(),
            },
            model: RawModel {
                provider: String::new(),
                endpoint: s(),
                model: String::new(),
                voice: s(),
                system_prompt: s(),
                system_prompt_file: s(),
                greeting: String::new(),
                tools: false,
                setup_timeout: String::new(),
            },
            transfer: RawTransfer {
                targets: Vec::new(),
            },
            store: RawStore {
                database: String::new(),
                recordings_dir: String::new(),
                spool_dir: s(),
                synchronous: String::new(),
            },
            files: RawFiles {
                group_readable: false,
            },
            http: RawHttp {
                bind: String::new(),
                public_bind: s(),
                metrics_bind: s(),
                header_read_timeout: String::new(),
                body_read_timeout: String::new(),
                idle_timeout: String::new(),
                max_connections: 0,
                max_connections_per_ip: 0,
            },
            log: RawLog {
                format: String::new(),
                level: String::new(),
            },
            carrier: crate::http::carrier_config::RawCarrier::key_tree(),
        };
        #[allow(
            clippy::expect_used,
            reason = "invariant: RawConfig is plain strings, integers, booleans and tables, which always serialize"
        )]
        Table::try_from(&full).expect("the key tree serializes")
    }

    /// Parses `text` (read from `path`), checks it against the key tree,
    /// applies the overrides found in `env` and deserializes the result.
    pub fn load(
        path: &Path,
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(RawConfig, Origins), ConfigError> {
        let mut table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
        let tree = Self::key_tree();
        check_against(&table, &tree, "", &format!(" in {}", path.display()))?;
        let origins = apply_env(&mut table, &tree, env)?;
        let raw = RawConfig::deserialize(table).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        Ok((raw, origins))
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list of strings",
        Value::Table(_) => "a table",
    }
}

/// Every key of `table` must exist in `tree` with a value of the same TOML
/// type (lists: of strings).
fn check_against(
    table: &Table,
    tree: &Table,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = join(prefix, k);
        let Some(expected) = tree.get(k) else {
            let hint = if key == "sip.trunk.password" {
                "the trunk password is a secret, read only from CALLBRIDGE_SIP_TRUNK_PASSWORD"
                    .into()
            } else if prefix.is_empty() {
                format!(
                    "sections are {}",
                    tree.keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!(
                    "[{prefix}] has {}",
                    tree.keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(ConfigError::UnknownKey {
                key,
                origin: origin.to_owned(),
                hint,
            });
        };
        let same = std::mem::discriminant(v) == std::mem::discriminant(expected);
        let strings = match v {
            Value::Array(a) => a.iter().all(Value::is_str),
            _ => true,
        };
        if !same || !strings {
            return Err(ConfigError::Invalid {
                key,
                origin: String::new(),
                value: v.to_string(),
                expected: type_name(expected).into(),
            });
        }
        if let (Value::Table(t), Value::Table(e)) = (v, expected) {
            check_against(t, e, &key, origin)?;
        }
    }
    Ok(())
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

/// Every leaf key of `tree` (dotted), with its sample value.
fn leaves<'a>(tree: &'a Table, prefix: &str, out: &mut Vec<(String, &'a Value)>) {
    for (k, v) in tree {
        let key = join(prefix, k);
        match v {
            Value::Table(t) => leaves(t, &key, out),
            v => out.push((key, v)),
        }
    }
}

/// Every override variable, with its dotted key.
pub fn env_keys() -> Vec<(String, String)> {
    let tree = RawConfig::key_tree();
    let mut out = Vec::new();
    leaves(&tree, "", &mut out);
    out.into_iter().map(|(k, _)| (env_name(&k), k)).collect()
}

fn apply_env(
    table: &mut Table,
    tree: &Table,
    env: &BTreeMap<String, String>,
) -> Result<Origins, ConfigError> {
    let mut keys = Vec::new();
    leaves(tree, "", &mut keys);
    let mut origins = Origins::new();
    for (key, sample) in &keys {
        let var = env_name(key);
        let Some(raw) = env.get(&var) else { continue };
        let invalid = |expected: &str| ConfigError::Invalid {
            key: key.clone(),
            origin: format!(" (from {var})"),
            value: format!("{raw:?}"),
            expected: expected.into(),
        };
        let value = match sample {
            Value::String(_) => Value::String(raw.clone()),
            Value::Integer(_) => {
                Value::Integer(raw.trim().parse().map_err(|_| invalid("an integer"))?)
            }
            Value::Boolean(_) => Value::Boolean(match raw.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(invalid("true or false")),
            }),
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            other => return Err(invalid(type_name(other))),
        };
        set_path(table, key, value);
        origins.insert(key.clone(), var);
    }
    // A variable in one of our sections that names no key is a typo.
    let sections: Vec<String> = tree.keys().map(|s| env_name(s) + "_").collect();
    for var in env.keys() {
        let ours = sections.iter().any(|s| var.starts_with(s.as_str()));
        let known =
            keys.iter().any(|(k, _)| env_name(k) == *var) || SECRET_VARS.contains(&var.as_str());
        if ours && !known {
            return Err(ConfigError::UnknownKey {
                key: var.clone(),
                origin: " in the environment".into(),
                hint: "no configuration key has this variable (run `agent check-config --help` for the list)".into(),
            });
        }
    }
    Ok(origins)
}

fn set_path(table: &mut Table, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(inner) = entry else { return };
        t = inner;
    }
    t.insert(last.to_owned(), value);
}

#[cfg(test)]
mod tests;
