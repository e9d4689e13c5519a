//! The live side of the console: `GET /live` (the calls live now that the
//! user may see, refreshed every few seconds), `GET /calls/{id}/events`
//! (Server-Sent Events: the transcript lines as the store receives them,
//! the state, and `end` once the call is over), `POST /calls/{id}/hangup`
//! (operators and admins, as `DELETE /api/calls/{id}`), and `GET /health`
//! (the API's health report as a page, with the engine's headroom).
//!
//! The live transcript follows the call's event bus
//! (`callbridge_session::events`): each transcript turn goes to the page
//! as the call publishes it, without waiting for the store writer's
//! batch. A page that opens late first gets the turns the store already
//! has, then the call's kept events (`Manager::replay`), then the live
//! ones, each turn once (by its number). A call that is not live here
//! (over, or on another node) is read from the store once. A stream that
//! falls behind the bus catches up from the store.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use callbridge_api::Health;
use callbridge_crm_store::SessionId;
use callbridge_crm_store::jiff::Timestamp;
use callbridge_session::ManagerError;
use callbridge_session::events::{CallEvent, Published};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::super::auth::{Caller, SessionPath, visible_record, visible_session};
use super::super::error::ApiError;
use super::super::health::report;
use super::super::state::Ctx;
use super::calls::{Row, row};
use super::page::{Chrome, PageError, clock, ok};
use super::table::Signed;

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

/// Where a stream's events come from.
enum Source {
    /// The call is live here: its kept events, then its live ones.
    Bus {
        replay: std::collections::VecDeque<Published>,
        rx: Receiver<Published>,
    },
    /// Not live here: the store, once.
    Store,
}

/// Where an event stream is.
struct Follow {
    ctx: Ctx,
    caller: Caller,
    id: SessionId,
    /// The next transcript turn to show (earlier ones were shown).
    next_seq: u32,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    until: tokio::time::Instant,
    source: Source,
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Follow {
    /// Reads the store once: queues the turns not shown yet and the
    /// stored state; `false` when the call is gone from the user's view.
    async fn catch_up_from_store(&mut self) -> bool {
        let (caller, id) = (self.caller.clone(), self.id);
        let record = self
            .ctx
            .pool
            .run(move |s| visible_record(s, &caller, id))
            .await;
        let Ok(r) = record else {
            return false;
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
        self.pending
            .push_back(event("state", json!({ "state": r.session.state.as_str() })));
        true
    }

    /// The end: the last turns from the store (written when the call
    /// ends), then `end`.
    async fn finish(&mut self) {
        self.ctx.state.manager.flush_store().await;
        self.catch_up_from_store().await;
        self.pending.push_back(event("end", json!({})));
        self.done = true;
    }

    /// One bus event: a turn not shown yet, a state, or the end.
    async fn on_event(&mut self, e: &Published) {
        match &e.event {
            CallEvent::TranscriptTurn {
                caller,
                text,
                turn,
                start_ms,
                ..
            } if *turn >= self.next_seq => {
                self.pending.push_back(event(
                    "turn",
                    json!({
                        "seq": turn,
                        "speaker": if *caller { "caller" } else { "agent" },
                        "text": text,
                        "at": clock(*start_ms),
                        "event": e.key(),
                    }),
                ));
                self.next_seq = turn + 1;
            }
            CallEvent::State { state } => {
                self.pending
                    .push_back(event("state", json!({ "state": state })));
            }
            _ if e.event.is_end() => self.finish().await,
            _ => {}
        }
    }

    /// Waits for the next bus event (or the stream's end of life).
    async fn next(&mut self) {
        let Source::Bus { replay, rx } = &mut self.source else {
            self.finish().await;
            return;
        };
        if let Some(e) = replay.pop_front() {
            self.on_event(&e).await;
            return;
        }
        let got = tokio::time::timeout_at(self.until, rx.recv()).await;
        match got {
            Ok(Ok(e)) => self.on_event(&e).await,
            // Fell behind the bus: what was missed is in the store (or
            // soon: the turns are written in batches).
            Ok(Err(RecvError::Lagged(_))) => {
                self.ctx.state.manager.flush_store().await;
                if !self.catch_up_from_store().await {
                    self.finish().await;
                }
            }
            Ok(Err(RecvError::Closed)) | Err(_) => self.finish().await,
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
            f.next().await;
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
    // Follow the bus before reading the store: a turn published in
    // between comes from one or the other, once (by its number).
    let source = match ctx.state.manager.replay(id, 0) {
        Some((kept, rx)) => Source::Bus {
            replay: kept.into(),
            rx,
        },
        None => Source::Store,
    };
    let mut follow = Follow {
        ctx,
        caller,
        id,
        next_seq: 0,
        pending: std::collections::VecDeque::new(),
        done: false,
        until: tokio::time::Instant::now() + STREAM_LIFETIME,
        source,
    };
    let visible = follow.catch_up_from_store().await;
    if !visible || matches!(follow.source, Source::Store) {
        follow.pending.push_back(event("end", json!({})));
        follow.done = true;
    }
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
