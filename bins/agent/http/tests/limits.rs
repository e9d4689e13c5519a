//! The HTTP limits: per-route body limits before reading, the body read
//! deadline outside the in-flight slots (simulated time), and the
//! listener's connection handling over real loopback sockets (idle and
//! header timeouts, per-address and listener caps).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::super::limits::CARRIER_MAX_BODY;
use super::super::{Limits, harden, serve};

/// A body that never sends a byte.
fn stalled() -> Body {
    Body::from_stream(futures_util::stream::pending::<
        Result<Vec<u8>, std::io::Error>,
    >())
}

fn app(body_timeout: Duration, slots: usize) -> Router {
    let r = Router::new()
        .route(
            "/api/calls",
            post(|b: axum::body::Bytes| async move { b.len().to_string() }),
        )
        .route(
            "/carrier/x",
            post(|b: axum::body::Bytes| async move { b.len().to_string() }),
        )
        .route("/fast", get(|| async { "fast" }));
    harden(r, Duration::from_secs(15), slots, body_timeout)
}

/// Issue 14 item 2: 256 slow-body POSTs held every in-flight slot for the
/// whole request timeout and health answered 503.
#[tokio::test(start_paused = true)]
async fn a_slow_body_holds_no_request_slot_and_gets_408_at_the_body_deadline() {
    let app = app(Duration::from_secs(10), 1);
    let slow = tokio::spawn({
        let app = app.clone();
        async move {
            let req = Request::post("/api/calls")
                .header(header::CONTENT_LENGTH, "100")
                .body(stalled())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let fast = app
        .clone()
        .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(fast.status(), StatusCode::OK, "the only slot is free");
    tokio::time::advance(Duration::from_secs(11)).await;
    let res = slow.await.unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()[header::CONNECTION], "close");
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_route_limit_is_413_before_a_byte_is_read() {
    let app = app(Duration::from_secs(10), 4);
    for (uri, len) in [
        ("/api/calls", 64 * 1024 + 1),
        ("/carrier/x", CARRIER_MAX_BODY + 1),
        ("/fast", 1025),
    ] {
        let req = Request::post(uri)
            .header(header::CONTENT_LENGTH, len.to_string())
            .body(stalled())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        // Answered without waiting for the (stalled) body.
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
    }
    // Without Content-Length the limit applies as the body arrives.
    let req = Request::post("/api/calls")
        .body(Body::from(vec![b'x'; 64 * 1024 + 1]))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post("/api/calls").body(Body::from("{}")).unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_carrier_body_is_read_by_its_handler_under_the_same_deadline() {
    let app = app(Duration::from_secs(10), 4);
    let slow = tokio::spawn({
        let app = app.clone();
        async move {
            let req = Request::post("/carrier/x").body(stalled()).unwrap();
            app.oneshot(req).await.unwrap()
        }
    });
    tokio::time::advance(Duration::from_secs(11)).await;
    let res = slow.await.unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

// ---- the listener, over loopback sockets ----

const ATTACKER: &str = "127.0.0.2";

fn quick() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(400),
        body_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(600),
        max_connections: 1000,
        max_connections_per_ip: 1000,
    }
}

async fn listen(limits: Limits) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = harden(
        Router::new().route("/livez", get(|| async { "ok" })),
        Duration::from_secs(15),
        64,
        limits.body_read_timeout,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve::serve(listener, router, limits, 1, stop.clone()));
    (addr, stop, task)
}

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the server closed `s` within `within` (EOF or reset).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let r = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    r.is_ok()
}

async fn livez(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout_also_between_requests() {
    let (addr, stop, task) = listen(quick()).await;
    let mut silent = connect_from(ATTACKER, addr).await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    // Keep-alive: one request, then silence.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_trickle_is_cut_off_at_the_header_read_timeout() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(30),
        ..quick()
    };
    let (addr, stop, task) = listen(limits).await;
    let mut s = connect_from(ATTACKER, addr).await;
    s.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
    let mut cut = false;
    // One header byte every 100 ms: far slower than the 400 ms deadline
    // allows for a head, faster than any idle timeout.
    for _ in 0..50 {
        if s.write_all(b"X").await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut s, Duration::from_millis(100)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "the trickling connection was closed");
    assert!(livez(addr).await.starts_with("HTTP/1.1 200"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_makes_room_for_a_new_client_by_closing_idle_connections() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(60),
        max_connections: 8,
        max_connections_per_ip: 1000,
        ..quick()
    };
    let (addr, stop, task) = listen(limits).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(connect_from(ATTACKER, addr).await);
    }
    for _ in 0..3 {
        assert!(livez(addr).await.starts_with("HTTP/1.1 200"));
    }
    // All but the newest 8 (less the ones that made room) were closed.
    let mut open = 0;
    for s in &mut idle {
        if !closed_within(s, Duration::from_millis(50)).await {
            open += 1;
        }
    }
    assert!(open <= 8, "{open} idle connections still open");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_beyond_its_cap_is_refused_429_when_none_of_its_connections_is_idle() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(60),
        header_read_timeout: Duration::from_secs(60),
        max_connections_per_ip: 2,
        ..quick()
    };
    let (addr, stop, task) = listen(limits).await;
    // Two connections mid-head: not idle, so not evictable.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from(ATTACKER, addr).await;
        s.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect_from(ATTACKER, addr).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    // Another address is not affected.
    assert!(livez(addr).await.starts_with("HTTP/1.1 200"));
    stop.cancel();
    task.await.unwrap();
}
