//! What every handler can reach: the agent's [`State`] (built by `run`
//! and by `demo`) and the per-router [`Ctx`] around it. The handlers use
//! it; it uses only the pieces it holds (the store read pool, the token
//! use recorder, the metrics page, the carrier state), never a handler or
//! `http/mod.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use callbridge_session::Manager;

use super::carrier::CarrierState;
use super::console::table::Table as ConsoleSessions;
use super::metrics::Page;
use super::pool;
use super::token_use;

/// Where outbound calls go and who they come from.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Where INVITEs are sent (`outbound.target`, else the trunk's proxy or
    /// registrar): an address, or a domain located by RFC 3263 per call.
    pub target: Option<callbridge_session::dns::Destination>,
    /// The host part of the Request-URI (`sip:+1555...@domain`); the
    /// target's address when `None`.
    pub domain: Option<String>,
    /// Default caller id (E.164).
    pub from: String,
    /// The transport INVITEs take: the Request-URI says it (`sips:` for
    /// TLS, `;transport=tcp` for TCP, RFC 3263 section 4.1).
    pub transport: callbridge_sip::transport::Transport,
}

/// What every handler can reach. Built by `run` (and by `demo`).
pub struct State {
    /// The session manager (live calls, originate, hang-up, snapshot).
    pub manager: Manager,
    /// The store; the HTTP layer opens its own connections.
    pub store: callbridge_crm_store::StoreAt,
    /// Where recordings are written.
    pub recordings_dir: Option<PathBuf>,
    /// When the process started (for uptime).
    pub started: Instant,
    /// The model provider's name (`gemini`, `openai`, `gpt-live`, `mock`).
    pub provider: String,
    /// Outbound call routing.
    pub outbound: Outbound,
    /// Carrier webhooks and sockets (`None`: their routes answer 404).
    pub carrier: Option<Arc<CarrierState>>,
    /// The console's sign-in sessions (empty at start).
    pub console: Arc<ConsoleSessions>,
    /// Whether `GET /api/calls/{id}/listen` is served (`http.listen`).
    pub listen: bool,
    /// `PUT /api/profiles`' settings (`None`: profiles are read-only).
    pub profiles: Option<Arc<super::profiles::ProfileAdmin>>,
}

/// Shared handle to [`State`].
pub type AppState = Arc<State>;

/// What the handlers get: the shared [`State`], the store read pool and
/// the metrics page.
#[derive(Clone)]
pub struct Ctx {
    /// The agent's state.
    pub state: AppState,
    /// Read connections to the store.
    pub pool: Arc<pool::ReadPool>,
    /// Records when tokens were last used (throttled, off the request path).
    pub token_use: Arc<token_use::TokenUse>,
    /// What `GET /metrics` encodes.
    pub metrics: Page,
}

impl FromRef<Ctx> for AppState {
    fn from_ref(ctx: &Ctx) -> AppState {
        Arc::clone(&ctx.state)
    }
}

impl FromRef<Ctx> for Page {
    fn from_ref(ctx: &Ctx) -> Page {
        ctx.metrics.clone()
    }
}
