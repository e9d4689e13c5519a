//! Live control of a call (issue 23): `POST /api/calls/{id}/instructions`
//! (`{"instructions": "..."}`: the model's instructions replaced mid-call),
//! `POST /api/calls/{id}/say` (`{"text": "..."}`: the model is asked to
//! say it now), `POST /api/calls/{id}/transfer` (`{"target": "<name>"}`:
//! only a `transfer.targets` entry, by name) and `GET
//! /api/calls/{id}/listen` (WebSocket: the call's mixed audio as binary
//! messages of 20 ms, 8 kHz, 16-bit little-endian PCM; admin only, and
//! 404 unless `http.listen = true`).
//!
//! Roles: agent-operator and admin (viewers 403); a call the user may not
//! see is 404, as everywhere. A call no longer live is 409. A provider
//! that refuses instruction updates is 409 with
//! `{"error": "...", "code": "instructions_unsupported"}` (the call goes
//! on with its instructions).

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use callbridge_session::ControlError;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info};

use super::auth::{Caller, SessionPath, visible_session};
use super::error::{ApiError, Json};
use super::state::Ctx;

/// Longest `instructions`, bytes.
pub const MAX_INSTRUCTIONS: usize = 32 * 1024;
/// Longest `text` to say, bytes.
pub const MAX_SAY: usize = 4 * 1024;

/// `POST /api/calls/{id}/instructions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstructionsBody {
    instructions: String,
}

/// `POST /api/calls/{id}/say`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SayBody {
    text: String,
}

/// `POST /api/calls/{id}/transfer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    target: String,
}

/// Role, then visibility (404), for every control route.
async fn checked(
    ctx: &Ctx,
    caller: Caller,
    path: Result<SessionPath, ApiError>,
) -> Result<callbridge_crm_store::SessionId, ApiError> {
    caller.require_operator()?;
    let SessionPath(id) = path?;
    ctx.pool
        .run(move |st| visible_session(st, &caller, id))
        .await?;
    Ok(id)
}

fn control_error(e: ControlError) -> Response {
    let (status, code) = match &e {
        ControlError::InstructionsUnsupported { .. } => {
            (StatusCode::CONFLICT, "instructions_unsupported")
        }
        ControlError::TargetNotAllowed => (StatusCode::BAD_REQUEST, "target_not_allowed"),
        ControlError::NotNow(_) | ControlError::NoModel => (StatusCode::CONFLICT, "not_now"),
        ControlError::Gone => (StatusCode::CONFLICT, "call_not_live"),
        _ => (StatusCode::BAD_GATEWAY, "model_refused"),
    };
    (
        status,
        axum::Json(json!({ "error": e.to_string(), "code": code })),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "accepted"})),
    )
        .into_response()
}

fn text_field(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::BadRequest(format!("{field}: empty")));
    }
    if v.len() > max {
        return Err(ApiError::BadRequest(format!(
            "{field}: longer than {max} bytes"
        )));
    }
    Ok(())
}

/// `POST /api/calls/{id}/instructions`.
#[utoipa::path(post, path = "/api/calls/{id}/instructions", tag = "calls",
    description = "Replace the model's instructions of a live call (roles agent-operator and admin).",
    params(("id" = String, Path, description = "The session id (UUID)")),
    request_body = InstructionsBody,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The model took the new instructions"),
        (status = 400, description = "A field is invalid (named in the message)", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "The role may not control calls (viewers)", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, or not visible to the caller", body = callbridge_api::ErrorBody),
        (status = 409, description = "The call is not live (`call_not_live`) or its provider refuses instruction updates (`instructions_unsupported`)", body = callbridge_api::ErrorBody)))]
pub async fn instructions(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    path: Result<SessionPath, ApiError>,
    body: Result<Json<InstructionsBody>, ApiError>,
) -> Result<Response, ApiError> {
    let id = checked(&ctx, caller, path).await?;
    let Json(b) = body?;
    text_field("instructions", &b.instructions, MAX_INSTRUCTIONS)?;
    match ctx
        .state
        .manager
        .update_instructions(id, b.instructions)
        .await
    {
        Ok(()) => {
            info!(session = %id, "instructions updated");
            Ok(accepted())
        }
        Err(e) => Ok(control_error(e)),
    }
}

