//! The agent's HTTP API (axum): health, metrics, sessions, recordings and
//! calls, with bearer-token auth against the store's users. Wire types are
//! in `callbridge::api`.

mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use callbridge_session::Manager;

/// Where outbound calls go and who they come from.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Where INVITEs are sent (`outbound.target`, else the trunk's proxy or registrar).
    pub target: Option<SocketAddr>,
    /// The host part of the Request-URI (`sip:+1555...@domain`); the
    /// target's address when `None`.
    pub domain: Option<String>,
    /// Default caller id (E.164).
    pub from: String,
}

/// What every handler can reach. Built by `run` (and by `demo`).
pub struct State {
    /// The session manager (live calls, originate, hang-up, snapshot).
    pub manager: Manager,
    /// The SQLite store's path; the HTTP layer opens its own connections.
    pub database: PathBuf,
    /// Where recordings are written.
    pub recordings_dir: Option<PathBuf>,
    /// When the process started (for uptime).
    pub started: Instant,
    /// The model provider's name (`gemini`, `openai`, `mock`).
    pub provider: String,
    /// Outbound call routing.
    pub outbound: Outbound,
}

/// Shared handle to [`State`].
pub type AppState = Arc<State>;

/// The whole API as one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::handler))
        .with_state(state)
}
