//! Carrier webhooks and media WebSockets (issue 9), unauthenticated by
//! bearer token but signed by the carrier:
//!
//! | route | what |
//! |---|---|
//! | `GET`/`POST /carrier/twilio/voice` | voice webhook: TwiML `<Connect><Stream>` to our socket |
//! | `GET /carrier/twilio/ws` | Twilio Media Streams WebSocket |
//! | `GET`/`POST /carrier/vonage/answer` | answer webhook: NCCO `connect` to our socket |
//! | `POST /carrier/vonage/events` | event webhook: call status into the call's events |
//! | `GET /carrier/vonage/ws` | Vonage Voice WebSocket |
//!
//! With a carrier's `verify_signatures` on (the default), in this order,
//! before any body is read: a disabled carrier's routes answer 404; a
//! webhook without its signature header 403; a body announced larger than
//! [`MAX_WEBHOOK_BODY`] 413 (and one that turns out larger, once read).
//! Then:
//!
//! - Twilio webhooks and the Media Streams upgrade need a valid
//!   `X-Twilio-Signature` (over the stream's `wss://` URL for the upgrade).
//!   Twilio's signature has no timestamp, so the same request always
//!   carries the same one; what stops its replay is below.
//! - Vonage webhooks need a signed JWT bound to the request (the body of a
//!   POST; a GET's query, or a fresh `iat` when its token hashes nothing)
//!   and used once (its `jti` is remembered for the token's lifetime).
//!   A replay gets 403; a full replay cache 503 (Vonage retries).
//! - The TwiML / NCCO carries a per-call stream token
//!   ([`callbridge_carrier::stream_token`]): random, bound to the
//!   call id and to the caller and callee the signed webhook named, single
//!   use, expiring `stream_token_ttl_s` (30 s) after it was issued. Twilio
//!   returns it in the stream's `start` (custom parameters; Twilio allows
//!   no query on a stream URL); Vonage in the WebSocket URI, checked before
//!   the upgrade (403 without a valid one, 409 for a live call). A call id
//!   that has had its stream gets no second token (409). A stream whose
//!   token fails is closed with 1008, and so is a second stream for a live
//!   call; the caller id of the call is the webhook's, never the stream's.
//!
//! With `verify_signatures` off none of the signature or token checks run
//! (for tests and trusted networks only).
//!
//! While the store cannot be written (`Manager::store_healthy`), calls are
//! refused the carrier's way: the Twilio voice webhook answers `<Reject
//! reason="busy"/>` (the call is never answered), the Vonage answer webhook
//! an empty NCCO (the call ends); a stream whose session row cannot be
//! written is hung up at the carrier and its socket closed with 1008.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callbridge_carrier::signature::{self, Signed, VONAGE_FRESH_S, VONAGE_MAX_AGE_S, VonageCheck};
use callbridge_carrier::stream_token::{Grant, TokenError};
use callbridge_carrier::vonage::{ConnectNcco, L16Rate};
pub(super) use callbridge_carrier::webhook::{self, param};
use callbridge_carrier::{self as cc, Carrier, CarrierCallId};
use tracing::{debug, info, warn};

use super::carrier_config::CarrierEntry;
use super::{AppState, Ctx};

mod state;
mod ws;

pub use state::CarrierState;

/// Largest webhook body read (a Twilio voice webhook is about 1 KB, a
/// Vonage answer or event well under 4 KB).
pub const MAX_WEBHOOK_BODY: usize = super::limits::CARRIER_MAX_BODY;
/// How long a new socket may take to start its stream.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The carrier routes (merged into the API router).
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/carrier/twilio/voice",
            get(twilio_voice).post(twilio_voice),
        )
        .route("/carrier/twilio/ws", get(ws::twilio_ws))
        .route(
            "/carrier/vonage/answer",
            get(vonage_answer).post(vonage_answer),
        )
        .route("/carrier/vonage/events", post(vonage_events))
        .route("/carrier/vonage/ws", get(ws::vonage_ws))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
}

