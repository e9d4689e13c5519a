//! `agent run`: start-up (store crash recovery, the model, the session
//! manager, trunk registration, the HTTP API), the `ready` line, and the
//! process life of CONTRACT.md: SIGTERM/SIGINT drain and exit 0, a second
//! signal marks live sessions interrupted and exits 130 at once.
//!
//! [`Agent`] is the running server without the signal handling, shared
//! with `agent demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_carrier::HangupError;
use callbridge_crm_store::{FileAccess as Access, Store, StoreAt, WriterId};
use callbridge_llm_bridge::summary::summarizer_for;
use callbridge_llm_bridge::{GeminiLive, GptLive, OpenAiRealtime, RealtimeModel, TlsRoots};
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_rtp::clock::SystemClock;
use callbridge_rtp::engine::MediaEngine;
use callbridge_session::{Manager, ManagerError, Summarizer};
use callbridge_sip::driver::DriverError;
use callbridge_sip::ua::{Register, RegistrationId};
use callbridge_sip::{NameAddr, Uri};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::http;
use crate::settings::{Provider, Secrets, Settings};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The recordings directory cannot be created.
    #[error("cannot create store.recordings_dir {}: {}", path.display(), io_cause(source))]
    RecordingsDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store cannot be opened or recovered.
    #[error("store {}: {source}", path.display())]
    Store {
        /// The SQLite file, or the PostgreSQL URL (password masked).
        path: PathBuf,
        /// Why.
        source: callbridge_crm_store::Error,
    },
    /// `calls.default_owner` or `calls.inbound_owners` names a user the
    /// store does not have.
    #[error("{key}: no user named {name:?} (create it with `agent user add`)")]
    NoOwner {
        /// The key.
        key: &'static str,
        /// The user name.
        name: String,
    },
    /// The in-process mock model did not start.
    #[error("mock model: {0}")]
    Mock(std::io::Error),
    /// The session manager (SIP socket, RTP ports) did not start.
    #[error("session manager on sip.bind {addr}: {source}")]
    Manager {
        /// `sip.bind`.
        addr: SocketAddr,
        /// Why.
        source: ManagerError,
    },
    /// The media engine's threads did not start (`[media]`).
    #[error("media engine ({threads} thread(s)): {source}")]
    MediaEngine {
        /// `media.engine_threads`.
        threads: usize,
        /// Why.
        source: callbridge_rtp::Error,
    },
    /// An HTTP socket cannot be bound.
    #[error("{key} {addr}: {source}")]
    Http {
        /// `http.bind`, `http.public_bind` or `http.metrics_bind`.
        key: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Registering with the trunk could not be started.
    #[error("sip.trunk registration: {0}")]
    Register(DriverError),
    /// A configured carrier's REST hang-up client cannot be built (with
    /// `tls.roots = "system"`: the system trust store has no usable
    /// certificate).
    #[error("tls.roots {roots}: {source}")]
    CarrierHangup {
        /// `tls.roots`.
        roots: TlsRoots,
        /// Why.
        source: HangupError,
    },
    /// `webhooks.secret_env` names a variable that is not set.
    #[error("webhooks.secret_env: the variable {var} is not set (or empty)")]
    WebhookSecret {
        /// The variable's name.
        var: String,
    },
    /// The webhook worker did not start.
    #[error("webhooks: {0}")]
    Webhooks(#[from] callbridge_session::webhooks::worker::WorkerError),
    /// A blocking task panicked.
    #[error("start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl StartError {
    /// The exit status: 2 for what the operator must fix in the
    /// configuration or the host: the store's files or their place
    /// (permissions, read-only or full filesystem, a damaged or newer
    /// database, a lock held by another process), the host's trust store
    /// (`tls.roots`), a SIP or HTTP address that cannot be bound (in use,
    /// not this host's, a privileged port); 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::RecordingsDir { .. }
            | StartError::Store { .. }
            | StartError::WebhookSecret { .. }
            | StartError::NoOwner { .. }
            | StartError::CarrierHangup {
                source: HangupError::Tls { .. },
                ..
            } => 2,
            StartError::Http { source, .. }
            | StartError::Manager {
                source: ManagerError::Io(source),
                ..
            } if is_bind_error(source) => 2,
            _ => 1,
        }
    }
}

