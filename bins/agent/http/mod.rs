//! The agent's HTTP API (axum): health, metrics, sessions, recordings and
//! calls, with bearer-token auth against the store's users. Wire types are
//! in `callbridge_api`.
//!
//! | route | auth | listener | module |
//! |---|---|---|---|
//! | `GET /livez`, `GET /readyz` | none | every one | [`health`] |
//! | `GET /api/health` | none | admin | [`health`] |
//! | `GET /openapi.json` | none | admin | [`openapi`] |
//! | `GET /api/live` | any role | admin | [`health`] |
//! | `GET /metrics` | none | metrics (admin unless `http.metrics_bind`) | `metrics` |
//! | `GET /api/sessions`, `GET /api/sessions/{id}` | any role | admin | [`sessions`] |
//! | `DELETE /api/sessions/{id}` | admin | admin | [`sessions`] |
//! | `GET /api/sessions/{id}/recording` | any role | admin | [`recording`] |
//! | `POST /api/calls`, `DELETE /api/calls/{id}` | agent-operator, admin | admin | [`calls`] |
//! | `GET /api/calls/{id}` | any role | admin | [`calls`] |
//! | `GET /api/calls/{id}/events` (SSE) | any role | admin | [`call_events`] |
//! | `POST /api/calls/{id}/instructions`, `/say`, `/transfer` | agent-operator, admin | admin | [`control`] |
//! | `GET /api/calls/{id}/listen` (WebSocket; `http.listen`) | admin | admin | [`control`] |
//! | `GET /api/webhooks/deliveries?session=` | admin | admin | [`call_events`] |
//! | `GET /api/profiles`, `PUT /api/profiles` | admin | admin | [`profiles`] |
//! | `/carrier/...` | carrier signature | public (admin unless `http.public_bind`) | [`carrier`] |
//! | `/`, `/sign-in`, `/calls`, `/live`, `/campaigns`, `/dnc`, `/health`, `/assets/...` | console sign-in (cookie) | admin | [`console`] |
//!
//! Every error is JSON `{"error": "..."}` ([`error`]); request bodies are
//! limited per route and read under a deadline ([`limits`]); store reads
//! run on a small pool of blocking connections ([`pool`]), never on the
//! async runtime. Each listener is served by [`serve`] (connection caps,
//! idle and header timeouts) with its own in-flight slots, so a flood on
//! the public listener leaves the admin API answering. A token's
//! last use is written by a side task at most once a minute
//! ([`token_use`]).

mod auth;
mod call_events;
mod calls;
pub mod carrier;
pub mod carrier_config;
mod console;
mod control;
mod error;
mod health;
mod limits;
mod metrics;
mod openapi;
mod pool;
pub mod profiles;
mod recording;
pub mod serve;
mod sessions;
mod state;
#[cfg(test)]
mod tests;
mod token_use;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use error::MAX_BODY;
pub use limits::Limits;
pub use sessions::{detail, ts};
pub use state::{AppState, Ctx, Outbound, State};

/// Read connections to the store the HTTP layer keeps at most.
pub const READ_POOL: usize = 4;

/// Requests handled at once; more are answered 503 at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// Longest time a request may take until its response starts (408 after;
/// a recording's body streams on without this limit).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Which surfaces get listeners of their own (`http.public_bind`,
/// `http.metrics_bind`); the rest stays on the admin listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Apart {
    /// Carrier webhooks and media sockets apart.
    pub public: bool,
    /// `/metrics` apart.
    pub metrics: bool,
}

/// One router per listener.
pub struct Routers {
    /// `http.bind`: the admin API, and what is not apart.
    pub admin: Router,
    /// `http.public_bind`: the carrier surface, when apart.
    pub public: Option<Router>,
    /// `http.metrics_bind`: `/metrics`, when apart.
    pub metrics: Option<Router>,
}

/// The whole API as one router (everything on one listener).
#[cfg(test)]
pub fn router(state: AppState) -> Router {
    routers(state, &Limits::default(), Apart::default()).admin
}

/// The routers of the listeners `apart` asks for. `/livez` and `/readyz`
/// answer on each; each has its own in-flight slots.
pub fn routers(state: AppState, limits: &Limits, apart: Apart) -> Routers {
    let ctx = Ctx {
        pool: Arc::new(pool::ReadPool::new(state.store.clone(), READ_POOL)),
        token_use: Arc::new(token_use::TokenUse::start(state.store.clone())),
        metrics: metrics::Page::new(&state.manager),
        state,
    };
    let probes = || {
        Router::<Ctx>::new()
            .route("/livez", get(health::livez))
            .route("/readyz", get(health::readyz))
    };
    let finish = |r: Router<Ctx>| {
        harden(
            r.fallback(error::not_found).with_state(ctx.clone()),
            REQUEST_TIMEOUT,
            MAX_IN_FLIGHT,
            limits.body_read_timeout,
        )
    };
    let protected = Router::new()
        .route("/api/live", get(health::live))
        .route("/api/sessions", get(sessions::list))
        .route(
            "/api/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        )
        .route("/api/sessions/{id}/recording", get(recording::get))
        .route("/api/calls", axum::routing::post(calls::create))
        .route("/api/calls/{id}", get(calls::get).delete(calls::hangup))
        // issue 23: live view and control, webhook deliveries
        .route("/api/calls/{id}/events", get(call_events::events))
        .route(
            "/api/calls/{id}/instructions",
            axum::routing::post(control::instructions),
        )
        .route("/api/calls/{id}/say", axum::routing::post(control::say))
        .route(
            "/api/calls/{id}/transfer",
            axum::routing::post(control::transfer),
        )
        .route("/api/calls/{id}/listen", get(control::listen))
        .route("/api/webhooks/deliveries", get(call_events::deliveries))
        .route("/api/profiles", get(profiles::get).put(profiles::put))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_token,
        ));
    let mut admin = probes()
        .route("/api/health", get(health::get))
        .route("/openapi.json", get(openapi::description))
        .merge(protected)
        .merge(console::routes(&ctx));
    if !apart.metrics {
        admin = admin.route("/metrics", get(metrics::handler));
    }
    if !apart.public {
        admin = admin.merge(carrier::routes());
    }
    Routers {
        admin: finish(admin),
        public: apart
            .public
            .then(|| finish(probes().merge(carrier::routes()))),
        metrics: apart
            .metrics
            .then(|| finish(probes().route("/metrics", get(metrics::handler)))),
    }
}

/// The layers around every route, inside out: the body limit of the
/// extractors, at most `max_in_flight` requests at once (503 beyond,
/// never queued), the request timeout (408), the route's body limit and
/// body read deadline ([`limits::bound_body`], outside the slots), a
/// caught panic (500, logged), and last the rewrite of any non-JSON error
/// into `{"error": ...}`; around it all, one debug log line per request
/// (method, path without the query, status, time).
fn harden(
    router: Router,
    timeout: Duration,
    max_in_flight: usize,
    body_read_timeout: Duration,
) -> Router {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    router
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(slots, error::shed))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            limits::bound_body,
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
