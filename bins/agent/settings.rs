//! Validated, typed settings built from a [`RawConfig`]: every key parsed
//! into its type with an error naming the key, the value (and the variable
//! that set it) and what was expected; the secrets from the environment.
//! [`mapping`] turns them into the crates' configurations.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use callbridge_rtp::latch::LatchPolicy;
use callbridge_session::bridge::fallback::FallbackClip;
use callbridge_session::lifecycle::ModelFailurePolicy;
use callbridge_sip::filter::Rejection;
use callbridge_sip::{Host, Uri};
use ipnet::IpNet;

use crate::config::{ConfigError, Origins, RawConfig};

/// The model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Gemini Live (`GEMINI_API_KEY`).
    Gemini,
    /// OpenAI Realtime (`OPENAI_API_KEY`).
    OpenAi,
    /// The built-in mock Gemini server on loopback.
    Mock,
}

impl Provider {
    /// The name used in the configuration, the store and `/api/health`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gemini => "gemini",
            Provider::OpenAi => "openai",
            Provider::Mock => "mock",
        }
    }

    fn default_model(self) -> &'static str {
        match self {
            Provider::Gemini => "gemini-3.1-flash-live-preview",
            Provider::OpenAi => "gpt-realtime",
            Provider::Mock => "mock-model",
        }
    }

    /// The variable holding this provider's key, if it needs one.
    pub fn key_var(self) -> Option<&'static str> {
        match self {
            Provider::Gemini => Some("GEMINI_API_KEY"),
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::Mock => None,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `store.synchronous`: how hard SQLite makes each commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// `NORMAL` in WAL mode: a commit survives the process dying (a crash,
    /// SIGKILL); the last commits before a power loss or OS crash may be
    /// lost, never the file's consistency. No fsync per write.
    Normal,
    /// `FULL`: the WAL is fsynced on every commit, so a commit also
    /// survives a power loss, at one fsync per write.
    Full,
}

/// `[sip.trunk]`, validated.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// The registrar's URI (REGISTER Request-URI).
    pub registrar: String,
    /// Its host, for Request-URIs of outbound calls.
    pub domain: String,
    /// Where REGISTER (and outbound INVITEs by default) are sent.
    pub target: SocketAddr,
    /// Digest user name.
    pub username: String,
    /// Requested registration lifetime.
    pub expires: Duration,
}

/// Everything `agent run` needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SIP bind address (port 0 picks one).
    pub sip_bind: SocketAddr,
    /// The address written in SDP and Contact.
    pub public_ip: IpAddr,
    /// Peers allowed to send SIP (empty: everyone).
    pub allowed_peers: Vec<IpNet>,
    /// What unlisted peers get.
    pub reject_unlisted: Rejection,
    /// The trunk, if any.
    pub trunk: Option<Trunk>,
    /// RTP ports.
    pub rtp_ports: RangeInclusive<u16>,
    /// Which sources other than the SDP address RTP may latch to.
    pub rtp_latch: LatchPolicy,
    /// Most calls at once.
    pub max_concurrent: usize,
    /// No-speech timeout.
    pub no_speech_timeout: Duration,
    /// How long the model may stay silent when it owes a reply; `None`:
    /// no bound (`off`).
    pub model_reply_timeout: Option<Duration>,
    /// Longest call.
    pub max_duration: Duration,
    /// Outbound ring timeout.
    pub ring_timeout: Duration,
    /// RTP inactivity timeout.
    pub rtp_inactivity: Duration,
    /// Graceful shutdown drain.
    pub drain_timeout: Duration,
    /// Inbound model failure before the answer.
    pub on_model_failure: ModelFailurePolicy,
    /// The clip played before hanging up on a model failure (checked
    /// here: readable mono 16-bit 8 kHz WAV); `None` plays the built-in one.
    pub fallback_clip: Option<PathBuf>,
    /// Where outbound INVITEs go.
    pub outbound_target: Option<SocketAddr>,
    /// Default caller id.
    pub outbound_from: String,
    /// Model provider.
    pub provider: Provider,
    /// WebSocket endpoint override.
    pub endpoint: Option<String>,
    /// Model id.
    pub model: String,
    /// Voice.
    pub voice: Option<String>,
    /// System prompt text.
    pub system_prompt: String,
    /// Greeting prompt.
    pub greeting: String,
    /// Built-in tools on/off.
    pub tools: bool,
    /// Where the model's tools may send a call (`[transfer] targets`).
    pub transfer_targets: callbridge_session::dial_targets::DialTargets,
    /// Model setup bound.
    pub setup_timeout: Duration,
    /// SQLite file.
    pub database: PathBuf,
    /// Recordings directory.
    pub recordings_dir: PathBuf,
    /// SQLite durability of each commit.
    pub synchronous: Synchronous,
    /// Who may read the files and directories the agent creates
    /// (`files.group_readable`).
    pub file_access: callbridge_files::Access,
    /// The store writer's journal directory (`store.spool_dir`; default
    /// `spool` beside the database).
    pub spool_dir: PathBuf,
    /// HTTP bind address (the admin API, and everything not bound apart).
    pub http_bind: SocketAddr,
    /// The carrier webhooks' and media sockets' own listener, if apart.
    pub http_public_bind: Option<SocketAddr>,
    /// `/metrics`'s own listener, if apart.
    pub http_metrics_bind: Option<SocketAddr>,
    /// Timeouts and connection caps of every HTTP listener.
    pub http_limits: crate::http::Limits,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive (as configured; see [`crate::logging`]).
    pub log_level: String,
    /// `[carrier.*]` as written (validated with its secrets by [`Secrets::from_env`]).
    pub carrier: crate::http::carrier_config::RawCarrier,
}