/// A socket address the configuration names cannot be bound here.
fn is_bind_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::AddrInUse | K::AddrNotAvailable | K::PermissionDenied
    )
}

/// An OS error in the operator's words (the same words the store uses).
fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let what = match e.kind() {
        K::PermissionDenied => "permission denied",
        K::ReadOnlyFilesystem => "read-only filesystem",
        K::StorageFull | K::QuotaExceeded => "disk full",
        _ => return e.to_string(),
    };
    format!("{what} ({e})")
}

/// A running agent: session manager, HTTP server, optional mock model and
/// trunk registration.
pub struct Agent {
    /// The session manager.
    pub manager: Manager,
    /// The SIP socket's address.
    pub sip_addr: SocketAddr,
    /// The HTTP socket's address (`http.bind`).
    pub http_addr: SocketAddr,
    /// The carrier listener's address, when bound apart.
    pub public_addr: Option<SocketAddr>,
    /// The metrics listener's address, when bound apart.
    pub metrics_addr: Option<SocketAddr>,
    /// The store.
    pub store: StoreAt,
    mock: Option<MockGemini>,
    registration: Option<RegistrationId>,
    http_stop: CancellationToken,
    http_tasks: Vec<JoinHandle<()>>,
    /// The webhook worker (`[webhooks]`), stopped after the calls.
    webhook_stop: CancellationToken,
    webhook_task: Option<JoinHandle<()>>,
}

/// `[webhooks]` with its secret from the environment.
fn webhook_config(
    settings: &Settings,
) -> Result<Option<Arc<callbridge_session::webhooks::WebhookConfig>>, StartError> {
    let Some(w) = &settings.webhooks else {
        return Ok(None);
    };
    let mut cfg = w.config.clone();
    if let Some(var) = &w.secret_env {
        let secret = std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| StartError::WebhookSecret { var: var.clone() })?;
        cfg.secret = Some(callbridge_redact::Secret::new(secret.into_bytes()));
    }
    Ok(Some(Arc::new(cfg)))
}

/// Starts the webhook worker on a store connection of its own: for the
/// global `[webhooks]` and for the routing profiles' own receivers
/// (always, since `PUT /api/profiles` may add some at any time; an idle
/// outbox costs one look per `FALLBACK_POLL`, 30 s: the manager wakes it
/// when rows are written or the profiles change).
async fn start_webhooks(
    settings: &Settings,
    cfg: Option<&callbridge_session::webhooks::WebhookConfig>,
    manager: &Manager,
    stop: &CancellationToken,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let cfg = cfg
        .cloned()
        .unwrap_or_else(|| settings.routing.defaults.webhooks.clone());
    let at = settings.store_at();
    let store = tokio::task::spawn_blocking(move || at.open())
        .await?
        .map_err(|source| StartError::Store {
            path: PathBuf::from(settings.store_at().url.to_string()),
            source,
        })?;
    let task = callbridge_session::webhooks::worker::start(
        store,
        cfg,
        Arc::new(manager.clone()),
        settings.tls_roots,
        settings.node.as_str().to_owned(),
        manager.webhook_wake(),
        stop.clone(),
    )
    .await?;
    Ok(Some(task))
}

/// Binds `addr` for `key`.
async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Http { key, addr, source };
    let l = TcpListener::bind(addr).await.map_err(err)?;
    // Checked so the `ready` line can name it.
    l.local_addr().map_err(err)?;
    Ok(l)
}

/// Binds every configured HTTP listener: `http.bind`, then the ones apart.
async fn bind_all(settings: &Settings) -> Result<Vec<(&'static str, TcpListener)>, StartError> {
    let mut out = vec![("http", bind("http.bind", settings.http_bind).await?)];
    if let Some(a) = settings.http_public_bind {
        out.push(("public", bind("http.public_bind", a).await?));
    }
    if let Some(a) = settings.http_metrics_bind {
        out.push(("metrics", bind("http.metrics_bind", a).await?));
    }
    Ok(out)
}

