//! `GET /api/health`: no auth (for load balancers), no caller data: the
//! version, uptime, the live session ids, whether calls are admitted, the
//! model provider with the outcome and time of the last model session
//! opening (`null` before the first call), and whether the store answers a
//! trivial query and takes writes (`Manager::store_healthy`).

use std::time::Duration;

use axum::extract::State;
use callbridge::api::{Health, ModelHealth};

use super::Ctx;
use super::error::Json;
use super::pool::store_error;

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
pub async fn get(State(ctx): State<Ctx>) -> Json<Health> {
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
    Json(Health {
        status: status_word(snap.admitting, store_ok).into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: ctx.state.started.elapsed().as_secs(),
        active_sessions: snap.calls.len(),
        active_ids: snap.calls.iter().map(|c| c.id.to_string()).collect(),
        admitting: snap.admitting,
        model: ModelHealth {
            provider: ctx.state.provider.clone(),
            reachable: model.map(|m| m.reachable),
            last_checked: model.map(|m| m.at.to_string()),
        },
        store_ok,
    })
}
