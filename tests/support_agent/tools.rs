//! The operator's side of an HTTP tool: a one-request server on loopback
//! that checks the request's signature with the tool secret, waits, and
//! answers JSON (issue 23's tools, GPT-Live's delegations).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The answer every tool request gets.
pub const ANSWER: &str = r#"{"status":"shipped","eta_days":2}"#;

/// What the tool server saw.
pub struct ToolRequest {
    /// `X-Callbridge-Signature` verified with the secret, within 300 s.
    pub signature_ok: bool,
    /// The request body (JSON; `null` when it was not).
    pub body: Value,
    /// When the answer was written.
    pub answered_at: Instant,
}

/// Serves one request on a free loopback port: verifies its signature with
/// `secret`, waits `delay`, answers [`ANSWER`]; the request comes out of
/// the receiver once answered.
pub fn tool_server(secret: &'static str, delay: Duration) -> (u16, mpsc::Receiver<ToolRequest>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let Some((head, body)) = read_request(&mut s) else {
            return;
        };
        let now = callbridge_crm_store::jiff::Timestamp::now().as_second();
        let signature_ok = head
            .lines()
            .find_map(|l| l.strip_prefix("x-callbridge-signature:"))
            .is_some_and(|h| {
                callbridge_session::signing::verify(secret.as_bytes(), h.trim(), &body, now, 300)
                    .is_ok()
            });
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        std::thread::sleep(delay);
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
            ANSWER.len()
        );
        let _ = tx.send(ToolRequest {
            signature_ok,
            body,
            answered_at: Instant::now(),
        });
    });
    (port, rx)
}

/// One HTTP/1.1 request: the head (lowercased) and the body of its
/// `Content-Length`; none when the client closed before the head ended.
fn read_request(s: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, start, len) = loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (head, end + 4, len);
        }
    };
    while buf.len() < start + len {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf.split_off(start)))
}
