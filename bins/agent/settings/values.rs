//! The validated, typed settings `agent run` needs, and the enums of the
//! keys that take a choice. Built by [`super::validate`]; mapped onto the
//! crates' configurations by [`super::mapping`].

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use callbridge_rtp::engine::RealtimePriority;
use callbridge_rtp::latch::LatchPolicy;
use callbridge_session::lifecycle::ModelFailurePolicy;
use callbridge_sip::filter::Rejection;
use callbridge_sip::session_timer::TimerSettings;
use ipnet::IpNet;

use super::carrier::{CarrierNeeds, Carriers};
use super::sip_transport::SipTransport;
use crate::logging::LogFormat;

/// The model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Gemini Live (`GEMINI_API_KEY`).
    Gemini,
    /// OpenAI Realtime (`OPENAI_API_KEY`).
    OpenAi,
    /// OpenAI GPT-Live (`OPENAI_API_KEY`).
    GptLive,
    /// The built-in mock Gemini server on loopback.
    Mock,
}

impl Provider {
    /// The name used in the configuration, the store and `/api/health`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gemini => "gemini",
            Provider::OpenAi => "openai",
            Provider::GptLive => "gpt-live",
            Provider::Mock => "mock",
        }
    }

    /// The model id used when `model.model` is empty.
    pub fn default_model(self) -> &'static str {
        match self {
            Provider::Gemini => callbridge_llm_bridge::gemini::DEFAULT_MODEL,
            Provider::OpenAi => callbridge_llm_bridge::openai::DEFAULT_MODEL,
            Provider::GptLive => callbridge_llm_bridge::gpt_live::DEFAULT_MODEL,
            Provider::Mock => "mock-model",
        }
    }

    /// The variable holding this provider's key, if it needs one.
    pub fn key_var(self) -> Option<&'static str> {
        match self {
            Provider::Gemini => Some("GEMINI_API_KEY"),
            Provider::OpenAi | Provider::GptLive => Some("OPENAI_API_KEY"),
            Provider::Mock => None,
        }
    }
}

/// One entry of `model.providers` (`settings::providers`): a provider
/// routing profiles may choose besides `model.provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherProvider {
    /// The provider.
    pub provider: Provider,
    /// Its endpoint (`None`: the public one).
    pub endpoint: Option<String>,
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

/// `tls.roots`: which certificate authorities outbound TLS (the model's
/// WebSocket, the summary API, the carriers' REST hang-ups) trusts:
/// `callbridge-tls`'s `TlsRoots` (re-exported by llm-bridge), by its
/// names in the configuration.
pub use callbridge_llm_bridge::TlsRoots;

/// Every `tls.roots` choice, with its name in the configuration.
pub const TLS_ROOTS: [(&str, TlsRoots); 2] =
    [("system", TlsRoots::System), ("bundled", TlsRoots::Bundled)];

