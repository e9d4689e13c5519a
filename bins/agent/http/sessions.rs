//! `GET /api/sessions` (filters and keyset paging) and
//! `GET /api/sessions/{id}` (session, transcript, events), with the
//! visibility rules of [`super::auth`].
//!
//! The store filters on one owner or one campaign at a time, so a
//! non-admin's page is the merge of "owner = me" and one query per
//! campaign they own, each with the same filter, cursor and limit: the
//! first `limit` of the union (in the listing's `order`) are among the
//! first `limit` of each part. The next cursor is the store's own
//! (`Cursor::after`), built from the last session shown.

use std::collections::HashSet;

use axum::Extension;
use axum::extract::State;
use callbridge_api::{EventView, SessionDetail, SessionList, SessionView, TurnView};
use callbridge_crm_store::{
    AmdVerdict, CampaignId, Cursor, Direction, MAX_PAGE, PhoneNumber, Session, SessionFilter,
    SessionId, SessionOrder, SessionRecord, SessionState, Store, Transport, jiff::Timestamp,
};
use serde::Deserialize;

use super::auth::{Caller, SessionPath, visible_record};
use super::error::{ApiError, Json, Query};
use super::pool::store_error;
use super::state::Ctx;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;

/// Most campaigns of one non-admin user merged into a listing; beyond it
/// the user must filter by `campaign_id`.
pub const MAX_MERGED_CAMPAIGNS: usize = 200;

/// The query string of `GET /api/sessions`; empty values count as absent.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `created`, `ringing`, `answered`, `active`, `ended`, `failed` or `interrupted`.
    state: Option<String>,
    /// `inbound`, `outbound` or `unknown`.
    direction: Option<String>,
    /// `sip`, `twilio`, `vonage` or `unknown`.
    transport: Option<String>,
    /// A campaign id.
    campaign_id: Option<String>,
    /// Created at or after: an RFC 3339 time, or a date (`2026-12-06`: from that UTC day's start).
    since: Option<String>,
    /// Created before: an RFC 3339 time, or a date (`2026-12-06`: up to that UTC day's end).
    until: Option<String>,
    /// Either party is exactly this E.164 number (`%2B4930123456`).
    number: Option<String>,
    /// The answering-machine detection's first verdict: `human`, `machine`, `no_speech`, `unreachable` or `unknown`.
    amd: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    order: Option<String>,
}

/// A parsed, validated listing request.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    filter: SessionFilter,
    limit: u32,
    cursor: Option<Cursor>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_field<T: std::str::FromStr>(
    v: &Option<String>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    given(v)
        .map(|s| {
            s.parse().map_err(|_| {
                let shown: String = s.chars().take(64).collect();
                ApiError::BadRequest(format!("{name}={shown:?}: expected {expected}"))
            })
        })
        .transpose()
}

/// Which end of a day a date-only bound stands for.
#[derive(Debug, Clone, Copy)]
enum Day {
    /// `since=2026-12-06`: from that day's first instant (UTC).
    Start,
    /// `until=2026-12-06`: up to the end of that day (UTC), i.e. before
    /// the next day starts, so the day itself is included.
    End,
}

/// `since`/`until`: an RFC 3339 time, or a date (`2026-12-06`, a UTC day).
fn bound(v: &Option<String>, name: &str, day: Day) -> Result<Option<Timestamp>, ApiError> {
    let Some(s) = given(v) else {
        return Ok(None);
    };
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    let bad = || {
        let shown: String = s.chars().take(64).collect();
        ApiError::BadRequest(format!(
            "{name}={shown:?}: expected an RFC 3339 time (2026-12-06T08:00:00Z) or a date (2026-12-06, UTC)"
        ))
    };
    let date: callbridge_crm_store::jiff::civil::Date = s.parse().map_err(|_| bad())?;
    let date = match day {
        Day::Start => date,
        Day::End => date.tomorrow().map_err(|_| bad())?,
    };
    date.to_zoned(callbridge_crm_store::jiff::tz::TimeZone::UTC)
        .map(|z| Some(z.timestamp()))
        .map_err(|_| bad())
}

