//! The session manager (issue 6, "Session manager"): owns the SIP driver,
//! the RTP port pool, the store writer and the `registry` of live calls;
//! admits inbound INVITEs and outbound originates atomically, routes SIP
//! events to each call's mailbox, runs every call as one task tree under one
//! cancellation token, and removes a call from the registry in exactly one
//! place: its supervisor, after the call task has been joined (bounded
//! wait, then abort). Snapshots report active calls, end-reason counters
//! and the live-resource gauges; [`Manager::shutdown`] stops admitting,
//! ends every call with the machine's `Shutdown` command and joins
//! everything.
//!
//! ```no_run
//! use std::sync::Arc;
//! use callbridge_crm_store::Store;
//! use callbridge_llm_bridge::{GeminiLive, SessionConfig};
//! use callbridge_session::{FixedSummarizer, Manager, ManagerConfig, OriginateRequest};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut model = SessionConfig::default();
//! model.model = "gemini-3.8-live".into();
//! let cfg = ManagerConfig::new(
//!     "0.0.0.0:5060".parse()?,
//!     "192.0.2.10".parse()?,
//!     20000..=20999,
//!     model,
//! );
//! let store = Store::open("callbridge.db")?;
//! let summarizer = Arc::new(FixedSummarizer::new("summary"));
//! // Binds SIP, starts the SIP driver, the event router and the store thread.
//! let manager = Manager::start(cfg, Arc::new(GeminiLive::new()), store, Some(summarizer)).await?;
//! let id = manager
//!     .originate(OriginateRequest::new(
//!         "sip:+15551234@trunk.example",
//!         "sip:agent@192.0.2.10",
//!         "198.51.100.7:5060".parse::<std::net::SocketAddr>()?,
//!     ))
//!     .await?;
//! let snapshot = manager.snapshot(); // health and metrics
//! assert!(snapshot.calls.iter().any(|c| c.id == id));
//! manager.hangup(id).await?;
//! manager.shutdown().await; // 503 to new INVITEs, drain, BYE, join
//! # Ok(()) }
//! ```

mod carrier;
mod config;
mod control;
mod inbound;
mod outbound;
mod overload;
mod profiles;
mod readiness;
mod registry;
mod shared;
mod supervise;
mod trunk;

pub use carrier::{CLOSE_REFUSED, CarrierCall};
pub use config::{InboundOwners, ManagerConfig, OriginateRequest, OutboundAuth};
pub use overload::EngineStatus;
pub use readiness::Readiness;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_crm_store::{NewSession, Party, SessionId, Store, Transport as StoreTransport};
use callbridge_llm_bridge::{CallMetadata, RealtimeModel};
use callbridge_rtp::clock::SystemClock;
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::latch::LatchRules;
use callbridge_rtp::ports::PortPool;
use callbridge_rtp::stream::{MediaConfig, MediaStream};
use callbridge_sip::Uri;
use callbridge_sip::driver::{Driver, DriverConfig};
use callbridge_sip::random::{os_rng, seeded_rng};
use callbridge_sip::sdp::LocalMedia;
use callbridge_sip::ua::Event as SipEvent;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::bridge::CallMsg;
use crate::bridge::fallback::FallbackClip;
use crate::gauges::{Gauge, Gauges};
use crate::lifecycle::{Command, Direction, EndReason, Phase};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::store_writer::{StoreThread, StoreWriter};
use callbridge_llm_bridge::summary::Summarizer;
use overload::Admission;
use registry::Registry;
pub(crate) use shared::Shared;

/// The HTTP tools' client: rustls on `roots` (callbridge-tls), no
/// redirects (a tool's URL is where its arguments go, nowhere else).
fn tool_client(roots: callbridge_llm_bridge::TlsRoots) -> Result<reqwest::Client, ManagerError> {
    let tls = roots
        .client_config()
        .map_err(|e| ManagerError::Io(std::io::Error::other(format!("TLS for tools: {e}"))))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| ManagerError::Io(std::io::Error::other("the tools' HTTP client")))
}

