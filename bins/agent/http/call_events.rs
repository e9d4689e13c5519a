//! `GET /api/calls/{id}/events` (a live call's events as Server-Sent
//! Events) and `GET /api/webhooks/deliveries?session=...` (the webhook
//! outbox rows of a call, admin).
//!
//! The stream's events come from the session's event bus
//! (`callbridge_session::events`), in the order the call published them.
//! Each SSE event is named after the call event (`event: call.state`,
//! `transcript.delta`, `transcript.turn`, `tool.called`, `amd.verdict`,
//! `call.answered`, `call.ended`), carries `id: <session>:<seq>`, and its
//! `data` is the event's JSON document (`{"id", "event", "session", "seq",
//! "at", "data"}`). The stream opens with the call's current state
//! (`call.state`, no `id`), then replays the call's earlier events (the
//! call keeps its most recent `callbridge_session::events::REPLAY`, 256):
//! all of them for a client that connects late, or those after the one
//! it names in `Last-Event-ID: <session>:<seq>` when it reconnects; then
//! the live ones, each event once. It sends a `: keep-alive` comment
//! every 15 s and ends after `call.ended`. A client too slow to keep up,
//! or asking for events the call no longer keeps, gets `event: lagged`
//! with `{"missed": n}` in their place. A call that is no longer live
//! gets its stored end as one `call.ended` and the stream ends. Unknown
//! and not-visible sessions are 404, as everywhere.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use callbridge_crm_store::{Session, SessionId};
use callbridge_session::events::Published;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::auth::{Caller, SessionPath, session_id, visible_session};
use super::error::{ApiError, Json};
use super::pool::store_error;
use super::state::Ctx;

/// The keep-alive comment's period.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn sse(e: &Published) -> Event {
    Event::default()
        .event(e.name())
        .id(e.key())
        .data(e.to_json().to_string())
}

/// The stored end of a call that is no longer live, as its last event.
fn stored_end(s: &Session) -> Event {
    let doc = json!({
        "id": format!("{}:end", s.id),
        "event": "call.ended",
        "session": s.id.to_string(),
        "at": s.ended_at.map(|t| t.to_string()),
        "data": {
            "reason": s.end_reason.map(|r| r.as_str()),
            "outcome": s.state.as_str(),
            "sip_status": s.sip_status,
        },
    });
    Event::default().event("call.ended").data(doc.to_string())
}

enum Follow {
    Opening(VecDeque<Event>, VecDeque<Published>, Receiver<Published>),
    Replay(VecDeque<Published>, Receiver<Published>),
    Live(Receiver<Published>),
    Done,
}

fn lagged(n: u64) -> Event {
    Event::default()
        .event("lagged")
        .data(json!({ "missed": n }).to_string())
}

/// `opening` (the state line, maybe a lag notice), then `replay` in
/// order, then what `rx` gets, until the call's end.
fn stream(
    opening: Vec<Event>,
    replay: Vec<Published>,
    rx: Receiver<Published>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Follow::Opening(opening.into(), replay.into(), rx);
    futures_util::stream::unfold(start, |f| async move {
        let mut f = f;
        loop {
            match f {
                Follow::Opening(mut opening, replay, rx) => match opening.pop_front() {
                    Some(e) => return Some((Ok(e), Follow::Opening(opening, replay, rx))),
                    None => f = Follow::Replay(replay, rx),
                },
                Follow::Replay(mut replay, rx) => match replay.pop_front() {
                    Some(e) if e.event.is_end() => return Some((Ok(sse(&e)), Follow::Done)),
                    Some(e) => return Some((Ok(sse(&e)), Follow::Replay(replay, rx))),
                    None => f = Follow::Live(rx),
                },
                Follow::Live(mut rx) => {
                    return match rx.recv().await {
                        Ok(e) if e.event.is_end() => Some((Ok(sse(&e)), Follow::Done)),
                        Ok(e) => Some((Ok(sse(&e)), Follow::Live(rx))),
                        Err(RecvError::Lagged(n)) => Some((Ok(lagged(n)), Follow::Live(rx))),
                        Err(RecvError::Closed) => None,
                    };
                }
                Follow::Done => return None,
            }
        }
    })
}