impl ListQuery {
    /// Validates every parameter (400 naming the first bad one).
    pub fn parse(&self) -> Result<Listing, ApiError> {
        let states = "one of created, ringing, answered, active, ended, failed, interrupted";
        let filter = SessionFilter {
            state: parse_field::<SessionState>(&self.state, "state", states)?,
            direction: parse_field::<Direction>(
                &self.direction,
                "direction",
                "inbound, outbound or unknown",
            )?,
            transport: parse_field::<Transport>(
                &self.transport,
                "transport",
                "sip, twilio, vonage or unknown",
            )?,
            campaign: parse_field::<i64>(&self.campaign_id, "campaign_id", "an integer id")?
                .map(CampaignId),
            since: bound(&self.since, "since", Day::Start)?,
            until: bound(&self.until, "until", Day::End)?,
            number: given(&self.number)
                .map(|n| {
                    PhoneNumber::parse(n).map(|p| p.as_str().to_owned()).map_err(|_| {
                        let shown: String = n.chars().take(32).collect();
                        ApiError::BadRequest(format!(
                            "number={shown:?}: expected an E.164 number (+ and digits; in a URL write + as %2B)"
                        ))
                    })
                })
                .transpose()?,
            amd: parse_field::<AmdVerdict>(
                &self.amd,
                "amd",
                "human, machine, no_speech, unreachable or unknown",
            )?,
            order: parse_field::<SessionOrder>(&self.order, "order", "newest, oldest or longest")?
                .unwrap_or_default(),
            ..SessionFilter::default()
        };
        let limit =
            parse_field::<u32>(&self.limit, "limit", "an integer")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit={limit}: expected 1 to {MAX_PAGE}"
            )));
        }
        let cursor =
            parse_field::<Cursor>(&self.cursor, "cursor", "the next_cursor of a previous page")?;
        Ok(Listing {
            filter,
            limit,
            cursor,
        })
    }
}

impl Listing {
    /// A listing of `filter`'s sessions, `limit` a page (1 to
    /// [`MAX_PAGE`]), after `cursor` (the console's history page).
    pub fn new(filter: SessionFilter, limit: u32, cursor: Option<Cursor>) -> Listing {
        Listing {
            filter,
            limit: limit.clamp(1, MAX_PAGE),
            cursor,
        }
    }
}

/// One page of the sessions `caller` may see.
pub fn list_visible(
    store: &Store,
    caller: &Caller,
    q: &Listing,
) -> Result<(Vec<Session>, Option<String>), ApiError> {
    if caller.is_admin() {
        let page = store
            .list_sessions(&q.filter, q.limit, q.cursor)
            .map_err(store_error)?;
        return Ok((page.items, page.next.map(|c| c.to_string())));
    }
    let me = caller.0.id;
    let mut parts = vec![SessionFilter {
        owner: Some(me),
        ..q.filter.clone()
    }];
    let owned: Vec<CampaignId> = match q.filter.campaign {
        Some(c) => {
            if super::auth::owns_campaign(store, &caller.0, c)? {
                vec![c]
            } else {
                Vec::new()
            }
        }
        None => store
            .list_campaigns()
            .map_err(store_error)?
            .into_iter()
            .filter(|c| c.settings.owner == Some(me))
            .map(|c| c.id)
            .collect(),
    };
    if owned.len() > MAX_MERGED_CAMPAIGNS {
        return Err(ApiError::BadRequest(format!(
            "you own more than {MAX_MERGED_CAMPAIGNS} campaigns: filter by campaign_id"
        )));
    }
    parts.extend(owned.into_iter().map(|c| SessionFilter {
        campaign: Some(c),
        ..q.filter.clone()
    }));
    let mut more = false;
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    for f in &parts {
        let page = store
            .list_sessions(f, q.limit, q.cursor)
            .map_err(store_error)?;
        more |= page.next.is_some();
        all.extend(page.items.into_iter().filter(|s| seen.insert(s.id)));
    }
    let order = q.filter.order;
    all.sort_by(|a, b| order.compare(a, b));
    let limit = q.limit as usize;
    more |= all.len() > limit;
    all.truncate(limit);
    let next = if more {
        all.last().map(|s| Cursor::after(order, s).to_string())
    } else {
        None
    };
    Ok((all, next))
}