/// Capacity of each call's SIP mailbox.
const MAILBOX: usize = 32;

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// Binding a socket or spawning the store thread failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The RTP port range or a media socket failed.
    #[error("media: {0}")]
    Media(#[from] callbridge_rtp::Error),
    /// The fallback clip (`ManagerConfig::fallback_clip`, or the built-in
    /// one) is unusable.
    #[error("fallback clip: {0}")]
    FallbackClip(#[from] crate::bridge::fallback::ClipError),
    /// The answering-machine detection settings (`ManagerConfig::amd`)
    /// contradict themselves.
    #[error("answering-machine detection: {0}")]
    Amd(#[from] callbridge_amd::ConfigError),
    /// The voicemail recording (`ManagerConfig::amd`'s
    /// [`VoicemailMessage::File`](crate::amd::VoicemailMessage::File)) is
    /// unusable.
    #[error("voicemail file: {0}")]
    VoicemailFile(crate::bridge::fallback::ClipError),
    /// The manager is at its call limit or shutting down.
    #[error("at capacity or shutting down")]
    Unavailable,
    /// The media engine cannot keep one more call on time (see the
    /// `overload` module): retry later.
    #[error("overloaded: the media engine cannot take another call on time")]
    Overloaded,
    /// A call for this lead is already live.
    #[error("a call for this lead is already live")]
    LeadBusy,
    /// The destination could not be parsed as a SIP URI.
    #[error("invalid destination URI")]
    BadUri,
    /// No such live session.
    #[error("no such live session")]
    UnknownSession,
    /// A call with this carrier call id is already live.
    #[error("a stream for this carrier call is already live")]
    AlreadyLive,
    /// The session row could not be written (or not within 5 s); the call
    /// was not started.
    #[error("the session row could not be written to the store")]
    Store,
    /// The request names a lead claim ([`OriginateRequest::claim`]) that is
    /// no longer held in the store (released, recorded or claimed again):
    /// no row was written and nothing was dialled.
    #[error("the lead's claim is no longer held")]
    ClaimNotHeld,
    /// The request names a routing profile that does not exist or takes
    /// no outbound calls ([`OriginateRequest::profile`]).
    #[error("no such routing profile for outbound calls")]
    UnknownProfile,
}

/// One live call in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The session id.
    pub id: SessionId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Its lifecycle phase.
    pub phase: Phase,
}

/// The manager's state for health and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Live calls.
    pub calls: Vec<CallInfo>,
    /// Calls ended since start, by end reason.
    pub ended: Vec<(EndReason, u64)>,
    /// Live call supervisor tasks.
    pub call_tasks: usize,
    /// Open media streams (RTP sockets).
    pub media_sockets: usize,
    /// Model sessions open or opening (this manager's).
    pub model_sessions: usize,
    /// Model WebSocket connections alive in the process (llm-bridge).
    pub model_connections: usize,
    /// Whether new calls are admitted.
    pub admitting: bool,
    /// The media engine's load and the calls refused for it.
    pub engine: EngineStatus,
}

/// The session manager. Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    shared: Arc<Shared>,
    inner: Arc<Inner>,
}

struct Inner {
    sip_addr: SocketAddr,
    sip_tcp_addr: Option<SocketAddr>,
    sip_tls_addr: Option<SocketAddr>,
    ports: PortPool,
    /// The media engine and the admission by its load.
    admission: Admission,
    /// SSRCs, sequence numbers, timestamps and SDP session ids
    /// ([`ManagerConfig::rng_seed`]).
    rng: Mutex<StdRng>,
    summarizer: Option<Arc<dyn Summarizer>>,
    root: CancellationToken,
    tracker: TaskTracker,
    background: Mutex<Vec<JoinHandle<()>>>,
    store_thread: Mutex<Option<StoreThread>>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("sip_addr", &self.inner.sip_addr)
            .finish()
    }
}

