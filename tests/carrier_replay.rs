//! Replays of captured carrier requests against the real `agent` binary
//! (issue 14, item 3). Each attack is a request an eavesdropper or a
//! carrier-side log could hand an attacker:
//!
//! - a Vonage signed-webhook JWT captured from an event, or from another
//!   answer, presented on `GET /carrier/vonage/answer` with another uuid
//!   and caller id (the JWT binds the query, and each `jti` is single-use);
//! - an answer JWT whose `iat` is no longer fresh, or one signed for
//!   another application of the same Vonage account;
//! - the exact replay of a Vonage event;
//! - the Vonage WebSocket upgrade without, or with a wrong, per-call token;
//! - the replay of a Twilio Media Streams upgrade and `start` (the same
//!   signature and per-call token) after the call it opened has ended, and
//!   of the Vonage upgrade with a token already used;
//! - the replay of a Twilio voice webhook for a CallSid already streamed;
//! - a per-call token used after it expired.
//!
//! Every attack is tried and the ones that got through are listed in one
//! assertion, so a run against a vulnerable agent names them all. A second
//! stream for a live call is refused as well (409 / close 1008).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod carrier_support;

use std::time::Duration;

use callbridge_carrier::signature::{payload_hash, sign_hs256};
use carrier_support::{
    CONNECTED, Outcome, SECRET, config_with, http, ncco_ws_path, outcome, start, start_msg,
    stop_msg, twilio_upgrade, twilio_voice, twiml_token, vonage_meta, wait_ended, ws_connect,
};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// A Vonage signed-webhook JWT with the claims Vonage documents.
fn vonage_jwt(iat: i64, jti: &str, payload: Option<&str>) -> String {
    let mut claims = serde_json::json!({
        "iat": iat,
        "jti": jti,
        "iss": "Vonage",
        "api_key": "abcd1234",
        "application_id": carrier_support::VONAGE_APP,
    });
    if let Some(p) = payload {
        claims["payload_hash"] = payload_hash(p.as_bytes()).into();
    }
    format!("Bearer {}", sign_hs256(SECRET.as_bytes(), &claims))
}

async fn answer(addr: std::net::SocketAddr, query: &str, auth: &str) -> (u16, String) {
    http(
        addr,
        "GET",
        &format!("/carrier/vonage/answer?{query}"),
        &[("authorization", auth)],
        "",
    )
    .await
}