/// The number of the last event a reconnecting client saw, from its
/// `Last-Event-ID` (`<session>:<seq>` of this call; anything else: 0,
/// replay everything kept).
fn last_event_seq(headers: &axum::http::HeaderMap, id: SessionId) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(':'))
        .filter(|(s, _)| *s == id.to_string())
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// `GET /api/calls/{id}/events`.
#[utoipa::path(get, path = "/api/calls/{id}/events", tag = "calls",
    description = "The call's events as Server-Sent Events (`event:` the name, `id:` `<session>:<seq>`, `data:` the JSON document; see the README's \"Call events\"); ends after `call.ended`.",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, or not visible to the caller", body = callbridge_api::ErrorBody)))]
pub async fn events(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    path: Result<SessionPath, ApiError>,
) -> Result<Response, ApiError> {
    let SessionPath(id) = path?;
    let after = last_event_seq(&headers, id);
    let s = ctx
        .pool
        .run(move |st| visible_session(st, &caller, id))
        .await?;
    let manager = &ctx.state.manager;
    // Subscribe before reading the phase: an event in between is sent,
    // not lost (the state may then come twice).
    let Some((replay, rx)) = manager.replay(id, after) else {
        let end = stored_end(&s);
        let once = futures_util::stream::once(async move { Ok::<_, Infallible>(end) });
        return Ok(Sse::new(once).into_response());
    };
    let phase = manager
        .snapshot()
        .calls
        .into_iter()
        .find(|c| c.id == id)
        .map_or("ending", |c| c.phase.as_str());
    let first = Event::default().event("call.state").data(
        json!({
            "event": "call.state",
            "session": id.to_string(),
            "data": { "state": phase },
        })
        .to_string(),
    );
    // Events after `after` the call no longer keeps: said, not hidden.
    let missed = replay
        .first()
        .map_or(0, |e| e.seq.saturating_sub(after.saturating_add(1)));
    let mut opening = vec![first];
    if missed > 0 {
        opening.push(lagged(missed));
    }
    Ok(Sse::new(stream(opening, replay, rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response())
}

/// The query of `GET /api/webhooks/deliveries`.
#[derive(Debug, serde::Deserialize)]
pub struct DeliveriesQuery {
    /// The session whose deliveries are listed.
    session: Option<String>,
}

/// `GET /api/webhooks/deliveries?session=<id>` (admin): the call's
/// outbox rows, oldest first, without their payloads.
#[utoipa::path(get, path = "/api/webhooks/deliveries", tag = "calls",
    description = "A call's webhook deliveries, oldest first, without payloads (admin).",
    params(("session" = String, Query, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The deliveries: `event`, `url`, `status`, `attempts`, `last_error`, `last_status`, `delivered_at`", body = Object),
        (status = 400, description = "`session` missing or malformed", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "Not an admin", body = callbridge_api::ErrorBody)))]
pub async fn deliveries(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin()?;
    let raw = q
        .session
        .ok_or_else(|| ApiError::BadRequest("session: required".into()))?;
    let id: SessionId = session_id(&raw)?;
    let rows = ctx
        .pool
        .run(move |st| st.outbox_for_session(id).map_err(store_error))
        .await?;
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id.0,
                "event_id": r.key,
                "event": r.event,
                "url": r.url,
                "target": r.target,
                "status": r.status.as_str(),
                "attempts": r.attempts,
                "created_at": r.created_at.to_string(),
                "next_attempt_at": r.next_attempt_at.to_string(),
                "last_error": r.last_error,
                "last_status": r.last_status,
                "delivered_at": r.delivered_at.map(|t| t.to_string()),
            })
        })
        .collect();
    Ok(Json(
        json!({ "session": id.to_string(), "deliveries": list }),
    ))
}