impl Manager {
    /// Binds the SIP socket, starts the SIP driver, the event router and the
    /// store thread. `model` opens each call's model session from
    /// `cfg.model`; `summarizer`, if any, summarizes each call afterwards.
    ///
    /// # Errors
    /// A socket or the port range could not be set up, or the fallback
    /// clip is unusable ([`ManagerError::FallbackClip`]: unreadable, not
    /// mono 16-bit 8 kHz WAV, empty or longer than 30 s). The machine's
    /// `farewell_drain` is raised to the clip's length plus 1 s when it is
    /// shorter, so the BYE never cuts the clip.
    pub async fn start(
        cfg: ManagerConfig,
        model: Arc<dyn RealtimeModel>,
        store: Store,
        summarizer: Option<Arc<dyn Summarizer>>,
    ) -> Result<Manager, ManagerError> {
        let fallback = match &cfg.fallback_clip {
            Some(path) => FallbackClip::load(path)?,
            None => FallbackClip::builtin()?,
        };
        cfg.amd.validate()?;
        let voicemail = match &cfg.amd.policy {
            crate::amd::MachinePolicy::Voicemail(crate::amd::VoicemailMessage::File(path)) => {
                Some(FallbackClip::load(path).map_err(ManagerError::VoicemailFile)?)
            }
            _ => None,
        };
        let mut cfg = cfg;
        // The model sees exactly the operator's transfer targets (none:
        // no transfer tool); every request is checked again at dial time.
        cfg.model.transfer_targets = cfg.transfer_targets.choices();
        let need = fallback.duration() + Duration::from_secs(1);
        if cfg.machine.farewell_drain < need {
            info!(
                need_ms = u64::try_from(need.as_millis()).unwrap_or(u64::MAX),
                "farewell drain raised to cover the fallback clip"
            );
            cfg.machine.farewell_drain = need;
        }
        // One seed (or the OS) for every random value the manager draws;
        // each consumer gets its own stream of it.
        let rng = |stream: u64| match cfg.rng_seed {
            Some(seed) => seeded_rng(seed.wrapping_add(stream)),
            None => os_rng(),
        };
        let ports = PortPool::with_rng(cfg.rtp.clone(), rng(1))?;
        let engine = match cfg.engine.clone() {
            Some(e) => e,
            None => MediaEngine::new(EngineConfig::default(), Arc::new(SystemClock))?,
        };
        let (sip_rng, media_rng) = (rng(0), rng(2));
        let mut ua = cfg.sip.clone();
        // The SIP core answers INVITEs over the limit (and while shutting
        // down) with 503 and Retry-After itself.
        ua.max_calls = cfg.max_calls;
        ua.retry_after = u32::try_from(cfg.retry_after.as_secs()).unwrap_or(u32::MAX);
        let mut dcfg = DriverConfig::new(cfg.sip_bind, ua);
        dcfg.shutdown_grace = cfg.shutdown_drain + Duration::from_secs(2);
        dcfg.streams = cfg.sip_streams.clone();
        let (driver, sip, events) = Driver::bind(dcfg, sip_rng).await?;
        let sip_addr = driver.local_addr();
        let (sip_tcp_addr, sip_tls_addr) = (driver.tcp_addr(), driver.tls_addr());
        let (store, store_thread) = StoreWriter::start_with(store, cfg.store_writer.clone())?;
        let http = tool_client(cfg.model.tls_roots)?;
        let implicit = shared::implicit(&cfg);
        let implicit_default = Arc::clone(implicit.default_profile());
        let profiles = shared::ProfileSlot::new(cfg.profiles.take().unwrap_or(implicit));
        let shared = Arc::new(Shared {
            cfg,
            sip,
            store,
            gauges: Arc::new(Gauges::default()),
            metrics: {
                let m = Metrics::default();
                m.prepare(crate::metrics::provider_label(model.provider()));
                Arc::new(m)
            },
            model,
            fallback,
            voicemail,
            registry: Mutex::new(Registry::new()),
            bus: crate::events::EventBus::default(),
            profiles,
            implicit: implicit_default,
            http,
            dns: std::sync::OnceLock::new(),
            registrars: Mutex::new(std::collections::HashMap::new()),
        });
        let root = CancellationToken::new();
        let driver_task = tokio::spawn(async move {
            match driver.run(std::future::pending::<()>()).await {
                Ok(stats) => info!(
                    datagrams = stats.datagrams,
                    malformed_dropped = stats.malformed_dropped,
                    malformed_answered = stats.malformed_answered,
                    filtered = stats.filtered,
                    overloaded = stats.overloaded,
                    refused_shutting_down = stats.refused_shutting_down,
                    inbound_calls = stats.inbound_calls,
                    outbound_calls = stats.outbound_calls,
                    "SIP driver stopped"
                ),
                Err(e) => warn!(error = %e, "SIP driver failed"),
            }
        });
        let manager = Manager {
            shared,
            inner: Arc::new(Inner {
                sip_addr,
                sip_tcp_addr,
                sip_tls_addr,
                ports,
                admission: Admission::new(engine),
                rng: Mutex::new(media_rng),
                summarizer,
                root,
                tracker: TaskTracker::new(),
                background: Mutex::new(vec![driver_task]),
                store_thread: Mutex::new(Some(store_thread)),
            }),
        };
        let router = tokio::spawn(manager.clone().route(events));
        let probe = tokio::spawn(manager.clone().report_readiness());
        manager
            .inner
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([router, probe]);
        info!(%sip_addr, "session manager started");
        Ok(manager)
    }