/// Secrets, from the environment only. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The model's API key (none for `mock`).
    pub model_key: Option<String>,
    /// The trunk's digest password.
    pub trunk_password: Option<String>,
    /// The enabled carriers with their secrets.
    pub carrier: crate::http::carrier_config::CarrierSettings,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("model_key", &self.model_key.as_ref().map(|_| "<redacted>"))
            .field(
                "trunk_password",
                &self.trunk_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Secrets {
    /// Reads the secrets `settings` needs from `env`.
    pub fn from_env(
        settings: &Settings,
        env: &BTreeMap<String, String>,
    ) -> Result<Secrets, ConfigError> {
        let get = |v: &str| {
            env.get(v)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let model_key = match settings.provider.key_var() {
            None => None,
            Some(var) => Some(get(var).ok_or_else(|| ConfigError::MissingSecret {
                var,
                why: format!(
                    "model.provider = \"{}\" needs its API key",
                    settings.provider.name()
                ),
            })?),
        };
        let trunk_password = match &settings.trunk {
            None => None,
            Some(_) => Some(get("CALLBRIDGE_SIP_TRUNK_PASSWORD").ok_or(
                ConfigError::MissingSecret {
                    var: "CALLBRIDGE_SIP_TRUNK_PASSWORD",
                    why: "[sip.trunk] is configured and registers with a digest password".into(),
                },
            )?),
        };
        Ok(Secrets {
            model_key,
            trunk_password,
            carrier: crate::http::carrier_config::CarrierSettings::load(&settings.carrier, env)?,
        })
    }
}

/// Builds error values that name the key and where its value came from.
struct Check<'a> {
    origins: &'a Origins,
}

impl Check<'_> {
    fn invalid(&self, key: &str, value: impl std::fmt::Display, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self
                .origins
                .get(key)
                .map(|v| format!(" (from {v})"))
                .unwrap_or_default(),
            value: value.to_string(),
            expected: expected.to_owned(),
        }
    }

    fn socket(&self, key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
        v.trim().parse().map_err(|_| {
            self.invalid(
                key,
                format!("{v:?}"),
                "ip:port (e.g. \"0.0.0.0:5060\" or \"[::1]:5060\")",
            )
        })
    }

    fn duration(&self, key: &str, v: &str) -> Result<Duration, ConfigError> {
        let d = humantime_serde::re::humantime::parse_duration(v.trim()).map_err(|_| {
            self.invalid(
                key,
                format!("{v:?}"),
                "a duration like \"30s\", \"5m\", \"250ms\"",
            )
        })?;
        if d.is_zero() {
            return Err(self.invalid(key, format!("{v:?}"), "a duration above zero"));
        }
        Ok(d)
    }

    fn port(&self, key: &str, v: i64) -> Result<u16, ConfigError> {
        u16::try_from(v)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| self.invalid(key, v, "a port number from 1 to 65535"))
    }

    fn choice<T: Copy>(&self, key: &str, v: &str, options: &[(&str, T)]) -> Result<T, ConfigError> {
        options
            .iter()
            .find(|(name, _)| *name == v.trim())
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.invalid(
                    key,
                    format!("{v:?}"),
                    &format!("one of {}", names.join(", ")),
                )
            })
    }
}

