//! The carrier routes' checks that need the router, not the binary: the
//! Twilio Media Streams upgrade is refused with 403 before any upgrade when
//! its `X-Twilio-Signature` is missing or wrong, and a signed upgrade still
//! needs the per-call token in its `start` (both checks pass, or no call).
//! Upgrades go over a real loopback socket (axum::serve, tokio-tungstenite).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use callbridge_carrier::NoHangup;
use callbridge_carrier::signature::twilio_signature;
use callbridge_redact::Secret;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use super::super::carrier::CarrierState;
use super::super::carrier_config::{CarrierEntry, CarrierSettings};
use super::{Callee, Rig, rig, send};
use crate::http::{Outbound, State};

const TOKEN: &str = "twilio-route-token";
const PUBLIC: &str = "http://agent.test";
/// `base64(HMAC-SHA1("twilio-route-token", "ws://agent.test/carrier/twilio/ws"))`,
/// computed with python3's hmac module.
const WS_SIG: &str = "sLbmslSmiXbz7Xi7iY4jTsnhNLs=";

/// The router with Twilio enabled (`verify` on or off) and Vonage off.
fn twilio_router(r: &Rig, verify: bool) -> axum::Router {
    let settings = CarrierSettings {
        twilio: Some(CarrierEntry {
            public_url: PUBLIC.into(),
            verify_signatures: verify,
            api_base: "http://127.0.0.1:9".into(),
            secret: verify.then(|| Secret::new(TOKEN.to_owned())),
            hangup_bearer: None,
            stream_token_ttl: Duration::from_secs(30),
            application_id: None,
        }),
        vonage: None,
    };
    let state = Arc::new(State {
        manager: r.manager.clone(),
        store: callbridge_crm_store::StoreAt::sqlite(&r.db),
        recordings_dir: Some(r.dir.path().to_path_buf()),
        started: Instant::now(),
        provider: "mock".into(),
        outbound: Outbound {
            target: None,
            domain: None,
            from: "+15550100000".into(),
            transport: Default::default(),
        },
        carrier: Some(Arc::new(CarrierState::with_hangups(
            settings,
            Arc::new(NoHangup),
            Arc::new(NoHangup),
        ))),
        console: Arc::default(),
        listen: false,
        profiles: None,
    });
    crate::http::router(state)
}

/// [`twilio_router`], served on loopback.
async fn serve(r: &Rig, verify: bool) -> (axum::Router, SocketAddr, tokio::task::JoinHandle<()>) {
    let app = twilio_router(r, verify);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, served).await;
    });
    (app, addr, task)
}

