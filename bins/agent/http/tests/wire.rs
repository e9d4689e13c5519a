//! The router served over a real loopback socket (`axum::serve`): what
//! hyper puts on the wire for a streamed recording, a range of it, and an
//! error.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Callee, rig};

/// Sends `request` on a new connection (`Connection: close`) and returns
/// the whole answer: head and body.
async fn exchange(addr: std::net::SocketAddr, request: String) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    (head, raw[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_and_errors_go_over_the_wire_with_matching_lengths() {
    let r = rig(Callee::Ring, |_| {}).await;
    let (id, data) = super::reads::with_recording(&r, 200_000);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = r.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |extra: &str| {
        format!(
            "GET /api/sessions/{id}/recording HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{extra}Connection: close\r\n\r\n",
            r.admin
        )
    };

    let (head, body) = exchange(addr, get("")).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 200000"),
        "{head}"
    );
    assert_eq!(body, data);

    let (head, body) = exchange(addr, get("Range: bytes=150000-\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 206 Partial Content"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-range: bytes 150000-199999/200000")
    );
    assert_eq!(body, data[150_000..]);

    let (head, body) = exchange(addr, get("Range: bytes=200000-\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert!(String::from_utf8(body).unwrap().contains("\"error\""));

    server.abort();
}
