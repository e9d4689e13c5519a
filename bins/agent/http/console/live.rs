//! The live side of the console: `GET /live` (the calls live now that the
//! user may see, refreshed every few seconds), `GET /calls/{id}/events`
//! (Server-Sent Events: the transcript lines as the store receives them,
//! the state, and `end` once the call is over), `POST /calls/{id}/hangup`
//! (operators and admins, as `DELETE /api/calls/{id}`), and `GET /health`
//! (the API's health report as a page, with the engine's headroom).
//!
//! The live transcript is read from the store: the session's writer
//! appends each finished turn during the call, and the event stream looks
//! for new ones every [`POLL`]. A call's turns reach the page within about
//! a second of being written, with no second path for transcript data
//! next to the store's.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use callbridge_api::Health;
use callbridge_crm_store::jiff::Timestamp;
use callbridge_crm_store::{SessionId, SessionState};
use callbridge_session::ManagerError;
use futures_util::Stream;
use serde_json::json;

use super::super::auth::{Caller, SessionPath, visible_record, visible_session};
use super::super::error::ApiError;
use super::super::health::report;
use super::super::sessions::live_ids;
use super::super::state::Ctx;
use super::calls::{Row, row};
use super::page::{Chrome, PageError, clock, ok};
use super::table::Signed;

/// How often the event stream looks for new transcript lines.
pub const POLL: Duration = Duration::from_secs(1);
/// The longest an event stream stays open (the browser reconnects).
pub const STREAM_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// A live call's row, with its lifecycle phase and running time.
pub struct LiveRow {
    /// The stored row.
    pub call: Row,
    /// `ringing`, `active`, `on-hold`...
    pub phase: &'static str,
    /// Time since the call started.
    pub running: String,
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    chrome: Option<Chrome>,
    rows: Vec<LiveRow>,
}

/// `GET /live`.
pub async fn page(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "live");
    let calls = ctx.state.manager.snapshot().calls;
    let rows = ctx
        .pool
        .run(move |s| {
            let now = Timestamp::now();
            Ok(calls
                .into_iter()
                .filter_map(|c| {
                    let s = visible_session(s, &caller, c.id).ok()?;
                    let ms = now
                        .duration_since(s.created_at)
                        .as_millis()
                        .try_into()
                        .unwrap_or(0u64);
                    Some(LiveRow {
                        call: row(&s, true),
                        phase: c.phase.as_str(),
                        running: clock(ms),
                    })
                })
                .collect())
        })
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    Ok(ok(&LivePage {
        chrome: Some(chrome),
        rows,
    }))
}

/// Where an event stream is.
struct Follow {
    ctx: Ctx,
    caller: Caller,
    id: SessionId,
    next_seq: u32,
    state: Option<SessionState>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    until: tokio::time::Instant,
    first: bool,
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Follow {
    /// Reads the store once: queues new turns, a state change, and `end`
    /// when the call is no longer live.
    async fn poll(&mut self) {
        let live = live_ids(&self.ctx).contains(&self.id);
        if !live {
            // The last turns are written when the call ends.
            self.ctx.state.manager.flush_store().await;
        }
        let (caller, id) = (self.caller.clone(), self.id);
        let record = self
            .ctx
            .pool
            .run(move |s| visible_record(s, &caller, id))
            .await;
        let Ok(r) = record else {
            self.pending.push_back(event("end", json!({})));
            self.done = true;
            return;
        };
        let from = self.next_seq;
        for t in r.turns.iter().filter(|t| t.seq >= from) {
            self.pending.push_back(event(
                "turn",
                json!({
                    "seq": t.seq,
                    "speaker": t.speaker.as_str(),
                    "text": t.text.as_str(),
                    "at": clock(t.start_ms),
                }),
            ));
            self.next_seq = t.seq + 1;
        }
        if self.state != Some(r.session.state) {
            self.state = Some(r.session.state);
            self.pending
                .push_back(event("state", json!({ "state": r.session.state.as_str() })));
        }
        if !live || tokio::time::Instant::now() >= self.until {
            self.pending.push_back(event("end", json!({})));
            self.done = true;
        }
    }
}

/// The event stream of a followed call.
fn stream(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(f, |mut f| async move {
        loop {
            if let Some(ev) = f.pending.pop_front() {
                return Some((Ok(ev), f));
            }
            if f.done {
                return None;
            }
            if !f.first {
                tokio::time::sleep(POLL).await;
            }
            f.first = false;
            f.poll().await;
        }
    })
}

/// `GET /calls/{id}/events`: `turn`, `state` and `end` events (404 for a
/// call the user may not see).
pub async fn events(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    SessionPath(id): SessionPath,
) -> Result<Response, ApiError> {
    let check = caller.clone();
    ctx.pool
        .run(move |s| visible_session(s, &check, id))
        .await?;
    let follow = Follow {
        ctx,
        caller,
        id,
        next_seq: 0,
        state: None,
        pending: std::collections::VecDeque::new(),
        done: false,
        until: tokio::time::Instant::now() + STREAM_LIFETIME,
        first: true,
    };
    Ok(Sse::new(stream(follow))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `POST /calls/{id}/hangup`: 403 page for a viewer; otherwise asks the
/// call to hang up (as `DELETE /api/calls/{id}`) and shows its page.
pub async fn hangup(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    SessionPath(id): SessionPath,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "live");
    caller
        .require_operator()
        .map_err(|e| PageError::new(e, &chrome))?;
    ctx.pool
        .run(move |s| visible_session(s, &caller, id))
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    match ctx.state.manager.hangup(id).await {
        Ok(()) => tracing::info!(session = %id, "hang-up requested from the console"),
        Err(ManagerError::UnknownSession) => {}
        Err(e) => return Err(PageError::new(ApiError::internal(e), &chrome)),
    }
    Ok(Redirect::to(&format!("/calls/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    chrome: Option<Chrome>,
    h: Health,
    at_capacity: bool,
    headroom: String,
    refused_overload: u64,
    uptime: String,
}

/// `GET /health`.
pub async fn health(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
) -> Response {
    let h = report(&ctx).await;
    let readiness = ctx.state.manager.readiness();
    let engine = ctx.state.manager.snapshot().engine;
    ok(&HealthPage {
        chrome: Some(Chrome::new(&caller, &signed, "health")),
        uptime: clock(h.uptime_s.saturating_mul(1000)),
        h,
        at_capacity: readiness.at_capacity,
        headroom: format!("{:.1} %", f64::from(engine.headroom_permille) / 10.0),
        refused_overload: engine.refused_overload,
    })
}
