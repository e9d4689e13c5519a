//! The layers every route gets: request timeout and caught panics, both
//! answered as JSON errors.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use tower::ServiceExt;

async fn send(app: &Router, uri: &str) -> (StatusCode, String, String) {
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ct = res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_times_out_with_408_and_a_panic_is_a_json_500() {
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if Duration::ZERO.is_zero() {
                    panic!("handler bug (expected by this test)");
                }
                "unreachable"
            }),
        );
    let app = super::super::harden(app, Duration::from_secs(1), 8, Duration::from_secs(10));
    let (status, ct, body) = send(&app, "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(ct, "application/json");
    assert_eq!(body, r#"{"error":"request timeout"}"#);
    let (status, ct, body) = send(&app, "/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(ct, "application/json");
    assert_eq!(body, r#"{"error":"internal error"}"#);
}

#[tokio::test(start_paused = true)]
async fn requests_beyond_the_in_flight_limit_get_503_at_once() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let app = Router::new().route(
        "/wait",
        get(move || async move {
            g.notified().await;
            "done"
        }),
    );
    let app = super::super::harden(app, Duration::from_secs(30), 1, Duration::from_secs(10));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, "/wait").await }
    });
    // Let the first request take the only slot.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let res = app
        .clone()
        .oneshot(Request::get("/wait").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    gate.notify_one();
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "done");
}