/// Removes from an existing file or directory the permission bits that
/// `files.group_readable` does not allow (an older build wrote `0644`),
/// logging what changed; a failure is logged and start-up goes on.
fn tighten_logged(path: &Path, access: Access) {
    match callbridge_files::tighten(path, access) {
        Ok(Some(t)) => warn!(
            path = %path.display(),
            from = format!("{:o}", t.from),
            to = format!("{:o}", t.to),
            "permissions tightened to files.group_readable"
        ),
        Ok(None) => {}
        Err(e) => warn!(
            path = %path.display(),
            error = %e,
            "cannot tighten permissions (files.group_readable); fix them by hand"
        ),
    }
}

/// Creates the recordings directory (and missing parents) with the
/// configured mode; an existing one is tightened.
fn recordings_dir(dir: &Path, access: Access) -> Result<(), StartError> {
    tighten_logged(dir, access);
    callbridge_files::create_dir_all(dir, access).map_err(|source| StartError::RecordingsDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Resolves the owners of inbound calls (`calls.default_owner`,
/// `calls.inbound_owners`: user names) to user ids.
fn inbound_owners(
    store: &Store,
    (default, by_called): (Option<String>, Vec<(String, String)>),
) -> Result<callbridge_session::InboundOwners, StartError> {
    let find = |key: &'static str, name: String| match store.find_user(&name) {
        Ok(Some(u)) => Ok(u.id),
        Ok(None) => Err(StartError::NoOwner { key, name }),
        Err(source) => Err(StartError::Store {
            path: PathBuf::from("(users)"),
            source,
        }),
    };
    let mut owners = callbridge_session::InboundOwners {
        default: default
            .map(|n| find("calls.default_owner", n))
            .transpose()?,
        ..Default::default()
    };
    for (number, name) in by_called {
        owners
            .by_called
            .insert(number, find("calls.inbound_owners", name)?);
    }
    Ok(owners)
}

/// Opens the store (a new file gets the configured mode; an existing one
/// and its `-wal`/`-shm` files are tightened), replays the store writer's
/// journal left by an earlier run (before crash recovery, so the ends it
/// journaled win over `interrupted`), runs crash recovery (sessions and
/// leads, then the recordings a crash left) and returns the store
/// (blocking), and whether recovery was postponed because the journal
/// could not be replayed yet (the store writer then runs the session
/// recovery once it has replayed it; the recordings wait for the next
/// start).
fn open_and_recover(
    at: StoreAt,
    spool: PathBuf,
    recordings: PathBuf,
) -> Result<(Store, bool), StartError> {
    let path = PathBuf::from(at.url.to_string());
    let err = |source| StartError::Store {
        path: path.clone(),
        source,
    };
    if let Some(file) = at.sqlite_path() {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = file.as_os_str().to_owned();
            p.push(suffix);
            tighten_logged(Path::new(&p), at.options.file_access);
        }
    }
    let mut store = at.open().map_err(err)?;
    match callbridge_session::store_writer::replay_journal(&mut store, &spool) {
        Ok(r) if r == Default::default() => {}
        Ok(r) => warn!(
            spool = %spool.display(),
            applied = r.applied,
            already = r.already,
            rejected = r.rejected,
            bad_lines = r.bad_lines,
            "store journal of an earlier run replayed"
        ),
        Err(e) => {
            error!(
                spool = %spool.display(),
                error = %e,
                "store journal of an earlier run not replayed yet: crash recovery waits for it"
            );
            return Ok((store, true));
        }
    }
    let report = store.recover(jiff::Timestamp::now()).map_err(|e| {
        // A file that opened but cannot be written names its cause too.
        err(match e.fault() {
            Some(fault) => callbridge_crm_store::Error::Unusable { fault },
            None => e,
        })
    })?;
    crate::store_cmd::recover_recordings(&mut store, &recordings);
    if report.interrupted.is_empty() && report.released_leads == 0 && report.failed_leads == 0 {
        info!(database = %path.display(), "store open, nothing to recover");
    } else {
        warn!(
            database = %path.display(),
            interrupted = report.interrupted.len(),
            released_leads = report.released_leads,
            failed_leads = report.failed_leads,
            "crash recovery: sessions left live by a dead process marked interrupted"
        );
    }
    Ok((store, false))
}

/// The post-call summarizer `[summary]` asks for, or `None` (logged with
/// the reason). Its provider, model and endpoint are its own; by default
/// the call model's provider and key and the provider's public text API.
fn summarizer(settings: &Settings, secrets: &Secrets) -> Option<Arc<dyn Summarizer>> {
    let cfg = &settings.summary;
    if !cfg.enabled {
        info!("post-call summaries off (summary.enabled = false)");
        return None;
    }
    let (provider, key) = match cfg.provider {
        Some(p) => (p, secrets.summary_key.clone()),
        None => {
            let p = match settings.provider {
                Provider::Gemini => callbridge_llm_bridge::Provider::Gemini,
                Provider::OpenAi => callbridge_llm_bridge::Provider::OpenAi,
                Provider::GptLive => callbridge_llm_bridge::Provider::GptLive,
                Provider::Mock => {
                    info!(
                        "post-call summaries off: the mock model has no text API (set summary.provider)"
                    );
                    return None;
                }
            };
            // A model endpoint override (a proxy, a mock) has no matching
            // text endpoint: summary.endpoint must name one.
            if settings.endpoint.is_some() && cfg.endpoint.is_none() {
                info!("post-call summaries off: model.endpoint is set, summary.endpoint is not");
                return None;
            }
            (p, secrets.model_key.clone())
        }
    };
    let Some(key) = key else {
        info!("post-call summaries off: no API key");
        return None;
    };
    // `tls.roots`, as for the model connections.
    match summarizer_for(
        provider,
        cfg.endpoint.as_deref(),
        cfg.model.as_deref(),
        key,
        settings.tls_roots,
    ) {
        Ok(s) => {
            info!(provider = ?provider, "post-call summaries on");
            Some(s)
        }
        Err(e) => {
            warn!(error = %e, "post-call summaries disabled");
            None
        }
    }
}

impl Agent {
    /// Starts everything; returns once SIP, RTP and HTTP are up.
    pub async fn start(settings: &Settings, secrets: &Secrets) -> Result<Agent, StartError> {
        recordings_dir(&settings.recordings_dir, settings.file_access)?;
        // The carrier REST clients first: a trust store they cannot use is
        // a configuration error, found before anything is started.
        let roots = settings.tls_roots;
        let carrier = http::carrier::CarrierState::new(secrets.carrier.clone(), roots)
            .map_err(|source| StartError::CarrierHangup { roots, source })?;
        let (at, spool, rec) = (
            settings.store_at(),
            settings.spool_dir.clone(),
            settings.recordings_dir.clone(),
        );
        let named = (
            settings.default_owner.clone(),
            settings.inbound_owners.clone(),
        );
        let (store, recovery_postponed, owners) = tokio::task::spawn_blocking(move || {
            let (store, postponed) = open_and_recover(at, spool, rec)?;
            let owners = inbound_owners(&store, named)?;
            Ok::<_, StartError>((store, postponed, owners))
        })
        .await??;
        let (mock, endpoint) = match settings.provider {
            Provider::Mock => {
                let mock = MockGemini::start(GeminiScript::default())
                    .await
                    .map_err(StartError::Mock)?;
                let url = mock.url();
                info!(endpoint = %url, "built-in mock model listening on loopback");
                (Some(mock), Some(url))
            }
            _ => (None, None),
        };
        let model: Arc<dyn RealtimeModel> = match settings.provider {
            Provider::Gemini | Provider::Mock => Arc::new(GeminiLive::new()),
            Provider::OpenAi => Arc::new(OpenAiRealtime::new()),
            Provider::GptLive => Arc::new(match &settings.delegation_model {
                Some(m) => GptLive::new().with_delegation_model(m.clone()),
                None => GptLive::new(),
            }),
        };
        let mut cfg = settings.manager_config(settings.session_config(secrets, endpoint));
        // The media engine runs on the system clock; the settings choose
        // its threads and scheduling.
        let engine = MediaEngine::new(settings.engine_config(), Arc::new(SystemClock)).map_err(
            |source| StartError::MediaEngine {
                threads: settings.engine_threads,
                source,
            },
        )?;
        cfg.engine = Some(engine);
        // Read once (with its secret): the calls write rows by it, the
        // worker below delivers them by it.
        let webhooks = webhook_config(settings)?;
        cfg.webhooks = webhooks.clone();
        cfg.outbound_auth = settings.outbound_auth(secrets);
        cfg.store_writer.recover_after_replay = recovery_postponed;
        cfg.inbound_owners = owners;
        // Rows and answers name the provider as configured (`mock` when
        // the built-in mock serves the Gemini protocol).
        cfg.provider_label = Some(settings.provider.name().to_owned());
        if let (Some(auth), Some(target)) = (&cfg.outbound_auth, &settings.outbound_target)
            && auth.target != *target
        {
            warn!(
                %target,
                trunk = %auth.target,
                "outbound.target is not the trunk's address: outbound calls carry no trunk credentials"
            );
        }
        let manager = Manager::start(cfg, model, store, summarizer(settings, secrets))
            .await
            .map_err(|source| StartError::Manager {
                addr: settings.sip_bind,
                source,
            })?;
        let webhook_stop = CancellationToken::new();
        let webhook_task =
            match start_webhooks(settings, webhooks.as_deref(), &manager, &webhook_stop).await {
                Ok(t) => t,
                Err(e) => {
                    manager.shutdown().await;
                    return Err(e);
                }
            };
        let sip_addr = manager.sip_addr();
        let registration = match register(&manager, settings, secrets, sip_addr).await {
            Ok(r) => r,
            Err(e) => {
                manager.shutdown().await;
                return Err(e);
            }
        };
        let listeners = match bind_all(settings).await {
            Ok(l) => l,
            Err(e) => {
                manager.shutdown().await;
                return Err(e);
            }
        };
        let addr_of = |name: &str| {
            listeners
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, l)| l.local_addr().ok())
        };
        let http_addr = addr_of("http").unwrap_or(settings.http_bind);
        let public_addr = addr_of("public");
        let metrics_addr = addr_of("metrics");
        let state = Arc::new(http::State {
            manager: manager.clone(),
            store: settings.store_at(),
            recordings_dir: Some(settings.recordings_dir.clone()),
            started: Instant::now(),
            provider: settings.provider.name().to_owned(),
            outbound: settings.outbound(),
            carrier: Some(Arc::new(carrier)),
            console: Arc::default(),
            listen: settings.http_listen,
            profiles: Some(Arc::new(http::profiles::ProfileAdmin {
                defaults: settings.routing.defaults.clone(),
                file: settings.routing.profiles_file.clone(),
                access: settings.file_access,
                lock: tokio::sync::Mutex::new(()),
                others: settings.other_providers.clone(),
                delegation_model: settings.delegation_model.clone(),
            })),
        });
        info!(
            profiles = manager.profiles().specs().len(),
            from_file = settings.routing.from_file,
            "routing profiles loaded"
        );
        let apart = http::Apart {
            public: public_addr.is_some(),
            metrics: metrics_addr.is_some(),
        };
        let mut routers = http::routers(state, &settings.http_limits, apart);
        let http_stop = CancellationToken::new();
        let count = listeners.len();
        let mut http_tasks = Vec::with_capacity(count);
        for (name, listener) in listeners {
            let router = match name {
                "public" => routers.public.take(),
                "metrics" => routers.metrics.take(),
                _ => Some(routers.admin.clone()),
            };
            let Some(router) = router else { continue };
            http_tasks.push(tokio::spawn(http::serve::serve(
                listener,
                router,
                settings.http_limits.clone(),
                count,
                http_stop.clone(),
            )));
        }
        if let Some(task) =
            crate::retention::spawn(settings.store_at(), settings.retention, http_stop.clone())
        {
            http_tasks.push(task);
        }
        info!(
            %sip_addr,
            %http_addr,
            public_addr = public_addr.map(tracing::field::display),
            metrics_addr = metrics_addr.map(tracing::field::display),
            provider = settings.provider.name(),
            "agent up"
        );
        Ok(Agent {
            manager,
            sip_addr,
            http_addr,
            public_addr,
            metrics_addr,
            store: settings.store_at(),
            mock,
            registration,
            http_stop,
            http_tasks,
            webhook_stop,
            webhook_task,
        })
    }

    /// Graceful stop: unregister from the trunk, let the manager stop
    /// admitting, drain and end the calls (HTTP keeps answering meanwhile,
    /// so health shows `admitting: false` and new calls get 503), then stop
    /// HTTP (in-flight requests finish) and the mock model.
    pub async fn shutdown(self) {
        if let Some(id) = self.registration {
            match tokio::time::timeout(Duration::from_secs(2), self.manager.unregister(id)).await {
                Ok(Ok(())) => info!("trunk unregistration sent"),
                Ok(Err(e)) => warn!(error = %e, "trunk unregister failed"),
                Err(_) => warn!("trunk unregister timed out"),
            }
        }
        self.manager.shutdown().await;
        self.webhook_stop.cancel();
        if let Some(t) = self.webhook_task
            && tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
        {
            warn!("webhook worker did not stop in time");
        }
        self.http_stop.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for mut task in self.http_tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "HTTP server task failed"),
                Err(_) => {
                    warn!("HTTP connections still open after 5 s; closing them");
                    task.abort();
                }
            }
        }
        if let Some(mock) = self.mock {
            mock.shutdown().await;
        }
        info!("agent stopped");
    }
}

