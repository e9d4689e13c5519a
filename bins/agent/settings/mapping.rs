//! The mapping of validated [`Settings`] onto what the crates take: the
//! model's `SessionConfig`, the media engine's `EngineConfig`, the session
//! manager's `ManagerConfig` (SIP
//! filter, timers, RTP range, limits, recordings and their file mode, drain), the HTTP layer's
//! outbound routing and the trunk's digest credentials (for REGISTER, and
//! for outbound INVITEs sent to the trunk).

use std::net::SocketAddr;
use std::time::Duration;

use callbridge_llm_bridge::{ApiKey, AudioFormat, BuiltinTools, SessionConfig};
use callbridge_rtp::engine::{AdmissionPolicy, EngineConfig};
use callbridge_session::{ManagerConfig, OutboundAuth};
use callbridge_sip::auth::Credentials;
use callbridge_sip::driver::StreamConfig;
use callbridge_sip::filter::SourceFilter;

use super::secrets::Secrets;
use super::values::{Provider, Settings, Synchronous};

impl Settings {
    /// How the agent opens its store (the call writer and recovery).
    pub fn store_options(&self) -> callbridge_crm_store::OpenOptions {
        callbridge_crm_store::OpenOptions {
            sync_full: self.synchronous == Synchronous::Full,
            file_access: self.file_access,
            node: Some(self.node.clone()),
            ..callbridge_crm_store::OpenOptions::default()
        }
    }

    /// Where and how every connection of this agent opens the store.
    pub fn store_at(&self) -> callbridge_crm_store::StoreAt {
        callbridge_crm_store::StoreAt {
            url: self.store_url.clone(),
            options: self.store_options(),
        }
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
        m.uplink = self.uplink;
        m.openai = self.openai.input.clone();
        m.transcription.model = Some(self.openai.transcription_model.clone());
        m.tls_roots = self.tls_roots;
        if matches!(self.provider, Provider::OpenAi | Provider::GptLive) {
            // G.711 both ways: no resampling on the phone path.
            m.input_format = AudioFormat::Pcmu;
            m.output_format = AudioFormat::Pcmu;
        }
        m
    }

    /// The media engine's configuration (`[media]`).
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            threads: self.engine_threads,
            realtime_priority: self.realtime_priority,
            admission: AdmissionPolicy {
                step: self.admission_step,
                ..AdmissionPolicy::default()
            },
            ..EngineConfig::default()
        }
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
        cfg.sip.session_timer = self.session_timer;
        let t = &self.sip_transport;
        // Listeners on a fixed port are advertised at the public address;
        // on port 0 the driver advertises the port it bound.
        let public =
            |a: SocketAddr| (a.port() != 0).then(|| SocketAddr::new(self.public_ip, a.port()));
        cfg.sip.tcp_addr = t.tcp_bind.and_then(public);
        cfg.sip.tls_addr = t.tls_bind.as_ref().and_then(|(a, _)| public(*a));
        // RFC 3261 section 18.1.1: requests over 1,300 bytes go over TCP,
        // when we have TCP at all.
        cfg.sip.udp_max_request = (t.tcp_bind.is_some() && t.udp_to_tcp).then_some(1300);
        cfg.sip_streams = StreamConfig {
            tcp_bind: t.tcp_bind,
            tls_bind: t.tls_bind.clone(),
            tls_client: t.tls_client(self.tls_roots),
            tls_names: self.sip_tls_names.iter().cloned().collect(),
            max_connections: t.max_connections,
            max_per_ip: t.max_per_ip,
            idle_timeout: t.idle_timeout,
            ..StreamConfig::default()
        };
        cfg.dns_servers.clone_from(&t.dns_servers);
        cfg.max_calls = self.max_concurrent;
        cfg.machine.rtp_inactivity = Some(self.rtp_inactivity);
        cfg.barge_in_after = self.barge_in_after;
        cfg.admission_wait = self.admission_wait;
        cfg.rtp_latch = self.rtp_latch;
        cfg.srtp = self.rtp_srtp;
        cfg.machine.no_speech = self.no_speech_timeout;
        cfg.machine.model_reply_timeout = self.model_reply_timeout;
        cfg.machine.max_duration = self.max_duration;
        cfg.machine.ring_timeout = self.ring_timeout;
        cfg.machine.model_setup = self.setup_timeout;
        cfg.machine.model_failure_before_answer = self.on_model_failure;
        cfg.fallback_clip = self.fallback_clip.clone();
        cfg.greeting_prompt = self.greeting.clone();
        cfg.recordings_dir = Some(self.recordings_dir.clone());
        cfg.store_writer.spool_dir = Some(self.spool_dir.clone());
        cfg.store_writer.commit_window = self.commit_window;
        cfg.file_access = self.file_access;
        cfg.shutdown_drain = self.drain_timeout;
        cfg.amd = self.amd.clone();
        cfg.transfer_targets = if self.tools {
            self.transfer_targets.clone()
        } else {
            callbridge_session::dial_targets::DialTargets::none()
        };
        cfg.profiles = Some(self.routing.profiles.clone());
        cfg.keep_headers.clone_from(&self.keep_headers);
        cfg
    }

    /// Outbound routing for the HTTP layer.
    pub fn outbound(&self) -> crate::http::Outbound {
        crate::http::Outbound {
            target: self.outbound_target.clone(),
            transport: self.outbound_transport,
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

    /// The trunk's credentials for challenged outbound INVITEs (RFC 3261
    /// section 22.2), tied to the trunk's address (its outbound proxy,
    /// else its registrar): calls sent there answer 401/407 with them.
    /// When `outbound.target` names another address, calls go there
    /// without credentials, so a host other than the trunk never gets a
    /// digest computed from the trunk's password. `None` without a trunk
    /// or without its password.
    pub fn outbound_auth(&self, secrets: &Secrets) -> Option<OutboundAuth> {
        let t = self.trunk.as_ref()?;
        Some(OutboundAuth {
            target: t.target.clone(),
            credentials: self.trunk_credentials(secrets)?,
        })
    }
}
