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
//! Webhooks with a missing or wrong signature get 403 (when the carrier's
//! `verify_signatures` is on), and so does a Twilio Media Streams upgrade
//! (Twilio signs it with `X-Twilio-Signature` over the stream's `wss://`
//! URL). The sockets are also bound to a webhook that passed: the TwiML /
//! NCCO carries a per-call token (HMAC-SHA256 of the carrier call id under
//! a key drawn at start) that must come back in the stream's start
//! (`customParameters` / the metadata frame); both checks must pass. A
//! disabled carrier's routes answer 404.
//!
//! While the store cannot be written (`Manager::store_healthy`), calls are
//! refused the carrier's way: the Twilio voice webhook answers `<Reject
//! reason="busy"/>` (the call is never answered), the Vonage answer webhook
//! an empty NCCO (the call ends); a stream whose session row cannot be
//! written is hung up at the carrier and its socket closed with 1008.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callbridge_session::carrier::hangup::{TwilioRest, VonageRest};
use callbridge_session::carrier::signature::{self, VonageCheck};
use callbridge_session::carrier::vonage::{ConnectNcco, L16Rate};
use callbridge_session::carrier::{
    self as cc, Carrier, CarrierHangup, CarrierSocket, NoHangup, SocketEnds, WsMessage,
};
use callbridge_session::{CarrierCall, Manager};
use tracing::{debug, info, warn};

use super::carrier_config::{CarrierEntry, CarrierSettings};
use super::{AppState, Ctx};

/// How long a new socket may take to start its stream.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Carrier calls whose statuses are kept until their stream starts.
const MAX_PENDING: usize = 256;
/// Statuses kept per call until its stream starts.
const MAX_PENDING_PER_CALL: usize = 8;

/// What the carrier routes share (one per agent).
pub struct CarrierState {
    settings: CarrierSettings,
    twilio_hangup: Arc<dyn CarrierHangup>,
    vonage_hangup: Arc<dyn CarrierHangup>,
    token_key: [u8; 32],
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    order: VecDeque<String>,
    statuses: HashMap<String, Vec<serde_json::Value>>,
}

impl std::fmt::Debug for CarrierState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CarrierState {
    /// The routes' state; REST hangups go through the configured API
    /// bases (Vonage's only with an application key or `VONAGE_API_JWT`;
    /// without one the call ends when we close the socket).
    pub fn new(settings: CarrierSettings) -> CarrierState {
        let twilio_hangup: Arc<dyn CarrierHangup> = match &settings.twilio {
            Some(t) => match (
                &t.secret,
                TwilioRest::new(&t.api_base, t.secret.clone().unwrap_or_default()),
            ) {
                (Some(_), Ok(r)) => Arc::new(r),
                _ => Arc::new(NoHangup),
            },
            None => Arc::new(NoHangup),
        };
        let vonage_hangup: Arc<dyn CarrierHangup> = match &settings.vonage {
            Some(v) => match &v.hangup_bearer {
                Some(bearer) => match VonageRest::new(&v.api_base, bearer.clone()) {
                    Ok(r) => Arc::new(r),
                    Err(_) => Arc::new(NoHangup),
                },
                None => Arc::new(NoHangup),
            },
            None => Arc::new(NoHangup),
        };
        CarrierState::with_hangups(settings, twilio_hangup, vonage_hangup)
    }

    /// The routes' state with given hangups (tests).
    pub fn with_hangups(
        settings: CarrierSettings,
        twilio_hangup: Arc<dyn CarrierHangup>,
        vonage_hangup: Arc<dyn CarrierHangup>,
    ) -> CarrierState {
        let mut token_key = [0u8; 32];
        token_key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        token_key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        CarrierState {
            settings,
            twilio_hangup,
            vonage_hangup,
            token_key,
            pending: Mutex::new(Pending::default()),
        }
    }

    fn entry(&self, c: Carrier) -> Option<&CarrierEntry> {
        match c {
            Carrier::Vonage => self.settings.vonage.as_ref(),
            _ => self.settings.twilio.as_ref(),
        }
    }

    fn token(&self, key: &str) -> String {
        signature::payload_hash(&[&self.token_key[..], key.as_bytes()].concat())
    }