async fn register(
    manager: &Manager,
    settings: &Settings,
    secrets: &Secrets,
    sip_addr: SocketAddr,
) -> Result<Option<RegistrationId>, StartError> {
    let Some(trunk) = &settings.trunk else {
        return Ok(None);
    };
    let parse = |s: String| Uri::parse(&bytes::Bytes::from(s));
    // Validated with the settings (`sip.trunk.registrar`); a failure here is reported, not unwrapped.
    let (Ok(registrar), Ok(aor)) = (
        parse(trunk.registrar.clone()),
        parse(format!("sip:{}@{}", trunk.username, trunk.domain)),
    ) else {
        return Err(StartError::Register(DriverError::Stopped));
    };
    let spec = Register {
        registrar,
        target: SocketAddr::from(([0, 0, 0, 0], 0)),
        aor: NameAddr::new(aor),
        expires: u32::try_from(trunk.expires.as_secs()).unwrap_or(u32::MAX),
        credentials: settings.trunk_credentials(secrets),
    };
    let (id, target) = manager
        .register_located(spec, &trunk.target)
        .await
        .map_err(StartError::Register)?;
    match target {
        Some(target) => info!(target_addr = %target, %sip_addr, "registering with the trunk"),
        None => warn!(
            registrar = %trunk.target,
            "no SIP server found for the registrar (RFC 3263) yet: located again after the retry backoff"
        ),
    }
    Ok(Some(id))
}

