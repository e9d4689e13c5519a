//! `GET /calls`: the call history. The filters (date range, direction,
//! transport, campaign, end reason, number, AMD verdict) become the store's
//! `SessionFilter`, and the page comes from the API's own
//! `sessions::list_visible` (the same owner scoping and keyset paging as
//! `GET /api/sessions`). `sort` is the store's order (newest, oldest or
//! longest first), across pages.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use callbridge_crm_store::jiff::{Timestamp, civil::Date, tz::TimeZone};
use callbridge_crm_store::{
    AmdVerdict, CampaignId, Cursor, Direction, EndReason, PhoneNumber, Session, SessionFilter,
    SessionOrder, Transport,
};
use serde::Deserialize;

use super::super::auth::Caller;
use super::super::error::ApiError;
use super::super::sessions::{Listing, list_visible, live_ids};
use super::super::state::Ctx;
use super::page::{Chrome, PageError, clock, ok, when};
use super::table::Signed;

/// Rows a page.
pub const PAGE: u32 = 50;

/// The filter form (every field optional; empty means any).
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    end_reason: String,
    #[serde(default)]
    number: String,
    /// The answering-machine detection's verdict (issue 19).
    #[serde(default)]
    amd: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

fn bad(field: &str, v: &str, expected: &str) -> ApiError {
    let shown: String = v.chars().take(40).collect();
    ApiError::BadRequest(format!("{field} {shown:?}: expected {expected}"))
}

fn opt<T: std::str::FromStr>(v: &str, field: &str, expected: &str) -> Result<Option<T>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| bad(field, v, expected))
}

/// The start of day `d` (UTC).
fn day(d: Date) -> Result<Timestamp, ApiError> {
    d.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| ApiError::BadRequest("date out of range".into()))
}

impl Filters {
    /// The store filter and cursor these ask for (400 naming a bad one).
    pub fn parse(&self) -> Result<(SessionFilter, Option<Cursor>), ApiError> {
        let date = "a date (YYYY-MM-DD)";
        let since = opt::<Date>(&self.from, "from", date)?
            .map(day)
            .transpose()?;
        let until = opt::<Date>(&self.to, "to", date)?
            .map(|d| {
                d.tomorrow()
                    .map_err(|_| bad("to", &self.to, date))
                    .and_then(day)
            })
            .transpose()?;
        let number = match self.number.trim() {
            "" => None,
            n => Some(
                PhoneNumber::parse(n)
                    .map_err(|_| bad("number", n, "a phone number (E.164)"))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let filter = SessionFilter {
            direction: opt::<Direction>(&self.direction, "direction", "inbound or outbound")?,
            transport: opt::<Transport>(&self.transport, "transport", "sip, twilio or vonage")?,
            campaign: opt::<i64>(&self.campaign, "campaign", "a campaign id")?.map(CampaignId),
            end_reason: opt::<EndReason>(&self.end_reason, "end reason", "an end reason")?,
            amd: opt::<AmdVerdict>(&self.amd, "AMD verdict", "an AMD verdict")?,
            since,
            until,
            number,
            order: opt::<SessionOrder>(&self.sort, "sort", "newest, oldest or longest")?
                .unwrap_or_default(),
            ..SessionFilter::default()
        };
        let cursor = opt::<Cursor>(&self.cursor, "cursor", "a page link")?;
        Ok((filter, cursor))
    }

    /// This query string with another cursor (for the next-page link).
    fn with_cursor(&self, cursor: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("from", self.from.as_str()),
                ("to", self.to.as_str()),
                ("direction", self.direction.as_str()),
                ("transport", self.transport.as_str()),
                ("campaign", self.campaign.as_str()),
                ("end_reason", self.end_reason.as_str()),
                ("number", self.number.as_str()),
                ("amd", self.amd.as_str()),
                ("sort", self.sort.as_str()),
                ("cursor", cursor),
            ])
            .finish()
    }
}

/// One row of the history.
pub struct Row {
    /// Session id.
    pub id: String,
    /// Start time.
    pub started: String,
    /// `inbound` / `outbound`.
    pub direction: &'static str,
    /// `sip`, `twilio`...
    pub transport: &'static str,
    /// The caller, masked.
    pub from: String,
    /// The callee, masked.
    pub to: String,
    /// State.
    pub state: &'static str,
    /// End reason.
    pub end_reason: &'static str,
    /// The answering-machine detection's verdict, if the call ran one.
    pub amd: &'static str,
    /// Duration, `m:ss`.
    pub duration: String,
    /// Campaign id.
    pub campaign: String,
    /// Whether it is live now.
    pub live: bool,
}