    fn remember(&self, key: &str, status: serde_json::Value) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !p.statuses.contains_key(key) {
            if p.order.len() >= MAX_PENDING
                && let Some(old) = p.order.pop_front()
            {
                p.statuses.remove(&old);
            }
            p.order.push_back(key.to_owned());
        }
        let list = p.statuses.entry(key.to_owned()).or_default();
        if list.len() < MAX_PENDING_PER_CALL {
            list.push(status);
        }
    }

    fn take_pending(&self, key: &str) -> Vec<serde_json::Value> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.order.retain(|k| k != key);
        p.statuses.remove(key).unwrap_or_default()
    }
}

/// The carrier routes (merged into the API router).
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/carrier/twilio/voice",
            get(twilio_voice).post(twilio_voice),
        )
        .route("/carrier/twilio/ws", get(twilio_ws))
        .route(
            "/carrier/vonage/answer",
            get(vonage_answer).post(vonage_answer),
        )
        .route("/carrier/vonage/events", post(vonage_events))
        .route("/carrier/vonage/ws", get(vonage_ws))
}

/// The TwiML that refuses a call without answering it (busy tone).
const TWIML_REJECT_BUSY: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject reason=\"busy\"/></Response>";

fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Why a carrier request was refused (small, so `Result`s stay small).
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// The carrier is not enabled.
    Disabled,
    /// The signature is missing or wrong.
    Signature,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Disabled => refuse(StatusCode::NOT_FOUND, "not found"),
            Refusal::Signature => refuse(StatusCode::FORBIDDEN, "signature check failed"),
        }
    }
}

fn enabled(state: &AppState, c: Carrier) -> Result<(&CarrierState, &CarrierEntry), Refusal> {
    state
        .carrier
        .as_deref()
        .and_then(|cs| cs.entry(c).map(|e| (cs, e)))
        .ok_or(Refusal::Disabled)
}

fn pairs(text: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text).unwrap_or_default()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

async fn twilio_voice(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let (cs, entry) = match enabled(&state, Carrier::Twilio) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let form = pairs(std::str::from_utf8(&body).unwrap_or(""));
    let url = format!(
        "{}{}",
        entry.public_url,
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    if entry.verify_signatures {
        let token = entry.secret.as_deref().unwrap_or_default();
        let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sig = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if let Err(e) = signature::verify_twilio(token.as_bytes(), &url, &refs, sig) {
            warn!(error = %e, "Twilio voice webhook refused");
            return refuse(StatusCode::FORBIDDEN, "signature check failed");
        }
    }
    let q = pairs(query.as_deref().unwrap_or(""));
    let get = |k: &str| param(&form, k).or_else(|| param(&q, k));
    let Some(call) = get("CallSid").and_then(|s| cc::CarrierCallId::new(Carrier::Twilio, s)) else {
        return refuse(StatusCode::BAD_REQUEST, "CallSid missing");
    };
    if !state.manager.store_healthy() {
        // Refused the carrier's way: a <Reject> first verb leaves the call
        // unanswered (busy), instead of a stream whose row cannot be
        // written.
        warn!(call = %call, "Twilio call refused: the store cannot be written");
        state.manager.count_store_refusal();
        return ([(header::CONTENT_TYPE, "text/xml")], TWIML_REJECT_BUSY).into_response();
    }
    let token = cs.token(&call.key());
    let mut params: Vec<(&str, &str)> = vec![("token", &token)];
    if let Some(f) = get("From") {
        params.push(("from", f));
    }
    if let Some(t) = get("To") {
        params.push(("to", t));
    }
    let ws = format!("{}/carrier/twilio/ws", entry.ws_base());
    let twiml = cc::twilio::connect_stream_twiml(&ws, &params);
    info!(call = %call, "Twilio call: streaming to our socket");
    ([(header::CONTENT_TYPE, "text/xml")], twiml).into_response()
}

fn vonage_check(
    entry: &CarrierEntry,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<(), Refusal> {
    if !entry.verify_signatures {
        return Ok(());
    }
    let secret = entry.secret.as_deref().unwrap_or_default();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let check = VonageCheck {
        body,
        now_unix: jiff::Timestamp::now().as_second(),
        max_age_s: Some(300),
    };
    signature::verify_vonage(secret.as_bytes(), auth, &check)
        .map(|_| ())
        .map_err(|e| {
            warn!(error = %e, "Vonage webhook refused");
            Refusal::Signature
        })
}

async fn vonage_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let (cs, entry) = match enabled(&state, Carrier::Vonage) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let signed_body = (!body.is_empty()).then_some(&body[..]);
    if let Err(r) = vonage_check(entry, &headers, signed_body) {
        return r.into_response();
    }
    let q = pairs(query.as_deref().unwrap_or(""));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let get = |k: &str| {
        param(&q, k)
            .map(str::to_owned)
            .or_else(|| json.get(k).and_then(|v| v.as_str()).map(str::to_owned))
    };
    let Some(call) = get("uuid").and_then(|u| cc::CarrierCallId::new(Carrier::Vonage, &u)) else {
        return refuse(StatusCode::BAD_REQUEST, "uuid missing");
    };
    if !state.manager.store_healthy() {
        // An empty NCCO ends the call at once instead of connecting a
        // stream whose row cannot be written.
        warn!(call = %call, "Vonage call refused: the store cannot be written");
        state.manager.count_store_refusal();
        return axum::Json(serde_json::json!([])).into_response();
    }
    let token = cs.token(&call.key());
    let (from, to) = (
        get("from").unwrap_or_default(),
        get("to").unwrap_or_default(),
    );
    let headers_meta: Vec<(&str, &str)> = vec![
        ("uuid", call.as_str()),
        ("token", &token),
        ("from", &from),
        ("to", &to),
    ];
    let ws = format!("{}/carrier/vonage/ws", entry.ws_base());
    let events = format!("{}/carrier/vonage/events", entry.public_url);
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
    }
}

