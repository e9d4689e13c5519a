//! The agent's HTTP API (axum): health, metrics, sessions, recordings and
//! calls, with bearer-token auth against the store's users. Wire types are
//! in `callbridge::api`.
//!
//! | route | auth | module |
//! |---|---|---|
//! | `GET /api/health` | none | [`health`] |
//! | `GET /metrics` | none | `metrics` |
//! | `GET /api/sessions`, `GET /api/sessions/{id}` | any role | [`sessions`] |
//! | `GET /api/sessions/{id}/recording` | any role | [`recording`] |
//! | `POST /api/calls`, `DELETE /api/calls/{id}` | agent-operator, admin | [`calls`] |
//! | `GET /api/calls/{id}` | any role | [`calls`] |
//! | `/carrier/...` | carrier signature | [`carrier`] |
//!
//! Every error is JSON `{"error": "..."}` ([`error`]); request bodies are
//! limited to [`MAX_BODY`] bytes; store reads run on a small pool of
//! blocking connections ([`pool`]), never on the async runtime.

mod auth;
mod calls;
pub mod carrier;
pub mod carrier_config;
pub mod carrier_ws;
mod error;
mod health;
mod metrics;
mod pool;
mod recording;
mod sessions;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::get;
use callbridge_session::Manager;

/// The largest request body accepted (413 above it).
pub const MAX_BODY: usize = 64 * 1024;

/// Read connections to the store the HTTP layer keeps at most.
pub const READ_POOL: usize = 4;

/// Requests handled at once; more are answered 503 at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// Longest time a request may take until its response starts (408 after;
/// a recording's body streams on without this limit).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

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
    /// Carrier webhooks and sockets (`None`: their routes answer 404).
    pub carrier: Option<Arc<carrier::CarrierState>>,
}

/// Shared handle to [`State`].
pub type AppState = Arc<State>;

/// What the handlers get: the shared [`State`] and the store read pool.
#[derive(Clone)]
pub struct Ctx {
    /// The agent's state.
    pub state: AppState,
    /// Read connections to the store.
    pub pool: Arc<pool::ReadPool>,
}

impl FromRef<Ctx> for AppState {
    fn from_ref(ctx: &Ctx) -> AppState {
        Arc::clone(&ctx.state)
    }
}

/// The whole API as one router.
pub fn router(state: AppState) -> Router {
    let ctx = Ctx {
        pool: Arc::new(pool::ReadPool::new(state.database.clone(), READ_POOL)),
        state,
    };
    let protected = Router::new()
        .route("/api/sessions", get(sessions::list))
        .route("/api/sessions/{id}", get(sessions::get))
        .route("/api/sessions/{id}/recording", get(recording::get))
        .route("/api/calls", axum::routing::post(calls::create))
        .route("/api/calls/{id}", get(calls::get).delete(calls::hangup))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_token,
        ));
    let api = Router::new()
        .route("/api/health", get(health::get))
        .route("/metrics", get(metrics::handler))
        .merge(protected)
        .merge(carrier::routes())
        .fallback(error::not_found)
        .with_state(ctx);
    harden(api, REQUEST_TIMEOUT, MAX_IN_FLIGHT)
}

/// The layers around every route, inside out: the body limit, the request
/// timeout (408), at most `max_in_flight` requests at once (503 beyond,
/// never queued), a caught panic (500, logged), and last the rewrite of
/// any non-JSON error into `{"error": ...}`; around it all, one debug log
/// line per request (method, path without the query, status, time).
fn harden(router: Router, timeout: Duration, max_in_flight: usize) -> Router {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    router
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(slots, error::shed))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panicked,
        ))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(access_log))
}

/// Logs each request at debug level once its response starts.
async fn access_log(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = res.status().as_u16(),
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "http request"
    );
    res
}