/// `POST /api/calls/{id}/say`.
#[utoipa::path(post, path = "/api/calls/{id}/say", tag = "calls",
    description = "Have the model of a live call say something now (roles agent-operator and admin).",
    params(("id" = String, Path, description = "The session id (UUID)")),
    request_body = SayBody,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Asked of the model"),
        (status = 400, description = "A field is invalid (named in the message)", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "The role may not control calls (viewers)", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, or not visible to the caller", body = callbridge_api::ErrorBody),
        (status = 409, description = "The call is not live, or has no model session now", body = callbridge_api::ErrorBody)))]
pub async fn say(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    path: Result<SessionPath, ApiError>,
    body: Result<Json<SayBody>, ApiError>,
) -> Result<Response, ApiError> {
    let id = checked(&ctx, caller, path).await?;
    let Json(b) = body?;
    text_field("text", &b.text, MAX_SAY)?;
    match ctx.state.manager.say(id, b.text).await {
        Ok(()) => Ok(accepted()),
        Err(e) => Ok(control_error(e)),
    }
}

/// `POST /api/calls/{id}/transfer`.
#[utoipa::path(post, path = "/api/calls/{id}/transfer", tag = "calls",
    description = "Transfer a live call to a configured target, by name (roles agent-operator and admin).",
    params(("id" = String, Path, description = "The session id (UUID)")),
    request_body = TransferBody,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The transfer was started"),
        (status = 400, description = "Not a `transfer.targets` name (`target_not_allowed`), or a bad field", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "The role may not control calls (viewers)", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, or not visible to the caller", body = callbridge_api::ErrorBody),
        (status = 409, description = "The call is not live, or not in a state to transfer", body = callbridge_api::ErrorBody)))]
pub async fn transfer(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    path: Result<SessionPath, ApiError>,
    body: Result<Json<TransferBody>, ApiError>,
) -> Result<Response, ApiError> {
    let id = checked(&ctx, caller, path).await?;
    let Json(b) = body?;
    text_field("target", &b.target, 256)?;
    match ctx.state.manager.transfer(id, b.target).await {
        Ok(()) => {
            info!(session = %id, "transfer requested by an operator");
            Ok(accepted())
        }
        Err(e) => Ok(control_error(e)),
    }
}

/// `GET /api/calls/{id}/listen`.
#[utoipa::path(get, path = "/api/calls/{id}/listen", tag = "calls",
    description = "A WebSocket of the call's live audio, both legs summed: binary messages of 20 ms of 8 kHz 16-bit little-endian PCM (admin; off unless `http.listen = true`).",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket"),
        (status = 400, description = "Not a WebSocket upgrade", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "Not an admin", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, not visible, or `http.listen` is off", body = callbridge_api::ErrorBody),
        (status = 409, description = "The call is not live", body = callbridge_api::ErrorBody)))]
pub async fn listen(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    path: Result<SessionPath, ApiError>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if !ctx.state.listen {
        return Err(ApiError::NotFound("not found".into()));
    }
    caller.require_admin()?;
    let id = checked(&ctx, caller, path).await?;
    let ws = ws.map_err(|_| ApiError::BadRequest("expected a WebSocket upgrade".into()))?;
    let rx = match ctx.state.manager.listen(id).await {
        Ok(rx) => rx,
        Err(e) => return Ok(control_error(e)),
    };
    info!(session = %id, "listener attached");
    Ok(ws.on_upgrade(move |socket| pump(socket, rx)))
}

/// Sends the call's frames until the call or the listener ends.
async fn pump(mut socket: WebSocket, mut rx: tokio::sync::broadcast::Receiver<bytes::Bytes>) {
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(f) => {
                    if socket.send(Message::Binary(f)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => debug!(missed = n, "listener behind; frames dropped"),
                Err(RecvError::Closed) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
