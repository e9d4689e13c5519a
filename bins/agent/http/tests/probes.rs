//! `/livez`, `/readyz`, `/api/health` without session ids and `/api/live`
//! behind auth, and the listeners an operator can bind apart.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Callee, rig};

/// Issue 14 item 6: the unauthenticated health answer listed the live
/// session ids; it keeps the count, the ids need a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_health_does_not_leak_live_session_ids() {
    let r = rig(Callee::Ring, |_| {}).await;
    let a = r
        .post_call(&r.operator, json!({"to": "+14155550100"}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.error());
    let id = a.json()["id"].as_str().unwrap().to_owned();
    let h = r.req(Method::GET, "/api/health", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["active_sessions"], 1);
    let text = String::from_utf8_lossy(&h.body).into_owned();
    assert!(!text.contains(&id), "health shows no session id: {text}");

    let live = |token: &str| {
        let token = token.to_owned();
        let r = &r;
        async move { r.get("/api/live", &token).await.json()["active_ids"].clone() }
    };
    assert_eq!(live(&r.operator).await, json!([id]));
    assert_eq!(live(&r.admin).await, json!([id]));
    assert_eq!(
        live(&r.other).await,
        json!([]),
        "not another operator's call"
    );
    assert_eq!(
        r.req(Method::GET, "/api/live", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_at_capacity_and_while_draining_and_livez_stays_200() {
    let r = rig(Callee::Ring, |c| c.max_calls = 1).await;
    let ready = r.req(Method::GET, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.json(),
        json!({"ready": true, "admitting": true, "at_capacity": false, "store_writable": true})
    );
    let a = r
        .post_call(&r.operator, json!({"to": "+14155550100"}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.error());
    let full = r.req(Method::GET, "/readyz", None).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.json()["at_capacity"], true);
    assert_eq!(full.json()["ready"], false);
    r.manager.shutdown().await;
    let draining = r.req(Method::GET, "/readyz", None).await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(draining.json()["admitting"], false);
    let live = r.req(Method::GET, "/livez", None).await;
    assert_eq!(live.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surfaces_bound_apart_answer_only_their_own_routes() {
    let r = rig(Callee::Ring, |_| {}).await;
    let state = super::state(
        &r.manager,
        &r.db,
        r.dir.path(),
        super::super::Outbound {
            target: None,
            domain: None,
            from: "+15550100000".into(),
            transport: Default::default(),
        },
    );
    let routers = super::super::routers(
        state,
        &super::super::Limits::default(),
        super::super::Apart {
            public: true,
            metrics: true,
        },
    );
    let public = routers.public.unwrap();
    let metrics = routers.metrics.unwrap();
    let send = |app: &axum::Router, method: Method, uri: &str| {
        let app = app.clone();
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        async move { super::send(&app, req).await.status }
    };
    let get = |app: &axum::Router, uri: &str| send(app, Method::GET, uri);
    // A route that exists answers a wrong method 405; a missing one 404.
    let carrier = "/carrier/vonage/ws";
    assert_eq!(
        send(&routers.admin, Method::POST, carrier).await,
        StatusCode::NOT_FOUND,
        "no carrier routes on the admin listener"
    );
    assert_eq!(
        send(&public, Method::POST, carrier).await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // The admin listener: no /metrics.
    assert_eq!(get(&routers.admin, "/metrics").await, StatusCode::NOT_FOUND);
    assert_eq!(get(&routers.admin, "/api/health").await, StatusCode::OK);
    // The public listener: the carrier surface and the probes only.
    assert_eq!(get(&public, "/api/health").await, StatusCode::NOT_FOUND);
    assert_eq!(get(&public, "/api/sessions").await, StatusCode::NOT_FOUND);
    assert_eq!(get(&public, "/metrics").await, StatusCode::NOT_FOUND);
    assert_eq!(get(&public, "/livez").await, StatusCode::OK);
    assert_eq!(get(&public, "/readyz").await, StatusCode::OK);
    // The metrics listener: /metrics and the probes only.
    assert_eq!(get(&metrics, "/metrics").await, StatusCode::OK);
    assert_eq!(get(&metrics, "/api/health").await, StatusCode::NOT_FOUND);
    assert_eq!(get(&metrics, "/livez").await, StatusCode::OK);
    r.manager.shutdown().await;
}