async fn vonage_events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (cs, entry) = match enabled(&state, Carrier::Vonage) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = vonage_check(entry, &headers, Some(&body)) {
        return r.into_response();
    }
    let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not JSON");
    };
    let status = ev.get("status").and_then(|v| v.as_str()).unwrap_or("");
    let call = ev
        .get("uuid")
        .and_then(|v| v.as_str())
        .and_then(|u| cc::CarrierCallId::new(Carrier::Vonage, u));
    let (Some(call), false) = (call, status.is_empty()) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let detail = serde_json::json!({
        "carrier": "vonage",
        "status": status.chars().take(32).collect::<String>(),
        "direction": ev.get("direction").and_then(|v| v.as_str()).map(|d| d.chars().take(16).collect::<String>()),
    });
    if state.manager.note(&call.key(), detail.clone()).is_none() {
        // Before the stream starts (or after the call): kept for the call's
        // admission, bounded.
        cs.remember(&call.key(), detail);
    }
    debug!(call = %call, status, "Vonage event");
    StatusCode::NO_CONTENT.into_response()
}

/// The Media Streams upgrade. Twilio signs it like a webhook: the
/// `X-Twilio-Signature` of the stream's URL (the `wss://` URL our TwiML
/// gave it, as this agent's `ws_base`, plus the request's path and query)
/// with no POST parameters. With signatures on, a missing or wrong one is
/// refused with 403 before the upgrade; the per-call token in the stream's
/// `start` is checked afterwards as well.
async fn twilio_ws(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let entry = match enabled(&state, Carrier::Twilio) {
        Ok((_, e)) => e,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = twilio_upgrade_check(entry, &uri, &headers) {
        return r.into_response();
    }
    match ws {
        Ok(ws) => upgrade(state, ws, Carrier::Twilio),
        Err(rejection) => rejection.into_response(),
    }
}

fn twilio_upgrade_check(
    entry: &CarrierEntry,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    if !entry.verify_signatures {
        return Ok(());
    }
    let token = entry.secret.as_deref().unwrap_or_default();
    let url = format!(
        "{}{}",
        entry.ws_base(),
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    signature::verify_twilio(token.as_bytes(), &url, &[], sig).map_err(|e| {
        warn!(error = %e, "Twilio Media Streams upgrade refused");
        Refusal::Signature
    })
}

async fn vonage_ws(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    if let Err(r) = enabled(&state, Carrier::Vonage) {
        return r.into_response();
    }
    upgrade(state, ws, Carrier::Vonage)
}

fn upgrade(state: AppState, ws: WebSocketUpgrade, carrier: Carrier) -> Response {
    ws.max_message_size(cc::MAX_MESSAGE)
        .max_frame_size(cc::MAX_MESSAGE)
        .on_upgrade(move |socket| serve(state, socket, carrier))
        .into_response()
}

/// One carrier socket: the pump between the WebSocket and the call's
/// channels runs alongside the handshake and admission, and ends when the
/// call lets go of its side (close 1000) or the carrier closes.
async fn serve(state: AppState, ws: WebSocket, carrier: Carrier) {
    let (socket, ends) = CarrierSocket::pair();
    tokio::join!(pump(ws, ends), admit(state, socket, carrier));
}

async fn admit(state: AppState, mut socket: CarrierSocket, carrier: Carrier) {
    let Some(cs) = state.carrier.as_deref() else {
        return;
    };
    let (core, start) = match cc::accept(carrier, &mut socket, START_TIMEOUT).await {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "carrier stream refused");
            let _ = socket.tx.try_send(WsMessage::Close(Some(
                callbridge_session::manager::CLOSE_REFUSED,
            )));
            return;
        }
    };
    let key = start.call.key();
    let verify = cs.entry(carrier).is_some_and(|e| e.verify_signatures);
    if verify && start.parameter("token") != Some(cs.token(&key).as_str()) {
        warn!(call = %start.call, "carrier stream without a valid token refused");
        let _ = socket.tx.try_send(WsMessage::Close(Some(
            callbridge_session::manager::CLOSE_REFUSED,
        )));
        return;
    }
    let hangup = match carrier {
        Carrier::Vonage => Arc::clone(&cs.vonage_hangup),
        _ => Arc::clone(&cs.twilio_hangup),
    };
    let call = CarrierCall {
        from: start.parameter("from").map(str::to_owned),
        to: start.parameter("to").map(str::to_owned),
        core,
        start,
        socket,
        hangup,
    };
    match admit_call(&state.manager, call).await {
        Ok(id) => {
            for detail in cs.take_pending(&key) {
                let _ = state.manager.note(&key, detail);
            }
            info!(session = %id, call = %key, "carrier call admitted");
        }
        Err(e) => warn!(error = %e, call = %key, "carrier call not admitted"),
    }
}

