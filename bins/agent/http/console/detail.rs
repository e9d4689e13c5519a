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
use callbridge_crm_store::{AmdResult, EventKind, MachineEnd, SessionRecord, outcome_of};

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

/// The AMD verdict and latency figures among the events: the session's
/// latency notes (`{"metric": "answer_to_first_audio_ms", "value": 412}`,
/// shown as "answer to first audio: 412 ms") and an `amd` or
/// `amd_verdict` field of any event (the answering-machine verdict, when
/// the call had detection).
fn figures(r: &SessionRecord) -> (String, Vec<(String, String)>) {
    let mut amd = String::new();
    let mut latency = Vec::new();
    for e in &r.events {
        let Some(obj) = e.detail.as_object() else {
            continue;
        };
        for key in ["amd", "amd_verdict"] {
            if let Some(v) = obj.get(key).and_then(|v| v.as_str()) {
                amd = v.to_owned();
            }
        }
        if e.kind == EventKind::Note
            && let (Some(metric), Some(ms)) = (
                obj.get("metric").and_then(|v| v.as_str()),
                obj.get("value").and_then(serde_json::Value::as_u64),
            )
            && let Some(name) = metric.strip_suffix("_ms")
        {
            latency.push((name.replace('_', " "), format!("{ms} ms")));
        }
    }
    (amd, latency)
}

/// The detection's result as the page shows it: `machine after 2.66 s,
/// greeting ended by a beep`.
fn amd_shown(a: &AmdResult) -> String {
    let mut t = format!("{} after {:.2} s", a.verdict, a.decided.as_secs_f64());
    if let Some(end) = a.machine_end {
        t.push_str(match end {
            MachineEnd::Beep => ", greeting ended by a beep",
            MachineEnd::Silence => ", greeting ended in silence",
            _ => ", greeting did not end in time",
        });
    }
    t
}

fn page_of(r: SessionRecord, live: bool, chrome: Chrome) -> DetailPage {
    let s = &r.session;
    let (from_events, latency) = figures(&r);
    // The session row's verdict (schema v12); older calls' from their events.
    let amd = s.amd.as_ref().map_or(from_events, amd_shown);
    let mut usage = Vec::new();
    let split = s.usage.split;
    for (name, v) in [
        ("input tokens", s.usage.input_tokens),
        ("of which audio", split.map(|t| t.input_audio)),
        ("output tokens", s.usage.output_tokens),
        ("of which audio", split.map(|t| t.output_audio)),
        ("summary input tokens", s.usage.summary_input_tokens),
        ("summary output tokens", s.usage.summary_output_tokens),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use callbridge_crm_store::jiff::Timestamp;
    use callbridge_crm_store::{Event, NewSession, SessionId};
    use serde_json::json;

    use super::*;

    fn record(details: &[(EventKind, serde_json::Value)]) -> SessionRecord {
        let now = Timestamp::now();
        let id = SessionId::new_v4();
        let dir = tempfile::tempdir().unwrap();
        let mut store = callbridge_crm_store::Store::open(dir.path().join("x.db")).unwrap();
        store.create_session(&NewSession::inbound(id, now)).unwrap();
        let mut r = store.load_session(id).unwrap();
        r.events = details
            .iter()
            .enumerate()
            .map(|(i, (kind, detail))| Event {
                id: i64::try_from(i).unwrap(),
                at: now,
                kind: *kind,
                detail: detail.clone(),
            })
            .collect();
        r
    }

    #[test]
    fn latency_notes_and_an_amd_verdict_are_picked_from_the_events() {
        let r = record(&[
            (
                EventKind::Note,
                json!({"metric": "answer_to_first_audio_ms", "value": 412}),
            ),
            (
                EventKind::Note,
                json!({"metric": "caller_stop_to_agent_audio_ms", "value": 730}),
            ),
            (EventKind::Note, json!({"metric": "something", "value": 1})),
            (
                EventKind::Sip,
                json!({"metric": "not_a_note_ms", "value": 1}),
            ),
            (EventKind::Model, json!({"amd": "human"})),
        ]);
        let (amd, latency) = figures(&r);
        assert_eq!(amd, "human");
        assert_eq!(
            latency,
            vec![
                ("answer to first audio".to_owned(), "412 ms".to_owned()),
                ("caller stop to agent audio".to_owned(), "730 ms".to_owned()),
            ]
        );
        assert_eq!(figures(&record(&[])), (String::new(), Vec::new()));
    }

    #[test]
    fn the_session_rows_verdict_is_shown_with_its_time_and_end() {
        let a = AmdResult {
            verdict: callbridge_crm_store::AmdVerdict::Machine,
            decided: std::time::Duration::from_millis(2660),
            machine_end: Some(MachineEnd::Beep),
        };
        assert_eq!(
            amd_shown(&a),
            "machine after 2.66 s, greeting ended by a beep"
        );
        let h = AmdResult {
            verdict: callbridge_crm_store::AmdVerdict::Human,
            decided: std::time::Duration::from_millis(1180),
            machine_end: None,
        };
        assert_eq!(amd_shown(&h), "human after 1.18 s");
    }
}
