//! Validated, typed settings built from a [`RawConfig`], and their mapping
//! onto the session manager's configuration (`ManagerConfig`), the model's
//! `SessionConfig` and the HTTP layer's outbound routing.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use callbridge_llm_bridge::{ApiKey, AudioFormat, BuiltinTools, SessionConfig};
use callbridge_session::ManagerConfig;
use callbridge_session::bridge::fallback::FallbackClip;
use callbridge_session::lifecycle::ModelFailurePolicy;
use callbridge_sip::auth::Credentials;
use callbridge_sip::filter::{Rejection, SourceFilter};
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
    /// Most calls at once.
    pub max_concurrent: usize,
    /// No-speech timeout.
    pub no_speech_timeout: Duration,
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
    /// Model setup bound.
    pub setup_timeout: Duration,
    /// SQLite file.
    pub database: PathBuf,
    /// Recordings directory.
    pub recordings_dir: PathBuf,
    /// HTTP bind address.
    pub http_bind: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive (as configured; see [`crate::logging`]).
    pub log_level: String,
}

/// Secrets, from the environment only. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The model's API key (none for `mock`).
    pub model_key: Option<String>,
    /// The trunk's digest password.
    pub trunk_password: Option<String>,
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
        let http_bind = c.socket("http.bind", &raw.http.bind)?;
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
            max_concurrent,
            no_speech_timeout: c
                .duration("calls.no_speech_timeout", &raw.calls.no_speech_timeout)?,
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
            setup_timeout,
            database,
            recordings_dir,
            http_bind,
            log_format,
            log_level,
        })
    }

    /// The model session template. `endpoint` replaces the configured one
    /// (the in-process mock's URL for `provider = "mock"`).
    pub fn session_config(&self, secrets: &Secrets, endpoint: Option<String>) -> SessionConfig {
        let mut m = SessionConfig::default();
        m.endpoint = endpoint.or_else(|| self.endpoint.clone());
        m.api_key = secrets.model_key.clone().map(ApiKey::new);
        m.model = self.model.clone();
        m.voice = self.voice.clone();
        m.instructions = self.system_prompt.clone();
        m.builtin_tools = BuiltinTools {
            end_call: self.tools,
            transfer_call: self.tools,
        };
        m.setup_timeout = self.setup_timeout;
        if self.provider == Provider::OpenAi {
            // G.711 both ways: no resampling on the phone path.
            m.input_format = AudioFormat::Pcmu;
            m.output_format = AudioFormat::Pcmu;
        }
        m
    }

    /// The session manager's configuration.
    pub fn manager_config(&self, model: SessionConfig) -> ManagerConfig {
        let mut cfg =
            ManagerConfig::new(self.sip_bind, self.public_ip, self.rtp_ports.clone(), model);
        // Media sockets bind where SIP binds; SDP carries the public address.
        cfg.rtp.bind_ip = self.sip_bind.ip();
        cfg.sip.contact_addr = SocketAddr::new(self.public_ip, self.sip_bind.port());
        cfg.sip.filter = if self.allowed_peers.is_empty() {
            SourceFilter::allow_all()
        } else {
            SourceFilter::only(self.allowed_peers.clone(), self.reject_unlisted)
        };
        // The machine cancels at ring_timeout; the SIP core's own bound is
        // a backstop behind it.
        cfg.sip.ring_timeout = self.ring_timeout + Duration::from_secs(5);
        cfg.max_calls = self.max_concurrent;
        cfg.rtp_inactivity = self.rtp_inactivity;
        cfg.machine.no_speech = self.no_speech_timeout;
        cfg.machine.max_duration = self.max_duration;
        cfg.machine.ring_timeout = self.ring_timeout;
        cfg.machine.model_setup = self.setup_timeout;
        cfg.machine.model_failure_before_answer = self.on_model_failure;
        cfg.fallback_clip = self.fallback_clip.clone();
        cfg.greeting_prompt = self.greeting.clone();
        cfg.recordings_dir = Some(self.recordings_dir.clone());
        cfg.shutdown_drain = self.drain_timeout;
        cfg
    }

    /// Outbound routing for the HTTP layer.
    pub fn outbound(&self) -> crate::http::Outbound {
        crate::http::Outbound {
            target: self.outbound_target,
            domain: self.trunk.as_ref().map(|t| t.domain.clone()),
            from: self.outbound_from.clone(),
        }
    }

    /// The trunk's digest credentials, if a trunk is configured.
    pub fn trunk_credentials(&self, secrets: &Secrets) -> Option<Credentials> {
        let t = self.trunk.as_ref()?;
        Some(Credentials::new(
            t.username.clone(),
            secrets.trunk_password.clone()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prop_assert;

    const GOOD: &str = r#"
[sip]
bind = "127.0.0.1:0"
allowed_peers = ["127.0.0.1/32", "::1"]
[model]
provider = "mock"
[store]
database = "db.sqlite"
recordings_dir = "rec"
[http]
bind = "127.0.0.1:0"
"#;

    fn settings(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (raw, origins) = RawConfig::load(Path::new("agent.toml"), text, &env)?;
        Settings::validate(&raw, &origins, Path::new("/etc/cb"))
    }

    fn err(text: &str, env: &[(&str, &str)]) -> String {
        settings(text, env).unwrap_err().to_string()
    }

    #[test]
    fn good_file_validates_and_maps_onto_the_manager() {
        let s = settings(GOOD, &[]).unwrap();
        assert_eq!(s.sip_bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(s.public_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.allowed_peers.len(), 2);
        assert_eq!(s.provider, Provider::Mock);
        assert_eq!(s.model, "mock-model");
        assert_eq!(s.database, PathBuf::from("/etc/cb/db.sqlite"));
        assert_eq!(s.on_model_failure, ModelFailurePolicy::AnswerThenEnd);
        let m = s.manager_config(s.session_config(&Secrets::default(), None));
        assert_eq!(m.max_calls, 100);
        assert_eq!(m.machine.no_speech, Duration::from_secs(30));
        assert_eq!(m.machine.max_duration, Duration::from_secs(1800));
        assert_eq!(m.shutdown_drain, Duration::from_secs(30));
        assert_eq!(m.recordings_dir, Some(PathBuf::from("/etc/cb/rec")));
        assert!(m.sip.filter.allows("127.0.0.1".parse().unwrap()));
        assert!(!m.sip.filter.allows("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_example_file_validates() {
        let raw = include_str!("../../agent.example.toml");
        let s = settings(raw, &[]).unwrap();
        assert_eq!(s.public_ip, "203.0.113.10".parse::<IpAddr>().unwrap());
        assert_eq!(
            s.outbound_target,
            Some("198.51.100.7:5060".parse().unwrap())
        );
        assert_eq!(s.provider, Provider::Gemini);
    }

    #[test]
    fn fallback_clip_from_the_environment_is_checked_and_passed_to_the_manager() {
        let s = settings(GOOD, &[]).unwrap();
        assert_eq!(
            s.manager_config(s.session_config(&Secrets::default(), None))
                .fallback_clip,
            None
        );
        let clip = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/session/assets/fallback-apology-8k.wav"
        );
        let s = settings(GOOD, &[("CALLBRIDGE_CALLS_FALLBACK_CLIP", clip)]).unwrap();
        let m = s.manager_config(s.session_config(&Secrets::default(), None));
        assert_eq!(m.fallback_clip, Some(PathBuf::from(clip)));
        let not_wav = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_FALLBACK_CLIP", not_wav)]);
        assert!(
            m.starts_with("calls.fallback_clip (from CALLBRIDGE_CALLS_FALLBACK_CLIP) = ")
                && m.contains("a mono 16-bit PCM WAV file at 8000 Hz"),
            "{m}"
        );
    }

    #[test]
    fn bad_sip_bind_names_key_value_and_expectation() {
        let m = err(
            &GOOD.replace("\"127.0.0.1:0\"\nallowed", "\"abc\"\nallowed"),
            &[],
        );
        assert!(m.starts_with("sip.bind = \"abc\": expected ip:port"), "{m}");
    }

    #[test]
    fn env_origin_is_named_in_errors() {
        let m = err(GOOD, &[("CALLBRIDGE_HTTP_BIND", "localhost")]);
        assert!(
            m.starts_with(
                "http.bind (from CALLBRIDGE_HTTP_BIND) = \"localhost\": expected ip:port"
            ),
            "{m}"
        );
    }

    #[test]
    fn wildcard_bind_needs_public_addr() {
        let m = err(
            &GOOD.replace("127.0.0.1:0\"\nallowed", "0.0.0.0:5060\"\nallowed"),
            &[],
        );
        assert!(m.starts_with("sip.public_addr is missing"), "{m}");
        let m = err(GOOD, &[("CALLBRIDGE_SIP_PUBLIC_ADDR", "0.0.0.0")]);
        assert!(m.contains("not a wildcard"), "{m}");
    }

    #[test]
    fn bad_peer_network() {
        let m = err(GOOD, &[("CALLBRIDGE_SIP_ALLOWED_PEERS", "10.0.0.0/33")]);
        assert!(
            m.contains("sip.allowed_peers") && m.contains("\"10.0.0.0/33\"") && m.contains("CIDR"),
            "{m}"
        );
    }

    #[test]
    fn bad_choices_list_the_options() {
        let m = err(GOOD, &[("CALLBRIDGE_SIP_REJECT_UNLISTED", "ignore")]);
        assert!(m.contains("one of \"forbidden\", \"drop\""), "{m}");
        let m = err(GOOD, &[("CALLBRIDGE_MODEL_PROVIDER", "claude")]);
        assert!(
            m.contains("model.provider") && m.contains("\"gemini\", \"openai\", \"mock\""),
            "{m}"
        );
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_ON_MODEL_FAILURE", "shrug")]);
        assert!(m.contains("\"answer-then-hangup\", \"reject\""), "{m}");
        let m = err(GOOD, &[("CALLBRIDGE_LOG_FORMAT", "xml")]);
        assert!(m.contains("log.format"), "{m}");
    }

    #[test]
    fn reject_policy_maps_to_503() {
        let s = settings(GOOD, &[("CALLBRIDGE_CALLS_ON_MODEL_FAILURE", "reject")]).unwrap();
        assert!(matches!(
            s.on_model_failure,
            ModelFailurePolicy::Reject503 { .. }
        ));
    }

    #[test]
    fn bad_durations() {
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_MAX_DURATION", "forever")]);
        assert!(
            m.contains("calls.max_duration") && m.contains("expected a duration like"),
            "{m}"
        );
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_DRAIN_TIMEOUT", "0s")]);
        assert!(m.contains("above zero"), "{m}");
        let s = settings(GOOD, &[("CALLBRIDGE_CALLS_NO_SPEECH_TIMEOUT", "1m 30s")]).unwrap();
        assert_eq!(s.no_speech_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_ports_and_capacity() {
        let m = err(GOOD, &[("CALLBRIDGE_RTP_PORT_MIN", "70000")]);
        assert!(
            m.contains("rtp.port_min") && m.contains("1 to 65535"),
            "{m}"
        );
        let m = err(GOOD, &[("CALLBRIDGE_RTP_PORT_MIN", "30000")]);
        assert!(
            m.contains("rtp.port_max = 20999: expected a port above rtp.port_min"),
            "{m}"
        );
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_MAX_CONCURRENT", "0")]);
        assert!(
            m.contains("calls.max_concurrent") && m.contains("1 to 10000"),
            "{m}"
        );
        let m = err(GOOD, &[("CALLBRIDGE_RTP_PORT_MAX", "20009")]);
        assert!(m.contains("at most 5 (one even RTP port per call"), "{m}");
        let odd = [
            ("CALLBRIDGE_RTP_PORT_MIN", "20001"),
            ("CALLBRIDGE_RTP_PORT_MAX", "20003"),
        ];
        let m = err(GOOD, &odd);
        assert!(
            m.contains("at most 1 "),
            "20001..=20003 holds one even port: {m}"
        );
    }

    #[test]
    fn bad_outbound() {
        let m = err(GOOD, &[("CALLBRIDGE_OUTBOUND_FROM", "5551234")]);
        assert!(m.contains("outbound.from") && m.contains("E.164"), "{m}");
        let m = err(
            GOOD,
            &[("CALLBRIDGE_OUTBOUND_TARGET", "nowhere.invalid:99999")],
        );
        assert!(m.contains("outbound.target"), "{m}");
    }

    #[test]
    fn bad_model_settings() {
        let m = err(GOOD, &[("CALLBRIDGE_MODEL_ENDPOINT", "http://x")]);
        assert!(m.contains("ws:// or wss://"), "{m}");
        let m = err(GOOD, &[("CALLBRIDGE_MODEL_ENDPOINT", "ws://127.0.0.1:1/x")]);
        assert!(m.contains("no endpoint with provider = \"mock\""), "{m}");
        let m = err(
            GOOD,
            &[
                ("CALLBRIDGE_MODEL_SYSTEM_PROMPT", "a"),
                ("CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE", "b"),
            ],
        );
        assert!(m.contains("not both"), "{m}");
        let m = err(
            GOOD,
            &[("CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE", "missing.txt")],
        );
        assert!(
            m.contains(
                "model.system_prompt_file (from CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE) = \"missing.txt\": expected a readable file"
            ),
            "{m}"
        );
        let m = err(GOOD, &[("CALLBRIDGE_MODEL_SETUP_TIMEOUT", "soon")]);
        assert!(m.contains("model.setup_timeout"), "{m}");
    }

    #[test]
    fn prompt_file_is_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.txt"), "be brief").unwrap();
        std::fs::write(dir.path().join("agent.toml"), GOOD).unwrap();
        let env = [(
            "CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE".to_owned(),
            "p.txt".to_owned(),
        )]
        .into();
        let s = Settings::load(&dir.path().join("agent.toml"), &env).unwrap();
        assert_eq!(s.system_prompt, "be brief");
        assert_eq!(s.database, dir.path().join("db.sqlite"));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let m = Settings::load(Path::new("/nonexistent/agent.toml"), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(m.starts_with("cannot read /nonexistent/agent.toml"), "{m}");
    }

    #[test]
    fn bad_store_and_log() {
        let m = err(GOOD, &[("CALLBRIDGE_STORE_DATABASE", " ")]);
        assert!(m.contains("store.database"), "{m}");
        let m = err(GOOD, &[("CALLBRIDGE_LOG_LEVEL", "loud")]);
        assert!(
            m.starts_with("log.level (from CALLBRIDGE_LOG_LEVEL) = \"loud\": expected a level"),
            "{m}"
        );
    }

    #[test]
    fn trunk_needs_registrar_username_and_password() {
        let t = format!("{GOOD}\n[sip.trunk]\nusername = \"u\"\n");
        assert!(err(&t, &[]).starts_with("sip.trunk.registrar is missing"));
        let t = format!("{GOOD}\n[sip.trunk]\nregistrar = \"sip:127.0.0.1:5070\"\n");
        assert!(err(&t, &[]).starts_with("sip.trunk.username is missing"));
        let t = format!("{GOOD}\n[sip.trunk]\nregistrar = \"not a uri\"\nusername = \"u\"\n");
        assert!(err(&t, &[]).contains("a SIP URI"), "{}", err(&t, &[]));
        let t = format!(
            "{GOOD}\n[sip.trunk]\nregistrar = \"sip:127.0.0.1:5070\"\nusername = \"u\"\nregister_expires = \"5m\"\n"
        );
        let s = settings(&t, &[]).unwrap();
        let trunk = s.trunk.clone().unwrap();
        assert_eq!(trunk.target, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(trunk.expires, Duration::from_secs(300));
        assert_eq!(
            s.outbound_target,
            Some(trunk.target),
            "outbound defaults to the trunk"
        );
        assert_eq!(s.outbound().domain.as_deref(), Some("127.0.0.1"));
        let e = Secrets::from_env(&s, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("CALLBRIDGE_SIP_TRUNK_PASSWORD is not set"),
            "{e}"
        );
        let env = [("CALLBRIDGE_SIP_TRUNK_PASSWORD".to_owned(), "pw".to_owned())].into();
        let secrets = Secrets::from_env(&s, &env).unwrap();
        assert!(!format!("{secrets:?}").contains("pw\""));
        assert_eq!(s.trunk_credentials(&secrets).unwrap().username, "u");
    }

    #[test]
    fn providers_need_their_key_from_the_environment() {
        let s = settings(GOOD, &[("CALLBRIDGE_MODEL_PROVIDER", "gemini")]).unwrap();
        let e = Secrets::from_env(&s, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "GEMINI_API_KEY is not set: model.provider = \"gemini\" needs its API key"
        );
        let env = [("GEMINI_API_KEY".to_owned(), "k-123".to_owned())].into();
        let secrets = Secrets::from_env(&s, &env).unwrap();
        assert_eq!(secrets.model_key.as_deref(), Some("k-123"));
        let s = settings(GOOD, &[("CALLBRIDGE_MODEL_PROVIDER", "openai")]).unwrap();
        assert!(
            Secrets::from_env(&s, &BTreeMap::new())
                .unwrap_err()
                .to_string()
                .starts_with("OPENAI_API_KEY")
        );
        let m = s.session_config(&Secrets::default(), None);
        assert_eq!(
            (m.input_format, m.output_format),
            (AudioFormat::Pcmu, AudioFormat::Pcmu)
        );
        let mock = settings(GOOD, &[]).unwrap();
        assert!(
            Secrets::from_env(&mock, &BTreeMap::new())
                .unwrap()
                .model_key
                .is_none()
        );
    }

    #[test]
    fn tools_switch_maps_onto_builtin_tools() {
        let s = settings(GOOD, &[("CALLBRIDGE_MODEL_TOOLS", "false")]).unwrap();
        let m = s.session_config(&Secrets::default(), Some("ws://127.0.0.1:9/x".into()));
        assert!(!m.builtin_tools.end_call && !m.builtin_tools.transfer_call);
        assert_eq!(m.endpoint.as_deref(), Some("ws://127.0.0.1:9/x"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any value for any key, through its environment variable: the
        /// loader never panics, and an error names that key (or, for a
        /// trunk key, the trunk key that is then missing).
        #[test]
        fn any_env_value_for_any_key_is_accepted_or_named(
            index in 0usize..33,
            value in "[ -~]{0,24}",
        ) {
            let keys = crate::config::env_keys();
            let (var, key) = &keys[index % keys.len()];
            if let Err(e) = settings(GOOD, &[(var.as_str(), value.as_str())]) {
                let m = e.to_string();
                // A trunk key set alone brings in [sip.trunk], whose
                // required keys are then named instead.
                let trunk = key.starts_with("sip.trunk.") && m.contains("sip.trunk.");
                prop_assert!(
                    m.contains(key.as_str()) || m.contains(var.as_str()) || trunk,
                    "{var}={value:?}: {m}"
                );
            }
        }

        /// Arbitrary file text never panics the loader.
        #[test]
        fn arbitrary_file_text_never_panics(text in "(\\[[a-z.]{1,12}\\]\n|[a-z_]{1,12} = (\"[ -~]{0,12}\"|[0-9]{1,6}|true|\\[\\])\n){0,8}") {
            let _ = settings(&text, &[]);
        }
    }
}