async fn admit_call(
    manager: &Manager,
    call: CarrierCall,
) -> Result<callbridge_crm_store::SessionId, callbridge_session::ManagerError> {
    manager.admit_carrier(call).await
}

async fn pump(mut ws: WebSocket, mut ends: SocketEnds) {
    let mut to_call = Some(ends.to_call);
    loop {
        tokio::select! {
            m = ws.recv() => {
                let msg = match m {
                    Some(Ok(Message::Text(t))) => WsMessage::Text(t.as_str().to_owned()),
                    Some(Ok(Message::Binary(b))) => WsMessage::Binary(b),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(f))) => WsMessage::Close(f.map(|f| f.code)),
                    Some(Err(_)) | None => WsMessage::Close(None),
                };
                let closing = matches!(msg, WsMessage::Close(_));
                if let Some(tx) = &to_call {
                    // Bounded: a call that does not keep up slows the
                    // socket's reading (TCP backpressure), never memory.
                    if tx.send(msg).await.is_err() {
                        to_call = None;
                    }
                }
                if closing {
                    return;
                }
            }
            out = ends.from_call.recv() => {
                let (msg, last) = match out {
                    Some(WsMessage::Text(t)) => (Message::Text(t.into()), false),
                    Some(WsMessage::Binary(b)) => (Message::Binary(b), false),
                    Some(WsMessage::Close(code)) => (close(code.unwrap_or(1000)), true),
                    None => (close(1000), true),
                };
                if ws.send(msg).await.is_err() {
                    return;
                }
                if last {
                    // Wait (bounded) for the carrier's close reply.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(m)) = ws.recv().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                    return;
                }
            }
        }
    }
}

fn close(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: "".into(),
    }))
}
