//! A one-request HTTP/1.1 server on 127.0.0.1:0 for the summarizer tests:
//! it records the request (method, path, headers, body) and answers with a
//! canned response, then closes. Bounded: one connection, 1 MiB request,
//! 10 s.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the server answers.
pub(crate) struct Canned {
    status: u16,
    body: Vec<u8>,
    /// Never answer (for timeout tests).
    silent: bool,
}

impl Canned {
    pub(crate) fn json(status: u16, body: &str) -> Self {
        Canned {
            status,
            body: body.as_bytes().to_vec(),
            silent: false,
        }
    }

    pub(crate) fn bytes(status: u16, body: Vec<u8>) -> Self {
        Canned {
            status,
            body,
            silent: false,
        }
    }

    pub(crate) fn silent() -> Self {
        Canned {
            status: 200,
            body: Vec::new(),
            silent: true,
        }
    }
}

/// The request the server received.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    /// A header's value (name case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Starts the server; returns its base URL and the recorded request.
pub(crate) async fn serve_one(canned: Canned) -> (String, oneshot::Receiver<Recorded>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let work = async {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed before the request head");
                buf.extend_from_slice(&chunk[..n]);
                assert!(buf.len() < 1 << 20, "request too large");
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap().split(' ');
            let method = first.next().unwrap().to_owned();
            let path = first.next().unwrap().to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = buf[head_end + 4..].to_vec();
            while body.len() < len {
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed before the body");
                body.extend_from_slice(&chunk[..n]);
            }
            let _ = tx.send(Recorded {
                method,
                path,
                headers,
                body,
            });
            if canned.silent {
                tokio::time::sleep(Duration::from_secs(10)).await;
                return;
            }
            let head = format!(
                "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                canned.status,
                canned.body.len()
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            // The client may stop reading early (bounded response tests).
            let _ = sock.write_all(&canned.body).await;
            let _ = sock.shutdown().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
    });
    (base, rx)
}