async fn event(addr: std::net::SocketAddr, body: &str, auth: &str) -> u16 {
    http(
        addr,
        "POST",
        "/carrier/vonage/events",
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_carrier_requests_replayed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start(&config_with(dir.path(), (41040, 41079), "")).await;
    let db = dir.path().join("agent.db");
    let now = jiff::Timestamp::now().as_second();
    let mut breaches: Vec<&str> = Vec::new();

    // Vonage: a genuine answer (GET, fresh iat, no payload hash) and a
    // genuine event (POST, payload hash of its body).
    let get_jwt = vonage_jwt(now, "jti-answer-1", None);
    let (st, ncco) = answer(addr, "uuid=v-1&from=447700900001&to=447700900002", &get_jwt).await;
    assert_eq!(st, 200, "genuine answer: {ncco}");
    let ncco: serde_json::Value = serde_json::from_str(&ncco).unwrap();
    let ev = r#"{"status":"ringing","uuid":"v-1","direction":"inbound"}"#;
    let ev_jwt = vonage_jwt(now, "jti-event-1", Some(ev));
    assert_eq!(event(addr, ev, &ev_jwt).await, 204, "genuine event");

    // The answer's JWT again, for another call and caller id.
    let (st, _) = answer(
        addr,
        "uuid=v-evil&from=15556660000&to=447700900002",
        &get_jwt,
    )
    .await;
    if st != 403 {
        breaches.push("Vonage answer JWT replayed on another answer");
    }
    // The event's JWT on the answer webhook.
    let (st, _) = answer(
        addr,
        "uuid=v-evil2&from=15556660000&to=447700900002",
        &ev_jwt,
    )
    .await;
    if st != 403 {
        breaches.push("Vonage event JWT presented on GET /carrier/vonage/answer");
    }
    // An answer JWT issued two minutes ago (inside the old five-minute
    // window, never used).
    let old = vonage_jwt(now - 120, "jti-answer-old", None);
    let (st, _) = answer(addr, "uuid=v-old&from=15556660000&to=447700900002", &old).await;
    if st != 403 {
        breaches.push("Vonage answer JWT without payload hash and a stale iat");
    }
    // A fresh answer JWT of another application of the same account (the
    // signature secret is the account's).
    let other_app = format!(
        "Bearer {}",
        sign_hs256(
            SECRET.as_bytes(),
            &serde_json::json!({"iat": now, "jti": "jti-other-app", "iss": "Vonage",
                "application_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}),
        )
    );
    let (st, _) = answer(
        addr,
        "uuid=v-app&from=15556660000&to=447700900002",
        &other_app,
    )
    .await;
    if st != 403 {
        breaches.push("Vonage answer JWT of another application of the account");
    }
    // The exact event again.
    if event(addr, ev, &ev_jwt).await != 204 {
        // refused: as it should be
    } else {
        breaches.push("exact replay of a Vonage event");
    }

    // The Vonage upgrade without the NCCO's token, and with a wrong one.
    match ws_connect(addr, "/carrier/vonage/ws").await {
        Err(403) => {}
        _ => breaches.push("Vonage upgrade without a token"),
    }
    match ws_connect(
        addr,
        "/carrier/vonage/ws?uuid=v-1&token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await
    {
        Err(403) => {}
        _ => breaches.push("Vonage upgrade with a wrong token"),
    }

    // The genuine Vonage stream, then the same upgrade again after the
    // call ended.
    let path = ncco_ws_path(&ncco);
    let mut vws = ws_connect(addr, &path)
        .await
        .expect("genuine Vonage upgrade");
    vws.send(Message::text(vonage_meta("v-1", &ncco)))
        .await
        .unwrap();
    assert_eq!(
        outcome(&mut vws).await,
        Outcome::Admitted,
        "genuine Vonage stream"
    );
    vws.close(None).await.unwrap();
    wait_ended(&db, 1).await;
    match ws_connect(addr, &path).await {
        Err(403) => {}
        Err(_) => breaches.push("Vonage upgrade with a used token: not a 403"),
        Ok(mut again) => {
            again
                .send(Message::text(vonage_meta("v-1", &ncco)))
                .await
                .unwrap();
            if outcome(&mut again).await == Outcome::Admitted {
                breaches.push("Vonage upgrade replayed with a used token opened a call");
            } else {
                breaches.push("Vonage upgrade replayed with a used token was upgraded");
            }
        }
    }

    // Twilio: the genuine call, then the same upgrade and start replayed.
    let (st, twiml) = twilio_voice(addr, "CAreplay").await;
    assert_eq!(st, 200, "{twiml}");
    let token = twiml_token(&twiml);
    let mut ws = twilio_upgrade(addr).await;
    ws.send(Message::text(CONNECTED)).await.unwrap();
    ws.send(Message::text(start_msg("CAreplay", &token)))
        .await
        .unwrap();
    assert_eq!(
        outcome(&mut ws).await,
        Outcome::Admitted,
        "genuine Twilio stream"
    );
    ws.send(Message::text(stop_msg("CAreplay"))).await.unwrap();
    wait_ended(&db, 2).await;
    let mut again = twilio_upgrade(addr).await;
    again.send(Message::text(CONNECTED)).await.unwrap();
    again
        .send(Message::text(start_msg("CAreplay", &token)))
        .await
        .unwrap();
    match outcome(&mut again).await {
        Outcome::Closed(Some(1008)) => {}
        Outcome::Admitted => {
            breaches.push("Twilio stream upgrade replayed opened a second session")
        }
        _ => breaches.push("Twilio stream upgrade replayed: not closed with 1008"),
    }
    // The voice webhook replayed for the CallSid already streamed.
    let (st, _) = twilio_voice(addr, "CAreplay").await;
    if st == 200 {
        breaches.push("Twilio voice webhook replayed for a CallSid already streamed");
    }

    assert!(
        breaches.is_empty(),
        "replays that got through: {breaches:#?}"
    );

    // The answer JWT of a GET may bind its query (the payload hash of the
    // query parameters as a JSON object, in order).
    let q = r#"{"uuid":"v-3","from":"447700900003","to":"447700900004"}"#;
    let bound = vonage_jwt(now, "jti-answer-bound", Some(q));
    let (st, body) = answer(addr, "uuid=v-3&from=447700900003&to=447700900004", &bound).await;
    assert_eq!(st, 200, "a GET whose payload hash is its query: {body}");
    let other = vonage_jwt(now, "jti-answer-other", Some(q));
    let (st, _) = answer(addr, "uuid=v-4&from=447700900003&to=447700900004", &other).await;
    assert_eq!(st, 403, "a GET whose payload hash is another query");

    // A second stream for a live call: the call stays one session.
    let (st, twiml) = twilio_voice(addr, "CAlive").await;
    assert_eq!(st, 200);
    let mut live = twilio_upgrade(addr).await;
    live.send(Message::text(CONNECTED)).await.unwrap();
    live.send(Message::text(start_msg("CAlive", &twiml_token(&twiml))))
        .await
        .unwrap();
    assert_eq!(outcome(&mut live).await, Outcome::Admitted);
    let (st, _) = twilio_voice(addr, "CAlive").await;
    assert_eq!(st, 409, "no second token for a streamed CallSid");
    let mut second = twilio_upgrade(addr).await;
    second.send(Message::text(CONNECTED)).await.unwrap();
    second
        .send(Message::text(start_msg("CAlive", &twiml_token(&twiml))))
        .await
        .unwrap();
    assert_eq!(outcome(&mut second).await, Outcome::Closed(Some(1008)));
    let (st, _) = answer(
        addr,
        "uuid=v-1&from=447700900001&to=447700900002",
        &vonage_jwt(now, "jti-answer-2", None),
    )
    .await;
    assert_eq!(st, 409, "no second token for a streamed uuid");
    live.send(Message::text(stop_msg("CAlive"))).await.unwrap();
    wait_ended(&db, 3).await;
    let sessions = callbridge_crm_store::Store::open(&db)
        .unwrap()
        .list_sessions(&Default::default(), 50, None)
        .unwrap()
        .items;
    assert_eq!(
        sessions.len(),
        3,
        "one session per genuine call: {sessions:?}"
    );
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_stream_tokens_expire_before_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), (41080, 41119), "stream_token_ttl_s = 1\n");
    let (child, addr) = start(&cfg).await;
    let now = jiff::Timestamp::now().as_second();
    let (st, twiml) = twilio_voice(addr, "CAlate").await;
    assert_eq!(st, 200);
    let (st, ncco) = answer(
        addr,
        "uuid=v-late&from=447700900001&to=447700900002",
        &vonage_jwt(now, "jti-late", None),
    )
    .await;
    assert_eq!(st, 200);
    let ncco: serde_json::Value = serde_json::from_str(&ncco).unwrap();
    // Past the one-second lifetime (whole seconds: wait two).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut ws = twilio_upgrade(addr).await;
    ws.send(Message::text(CONNECTED)).await.unwrap();
    ws.send(Message::text(start_msg("CAlate", &twiml_token(&twiml))))
        .await
        .unwrap();
    assert_eq!(
        outcome(&mut ws).await,
        Outcome::Closed(Some(1008)),
        "expired Twilio token"
    );
    assert_eq!(
        ws_connect(addr, &ncco_ws_path(&ncco)).await.err(),
        Some(403),
        "expired Vonage token"
    );
    drop(child);
}