/// `host:port` (port 5060 when absent), resolved.
fn resolve(hostport: &str) -> Option<SocketAddr> {
    if let Ok(a) = hostport.parse() {
        return Some(a);
    }
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:5060")
    };
    with_port.to_socket_addrs().ok()?.next()
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Domain(d) => String::from_utf8_lossy(d).into_owned(),
        Host::Ipv4(a) => a.to_string(),
        Host::Ipv6(a) => format!("[{a}]"),
    }
}

impl Settings {
    /// Reads, checks, overrides from `env` and validates the file at `path`.
    pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (raw, origins) = RawConfig::load(path, &text, env)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Settings::validate(&raw, &origins, base)
    }

    /// Validates a raw configuration; relative paths in it are relative to
    /// `base` (the file's directory).
    pub fn validate(
        raw: &RawConfig,
        origins: &Origins,
        base: &Path,
    ) -> Result<Settings, ConfigError> {
        let c = Check { origins };
        let sip_bind = c.socket("sip.bind", &raw.sip.bind)?;
        let public_ip = match &raw.sip.public_addr {
            Some(p) => p
                .trim()
                .parse::<IpAddr>()
                .ok()
                .filter(|ip| !ip.is_unspecified())
                .ok_or_else(|| {
                    c.invalid(
                        "sip.public_addr",
                        format!("{p:?}"),
                        "an IP address peers can reach (not a wildcard)",
                    )
                })?,
            None if sip_bind.ip().is_unspecified() => {
                return Err(ConfigError::Missing {
                    key: "sip.public_addr".into(),
                    expected: format!(
                        "an IP address for SDP and Contact, required because sip.bind = \"{sip_bind}\" is a wildcard address"
                    ),
                });
            }
            None => sip_bind.ip(),
        };
        let allowed_peers = raw
            .sip
            .allowed_peers
            .iter()
            .map(|n| {
                n.trim()
                    .parse::<IpNet>()
                    .or_else(|_| n.trim().parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        c.invalid(
                            "sip.allowed_peers",
                            format!("{n:?}"),
                            "a network in CIDR notation (\"10.0.0.0/8\") or an IP address",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reject_unlisted = c.choice(
            "sip.reject_unlisted",
            &raw.sip.reject_unlisted,
            &[
                ("forbidden", Rejection::Forbidden),
                ("drop", Rejection::Drop),
            ],
        )?;
        let trunk = match &raw.sip.trunk {
            None => None,
            Some(t) => {
                if t.registrar.trim().is_empty() {
                    return Err(ConfigError::Missing {
                        key: "sip.trunk.registrar".into(),
                        expected: "the registrar's SIP URI (\"sip:trunk.example.net\") when [sip.trunk] is present".into(),
                    });
                }
                if t.username.trim().is_empty() {
                    return Err(ConfigError::Missing {
                        key: "sip.trunk.username".into(),
                        expected: "the digest user name when [sip.trunk] is present".into(),
                    });
                }
                let bad_uri = || {
                    c.invalid(
                        "sip.trunk.registrar",
                        format!("{:?}", t.registrar),
                        "a SIP URI like \"sip:trunk.example.net\"",
                    )
                };
                let uri = Uri::parse(&Bytes::from(t.registrar.trim().to_owned()))
                    .map_err(|_| bad_uri())?;
                let sip = uri.as_sip().ok_or_else(bad_uri)?;
                let domain = host_text(sip.host());
                let target = match &t.outbound_proxy {
                    Some(p) => resolve(p.trim()).ok_or_else(|| {
                        c.invalid(
                            "sip.trunk.outbound_proxy",
                            format!("{p:?}"),
                            "host:port that resolves",
                        )
                    })?,
                    None => {
                        let hp = match sip.port() {
                            Some(port) => format!("{domain}:{port}"),
                            None => domain.clone(),
                        };
                        resolve(hp.trim_start_matches('[').replace("]:", ":").as_str())
                            .or_else(|| resolve(&hp))
                            .ok_or_else(|| {
                                c.invalid(
                                    "sip.trunk.registrar",
                                    format!("{:?}", t.registrar),
                                    "a SIP URI whose host resolves",
                                )
                            })?
                    }
                };
                let expires = match &t.register_expires {
                    Some(e) => c.duration("sip.trunk.register_expires", e)?,
                    None => Duration::from_secs(600),
                };
                Some(Trunk {
                    registrar: t.registrar.trim().to_owned(),
                    domain,
                    target,
                    username: t.username.trim().to_owned(),
                    expires,
                })
            }
        };
        let port_min = c.port("rtp.port_min", raw.rtp.port_min)?;
        let port_max = c.port("rtp.port_max", raw.rtp.port_max)?;
        if port_max <= port_min {
            return Err(c.invalid(
                "rtp.port_max",
                port_max,
                &format!("a port above rtp.port_min = {port_min} (a range of at least two ports)"),
            ));
        }
        let max_concurrent = usize::try_from(raw.calls.max_concurrent)
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                c.invalid(
                    "calls.max_concurrent",
                    raw.calls.max_concurrent,
                    "a number from 1 to 10000",
                )
            })?;
        let rtp_ports = port_min..=port_max;
        let rtp_latch = c.choice(
            "rtp.latch",
            &raw.rtp.latch,
            &LatchPolicy::ALL.map(|p| (p.as_str(), p)),
        )?;
        // One even port per call (RTP, RFC 3550 section 11).
        let ports = usize::from(port_max / 2) + 1 - usize::from(port_min.div_ceil(2));
        if ports < max_concurrent {
            return Err(c.invalid(
                "calls.max_concurrent",
                max_concurrent,
                &format!(
                    "at most {ports} (one even RTP port per call: rtp.port_min = {port_min} to rtp.port_max = {port_max} has {ports})"
                ),
            ));
        }
        let on_model_failure = c.choice(
            "calls.on_model_failure",
            &raw.calls.on_model_failure,
            &[
                ("answer-then-hangup", ModelFailurePolicy::AnswerThenEnd),
                (
                    "reject",
                    ModelFailurePolicy::Reject503 {
                        retry_after: Some(Duration::from_secs(30)),
                    },
                ),
            ],
        )?;
        let fallback_clip = match raw.calls.fallback_clip.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => {
                let path = base.join(v);
                if let Err(e) = FallbackClip::load(&path) {
                    return Err(c.invalid(
                        "calls.fallback_clip",
                        format!("{v:?}"),
                        &format!("a mono 16-bit PCM WAV file at 8000 Hz, at most 30 s ({e})"),
                    ));
                }
                Some(path)
            }
        };
        let outbound_target = match &raw.outbound.target {
            Some(t) => Some(resolve(t.trim()).ok_or_else(|| {
                c.invalid(
                    "outbound.target",
                    format!("{t:?}"),
                    "host:port that resolves",
                )
            })?),
            None => trunk.as_ref().map(|t| t.target),
        };
        let outbound_from = callbridge_crm_store::PhoneNumber::parse(raw.outbound.from.trim())
            .map_err(|_| {
                c.invalid(
                    "outbound.from",
                    format!("{:?}", raw.outbound.from),
                    "an E.164 number like \"+15550100000\"",
                )
            })?
            .as_str()
            .to_owned();
        let provider = c.choice(
            "model.provider",
            &raw.model.provider,
            &[
                ("gemini", Provider::Gemini),
                ("openai", Provider::OpenAi),
                ("mock", Provider::Mock),
            ],
        )?;
        let endpoint = match &raw.model.endpoint {
            Some(e) if e.starts_with("ws://") || e.starts_with("wss://") => {
                Some(e.trim().to_owned())
            }
            Some(e) => {
                return Err(c.invalid("model.endpoint", format!("{e:?}"), "a ws:// or wss:// URL"));
            }
            None => None,
        };
        if provider == Provider::Mock && endpoint.is_some() {
            return Err(c.invalid(
                "model.endpoint",
                format!("{:?}", raw.model.endpoint.as_deref().unwrap_or_default()),
                "no endpoint with provider = \"mock\" (the mock runs in-process; use provider = \"gemini\" to reach a mock server of your own)",
            ));
        }
        let model = match raw.model.model.trim() {
            "" => provider.default_model().to_owned(),
            m => m.to_owned(),
        };
        let system_prompt = match (&raw.model.system_prompt, &raw.model.system_prompt_file) {
            (Some(_), Some(f)) => {
                return Err(c.invalid(
                    "model.system_prompt_file",
                    format!("{f:?}"),
                    "not both model.system_prompt and model.system_prompt_file",
                ));
            }
            (Some(p), None) => p.clone(),
            (None, Some(f)) => {
                let p = base.join(f);
                std::fs::read_to_string(&p).map_err(|e| {
                    c.invalid(
                        "model.system_prompt_file",
                        format!("{f:?}"),
                        &format!("a readable file ({e})"),
                    )
                })?
            }
            (None, None) => String::new(),
        };
        let setup_timeout = c.duration("model.setup_timeout", &raw.model.setup_timeout)?;
        let nonempty = |key: &str, v: &str, what: &str| {
            if v.trim().is_empty() {
                Err(c.invalid(key, "\"\"", what))
            } else {
                Ok(base.join(v.trim()))
            }
        };
        let database = nonempty(
            "store.database",
            &raw.store.database,
            "the SQLite file's path",
        )?;
        let recordings_dir = nonempty(
            "store.recordings_dir",
            &raw.store.recordings_dir,
            "a directory path",
        )?;
        let spool_dir = match raw.store.spool_dir.as_deref().map(str::trim) {
            None => database
                .parent()
                .map_or_else(|| PathBuf::from("spool"), |d| d.join("spool")),
            Some("") => {
                return Err(c.invalid(
                    "store.spool_dir",
                    "\"\"",
                    "a directory path (leave it out for `spool` beside the database)",
                ));
            }
            Some(v) => base.join(v),
        };
        let synchronous = c.choice(
            "store.synchronous",
            &raw.store.synchronous,
            &[("normal", Synchronous::Normal), ("full", Synchronous::Full)],
        )?;
        let http_bind = c.socket("http.bind", &raw.http.bind)?;
        let apart = |key: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(a) => c.socket(key, a).map(Some),
        };
        let http_public_bind = apart("http.public_bind", &raw.http.public_bind)?;
        let http_metrics_bind = apart("http.metrics_bind", &raw.http.metrics_bind)?;
        let conns = |key: &str, v: i64| {
            usize::try_from(v)
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| c.invalid(key, v, "a number from 1 to 100000"))
        };
        let http_limits = crate::http::Limits {
            header_read_timeout: c
                .duration("http.header_read_timeout", &raw.http.header_read_timeout)?,
            body_read_timeout: c.duration("http.body_read_timeout", &raw.http.body_read_timeout)?,
            idle_timeout: c.duration("http.idle_timeout", &raw.http.idle_timeout)?,
            max_connections: conns("http.max_connections", raw.http.max_connections)?,
            max_connections_per_ip: conns(
                "http.max_connections_per_ip",
                raw.http.max_connections_per_ip,
            )?,
        };
        let log_format = c.choice(
            "log.format",
            &raw.log.format,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )?;
        let log_level = raw.log.level.trim().to_owned();
        if crate::logging::filter(&log_level).is_err() {
            return Err(c.invalid(
                "log.level",
                format!("{log_level:?}"),
                "a level (error, warn, info, debug, trace) or a tracing filter directive",
            ));
        }
        Ok(Settings {
            sip_bind,
            public_ip,
            allowed_peers,
            reject_unlisted,
            trunk,
            rtp_ports,
            rtp_latch,
            max_concurrent,
            no_speech_timeout: c
                .duration("calls.no_speech_timeout", &raw.calls.no_speech_timeout)?,
            model_reply_timeout: match raw.calls.model_reply_timeout.trim() {
                "off" => None,
                v => Some(c.duration("calls.model_reply_timeout", v).map_err(|_| {
                    c.invalid(
                        "calls.model_reply_timeout",
                        format!("{v:?}"),
                        "a duration like \"8s\", or \"off\"",
                    )
                })?),
            },
            max_duration: c.duration("calls.max_duration", &raw.calls.max_duration)?,
            ring_timeout: c.duration("calls.ring_timeout", &raw.calls.ring_timeout)?,
            rtp_inactivity: c.duration("calls.rtp_inactivity", &raw.calls.rtp_inactivity)?,
            drain_timeout: c.duration("calls.drain_timeout", &raw.calls.drain_timeout)?,
            on_model_failure,
            fallback_clip,
            outbound_target,
            outbound_from,
            provider,
            endpoint,
            model,
            voice: raw.model.voice.clone().filter(|v| !v.trim().is_empty()),
            system_prompt,
            greeting: raw.model.greeting.clone(),
            tools: raw.model.tools,
            transfer_targets: transfer::targets(&c, &raw.transfer.targets)?,
            setup_timeout,
            database,
            recordings_dir,
            spool_dir,
            file_access: callbridge_files::Access::group_readable(raw.files.group_readable),
            synchronous,
            http_bind,
            http_public_bind,
            http_metrics_bind,
            http_limits,
            log_format,
            log_level,
            carrier: raw.carrier.clone(),
        })
    }
}

mod mapping;
#[cfg(test)]
mod tests;
mod transfer;
