//! Campaigns in the console: `GET /campaigns` (with each one's funnel),
//! `GET /campaigns/{id}` (funnel, leads with status, attempts and next
//! attempt, pause/resume, CSV import), `POST /campaigns/{id}/import`
//! (the store's `import_leads_csv` keeping the good rows, every bad row
//! shown with its line and reason), `POST /campaigns/{id}/status`, and the
//! do-not-call list (`GET/POST /dnc`).
//!
//! Who sees what follows the API's rule for campaigns (`auth::owns_campaign`):
//! an admin sees every campaign, anyone else the campaigns they own; a
//! campaign they may not see is "not found". Changes need the
//! agent-operator or admin role (`Caller::require_operator`); taking a
//! number off the do-not-call list needs an admin. Writes open their own
//! store connection on the blocking pool (the read pool is for reads).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use callbridge_crm_store::jiff::Timestamp;
use callbridge_crm_store::{
    Campaign, CampaignId, CampaignStatus, DncEntry, Error as StoreError, ImportMode, ImportReport,
    LeadFilter, LeadId, LeadStatus, PhoneNumber, Store,
};
use serde::Deserialize;

use super::super::auth::{Caller, owns_campaign};
use super::super::error::ApiError;
use super::super::pool::store_error;
use super::super::state::Ctx;
use super::page::{Chrome, PageError, ok, when};
use super::table::Signed;

/// Leads a page.
pub const LEADS_PAGE: u32 = 100;
/// Do-not-call entries a page.
pub const DNC_PAGE: u32 = 200;