/// The TwiML that refuses a call without answering it (busy tone).
const TWIML_REJECT_BUSY: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject reason=\"busy\"/></Response>";

fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Why a carrier request was refused (small, so `Result`s stay small).
#[derive(Debug, Clone, Copy)]
pub(super) enum Refusal {
    /// The carrier is not enabled.
    Disabled,
    /// The signature is missing or wrong, or the token replayed.
    Signature,
    /// Too many live signed tokens remembered to take another.
    Busy,
    /// The body is larger than [`MAX_WEBHOOK_BODY`].
    TooLarge,
    /// The body could not be read.
    BadBody,
    /// More parameters than a webhook has.
    BadParams,
    /// A stream token could not be issued or was refused.
    Token(TokenError),
    /// The call has a live stream.
    Live,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Disabled => refuse(StatusCode::NOT_FOUND, "not found"),
            Refusal::Signature => refuse(StatusCode::FORBIDDEN, "signature check failed"),
            Refusal::Busy => refuse(StatusCode::SERVICE_UNAVAILABLE, "busy, retry later"),
            Refusal::TooLarge => refuse(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            Refusal::BadBody => refuse(StatusCode::BAD_REQUEST, "body not readable"),
            Refusal::BadParams => refuse(StatusCode::BAD_REQUEST, "too many parameters"),
            Refusal::Token(e) => match e.status() {
                409 => refuse(StatusCode::CONFLICT, "call already streamed"),
                503 => refuse(StatusCode::SERVICE_UNAVAILABLE, "busy, retry later"),
                _ => refuse(StatusCode::FORBIDDEN, "stream token refused"),
            },
            Refusal::Live => refuse(StatusCode::CONFLICT, "call already streaming"),
        }
    }
}

pub(super) fn enabled(
    state: &AppState,
    c: Carrier,
) -> Result<(&CarrierState, &CarrierEntry), Refusal> {
    state
        .carrier
        .as_deref()
        .and_then(|cs| cs.entry(c).map(|e| (cs, e)))
        .ok_or(Refusal::Disabled)
}

/// A header's value as text, if present and non-empty.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The signature header `name` when signatures are checked: 403 before
/// any body is read when it is missing.
fn signature_header(
    entry: &CarrierEntry,
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<String>, Refusal> {
    if !entry.verify_signatures {
        return Ok(None);
    }
    match header_text(headers, name) {
        Some(v) => Ok(Some(v)),
        None => {
            warn!(
                header = name,
                "carrier webhook without its signature refused"
            );
            Err(Refusal::Signature)
        }
    }
}

/// Reads the body of `req`, at most [`MAX_WEBHOOK_BODY`]: a larger
/// `Content-Length` is refused before reading.
async fn read_body(req: Request) -> Result<Bytes, Refusal> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_WEBHOOK_BODY as u64) {
        return Err(Refusal::TooLarge);
    }
    axum::body::to_bytes(req.into_body(), MAX_WEBHOOK_BODY)
        .await
        .map_err(|e| {
            if body_too_large(&e) {
                Refusal::TooLarge
            } else {
                Refusal::BadBody
            }
        })
}

