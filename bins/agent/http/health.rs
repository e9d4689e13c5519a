//! Health and readiness, for monitoring and load balancers:
//!
//! - `GET /livez` (no auth, every listener): 200 while the process serves
//!   HTTP; nothing else is checked.
//! - `GET /readyz` (no auth, every listener): 200 when new calls would be
//!   taken, 503 while draining, at the call limit or when the store does
//!   not take writes ([`callbridge_session::Manager::readiness`]); the body
//!   says which.
//! - `GET /api/health` (no auth): counts and states, no caller data and no
//!   session ids: the version, uptime, the number of live sessions,
//!   whether calls are admitted, the model provider with the outcome and
//!   time of the last model session opening (`null` before the first
//!   call), and whether the store answers a trivial query and takes writes
//!   (`Manager::store_healthy`).
//! - `GET /api/live` (any role): the ids of the live sessions the caller
//!   may see (an admin: all).

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use callbridge_api::{Health, LiveSessions, ModelHealth, Readiness};

use super::auth::{Caller, visible_session};
use super::error::{ApiError, Json};
use super::pool::store_error;
use super::state::Ctx;

/// How long the store check may take before the store counts as not OK.
const STORE_CHECK: Duration = Duration::from_secs(2);

/// `status` in [`Health`]: `ok`, `draining` (not admitting calls) or
/// `degraded` (the store check failed).
pub fn status_word(admitting: bool, store_ok: bool) -> &'static str {
    match (store_ok, admitting) {
        (false, _) => "degraded",
        (true, false) => "draining",
        (true, true) => "ok",
    }
}

/// `GET /api/health`.
#[utoipa::path(get, path = "/api/health", tag = "health",
    description = "The agent's state for monitoring: counts only, no caller data (no auth).",
    responses((status = 200, description = "The agent's state", body = Health)))]
pub async fn get(State(ctx): State<Ctx>) -> Json<Health> {
    Json(report(&ctx).await)
}

/// What `GET /api/health` answers (the console's health page shows it).
pub async fn report(ctx: &Ctx) -> Health {
    let store_ok = tokio::time::timeout(
        STORE_CHECK,
        ctx.pool
            .run(|s| s.schema_version().map(|_| ()).map_err(store_error)),
    )
    .await
    .is_ok_and(|r| r.is_ok())
        // A read succeeds on a full or read-only disk; the store writer
        // knows whether writes get through.
        && ctx.state.manager.store_healthy();
    let snap = ctx.state.manager.snapshot();
    let model = ctx.state.manager.metrics().model;
    Health {
        status: status_word(snap.admitting, store_ok).into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: ctx.state.started.elapsed().as_secs(),
        active_sessions: snap.calls.len(),
        admitting: snap.admitting,
        model: ModelHealth {
            provider: ctx.state.provider.clone(),
            reachable: model.map(|m| m.reachable),
            last_checked: model.map(|m| super::sessions::ts(m.at)),
        },
        store_ok,
    }
}

/// `GET /livez`.
#[utoipa::path(get, path = "/livez", tag = "health",
    description = "200 while the process serves HTTP; nothing else is checked (no auth, every listener).",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "health",
    description = "Whether new calls would be taken (no auth, every listener).",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Draining, at capacity or the store does not take writes", body = Readiness)))]
pub async fn readyz(State(ctx): State<Ctx>) -> Response {
    let r = ctx.state.manager.readiness();
    let body = Readiness {
        ready: r.ready(),
        admitting: r.admitting,
        at_capacity: r.at_capacity,
        store_writable: r.store_writable,
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /api/live`.
#[utoipa::path(get, path = "/api/live", tag = "health",
    description = "The ids of the live calls the caller may see (an admin: all).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live session ids", body = LiveSessions),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody)))]
pub async fn live(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<LiveSessions>, ApiError> {
    let ids: Vec<_> = ctx
        .state
        .manager
        .snapshot()
        .calls
        .iter()
        .map(|c| c.id)
        .collect();
    let visible = if caller.is_admin() {
        ids
    } else {
        ctx.pool
            .run(move |s| {
                Ok(ids
                    .into_iter()
                    .filter(|id| visible_session(s, &caller, *id).is_ok())
                    .collect())
            })
            .await?
    };
    Ok(Json(LiveSessions {
        active_ids: visible.iter().map(ToString::to_string).collect(),
    }))
}
