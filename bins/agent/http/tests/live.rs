//! Issue 23's live routes against a real manager and a ringing SIP callee:
//! the event stream (SSE) of a call from its state to its end, the
//! control routes (roles, visibility, the typed 409 of a provider that
//! refuses instruction updates, transfer targets), the listen route off
//! by default, and the webhook deliveries listing.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use callbridge_api::CallAccepted;
use callbridge_crm_store::SessionId;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Callee, Rig, rig};

async fn ringing_call(r: &Rig) -> SessionId {
    let a = r
        .post_call(&r.operator, json!({"to": "+14155550100"}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let c: CallAccepted = serde_json::from_slice(&a.body).unwrap();
    c.id.parse().unwrap()
}

fn post(uri: &str, token: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Reads SSE frames until `want` is in the text or the body ends.
async fn read_until(body: &mut Body, text: &mut String, want: &str) {
    while !text.contains(want) {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in time; got {text}"));
        match frame {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    text.push_str(&String::from_utf8_lossy(&d));
                }
            }
            _ => panic!("the stream ended before {want:?}: {text}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_runs_from_the_state_to_the_end_and_then_closes() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = ringing_call(&r).await;
    let req = Request::builder()
        .uri(format!("/api/calls/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {}", r.operator))
        .body(Body::empty())
        .unwrap();
    let res = r.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let mut text = String::new();
    read_until(&mut body, &mut text, "event: call.state").await;
    let a = r
        .req(
            Method::DELETE,
            &format!("/api/calls/{id}"),
            Some(&r.operator),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    read_until(&mut body, &mut text, "event: call.ended").await;
    // The stream ends after the end event.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                text.push_str(&String::from_utf8_lossy(&d));
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end: {text}");
    // Numbered in order, with the documented document in `data`.
    let datas: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let seqs: Vec<u64> = datas.iter().filter_map(|d| d["seq"].as_u64()).collect();
    assert!(seqs.len() >= 2, "events carry their seq: {text}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let end = datas.last().unwrap();
    assert_eq!(end["event"], "call.ended", "{text}");
    assert_eq!(end["session"], id.to_string());
    assert_eq!(end["data"]["reason"], "agent-hangup", "{end}");
    assert!(text.contains(&format!("id: {id}:")), "{text}");
    // Over now: the stored end, once.
    r.until_not_live(id).await;
    let a = r.get(&format!("/api/calls/{id}/events"), &r.operator).await;
    let s = String::from_utf8_lossy(&a.body);
    assert_eq!(s.matches("event: call.ended").count(), 1, "{s}");
    // Not visible to another operator, unknown ids: 404 as everywhere.
    let a = r.get(&format!("/api/calls/{id}/events"), &r.other).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = r
        .get(
            &format!("/api/calls/{}/events", SessionId::new_v4()),
            &r.admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_routes_check_roles_targets_and_answer_a_typed_409() {
    let r = rig(Callee::Ring, |cfg| {
        cfg.transfer_targets =
            callbridge_session::dial_targets::DialTargets::parse(&["sales=sip:sales@127.0.0.1"])
                .unwrap();
    })
    .await;
    let id = ringing_call(&r).await;
    let path = |what: &str| format!("/api/calls/{id}/{what}");
    // Viewers may not control; another operator does not see the call.
    for (what, body) in [
        ("instructions", json!({"instructions": "Be brief."})),
        ("say", json!({"text": "Hello"})),
        ("transfer", json!({"target": "sales"})),
    ] {
        let a = r.send(post(&path(what), &r.viewer, &body)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}");
        let a = r.send(post(&path(what), &r.other, &body)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{what}");
    }
    // The model is opened while the callee rings: the update reaches it
    // and the provider refuses (no provider takes updates yet).
    let mut a = None;
    for _ in 0..300 {
        let got = r
            .send(post(
                &path("instructions"),
                &r.operator,
                &json!({"instructions": "Be brief."}),
            ))
            .await;
        if got.json()["code"] != "not_now" {
            a = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = a.expect("the model session opened");
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.json()["code"], "instructions_unsupported", "{}", a.json());
    assert!(a.error().contains("instruction updates"));
    // A name not in transfer.targets (or a raw URI) is refused outright.
    for target in ["support", "sip:sales@127.0.0.1"] {
        let a = r
            .send(post(
                &path("transfer"),
                &r.operator,
                &json!({ "target": target }),
            ))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(a.json()["code"], "target_not_allowed");
    }
    // A listed one is taken only on an active call; this one still rings.
    let a = r
        .send(post(
            &path("transfer"),
            &r.operator,
            &json!({"target": "sales"}),
        ))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.json()["code"], "not_now");
    let a = r
        .send(post(&path("say"), &r.operator, &json!({"text": "Hello"})))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.json()["code"], "not_now");
    // Bodies are checked.
    let a = r
        .send(post(&path("say"), &r.operator, &json!({"text": " "})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = r
        .send(post(&path("say"), &r.operator, &json!({"words": "x"})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Listening is off by default: 404 even for an admin.
    let a = r.get(&path("listen"), &r.admin).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Over: 409 call_not_live.
    r.manager.hangup(id).await.unwrap();
    r.until_not_live(id).await;
    let a = r
        .send(post(&path("say"), &r.operator, &json!({"text": "Hello"})))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.json()["code"], "call_not_live");
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_are_for_admins() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, Some(r.operator_id), 1);
    let uri = format!("/api/webhooks/deliveries?session={id}");
    assert_eq!(r.get(&uri, &r.operator).await.status, StatusCode::FORBIDDEN);
    assert_eq!(r.get(&uri, &r.viewer).await.status, StatusCode::FORBIDDEN);
    let a = r.get(&uri, &r.admin).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["deliveries"], json!([]));
    let a = r.get("/api/webhooks/deliveries", &r.admin).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    r.manager.shutdown().await;
}