/// Whether reading a body failed because it passed a limit: this
/// handler's own or the listener's ([`super::limits::Deadline`]), found
/// anywhere in the error's chain of sources.
fn body_too_large(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>()
            || matches!(
                err.downcast_ref::<super::limits::BodyError>(),
                Some(super::limits::BodyError::TooLarge)
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The parameters of a form body or query, in order; 400 beyond
/// [`webhook::MAX_PARAMS`].
pub(super) fn pairs(text: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    webhook::form_pairs(text).map_err(|e| {
        warn!(error = %e, "carrier request refused");
        Refusal::BadParams
    })
}

async fn twilio_voice(State(state): State<AppState>, req: Request) -> Response {
    match twilio_voice_checked(&state, req).await {
        Ok(r) => r,
        Err(r) => r.into_response(),
    }
}

async fn twilio_voice_checked(state: &AppState, req: Request) -> Result<Response, Refusal> {
    let (cs, entry) = enabled(state, Carrier::Twilio)?;
    let sig = signature_header(entry, req.headers(), "x-twilio-signature")?;
    let uri = req.uri().clone();
    let body = read_body(req).await?;
    let form = pairs(&body)?;
    if let Some(sig) = sig {
        let url = format!(
            "{}{}",
            entry.public_url,
            uri.path_and_query().map_or(uri.path(), |p| p.as_str())
        );
        let token = entry.secret.as_ref().map_or("", |s| s.expose());
        let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Err(e) = signature::verify_twilio(token.as_bytes(), &url, &refs, Some(&sig)) {
            warn!(error = %e, "Twilio voice webhook refused");
            return Err(Refusal::Signature);
        }
    }
    let q = pairs(uri.query().unwrap_or("").as_bytes())?;
    let get = |k: &str| param(&form, k).or_else(|| param(&q, k));
    let Some(call) = get("CallSid").and_then(|s| CarrierCallId::new(Carrier::Twilio, s)) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "CallSid missing"));
    };
    if !state.manager.store_healthy() {
        // Refused the carrier's way: a <Reject> first verb leaves the call
        // unanswered (busy), instead of a stream whose row cannot be
        // written.
        warn!(call = %call, "Twilio call refused: the store cannot be written");
        state.manager.count_store_refusal();
        return Ok(([(header::CONTENT_TYPE, "text/xml")], TWIML_REJECT_BUSY).into_response());
    }
    let grant = Grant {
        from: get("From").map(str::to_owned),
        to: get("To").map(str::to_owned),
    };
    let mut params: Vec<(&str, &str)> = Vec::with_capacity(3);
    let token = if entry.verify_signatures {
        Some(cs.issue(&call, grant.clone()).map_err(Refusal::Token)?)
    } else {
        None
    };
    if let Some(t) = &token {
        params.push(("token", t));
    }
    if let Some(f) = &grant.from {
        params.push(("from", f));
    }
    if let Some(t) = &grant.to {
        params.push(("to", t));
    }
    let ws = format!("{}/carrier/twilio/ws", entry.ws_base());
    let twiml = cc::twilio::connect_stream_twiml(&ws, &params);
    info!(call = %call, "Twilio call: streaming to our socket");
    Ok(([(header::CONTENT_TYPE, "text/xml")], twiml).into_response())
}

/// Checks a Vonage signed webhook's JWT (when signatures are on): bound
/// to `signed`, fresh, and used once.
fn vonage_check(
    cs: &CarrierState,
    entry: &CarrierEntry,
    auth: Option<&str>,
    signed: Signed<'_>,
) -> Result<(), Refusal> {
    if !entry.verify_signatures {
        return Ok(());
    }
    let secret = entry.secret.as_ref().map_or("", |s| s.expose());
    let check = VonageCheck {
        signed,
        now_unix: jiff::Timestamp::now().as_second(),
        max_age_s: Some(VONAGE_MAX_AGE_S),
        fresh_s: VONAGE_FRESH_S,
        application_id: entry.application_id.as_deref(),
    };
    cs.admission()
        .verify_vonage(secret.as_bytes(), auth, &check)
        .map(|_| ())
        .map_err(|e| {
            warn!(error = %e, "Vonage webhook refused");
            if e.status() == 503 {
                Refusal::Busy
            } else {
                Refusal::Signature
            }
        })
}

async fn vonage_answer(State(state): State<AppState>, req: Request) -> Response {
    match vonage_answer_checked(&state, req).await {
        Ok(r) => r,
        Err(r) => r.into_response(),
    }
}