/// A campaign's funnel: leads by status, calls by outcome.
pub struct Funnel {
    /// `(status, leads)`.
    pub leads: Vec<(&'static str, u64)>,
    /// `(outcome, calls)`.
    pub calls: Vec<(&'static str, u64)>,
}

fn funnel(s: &Store, c: CampaignId) -> Result<Funnel, ApiError> {
    Ok(Funnel {
        leads: s
            .lead_counts(c)
            .map_err(store_error)?
            .into_iter()
            .map(|(st, n)| (st.as_str(), n))
            .collect(),
        calls: s
            .campaign_outcomes(c)
            .map_err(store_error)?
            .into_iter()
            .map(|(o, n)| (o.as_str(), n))
            .collect(),
    })
}

/// The campaign `id` if `caller` may see it (404 otherwise, the same
/// either way).
fn visible_campaign(s: &Store, caller: &Caller, id: CampaignId) -> Result<Campaign, ApiError> {
    let missing = || ApiError::NotFound(format!("campaign {id} does not exist"));
    let c = match s.get_campaign(id) {
        Ok(c) => c,
        Err(StoreError::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(store_error(e)),
    };
    if caller.is_admin() || owns_campaign(s, &caller.0, id)? {
        Ok(c)
    } else {
        Err(missing())
    }
}

fn campaign_id(raw: &str) -> Result<CampaignId, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(CampaignId)
        .ok_or_else(|| ApiError::NotFound("no such campaign".into()))
}

/// One campaign in the list.
pub struct Item {
    id: i64,
    name: String,
    status: &'static str,
    funnel: Funnel,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct ListPage {
    chrome: Option<Chrome>,
    items: Vec<Item>,
}

/// `GET /campaigns`.
pub async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "campaigns");
    let items = ctx
        .pool
        .run(move |s| {
            let me = caller.0.id;
            s.list_campaigns()
                .map_err(store_error)?
                .into_iter()
                .filter(|c| caller.is_admin() || c.settings.owner == Some(me))
                .map(|c| {
                    Ok(Item {
                        id: c.id.0,
                        funnel: funnel(s, c.id)?,
                        name: c.settings.name,
                        status: c.status.as_str(),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    Ok(ok(&ListPage {
        chrome: Some(chrome),
        items,
    }))
}

/// One lead row.
pub struct LeadRow {
    id: i64,
    name: String,
    phone: String,
    status: &'static str,
    attempts: u32,
    next_attempt: String,
    last_outcome: &'static str,
    last_session: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    chrome: Option<Chrome>,
    id: i64,
    name: String,
    status: &'static str,
    funnel: Funnel,
    leads: Vec<LeadRow>,
    next: Option<i64>,
    /// The lead status shown (empty: every status).
    status_filter: &'static str,
    statuses: Vec<&'static str>,
    report: Option<ImportReport>,
    import_error: String,
    csv: String,
}

/// `?after=&status=` on a campaign's page.
#[derive(Debug, Default, Deserialize)]
pub struct LeadsQuery {
    #[serde(default)]
    after: Option<i64>,
    /// Only leads in this status (empty: all).
    #[serde(default)]
    status: String,
}

impl LeadsQuery {
    fn status(&self) -> Result<Option<LeadStatus>, ApiError> {
        match self.status.trim() {
            "" => Ok(None),
            s => s.parse().map(Some).map_err(|_| {
                let shown: String = s.chars().take(40).collect();
                ApiError::BadRequest(format!("status {shown:?}: expected a lead status"))
            }),
        }
    }
}

async fn campaign_page(
    ctx: &Ctx,
    caller: Caller,
    chrome: Chrome,
    id: CampaignId,
    after: Option<LeadId>,
    status: Option<LeadStatus>,
) -> Result<CampaignPage, PageError> {
    let (c, funnel, leads) = ctx
        .pool
        .run(move |s| {
            let c = visible_campaign(s, &caller, id)?;
            let f = funnel(s, id)?;
            let leads = s
                .list_leads(id, LeadFilter { status }, after, LEADS_PAGE)
                .map_err(store_error)?;
            Ok((c, f, leads))
        })
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    let next = (leads.len() == LEADS_PAGE as usize)
        .then(|| leads.last().map(|l| l.id.0))
        .flatten();
    Ok(CampaignPage {
        chrome: Some(chrome),
        id: c.id.0,
        name: c.settings.name,
        status: c.status.as_str(),
        funnel,
        leads: leads
            .into_iter()
            .map(|l| LeadRow {
                id: l.id.0,
                name: l.name.map(|n| n.as_str().to_owned()).unwrap_or_default(),
                phone: l.phone.to_string(),
                status: l.status.as_str(),
                attempts: l.attempts,
                next_attempt: when(l.next_attempt_at),
                last_outcome: l.last_outcome.map_or("", |o| o.as_str()),
                last_session: l.last_session.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect(),
        next,
        status_filter: status.map_or("", LeadStatus::as_str),
        statuses: LeadStatus::ALL.iter().map(|s| s.as_str()).collect(),
        report: None,
        import_error: String::new(),
        csv: String::new(),
    })
}

/// `GET /campaigns/{id}`.
pub async fn page(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    Path(raw): Path<String>,
    Query(q): Query<LeadsQuery>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "campaigns");
    let id = campaign_id(&raw).map_err(|e| PageError::new(e, &chrome))?;
    let status = q.status().map_err(|e| PageError::new(e, &chrome))?;
    let p = campaign_page(&ctx, caller, chrome, id, q.after.map(LeadId), status).await?;
    Ok(ok(&p))
}

/// Runs `f` on a fresh read-write store connection on the blocking pool.
async fn write<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let db = ctx.state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = db.open().map_err(store_error)?;
        f(&mut s)
    })
    .await
    .map_err(ApiError::internal)?
}

/// The import form.
#[derive(Debug, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csv: String,
}

/// `POST /campaigns/{id}/import`: the good rows are imported; the page
/// shows what happened and every bad row.
pub async fn import(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    Path(raw): Path<String>,
    Form(f): Form<ImportForm>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "campaigns");
    let id = campaign_id(&raw).map_err(|e| PageError::new(e, &chrome))?;
    caller
        .require_operator()
        .map_err(|e| PageError::new(e, &chrome))?;
    let check = caller.clone();
    ctx.pool
        .run(move |s| visible_campaign(s, &check, id))
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    let csv = f.csv.clone();
    let result = write(&ctx, move |s| {
        match s.import_leads_csv(
            id,
            csv.as_bytes(),
            ImportMode::GoodRowsOnly,
            Timestamp::now(),
        ) {
            Ok(r) => Ok(Ok(r)),
            Err(StoreError::InvalidInput { field, reason }) => {
                Ok(Err(format!("{field}: {reason}")))
            }
            Err(e) => Err(store_error(e)),
        }
    })
    .await
    .map_err(|e| PageError::new(e, &chrome))?;
    let user = caller.0.id.0;
    let mut p = campaign_page(&ctx, caller, chrome, id, None, None).await?;
    match result {
        Ok(r) => {
            tracing::info!(
                campaign = id.0,
                user,
                inserted = r.inserted,
                rejected = r.rejected_total,
                "leads imported from the console"
            );
            p.report = Some(r);
        }
        Err(why) => {
            p.import_error = why;
            p.csv = f.csv;
        }
    }
    Ok(ok(&p))
}

/// The pause/resume form.
#[derive(Debug, Deserialize)]
pub struct StatusForm {
    status: String,
}

/// `POST /campaigns/{id}/status` (`active` or `paused`).
pub async fn set_status(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    Path(raw): Path<String>,
    Form(f): Form<StatusForm>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "campaigns");
    let err = |e| PageError::new(e, &chrome);
    let id = campaign_id(&raw).map_err(err)?;
    caller.require_operator().map_err(err)?;
    let status = match f.status.as_str() {
        "active" => CampaignStatus::Active,
        "paused" => CampaignStatus::Paused,
        _ => return Err(err(ApiError::BadRequest("status: active or paused".into()))),
    };
    let check = caller.clone();
    ctx.pool
        .run(move |s| visible_campaign(s, &check, id))
        .await
        .map_err(err)?;
    write(&ctx, move |s| {
        s.set_campaign_status(id, status, Timestamp::now())
            .map_err(store_error)
    })
    .await
    .map_err(err)?;
    tracing::info!(
        campaign = id.0,
        user = caller.0.id.0,
        status = status.as_str(),
        "campaign status set from the console"
    );
    Ok(Redirect::to(&format!("/campaigns/{}", id.0)).into_response())
}

/// One do-not-call entry.
pub struct DncRow {
    phone: String,
    reason: String,
    added: String,
}

#[derive(Template)]
#[template(path = "dnc.html")]
struct DncPage {
    chrome: Option<Chrome>,
    rows: Vec<DncRow>,
    admin: bool,
    message: String,
}

fn dnc_row(e: DncEntry) -> DncRow {
    DncRow {
        phone: e.phone.to_string(),
        reason: e.reason,
        added: when(e.added_at),
    }
}

async fn dnc_page(
    ctx: &Ctx,
    caller: &Caller,
    chrome: Chrome,
    message: String,
) -> Result<Response, PageError> {
    let rows = ctx
        .pool
        .run(|s| s.list_dnc(None, DNC_PAGE).map_err(store_error))
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    Ok(ok(&DncPage {
        chrome: Some(chrome),
        rows: rows.into_iter().map(dnc_row).collect(),
        admin: caller.is_admin(),
        message,
    }))
}

/// `GET /dnc`.
pub async fn dnc(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "dnc");
    dnc_page(&ctx, &caller, chrome, String::new()).await
}

/// The do-not-call form.
#[derive(Debug, Deserialize)]
pub struct DncForm {
    action: String,
    phone: String,
    #[serde(default)]
    reason: String,
}

/// `POST /dnc`: `action=add` (operators and admins) or `action=remove`
/// (admins).
pub async fn dnc_change(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    Form(f): Form<DncForm>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "dnc");
    let err = |e| PageError::new(e, &chrome);
    caller.require_operator().map_err(err)?;
    let phone = PhoneNumber::parse(f.phone.trim())
        .map_err(|_| err(ApiError::BadRequest("phone: not an E.164 number".into())))?;
    let shown = phone.to_string();
    let message = match f.action.as_str() {
        "add" => {
            let reason: String = f.reason.chars().take(200).collect();
            let marked = write(&ctx, move |s| {
                s.add_dnc(&phone, &reason, Timestamp::now())
                    .map_err(store_error)
            })
            .await
            .map_err(err)?;
            format!("{shown} is on the list; {marked} lead(s) marked do-not-call.")
        }
        "remove" => {
            if !caller.is_admin() {
                return Err(err(ApiError::Forbidden(
                    "taking a number off the list needs the admin role".into(),
                )));
            }
            write(&ctx, move |s| match s.remove_dnc(&phone) {
                Ok(()) => Ok(()),
                Err(StoreError::NotFound { .. }) => {
                    Err(ApiError::NotFound("that number is not on the list".into()))
                }
                Err(e) => Err(store_error(e)),
            })
            .await
            .map_err(err)?;
            format!("{shown} is off the list.")
        }
        _ => return Err(err(ApiError::BadRequest("action: add or remove".into()))),
    };
    tracing::info!(user = caller.0.id.0, action = %f.action, "do-not-call list changed from the console");
    dnc_page(&ctx, &caller, chrome, message).await
}
