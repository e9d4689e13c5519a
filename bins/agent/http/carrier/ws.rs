//! The carriers' media WebSockets (see [`super::carrier`] for the checks
//! in order): the Twilio Media Streams and Vonage upgrades, the admission
//! of a stream whose per-call token passes, and the pump between the
//! socket and the call's channels.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use callbridge_carrier::admission::{StreamAuth, StreamRefusal};
use callbridge_carrier::signature;
use callbridge_carrier::stream_token::{Grant, TokenError};
use callbridge_carrier::{
    self as cc, Carrier, CarrierCallId, CarrierSocket, SocketEnds, WsMessage,
};
use callbridge_session::carrier::accept;
use callbridge_session::manager::CLOSE_REFUSED;
use callbridge_session::{CarrierCall, Manager};
use tracing::{info, warn};

use super::{Refusal, START_TIMEOUT, enabled, pairs, param};
use crate::http::AppState;
use crate::http::carrier_config::CarrierEntry;

/// The Media Streams upgrade. Twilio signs it like a webhook: the
/// `X-Twilio-Signature` of the stream's URL (the `wss://` URL our TwiML
/// gave it, as this agent's `ws_base`, plus the request's path and query)
/// with no POST parameters. With signatures on, a missing or wrong one is
/// refused with 403 before the upgrade. The signature is the same for
/// every stream, so it proves only that Twilio once sent it: the per-call
/// token in the stream's `start` is what admits a call, once.
pub(super) async fn twilio_ws(
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
        Ok(ws) => upgrade(state, ws, Carrier::Twilio, None),
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
    let token = entry.secret.as_ref().map_or("", |s| s.expose());
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

/// The Vonage upgrade: with signatures on, the NCCO's `uuid` and `token`
/// must be in its query, the call not live, and the token unused and
/// unexpired; else 403 (409 for a live call) before the upgrade.
pub(super) async fn vonage_ws(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (cs, entry) = match enabled(&state, Carrier::Vonage) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let expected = if entry.verify_signatures {
        let q = match pairs(query.as_deref().unwrap_or("").as_bytes()) {
            Ok(q) => q,
            Err(r) => return r.into_response(),
        };
        let call = param(&q, "uuid").and_then(|u| CarrierCallId::new(Carrier::Vonage, u));
        let (Some(call), Some(token)) = (call, param(&q, "token")) else {
            warn!("Vonage upgrade without its call token refused");
            return Refusal::Token(TokenError::Unknown).into_response();
        };
        if state.manager.is_live(&call.key()) {
            warn!(call = %call, "Vonage upgrade for a live call refused");
            return Refusal::Live.into_response();
        }
        match cs.redeem(&call, token) {
            Ok(grant) => Some((call, grant)),
            Err(e) => return Refusal::Token(e).into_response(),
        }
    } else {
        None
    };
    match ws {
        Ok(ws) => upgrade(state, ws, Carrier::Vonage, expected),
        Err(rejection) => rejection.into_response(),
    }
}

/// A Vonage stream's call, checked at the upgrade, and its webhook's
/// parties.
type Expected = Option<(CarrierCallId, Grant)>;

fn upgrade(
    state: AppState,
    ws: WebSocketUpgrade,
    carrier: Carrier,
    expected: Expected,
) -> Response {
    ws.max_message_size(cc::MAX_MESSAGE)
        .max_frame_size(cc::MAX_MESSAGE)
        .on_upgrade(move |socket| serve(state, socket, carrier, expected))
        .into_response()
}

/// One carrier socket: the pump between the WebSocket and the call's
/// channels runs alongside the handshake and admission, and ends when the
/// call lets go of its side (close 1000) or the carrier closes.
async fn serve(state: AppState, ws: WebSocket, carrier: Carrier, expected: Expected) {
    let (socket, ends) = CarrierSocket::pair();
    tokio::join!(pump(ws, ends), admit(state, socket, carrier, expected));
}

/// Closes a refused stream with 1008.
fn refuse_stream(socket: &CarrierSocket) {
    let _ = socket.tx.try_send(WsMessage::Close(Some(CLOSE_REFUSED)));
}

async fn admit(state: AppState, mut socket: CarrierSocket, carrier: Carrier, expected: Expected) {
    let Some(cs) = state.carrier.as_deref() else {
        return;
    };
    let (core, start) = match accept(carrier, &mut socket, START_TIMEOUT).await {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "carrier stream refused");
            refuse_stream(&socket);
            return;
        }
    };
    let key = start.call.key();
    let call_id = start.call.clone();
    let verify = cs.entry(carrier).is_some_and(|e| e.verify_signatures);
    let auth = match expected {
        _ if !verify => StreamAuth::Unchecked,
        // Vonage: the token was redeemed at the upgrade for this call.
        Some((call, grant)) => StreamAuth::Redeemed(call, grant),
        // Twilio: the token comes back in the start.
        None => StreamAuth::InStart,
    };
    let grant = match cs.admit_stream(&start, auth) {
        Ok(grant) => grant,
        Err(e) => {
            match e {
                StreamRefusal::OtherCall { expected, started } => {
                    warn!(call = %started, expected = %expected, "carrier stream for another call refused");
                }
                e => warn!(call = %start.call, error = %e, "carrier stream token refused"),
            }
            refuse_stream(&socket);
            return;
        }
    };
    let hangup = match carrier {
        Carrier::Vonage => Arc::clone(&cs.vonage_hangup),
        _ => Arc::clone(&cs.twilio_hangup),
    };
    let call = CarrierCall {
        from: grant.from,
        to: grant.to,
        core,
        start,
        socket,
        hangup,
    };
    match admit_call(&state.manager, call).await {
        Ok(id) => {
            for detail in cs.take_pending(&call_id) {
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