/// The API's one time format: RFC 3339 in UTC with exactly three
/// fractional digits (`2026-12-06T03:21:51.000Z`), so every time in every
/// answer has the same shape and sorts as text.
pub fn ts(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// The API view of a session row.
pub fn view(s: &Session, live: bool) -> SessionView {
    SessionView {
        id: s.id.to_string(),
        direction: s.direction.as_str().into(),
        transport: Some(s.transport.as_str().into()),
        state: s.state.as_str().into(),
        live,
        end_reason: s.end_reason.map(|r| r.as_str().into()),
        sip_status: s.sip_status,
        campaign_id: s.campaign.map(|c| c.0),
        lead_id: s.lead.map(|l| l.0),
        owner_id: s.owner.map(|u| u.0),
        from: s.from.as_ref().map(|p| p.as_str().into()),
        to: s.to.as_ref().map(|p| p.as_str().into()),
        sip_call_id: s.sip_call_id.clone(),
        model_provider: s.model_provider.clone(),
        model: s.model.clone(),
        created_at: ts(s.created_at),
        answered_at: s.answered_at.map(ts),
        ended_at: s.ended_at.map(ts),
        duration_ms: s
            .duration
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        recording_bytes: s.recording_path.as_ref().and(s.recording_bytes),
        summary: s.summary.as_ref().map(|t| t.as_str().into()),
        input_tokens: s.usage.input_tokens,
        output_tokens: s.usage.output_tokens,
        audio_ms: s.usage.audio_ms,
        input_audio_tokens: s.usage.split.map(|t| t.input_audio),
        input_text_tokens: s.usage.split.map(|t| t.input_text),
        output_audio_tokens: s.usage.split.map(|t| t.output_audio),
        output_text_tokens: s.usage.split.map(|t| t.output_text),
        summary_input_tokens: s.usage.summary_input_tokens,
        summary_output_tokens: s.usage.summary_output_tokens,
        profile: s.profile.clone(),
        sip_headers: s.sip_headers.iter().cloned().collect(),
        amd: s.amd.map(|a| a.verdict.as_str().into()),
        amd_decided_ms: s
            .amd
            .map(|a| u64::try_from(a.decided.as_millis()).unwrap_or(u64::MAX)),
        amd_machine_end: s.amd.and_then(|a| a.machine_end).map(|e| e.as_str().into()),
    }
}

/// The API view of a session with its transcript and events.
pub fn detail(r: SessionRecord, live: bool) -> SessionDetail {
    SessionDetail {
        session: view(&r.session, live),
        transcript: r
            .turns
            .into_iter()
            .map(|t| TurnView {
                seq: t.seq,
                speaker: t.speaker.as_str().into(),
                text: t.text.into_inner(),
                start_ms: t.start_ms,
                end_ms: t.end_ms,
            })
            .collect(),
        events: r
            .events
            .into_iter()
            .map(|e| EventView {
                at: ts(e.at),
                kind: e.kind.as_str().into(),
                detail: e.detail,
            })
            .collect(),
    }
}

/// The ids of the calls live in the manager now.
pub fn live_ids(ctx: &Ctx) -> HashSet<SessionId> {
    ctx.state
        .manager
        .snapshot()
        .calls
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// `GET /api/sessions`.
#[utoipa::path(get, path = "/api/sessions", tag = "sessions",
    description = "One page of the sessions the caller may see, newest first.",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = SessionList),
        (status = 400, description = "A parameter is invalid (named in the message)", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody)))]
pub async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let listing = q.parse()?;
    let (items, next_cursor) = ctx
        .pool
        .run(move |s| list_visible(s, &caller, &listing))
        .await?;
    let live = live_ids(&ctx);
    Ok(Json(SessionList {
        sessions: items
            .iter()
            .map(|s| view(s, live.contains(&s.id)))
            .collect(),
        next_cursor,
    }))
}

/// `GET /api/sessions/{id}`.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions",
    description = "A session with its transcript and events.",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = SessionDetail),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such session, or not visible to the caller", body = callbridge_api::ErrorBody)))]
pub async fn get(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    SessionPath(id): SessionPath,
) -> Result<Json<SessionDetail>, ApiError> {
    let record = ctx
        .pool
        .run(move |s| visible_record(s, &caller, id))
        .await?;
    let live = live_ids(&ctx).contains(&id);
    Ok(Json(detail(record, live)))
}

/// `DELETE /api/sessions/{id}` (admin): erases the session row, its
/// transcript, its events and its recording file; 409 while the call is
/// live. The store never sees the file: the row goes first, then the file
/// (`crate::erase`).
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions",
    description = "Erase a session: its row, transcript, events and recording (admin only).",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "Not an admin", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such session", body = callbridge_api::ErrorBody),
        (status = 409, description = "The call is still in progress", body = callbridge_api::ErrorBody)))]
pub async fn delete(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    path: Result<SessionPath, ApiError>,
) -> Result<axum::http::StatusCode, ApiError> {
    caller.require_admin()?;
    let SessionPath(id) = path?;
    if live_ids(&ctx).contains(&id) {
        return Err(ApiError::Conflict(format!(
            "session {id} is a call in progress: hang it up first"
        )));
    }
    let db = ctx.state.store.clone();
    let gone = tokio::task::spawn_blocking(move || {
        let mut s = db.open().map_err(store_error)?;
        s.delete_session(id).map_err(|e| match e {
            callbridge_crm_store::Error::Conflict { .. } => ApiError::Conflict(format!(
                "session {id} is a call in progress: hang it up first"
            )),
            e => store_error(e),
        })
    })
    .await
    .map_err(ApiError::internal)??;
    let removed = gone
        .recording
        .as_deref()
        .is_some_and(crate::erase::remove_recording);
    tracing::info!(session = %id, recording_removed = removed, "session erased");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
