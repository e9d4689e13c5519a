//! `agent run`: start-up (store crash recovery, the model, the session
//! manager, trunk registration, the HTTP API), the `ready` line, and the
//! process life of CONTRACT.md: SIGTERM/SIGINT drain and exit 0, a second
//! signal marks live sessions interrupted and exits 130 at once.
//!
//! [`Agent`] is the running server without the signal handling, shared
//! with `agent demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_crm_store::{OpenOptions, Store, WriterId};
use callbridge_llm_bridge::mock::gemini::{GeminiScript, MockGemini};
use callbridge_llm_bridge::{GeminiLive, OpenAiRealtime, RealtimeModel};
use callbridge_session::summary::summarizer_for;
use callbridge_session::{Manager, ManagerError, Summarizer};
use callbridge_sip::driver::DriverError;
use callbridge_sip::ua::{Register, RegistrationId};
use callbridge_sip::{NameAddr, Uri};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
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
    #[error("store.database {}: {source}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: callbridge_crm_store::Error,
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
    /// The HTTP socket cannot be bound.
    #[error("http.bind {addr}: {source}")]
    Http {
        /// `http.bind`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Registering with the trunk could not be started.
    #[error("sip.trunk registration: {0}")]
    Register(DriverError),
    /// A blocking task panicked.
    #[error("start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl StartError {
    /// The exit status: 2 for what the operator must fix in the store's
    /// files or their place (permissions, read-only or full filesystem, a
    /// damaged or newer database, a lock held by another process), 1 for
    /// the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::RecordingsDir { .. } | StartError::Store { .. } => 2,
            _ => 1,
        }
    }
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
    /// The HTTP socket's address.
    pub http_addr: SocketAddr,
    /// The database file.
    pub database: PathBuf,
    mock: Option<MockGemini>,
    registration: Option<RegistrationId>,
    http_stop: oneshot::Sender<()>,
    http_task: JoinHandle<std::io::Result<()>>,
}

/// Opens the store, runs crash recovery (sessions and leads, then the
/// recordings a crash left) and returns it (blocking).
fn open_and_recover(
    path: PathBuf,
    opts: OpenOptions,
    recordings: PathBuf,
) -> Result<Store, StartError> {
    let err = |source| StartError::Store {
        path: path.clone(),
        source,
    };
    let mut store = Store::open_with(&path, &opts).map_err(err)?;
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
    Ok(store)
}

fn summarizer(settings: &Settings, secrets: &Secrets) -> Option<Arc<dyn Summarizer>> {
    // The summary goes to the provider's public text API; with a model
    // endpoint override (a proxy or a mock) there is no matching text
    // endpoint to use, so no summary.
    if settings.endpoint.is_some() {
        return None;
    }
    let provider = match settings.provider {
        Provider::Gemini => callbridge_llm_bridge::Provider::Gemini,
        Provider::OpenAi => callbridge_llm_bridge::Provider::OpenAi,
        Provider::Mock => return None,
    };
    let key = secrets.model_key.clone()?;
    match summarizer_for(provider, None, None, key) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "post-call summaries disabled");
            None
        }
    }
}

impl Agent {
    /// Starts everything; returns once SIP, RTP and HTTP are up.
    pub async fn start(settings: &Settings, secrets: &Secrets) -> Result<Agent, StartError> {
        std::fs::create_dir_all(&settings.recordings_dir).map_err(|source| {
            StartError::RecordingsDir {
                path: settings.recordings_dir.clone(),
                source,
            }
        })?;
        let (db, opts, rec) = (
            settings.database.clone(),
            settings.store_options(),
            settings.recordings_dir.clone(),
        );
        let store = tokio::task::spawn_blocking(move || open_and_recover(db, opts, rec)).await??;
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
        };
        let mut cfg = settings.manager_config(settings.session_config(secrets, endpoint));
        cfg.outbound_auth = settings.outbound_auth(secrets);
        if let (Some(auth), Some(target)) = (&cfg.outbound_auth, settings.outbound_target)
            && auth.target != target
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
        let sip_addr = manager.sip_addr();
        let registration = match register(&manager, settings, secrets, sip_addr).await {
            Ok(r) => r,
            Err(e) => {
                manager.shutdown().await;
                return Err(e);
            }
        };
        let listener = match tokio::net::TcpListener::bind(settings.http_bind).await {
            Ok(l) => l,
            Err(source) => {
                manager.shutdown().await;
                return Err(StartError::Http {
                    addr: settings.http_bind,
                    source,
                });
            }
        };
        let http_addr = listener.local_addr().map_err(|source| StartError::Http {
            addr: settings.http_bind,
            source,
        })?;
        let state = Arc::new(http::State {
            manager: manager.clone(),
            database: settings.database.clone(),
            recordings_dir: Some(settings.recordings_dir.clone()),
            started: Instant::now(),
            provider: settings.provider.name().to_owned(),
            outbound: settings.outbound(),
            carrier: Some(Arc::new(http::carrier::CarrierState::new(
                secrets.carrier.clone(),
            ))),
        });
        let (http_stop, stopped) = oneshot::channel::<()>();
        let app = http::router(state);
        let http_task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        info!(%sip_addr, %http_addr, provider = settings.provider.name(), "agent up");
        Ok(Agent {
            manager,
            sip_addr,
            http_addr,
            database: settings.database.clone(),
            mock,
            registration,
            http_stop,
            http_task,
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
        let _ = self.http_stop.send(());
        let mut task = self.http_task;
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => warn!(error = %e, "HTTP server task failed"),
            Err(_) => {
                warn!("HTTP connections still open after 5 s; closing them");
                task.abort();
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
    // Validated in `Settings::validate`; a failure here is reported, not unwrapped.
    let (Ok(registrar), Ok(aor)) = (
        parse(trunk.registrar.clone()),
        parse(format!("sip:{}@{}", trunk.username, trunk.domain)),
    ) else {
        return Err(StartError::Register(DriverError::Stopped));
    };
    let spec = Register {
        registrar,
        target: trunk.target,
        aor: NameAddr::new(aor),
        expires: u32::try_from(trunk.expires.as_secs()).unwrap_or(u32::MAX),
        credentials: settings.trunk_credentials(secrets),
    };
    let id = manager.register(spec).await.map_err(StartError::Register)?;
    info!(target_addr = %trunk.target, %sip_addr, "registering with the trunk");
    Ok(Some(id))
}

/// Marks this process's live sessions interrupted (the second signal).
fn mark_interrupted(database: PathBuf) {
    let me = WriterId::current();
    match Store::open(&database)
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
        let _ = writeln!(out, "ready sip={} http={}", agent.sip_addr, agent.http_addr);
        let _ = out.flush();
    }
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(
        signal = which,
        drain = ?settings.drain_timeout,
        "shutting down: no new calls, draining live ones (a second signal exits at once)"
    );
    let database = agent.database.clone();
    let shutdown = agent.shutdown();
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => 0,
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            warn!("second signal: exiting now");
            let _ = tokio::task::spawn_blocking(move || mark_interrupted(database)).await;
            130
        }
    }
}