/// Opens the Media Streams socket with `signature` (if any): the socket,
/// or the HTTP status the upgrade was refused with.
async fn connect(
    addr: SocketAddr,
    path: &str,
    signature: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(s) = signature {
        req.headers_mut()
            .insert("x-twilio-signature", s.parse().unwrap());
    }
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("upgrade answered within 10 s")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

fn start_msg(call_sid: &str, token: &str) -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","streamSid":"MZ{call_sid}","start":{{"streamSid":"MZ{call_sid}","accountSid":"ACtest","callSid":"{call_sid}","tracks":["inbound"],"customParameters":{{"token":"{token}"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_upgrade_needs_its_signature_and_then_the_call_token() {
    let r = rig(Callee::Ring, |_| {}).await;
    let (app, addr, task) = serve(&r, true).await;
    let path = "/carrier/twilio/ws";
    // The documented algorithm over the URL our TwiML names.
    assert_eq!(
        twilio_signature(TOKEN.as_bytes(), &format!("ws://agent.test{path}"), &[]),
        WS_SIG
    );
    // Unsigned, wrong key, the https:// form, another query: 403, no upgrade.
    assert_eq!(connect(addr, path, None).await.err(), Some(403));
    let wrong_key = twilio_signature(b"other", "ws://agent.test/carrier/twilio/ws", &[]);
    assert_eq!(connect(addr, path, Some(&wrong_key)).await.err(), Some(403));
    let https = twilio_signature(TOKEN.as_bytes(), "http://agent.test/carrier/twilio/ws", &[]);
    assert_eq!(connect(addr, path, Some(&https)).await.err(), Some(403));
    assert_eq!(
        connect(addr, "/carrier/twilio/ws?x=1", Some(WS_SIG))
            .await
            .err(),
        Some(403),
        "the query is part of the signed URL"
    );
    // The signature is checked before the upgrade itself: an unsigned plain
    // GET is a 403 too, a signed one is refused as a bad upgrade instead.
    let plain = |sig: Option<&str>| {
        let mut b = Request::builder().method(Method::GET).uri(path);
        if let Some(s) = sig {
            b = b.header("x-twilio-signature", s);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(send(&app, plain(None)).await.status, StatusCode::FORBIDDEN);
    let signed_plain = send(&app, plain(Some(WS_SIG))).await.status;
    assert!(
        signed_plain.is_client_error() && signed_plain != StatusCode::FORBIDDEN,
        "{signed_plain}"
    );
    // Signed: the upgrade succeeds, but a start without the TwiML's
    // per-call token is still refused (close 1008) and admits no call.
    let mut ws = connect(addr, path, Some(WS_SIG))
        .await
        .expect("signed upgrade");
    ws.send(Message::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(start_msg("CAroute1", "not-the-token")))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(f) = m {
                return f.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(closed, Some(1008));
    assert!(r.manager.snapshot().calls.is_empty(), "no call admitted");
    task.abort();
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_upgrade_is_not_checked_when_signatures_are_off() {
    let r = rig(Callee::Ring, |_| {}).await;
    let (_app, addr, task) = serve(&r, false).await;
    let mut ws = connect(addr, "/carrier/twilio/ws", None)
        .await
        .expect("unsigned upgrade accepted with verify_signatures = false");
    ws.close(None).await.unwrap();
    task.abort();
    r.manager.shutdown().await;
}

/// The router with Twilio on (signatures checked) and Vonage off.
fn twilio_only(r: &Rig) -> axum::Router {
    twilio_router(r, true)
}

/// A body whose first kilobyte arrives and whose rest never does: a
/// handler that reads it hangs.
fn endless_body() -> Body {
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'a'; 1024]))
    });
    Body::from_stream(first.chain(futures_util::stream::pending()))
}

/// `req` through the router; its status, or `None` when it hung 5 s.
async fn status_within(app: &axum::Router, req: Request<Body>) -> Option<StatusCode> {
    tokio::time::timeout(Duration::from_secs(5), send(app, req))
        .await
        .ok()
        .map(|a| a.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_webhooks_are_refused_before_their_body_is_read() {
    let r = rig(Callee::Ring, |_| {}).await;
    let app = twilio_only(&r);
    let post = |uri: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder().method(Method::POST).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(endless_body()).unwrap()
    };
    // A disabled carrier: 404, the body untouched.
    for uri in ["/carrier/vonage/events", "/carrier/vonage/answer"] {
        assert_eq!(
            status_within(&app, post(uri, &[("authorization", "Bearer x.y.z")])).await,
            Some(StatusCode::NOT_FOUND),
            "{uri}"
        );
    }
    // No signature header: 403, the body untouched.
    assert_eq!(
        status_within(&app, post("/carrier/twilio/voice", &[])).await,
        Some(StatusCode::FORBIDDEN)
    );
    // A body announced larger than a webhook's: 413, not read.
    assert_eq!(
        status_within(
            &app,
            post(
                "/carrier/twilio/voice",
                &[
                    ("x-twilio-signature", WS_SIG),
                    ("content-length", "1000000")
                ]
            )
        )
        .await,
        Some(StatusCode::PAYLOAD_TOO_LARGE)
    );
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_bodies_over_the_webhook_limit_are_refused() {
    let r = rig(Callee::Ring, |_| {}).await;
    let app = twilio_only(&r);
    // Correctly signed, but 40 KB of form: more than any voice webhook.
    let pad = "p".repeat(40 * 1024);
    let params = [("CallSid", "CAbig"), ("Pad", pad.as_str())];
    let sig = twilio_signature(
        TOKEN.as_bytes(),
        "http://agent.test/carrier/twilio/voice",
        &params,
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/carrier/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(Body::from(format!("CallSid=CAbig&Pad={pad}")))
        .unwrap();
    assert_eq!(
        status_within(&app, req).await,
        Some(StatusCode::PAYLOAD_TOO_LARGE)
    );
    r.manager.shutdown().await;
}