async fn vonage_answer_checked(state: &AppState, req: Request) -> Result<Response, Refusal> {
    let (cs, entry) = enabled(state, Carrier::Vonage)?;
    let auth = signature_header(entry, req.headers(), header::AUTHORIZATION.as_str())?;
    let q = pairs(req.uri().query().unwrap_or("").as_bytes())?;
    let body = read_body(req).await?;
    // A POST answer signs its body; a GET its query.
    let signed = if body.is_empty() {
        Signed::Query(&q)
    } else {
        Signed::Body(&body)
    };
    vonage_check(cs, entry, auth.as_deref(), signed)?;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let get = |k: &str| {
        param(&q, k)
            .map(str::to_owned)
            .or_else(|| json.get(k).and_then(|v| v.as_str()).map(str::to_owned))
    };
    let Some(call) = get("uuid").and_then(|u| CarrierCallId::new(Carrier::Vonage, &u)) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "uuid missing"));
    };
    if !state.manager.store_healthy() {
        // An empty NCCO ends the call at once instead of connecting a
        // stream whose row cannot be written.
        warn!(call = %call, "Vonage call refused: the store cannot be written");
        state.manager.count_store_refusal();
        return Ok(axum::Json(serde_json::json!([])).into_response());
    }
    let (from, to) = (
        get("from").unwrap_or_default(),
        get("to").unwrap_or_default(),
    );
    let mut ws = format!("{}/carrier/vonage/ws", entry.ws_base());
    if entry.verify_signatures {
        let grant = Grant {
            from: Some(from.clone()).filter(|f| !f.is_empty()),
            to: Some(to.clone()).filter(|t| !t.is_empty()),
        };
        // The call id and its token ride in the URI, checked before the
        // upgrade (both are URL-safe: [A-Za-z0-9_-]).
        let token = cs.issue(&call, grant).map_err(Refusal::Token)?;
        ws = format!("{ws}?uuid={}&token={token}", call.as_str());
    }
    let headers_meta: Vec<(&str, &str)> =
        vec![("uuid", call.as_str()), ("from", &from), ("to", &to)];
    let events = format!("{}/carrier/vonage/events", entry.public_url);
    Ok(
        match cc::vonage::connect_ncco(&ConnectNcco {
            uri: &ws,
            event_url: &events,
            rate: L16Rate::Wide,
            headers: &headers_meta,
            from: None,
        }) {
            Ok(ncco) => {
                info!(call = %call, "Vonage call: connecting to our socket");
                axum::Json(ncco).into_response()
            }
            Err(e) => {
                warn!(error = %e, "NCCO not built");
                refuse(StatusCode::BAD_REQUEST, "call metadata too large")
            }
        },
    )
}

async fn vonage_events(State(state): State<AppState>, req: Request) -> Response {
    match vonage_events_checked(&state, req).await {
        Ok(r) => r,
        Err(r) => r.into_response(),
    }
}

async fn vonage_events_checked(state: &AppState, req: Request) -> Result<Response, Refusal> {
    let (cs, entry) = enabled(state, Carrier::Vonage)?;
    let auth = signature_header(entry, req.headers(), header::AUTHORIZATION.as_str())?;
    let body = read_body(req).await?;
    vonage_check(cs, entry, auth.as_deref(), Signed::Body(&body))?;
    let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "not JSON"));
    };
    let status = ev.get("status").and_then(|v| v.as_str()).unwrap_or("");
    let call = ev
        .get("uuid")
        .and_then(|v| v.as_str())
        .and_then(|u| CarrierCallId::new(Carrier::Vonage, u));
    let (Some(call), false) = (call, status.is_empty()) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let detail = serde_json::json!({
        "carrier": "vonage",
        "status": status.chars().take(32).collect::<String>(),
        "direction": ev.get("direction").and_then(|v| v.as_str()).map(|d| d.chars().take(16).collect::<String>()),
    });
    if state.manager.note(&call.key(), detail.clone()).is_none() {
        // Before the stream starts (or after the call): kept for the call's
        // admission, bounded.
        cs.remember(&call, detail);
    }
    debug!(call = %call, status, "Vonage event");
    Ok(StatusCode::NO_CONTENT.into_response())
}