/// Marks this process's live sessions interrupted (the second signal).
fn mark_interrupted(store: StoreAt) {
    let me = WriterId::current();
    match store
        .open()
        .and_then(|mut s| s.recover_with(jiff::Timestamp::now(), |w| *w != me && w.is_alive()))
    {
        Ok(r) => warn!(
            interrupted = r.interrupted.len(),
            "live sessions marked interrupted"
        ),
        Err(e) => error!(error = %e, "could not mark live sessions interrupted"),
    }
}

/// `agent run`: returns the process exit status.
pub async fn serve(settings: Settings, secrets: Secrets) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return 1;
    };
    let agent = match Agent::start(&settings, &secrets).await {
        Ok(a) => a,
        Err(e) => {
            error!(error = %e, "start-up failed");
            eprintln!("agent: {e}");
            return e.exit_code();
        }
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let mut line = format!("ready sip={} http={}", agent.sip_addr, agent.http_addr);
        if let Some(a) = agent.manager.sip_tcp_addr() {
            line.push_str(&format!(" sip_tcp={a}"));
        }
        if let Some(a) = agent.manager.sip_tls_addr() {
            line.push_str(&format!(" sip_tls={a}"));
        }
        if let Some(a) = agent.public_addr {
            line.push_str(&format!(" public={a}"));
        }
        if let Some(a) = agent.metrics_addr {
            line.push_str(&format!(" metrics={a}"));
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        crate::service_manager::ready(&line);
    }
    let watchdog = crate::service_manager::watchdog(&agent.manager);
    // SIGHUP reloads the SIP TLS certificate (sip.tls_cert, sip.tls_key);
    // without a handler it would end the process.
    let mut hup = signal(SignalKind::hangup()).ok();
    let which = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            Some(()) = async { hup.as_mut()?.recv().await } => {
                match agent.manager.reload_sip_tls().await {
                    Ok(()) => info!("SIGHUP: SIP TLS certificate reloaded"),
                    Err(e) => warn!(error = %e, "SIGHUP: SIP TLS certificate not reloaded; the old one stays"),
                }
            }
        }
    };
    crate::service_manager::stopping();
    info!(
        signal = which,
        drain_ms = u64::try_from(settings.drain_timeout.as_millis()).unwrap_or(u64::MAX),
        "shutting down: no new calls, draining live ones (a second signal exits at once)"
    );
    let store = agent.store.clone();
    let shutdown = agent.shutdown();
    tokio::pin!(shutdown);
    let code = tokio::select! {
        () = &mut shutdown => 0,
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            warn!("second signal: exiting now");
            let _ = tokio::task::spawn_blocking(move || mark_interrupted(store)).await;
            130
        }
    };
    if let Some(w) = watchdog {
        w.abort();
    }
    code
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::collections::BTreeMap;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn status(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out)
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_carrier_and_metrics_listeners_bound_apart_serve_only_their_routes() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[sip]\nbind = \"127.0.0.1:0\"\n\
                    [rtp]\nport_min = 31400\nport_max = 31449\n\
                    [calls]\nmax_concurrent = 4\ndrain_timeout = \"1s\"\n\
                    [model]\nprovider = \"mock\"\n\
                    [http]\nbind = \"127.0.0.1:0\"\npublic_bind = \"127.0.0.1:0\"\n\
                    metrics_bind = \"127.0.0.1:0\"\n";
        let settings =
            Settings::from_text(Path::new("t.toml"), text, &BTreeMap::new(), dir.path()).unwrap();
        let secrets = Secrets::from_env(&settings, &BTreeMap::new()).unwrap();
        let agent = Agent::start(&settings, &secrets).await.unwrap();
        let admin = agent.http_addr;
        let public = agent.public_addr.unwrap();
        let metrics = agent.metrics_addr.unwrap();
        assert!(admin != public && public != metrics && admin != metrics);
        // A route that exists answers a wrong method 405; a missing one 404.
        assert_eq!(status(public, "POST", "/carrier/vonage/ws").await, "405");
        assert_eq!(status(admin, "POST", "/carrier/vonage/ws").await, "404");
        assert_eq!(status(public, "GET", "/api/health").await, "404");
        assert_eq!(status(admin, "GET", "/api/health").await, "200");
        assert_eq!(status(metrics, "GET", "/metrics").await, "200");
        assert_eq!(status(admin, "GET", "/metrics").await, "404");
        for addr in [admin, public, metrics] {
            assert_eq!(status(addr, "GET", "/livez").await, "200");
            assert_eq!(status(addr, "GET", "/readyz").await, "200");
        }
        agent.shutdown().await;
    }
}