    /// The SIP socket's address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.inner.sip_addr
    }

    /// The SIP TCP listener's address, if there is one.
    pub fn sip_tcp_addr(&self) -> Option<SocketAddr> {
        self.inner.sip_tcp_addr
    }

    /// The SIP TLS listener's address, if there is one.
    pub fn sip_tls_addr(&self) -> Option<SocketAddr> {
        self.inner.sip_tls_addr
    }

    /// Read the SIP TLS certificate and key files again (SIGHUP); on an
    /// error the old certificate stays in use.
    ///
    /// # Errors
    /// The files are unusable, or the SIP driver has stopped.
    pub async fn reload_sip_tls(&self) -> Result<(), callbridge_sip::driver::ReloadError> {
        self.shared.sip.reload_tls().await
    }

    /// The live-resource gauges.
    pub fn gauges(&self) -> &Gauges {
        &self.shared.gauges
    }

    /// The counters, histograms and gauges of [`crate::metrics`] as of now
    /// (lock-free reads, plus one short lock for the model reachability).
    /// With [`Manager::snapshot`] and `callbridge_llm_bridge::stats` this
    /// is everything `GET /metrics` shows.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The SIP core's counters (INVITEs it refused itself while draining
    /// or at its own capacity, requests from outside the allowlist); `None`
    /// once the SIP driver has stopped.
    pub async fn sip_stats(&self) -> Option<callbridge_sip::ua::Stats> {
        self.shared.sip.stats().await.ok()
    }

    /// Adds the families of [`crate::metrics`] to `registry` (see
    /// [`Metrics::register`]); the agent encodes it for `GET /metrics`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.shared.metrics.register(registry);
    }

    async fn route(self, mut events: mpsc::Receiver<SipEvent>) {
        // The registrations in place (for `callbridge_trunk_registrations`).
        let mut registered = std::collections::HashSet::new();
        while let Some(ev) = events.recv().await {
            let call = match &ev {
                SipEvent::IncomingCall(inc) => {
                    // A call the engine paces waits for its next load
                    // window in a task of its own: the router goes on
                    // routing meanwhile (the SIP core answers a CANCEL of
                    // the waiting INVITE itself).
                    let wait = self.shared.cfg.admission_wait;
                    if !wait.is_zero() && self.inner.admission.engine().paces() {
                        let this = self.clone();
                        let inc = inc.clone();
                        tokio::spawn(async move { this.admit_inbound(&inc, wait).await });
                    } else {
                        self.admit_inbound(inc, std::time::Duration::ZERO).await;
                    }
                    continue;
                }
                SipEvent::Confirmed { call }
                | SipEvent::Progress { call, .. }
                | SipEvent::FailedOver { call, .. }
                | SipEvent::Answered { call, .. }
                | SipEvent::AnswerInAck { call, .. }
                | SipEvent::Failed { call, .. }
                | SipEvent::Ended { call, .. }
                | SipEvent::Reinvite { call, .. }
                | SipEvent::ReinviteAnswered { call, .. }
                | SipEvent::ReinviteFailed { call, .. }
                | SipEvent::Dtmf { call, .. }
                | SipEvent::TransferAccepted { call }
                | SipEvent::TransferFailed { call, .. } => *call,
                SipEvent::LocateRegistrar { id } => {
                    self.relocate_registrar(*id);
                    continue;
                }
                SipEvent::Registration { id, state } => {
                    trunk::registration_changed(*id, state);
                    let now = matches!(
                        state,
                        callbridge_sip::ua::RegistrationState::Registered { .. }
                    );
                    let was = if now {
                        !registered.insert(id.0)
                    } else {
                        registered.remove(&id.0)
                    };
                    self.shared.metrics.trunk_registration(was, now);
                    continue;
                }
                _ => continue,
            };
            let pending = self.shared.registry().route(call, ev);
            if let Some(p) = pending {
                // The call is behind: wait for room in its mailbox. The
                // call task drains it in its loop and closes it when it
                // ends, so this wait is bounded by the call itself; the
                // SIP driver never waits on this router, so it goes on
                // answering every request meanwhile.
                let _ = p.mailbox.send(p.msg).await;
            }
        }
    }

    /// The latch rules of a call signalled from (inbound) or to
    /// (outbound) `signalling_ip`: the configured policy and
    /// `sip.allowed_peers`.
    /// The targets of `dest` in the order to try them: the address with
    /// `transport`, or what an RFC 3263 location of the domain finds
    /// through the manager's resolver (`ManagerConfig::dns_servers`);
    /// empty when nothing was found. For a registration to a trunk named
    /// by its domain.
    pub async fn locate(
        &self,
        dest: &crate::dns::Destination,
        transport: callbridge_sip::transport::Transport,
    ) -> Vec<callbridge_sip::locate::Target> {
        self.shared.locate(dest, transport).await
    }

    fn latch_rules(&self, signalling_ip: impl Into<Option<IpAddr>>) -> LatchRules {
        let cfg = &self.shared.cfg;
        LatchRules::new(
            cfg.rtp_latch,
            signalling_ip.into(),
            cfg.sip.filter.networks().to_vec(),
        )
    }

    /// Opens a call's media stream for the SDP peer `remote` under
    /// `rules`. `answered`: whether the peer already knows our address (an
    /// outbound offer carries it); an inbound stream lets sources latch
    /// only once its answer goes out.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call's media settings, each from a different step of admission"
    )]
    fn open_media(
        &self,
        remote: Option<SocketAddr>,
        rules: LatchRules,
        answered: bool,
        law: Law,
        te: Option<u8>,
        srtp: callbridge_rtp::media::MediaSrtp,
    ) -> Result<MediaStream, ManagerError> {
        let mut mc = MediaConfig::with_rng(law, remote, &mut *self.rng());
        mc.srtp = srtp;
        // RTP inactivity is the call machine's timer (from the answer, not
        // while held), fed by the ticks; the stream's own report is only
        // logged.
        mc.telephone_event = te.and_then(callbridge_rtp::PayloadType::new);
        mc.latch = rules;
        mc.latch_open = answered;
        // The call keeps at most this many frames in the stream (the rest
        // wait in its own queue, where a barge-in drops them).
        mc.playback_capacity = crate::bridge::audio::STREAM_DEPTH + 1;
        Ok(MediaStream::open(
            self.inner.admission.engine(),
            &self.inner.ports,
            mc,
        )?)
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Our SDP side of a call on RTP port `port`, under `rtp.srtp`.
    /// `srtp_keys`: the call's fresh SDES keys (`srtp::fresh_keys`), or none
    /// for a call that must not offer SRTP.
    fn local_media(
        &self,
        port: u16,
        srtp_keys: Vec<(
            callbridge_sip::sdp::CryptoSuite,
            callbridge_sip::sdp::KeyMaterial,
        )>,
    ) -> LocalMedia {
        let mut lm = LocalMedia::new(self.shared.cfg.media_ip, port);
        lm.session_id = u64::from(self.rng().next_u32());
        lm.srtp = self.shared.cfg.srtp;
        lm.srtp_keys = srtp_keys;
        lm
    }

    /// Withdraws an admitted call whose session row could not be written,
    /// and counts it (`callbridge_calls_refused_total{reason="store"}`).
    pub(crate) fn refused_for_store(&self, id: SessionId) {
        self.shared.registry().withdraw(id);
        self.shared.store.health().refused_call();
        warn!(session = %id, "call refused: its session row could not be written to the store");
    }

    /// Counts a call refused before admission because the store cannot be
    /// written (a carrier webhook answered with a refusal).
    pub fn count_store_refusal(&self) {
        self.shared.store.health().refused_call();
    }

    /// Whether the store takes writes: the last write, or the writer's
    /// periodic one-row probe, reached it. While it is false every new
    /// call is refused (its row cannot be written); `/readyz` reports it.
    pub fn store_healthy(&self) -> bool {
        self.shared.store.healthy()
    }

    /// The store writer's health flag and counters (write failures by
    /// operation, journal backlog, calls refused for the store).
    pub fn store_stats(&self) -> crate::store_writer::StoreStats {
        self.shared.store.health().stats()
    }

    /// The session row of a new call (state `created`).
    #[allow(
        clippy::too_many_arguments,
        reason = "one row's columns, named at the call sites"
    )]
    fn session_row(
        &self,
        id: SessionId,
        direction: Direction,
        transport: StoreTransport,
        sip_call_id: Option<String>,
        from: Option<String>,
        to: Option<String>,
        campaign: Option<callbridge_crm_store::CampaignId>,
        lead: Option<callbridge_crm_store::LeadId>,
        owner: Option<callbridge_crm_store::UserId>,
    ) -> NewSession {
        let now = jiff::Timestamp::now();
        let mut s = match direction {
            Direction::Inbound => NewSession::inbound(id, now),
            Direction::Outbound => NewSession::outbound(id, now),
        };
        s.transport = transport;
        s.sip_call_id = sip_call_id;
        s.from = from.as_deref().and_then(|p| Party::new(p).ok());
        s.to = to.as_deref().and_then(|p| Party::new(p).ok());
        s.campaign = campaign;
        s.lead = lead;
        s.owner = match direction {
            Direction::Inbound => {
                owner.or_else(|| self.shared.cfg.inbound_owners.owner_of(to.as_deref()))
            }
            Direction::Outbound => owner,
        };
        s.model = Some(self.shared.cfg.model.model.clone());
        s.model_provider = Some(
            self.shared
                .cfg
                .provider_label
                .clone()
                .unwrap_or_else(|| self.shared.model.provider().to_string()),
        );
        s
    }

    /// Hangs up a live call (`AgentHangup`).
    ///
    /// # Errors
    /// [`ManagerError::UnknownSession`] when it is not live.
    pub async fn hangup(&self, id: SessionId) -> Result<(), ManagerError> {
        let mb = self
            .shared
            .registry()
            .mailbox(id)
            .ok_or(ManagerError::UnknownSession)?;
        mb.send(CallMsg::Command(Command::Hangup))
            .await
            .map_err(|_| ManagerError::UnknownSession)
    }

    /// A subscriber to a live call's events (`crate::events`) from now
    /// on; its last event is `call.ended`. `None` when the call is not
    /// live here.
    pub fn subscribe(
        &self,
        id: SessionId,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::events::Published>> {
        self.shared.registry().subscribe(id)
    }

    /// A live call's recent events numbered above `after` (at most
    /// [`crate::events::REPLAY`]; 0: all it keeps), then a subscriber to
    /// every later one: each event once, in order. `None` when the call
    /// is not live here.
    pub fn replay(
        &self,
        id: SessionId,
        after: u64,
    ) -> Option<(
        Vec<crate::events::Published>,
        tokio::sync::broadcast::Receiver<crate::events::Published>,
    )> {
        self.shared.registry().replay(id, after)
    }

    /// A subscriber to every call's events from now on.
    pub fn subscribe_all(&self) -> tokio::sync::broadcast::Receiver<crate::events::Published> {
        self.shared.bus.subscribe_all()
    }

    /// The live calls, end-reason counters and gauges.
    pub fn snapshot(&self) -> Snapshot {
        let reg = self.shared.registry();
        let g = &self.shared.gauges;
        Snapshot {
            calls: reg
                .calls()
                .into_iter()
                .map(|(id, direction, phase)| CallInfo {
                    id,
                    direction,
                    phase,
                })
                .collect(),
            ended: reg.ended(),
            call_tasks: g.get(Gauge::CallTask),
            media_sockets: g.get(Gauge::MediaSocket),
            model_sessions: g.get(Gauge::ModelSession),
            model_connections: callbridge_llm_bridge::stats::live_connections(),
            admitting: reg.admitting,
            engine: self.inner.admission.status(),
        }
    }

    /// The store-health input of [`Manager::readiness`]: the store takes
    /// writes ([`Manager::store_healthy`]).
    pub fn store_writable(&self) -> bool {
        self.store_healthy()
    }

    /// Live SIP transactions in the driver (RFC 3261 section 17). They
    /// linger after a call by design, for Timer J (64*T1) or K (T4), and
    /// must be gone once that has passed. `None` once the driver stopped.
    pub async fn sip_transactions(&self) -> Option<usize> {
        self.shared.sip.transaction_count().await.ok()
    }

    /// Waits until every queued store write is done.
    pub async fn flush_store(&self) {
        self.shared.store.flush().await;
    }

    /// Graceful shutdown: stops admitting (the SIP core answers new INVITEs
    /// 503), sends every call the machine's `Shutdown` command with a drain
    /// deadline of `cfg.shutdown_drain`, waits for the calls (cancelling the
    /// stragglers after the deadline plus the join timeout), stops the SIP
    /// driver and the router, and flushes the store.
    pub async fn shutdown(&self) {
        let cfg = &self.shared.cfg;
        let deadline = crate::bridge::now() + cfg.shutdown_drain;
        let mailboxes = {
            let mut reg = self.shared.registry();
            reg.admitting = false;
            reg.mailboxes()
        };
        let _ = self.shared.sip.shutdown().await;
        for mb in mailboxes {
            let _ = mb.try_send(CallMsg::Command(Command::Shutdown { deadline }));
        }
        self.inner.tracker.close();
        let bound = cfg.shutdown_drain + cfg.machine.cleanup_join + Duration::from_secs(1);
        if tokio::time::timeout(bound, self.inner.tracker.wait())
            .await
            .is_err()
        {
            warn!("calls still live after the drain; cancelling them");
            self.inner.root.cancel();
            self.inner.tracker.wait().await;
        }
        self.shared.store.flush().await;
        let tasks: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // The SIP driver (first) ends once its calls and transactions are
        // gone (bounded: lingering transactions may wait for Timer K/J);
        // the router ends with it.
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
                let _ = t.await;
            }
        }
        // Detach the store thread: it ends once the last writer (held by
        // any remaining clone of this manager) is dropped, after writing
        // everything queued.
        drop(
            self.inner
                .store_thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// The user part of a SIP URI (the phone number, for the store's parties).
/// `metadata` with the call's parties (masked wherever they are shown:
/// the call's first log line names them).
pub(crate) fn parties(
    mut metadata: CallMetadata,
    from: Option<String>,
    to: Option<String>,
) -> CallMetadata {
    metadata.caller = from.map(callbridge_redact::Masked::new);
    metadata.callee = to.map(callbridge_redact::Masked::new);
    metadata
}

fn user_part(uri: &Uri) -> Option<String> {
    uri.user().map(|u| String::from_utf8_lossy(u).into_owned())
}
