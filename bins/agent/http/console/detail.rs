//! `GET /calls/{id}`: one call. The record comes from the API's
//! `auth::visible_record` (a call the user may not see is answered exactly
//! like one that is not in the store: a page that says so, status 404,
//! never an error page). The page shows the call's facts, the summary,
//! usage, AMD verdict, latency figures and tool calls when the events
//! carry them, the timeline of events, the transcript (each line's start
//! time a link that seeks the player), the stereo recording in an
//! `<audio>` element (`/calls/{id}/recording`: the API's Range-capable
//! recording handler behind the console's sign-in) and its waveform
//! (`/calls/{id}/waveform.svg`, [`super::waveform`]).

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbridge_crm_store::{EventKind, SessionRecord, outcome_of};

use super::super::auth::{Caller, SessionPath, session_id, visible_record};
use super::super::error::ApiError;
use super::super::recording::locate;
use super::super::sessions::live_ids;
use super::super::state::Ctx;
use super::calls::{Row, row};
use super::page::{Chrome, PageError, clock, ok, render, when};
use super::table::Signed;
use super::waveform;

/// One transcript line.
pub struct Line {
    /// `caller` or `agent`.
    pub speaker: &'static str,
    /// What was said.
    pub text: String,
    /// Start, seconds into the call (for the player).
    pub at_s: String,
    /// Start, `m:ss`.
    pub at: String,
}

/// One timeline entry.
pub struct Moment {
    /// When.
    pub at: String,
    /// The event kind.
    pub kind: &'static str,
    /// Its detail, compact JSON (empty when none).
    pub detail: String,
}

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage {
    chrome: Option<Chrome>,
    call: Row,
    outcome: &'static str,
    answered: String,
    ended: String,
    sip_status: String,
    model: String,
    summary: String,
    usage: Vec<(&'static str, String)>,
    amd: String,
    latency: Vec<(String, String)>,
    tools: Vec<Moment>,
    timeline: Vec<Moment>,
    lines: Vec<Line>,
    has_recording: bool,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage {
    chrome: Option<Chrome>,
    id: String,
}

fn moment(e: &callbridge_crm_store::Event) -> Moment {
    Moment {
        at: when(e.at),
        kind: e.kind.as_str(),
        detail: if e.detail.is_null() {
            String::new()
        } else {
            e.detail.to_string()
        },
    }
}

/// The AMD verdict and latency figures among the events: any event detail
/// field named `amd`/`verdict` (AMD) or ending in `_ms` with `latency` in
/// its name.
fn figures(r: &SessionRecord) -> (String, Vec<(String, String)>) {
    let mut amd = String::new();
    let mut latency = Vec::new();
    for e in &r.events {
        let Some(obj) = e.detail.as_object() else {
            continue;
        };
        for (k, v) in obj {
            if (k == "amd" || k == "amd_verdict" || (k == "verdict" && e.kind == EventKind::Note))
                && let Some(s) = v.as_str()
            {
                amd = s.to_owned();
            }
            if k.contains("latency") {
                latency.push((k.clone(), v.to_string()));
            }
        }
    }
    (amd, latency)
}

fn page_of(r: SessionRecord, live: bool, chrome: Chrome) -> DetailPage {
    let s = &r.session;
    let (amd, latency) = figures(&r);
    let mut usage = Vec::new();
    for (name, v) in [
        ("input tokens", s.usage.input_tokens),
        ("output tokens", s.usage.output_tokens),
    ] {
        if let Some(v) = v {
            usage.push((name, v.to_string()));
        }
    }
    if let Some(ms) = s.usage.audio_ms {
        usage.push(("model audio", clock(ms)));
    }
    DetailPage {
        chrome: Some(chrome),
        call: row(s, live),
        outcome: outcome_of(s.state, s.end_reason, s.sip_status).map_or("", |o| o.as_str()),
        answered: s.answered_at.map(when).unwrap_or_default(),
        ended: s.ended_at.map(when).unwrap_or_default(),
        sip_status: s.sip_status.map(|c| c.to_string()).unwrap_or_default(),
        model: [s.model_provider.as_deref(), s.model.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / "),
        summary: s
            .summary
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        usage,
        amd,
        latency,
        tools: r
            .events
            .iter()
            .filter(|e| e.kind == EventKind::ToolCall)
            .map(moment)
            .collect(),
        timeline: r.events.iter().map(moment).collect(),
        lines: r
            .turns
            .iter()
            .map(|t| Line {
                speaker: t.speaker.as_str(),
                text: t.text.as_str().to_owned(),
                at_s: format!("{:.1}", t.start_ms as f64 / 1000.0),
                at: clock(t.start_ms),
            })
            .collect(),
        has_recording: s.recording_path.is_some(),
    }
}

/// `GET /calls/{id}`.
pub async fn page(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Extension(signed): Extension<Signed>,
    axum::extract::Path(raw): axum::extract::Path<String>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&caller, &signed, "calls");
    let not_found = |chrome: Chrome| {
        let id: String = raw.chars().take(64).collect();
        render(
            StatusCode::NOT_FOUND,
            &NotFoundPage {
                chrome: Some(chrome),
                id,
            },
        )
    };
    let Ok(id) = session_id(&raw) else {
        return Ok(not_found(chrome));
    };
    match ctx.pool.run(move |s| visible_record(s, &caller, id)).await {
        Ok(r) => {
            let live = live_ids(&ctx).contains(&id);
            Ok(ok(&page_of(r, live, chrome)))
        }
        Err(ApiError::NotFound(_)) => Ok(not_found(chrome)),
        Err(e) => Err(PageError::new(e, &chrome)),
    }
}

/// `GET /calls/{id}/waveform.svg`.
pub async fn waveform(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    SessionPath(id): SessionPath,
) -> Result<Response, ApiError> {
    let (path, _) = locate(&ctx, caller, id).await?;
    let drawn = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        waveform::peaks(std::io::BufReader::new(file), waveform::COLUMNS)
            .map(|p| waveform::svg(&p))
            .map_err(std::io::Error::other)
    })
    .await
    .map_err(ApiError::internal)?;
    let svg = match drawn {
        Ok(svg) => svg,
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "recording cannot be drawn");
            return Err(ApiError::NotFound(format!(
                "the recording of {id} cannot be drawn"
            )));
        }
    };
    let mut res = svg.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}
