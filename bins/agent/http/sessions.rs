//! `GET /api/sessions` (filters and keyset paging) and
//! `GET /api/sessions/{id}` (session, transcript, events), with the
//! visibility rules of [`super::auth`].
//!
//! The store filters on one owner or one campaign at a time, so a
//! non-admin's page is the merge of "owner = me" and one query per
//! campaign they own, each with the same filter, cursor and limit: the
//! first `limit` of the union (in the listing's `order`) are among the
//! first `limit` of each part. The next cursor is the store's own form,
//! built from the last session shown (a test checks it equals the
//! store's).

use std::collections::HashSet;

use axum::Extension;
use axum::extract::State;
use callbridge_api::{EventView, SessionDetail, SessionList, SessionView, TurnView};
use callbridge_crm_store::{
    CampaignId, Cursor, Direction, MAX_PAGE, Session, SessionFilter, SessionId, SessionOrder,
    SessionRecord, SessionState, Store, Transport, jiff::Timestamp,
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    direction: Option<String>,
    transport: Option<String>,
    campaign_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
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
            since: parse_field::<Timestamp>(&self.since, "since", "an RFC 3339 time")?,
            until: parse_field::<Timestamp>(&self.until, "until", "an RFC 3339 time")?,
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

/// The cursor that continues after `s` in `order` (the store's `Display`
/// form).
pub fn cursor_after(order: SessionOrder, s: &Session) -> String {
    Cursor::after(order, s).to_string()
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
        all.last().map(|s| cursor_after(order, s))
    } else {
        None
    };
    Ok((all, next))
}

fn ts(t: Timestamp) -> String {
    t.to_string()
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
        profile: s.profile.clone(),
        sip_headers: s.sip_headers.iter().cloned().collect(),
    }
}

fn detail(r: SessionRecord, live: bool) -> SessionDetail {
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