/// The row of `s`.
pub fn row(s: &Session, live: bool) -> Row {
    let ms = s
        .duration
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Row {
        id: s.id.to_string(),
        started: when(s.created_at),
        direction: s.direction.as_str(),
        transport: s.transport.as_str(),
        from: s.from.as_ref().map(ToString::to_string).unwrap_or_default(),
        to: s.to.as_ref().map(ToString::to_string).unwrap_or_default(),
        state: s.state.as_str(),
        end_reason: s.end_reason.map_or("", EndReason::as_str),
        amd: s.amd.map_or("", |a| a.verdict.as_str()),
        duration: s.duration.map(|_| clock(ms)).unwrap_or_default(),
        campaign: s.campaign.map(|c| c.0.to_string()).unwrap_or_default(),
        live,
    }
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage {
    chrome: Option<Chrome>,
    f: Filters,
    rows: Vec<Row>,
    next: Option<String>,
    directions: &'static [&'static str],
    transports: &'static [&'static str],
    reasons: Vec<&'static str>,
    verdicts: Vec<&'static str>,
}

/// `GET /calls`.
pub async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    q: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "calls");
    let Query(f) = q.map_err(|e| PageError::new(ApiError::BadRequest(e.body_text()), &chrome))?;
    let (filter, cursor) = f.parse().map_err(|e| PageError::new(e, &chrome))?;
    let listing = Listing::new(filter, PAGE, cursor);
    let (items, next) = ctx
        .pool
        .run(move |s| list_visible(s, &caller, &listing))
        .await
        .map_err(|e| PageError::new(e, &chrome))?;
    let live = live_ids(&ctx);
    let rows: Vec<Row> = items.iter().map(|s| row(s, live.contains(&s.id))).collect();
    let next = next.map(|c| f.with_cursor(&c));
    Ok(ok(&CallsPage {
        chrome: Some(chrome),
        f,
        rows,
        next,
        directions: &["inbound", "outbound"],
        transports: &["sip", "twilio", "vonage"],
        reasons: EndReason::ALL.iter().map(|r| r.as_str()).collect(),
        verdicts: AmdVerdict::ALL.iter().map(|v| v.as_str()).collect(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn filters_parse_into_the_store_filter() {
        let f = Filters {
            from: "2026-01-02".into(),
            to: "2026-01-02".into(),
            direction: "outbound".into(),
            end_reason: "caller-hangup".into(),
            number: "+1 415 555 0100".into(),
            campaign: "7".into(),
            amd: "no_speech".into(),
            ..Filters::default()
        };
        let (sf, cursor) = f.parse().unwrap();
        assert_eq!(sf.amd, Some(AmdVerdict::NoSpeech));
        assert_eq!(sf.since.unwrap().to_string(), "2026-01-02T00:00:00Z");
        assert_eq!(sf.until.unwrap().to_string(), "2026-01-03T00:00:00Z");
        assert_eq!(sf.direction, Some(Direction::Outbound));
        assert_eq!(sf.end_reason, Some(EndReason::CallerHangup));
        assert_eq!(sf.number.as_deref(), Some("+14155550100"));
        assert_eq!(sf.campaign, Some(CampaignId(7)));
        assert!(cursor.is_none());
        assert_eq!(sf.order, SessionOrder::Newest);
        let longest = Filters {
            sort: "longest".into(),
            ..Filters::default()
        };
        assert_eq!(longest.parse().unwrap().0.order, SessionOrder::Longest);
        for bad in [
            Filters {
                from: "yesterday".into(),
                ..Filters::default()
            },
            Filters {
                direction: "sideways".into(),
                ..Filters::default()
            },
            Filters {
                number: "12ab".into(),
                ..Filters::default()
            },
            Filters {
                amd: "robot".into(),
                ..Filters::default()
            },
            Filters {
                cursor: "x".into(),
                ..Filters::default()
            },
            Filters {
                sort: "state".into(),
                ..Filters::default()
            },
        ] {
            assert!(bad.parse().is_err(), "{bad:?}");
        }
        assert!(Filters::default().parse().is_ok());
    }
}