/// `[sip.trunk]`, validated.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// The registrar's URI (REGISTER Request-URI).
    pub registrar: String,
    /// Its host, for Request-URIs of outbound calls.
    pub domain: String,
    /// Where REGISTER (and outbound INVITEs by default) are sent: the
    /// outbound proxy or the registrar's address, or the registrar's
    /// domain, located by RFC 3263 when requests go out.
    pub target: callbridge_session::dns::Destination,
    /// The transport the registrar's URI asks for (`sips:`: TLS).
    pub transport: callbridge_sip::transport::Transport,
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
    /// SIP over TCP and TLS: `sip.tcp_bind`, `sip.tls_*`, the connection
    /// limits.
    pub sip_transport: SipTransport,
    /// Session timers (RFC 4028): `sip.session_expires` and `sip.min_se`.
    pub session_timer: TimerSettings,
    /// The trunk, if any.
    pub trunk: Option<Trunk>,
    /// RTP ports.
    pub rtp_ports: RangeInclusive<u16>,
    /// Which sources other than the SDP address RTP may latch to.
    pub rtp_latch: LatchPolicy,
    /// SRTP (`rtp.srtp`): off, offer, require.
    pub rtp_srtp: callbridge_sip::sdp::SrtpPolicy,
    /// Media engine threads (`media.engine_threads`).
    pub engine_threads: usize,
    /// The media engine threads' scheduling (`media.realtime_priority`).
    pub realtime_priority: RealtimePriority,
    /// New calls the engine takes per load window at least
    /// (`media.admission_step`).
    pub admission_step: usize,
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
    /// Caller speech over a reply for this long is a barge-in the agent
    /// acts on itself; `None` (`"off"`) leaves it to the model.
    pub barge_in_after: Option<Duration>,
    /// Graceful shutdown drain.
    pub drain_timeout: Duration,
    /// How long a call the media engine paces may wait for its next load
    /// window (`calls.admission_wait`; zero for "off").
    pub admission_wait: Duration,
    /// Inbound model failure before the answer.
    pub on_model_failure: ModelFailurePolicy,
    /// The clip played before hanging up on a model failure (checked
    /// here: readable mono 16-bit 8 kHz WAV); `None` plays the built-in one.
    pub fallback_clip: Option<PathBuf>,
    /// Where outbound INVITEs go (an address, or a domain located by
    /// RFC 3263 for each call).
    pub outbound_target: Option<callbridge_session::dns::Destination>,
    /// The transport outbound calls take (from `outbound.target` as a SIP
    /// URI, else the trunk registrar's URI).
    pub outbound_transport: callbridge_sip::transport::Transport,
    /// The names outbound SIP TLS verifies, by address (the trunk's
    /// domain, the host of an `outbound.target` URI).
    pub sip_tls_names: Vec<(SocketAddr, String)>,
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
    /// GPT-Live: the Responses backend model its tools are delegated to
    /// (`model.delegation_model`); `None`: client delegation, no tools.
    pub delegation_model: Option<String>,
    /// System prompt text.
    pub system_prompt: String,
    /// Greeting prompt.
    pub greeting: String,
    /// Built-in tools on/off.
    pub tools: bool,
    /// Where the model's tools may send a call (`[transfer] targets`).
    pub transfer_targets: callbridge_session::dial_targets::DialTargets,
    /// Answering-machine detection (`[amd]`).
    pub amd: callbridge_session::amd::AmdSettings,
    /// Call-event webhooks (`[webhooks]`; `None`: off).
    pub webhooks: Option<super::webhooks::WebhookSettings>,
    /// `GET /api/calls/{id}/listen` served (`http.listen`).
    pub http_listen: bool,
    /// Model setup bound.
    pub setup_timeout: Duration,
    /// Caller audio per message to the model (`model.uplink_ms`).
    pub uplink: callbridge_llm_bridge::UplinkChunk,
    /// OpenAI Realtime's input tuning (`[model.openai]`).
    pub openai: super::openai::OpenAiSettings,
    /// The store: `store.url` (a path, `sqlite:PATH` or `postgres://...`,
    /// its password from `CALLBRIDGE_STORE_PASSWORD`), else the SQLite
    /// file `store.database`.
    pub store_url: callbridge_crm_store::StoreUrl,
    /// This agent's node id on a shared store (`store.node`; default the
    /// host name).
    pub node: callbridge_crm_store::NodeId,
    /// Recordings directory.
    pub recordings_dir: PathBuf,
    /// SQLite durability of each commit.
    pub synchronous: Synchronous,
    /// How long the store writer waits for more writes to commit with
    /// one (`store.commit_window`; zero for "off").
    pub commit_window: std::time::Duration,
    /// Who may read the files and directories the agent creates
    /// (`files.group_readable`).
    pub file_access: callbridge_files::Access,
    /// The store writer's journal directory (`store.spool_dir`; default
    /// `spool` beside the database).
    pub spool_dir: PathBuf,
    /// How long recordings, transcripts and sessions are kept
    /// (`[retention]`; each `None` when "off").
    pub retention: callbridge_crm_store::Retention,
    /// The user owning inbound calls to numbers not in `inbound_owners`
    /// (`calls.default_owner`, a user name).
    pub default_owner: Option<String>,
    /// Called number -> owning user name (`calls.inbound_owners`).
    pub inbound_owners: Vec<(String, String)>,
    /// Post-call summaries (`[summary]`).
    pub summary: SummarySettings,
    /// Which authorities outbound TLS trusts (`tls.roots`).
    pub tls_roots: TlsRoots,
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
    /// The enabled carriers' keys (their secrets are in
    /// [`super::secrets::Secrets`]).
    pub carrier: Carriers,
    /// Routing profiles, `[routing]` and the profiles file (issue 23).
    pub routing: super::routing::Routing,
    /// `model.providers`: the other providers profiles may choose.
    pub other_providers: Vec<OtherProvider>,
    /// The `X-` headers of inbound INVITEs kept on the session
    /// (`sip.keep_headers`).
    pub keep_headers: Vec<String>,
}

/// What decides which secrets are needed: known from the keys even when
/// some other key is bad, so that one pass reports missing secrets too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The provider (its API key).
    pub provider: Option<Provider>,
    /// `[sip.trunk]` is configured (its password).
    pub trunk: bool,
    /// The enabled carriers (their signature secrets and REST credentials).
    pub carrier: CarrierNeeds,
}

impl Settings {
    /// The secrets these settings need.
    pub fn needs(&self) -> Needs {
        Needs {
            provider: Some(self.provider),
            trunk: self.trunk.is_some(),
            carrier: self.carrier.needs(),
        }
    }
}

/// Post-call summaries (`[summary]`), independent of the call model: on
/// or off, the text API's provider (default: the call model's; none for
/// the mock), model and endpoint (default: the provider's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummarySettings {
    /// `summary.enabled`.
    pub enabled: bool,
    /// `summary.provider`; `None`: the call model's provider.
    pub provider: Option<callbridge_llm_bridge::Provider>,
    /// `summary.model`; `None`: the provider's default text model.
    pub model: Option<String>,
    /// `summary.endpoint`; `None`: the provider's public text API.
    pub endpoint: Option<String>,
}
