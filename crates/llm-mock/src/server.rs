//! Mock WebSocket server scaffolding shared by the provider mocks.
//!
//! Owns: binding on 127.0.0.1 port 0, the accept loop, the per-connection
//! handshake behaviour (accept, refuse with an HTTP status, drop the TCP
//! connection), per-connection scripts ([`ScriptBook`]), the counters tests
//! assert on ([`MockStats`]: connections, open connections, setups, resumed
//! setups, clean closes, audio bytes received, protocol violations) and
//! [`MockConnection`], the helper a provider mock uses to read and write
//! JSON frames. Every task is tracked and ends when the server is shut down
//! or dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use callbridge_llm_bridge::BoxFuture;

/// The WebSocket limits of a mock connection: the clients' own bound
/// ([`callbridge_llm_bridge::MAX_MESSAGE_BYTES`]).
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(callbridge_llm_bridge::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(callbridge_llm_bridge::MAX_MESSAGE_BYTES))
}

/// Sleeps until `deadline`, or forever without one (an optional timer arm
/// of a `select!`).
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Scripts per connection: connection `i` (0-based, in accept order) gets
/// `per_connection[i]`, later ones get `default`.
#[derive(Debug, Clone, Default)]
pub struct ScriptBook<S> {
    /// Scripts for the first connections, in order.
    pub per_connection: Vec<S>,
    /// Script for every other connection.
    pub default: S,
}

impl<S: Clone> ScriptBook<S> {
    /// The same script for every connection.
    pub fn all(script: S) -> Self {
        ScriptBook {
            per_connection: Vec::new(),
            default: script,
        }
    }

    /// The script of connection `index`.
    pub fn for_connection(&self, index: usize) -> S {
        self.per_connection
            .get(index)
            .unwrap_or(&self.default)
            .clone()
    }
}

/// What the server does with a new TCP connection before any WebSocket
/// traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handshake {
    /// Complete the upgrade.
    #[default]
    Accept,
    /// Answer the upgrade with this HTTP status (e.g. 503).
    RejectHttp(u16),
    /// Close the TCP connection without answering.
    DropTcp,
}

/// A snapshot of a mock server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections whose handler is still running.
    pub open_connections: u64,
    /// Setup messages accepted (including resumed ones).
    pub setups: u64,
    /// Setups that carried a resumption handle.
    pub resumed_setups: u64,
    /// Connections the client closed with a close frame 1000.
    pub clean_closes: u64,
    /// Decoded input audio bytes received, over all connections.
    pub audio_bytes_in: u64,
    /// Input audio messages received (`realtimeInput.audio`,
    /// `input_audio_buffer.append`), over all connections.
    pub audio_messages_in: u64,
    /// Caller turns detected, over all connections.
    pub caller_turns: u64,
    /// Protocol violations by the client (empty when it behaved).
    pub violations: Vec<String>,
    /// How each connection the mock read to its end ended, in order: the
    /// client's close code (1005 for a close frame without one), or 1006
    /// when the connection went away with no close frame (RFC 6455 §7.1.5).
    pub client_close_codes: Vec<u16>,
    /// The system instructions of the setups accepted (Gemini), in
    /// order, the first 100: what a test's routing profile rendered.
    pub instructions: Vec<String>,
    /// The tool answers the client sent (Gemini), as `(name, response)`,
    /// the first 100.
    pub tool_responses: Vec<(String, serde_json::Value)>,
}

/// Shared counters of one server.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    open_connections: AtomicU64,
    setups: AtomicU64,
    resumed_setups: AtomicU64,
    clean_closes: AtomicU64,
    audio_bytes_in: AtomicU64,
    audio_messages_in: AtomicU64,
    caller_turns: AtomicU64,
    violations: Mutex<Vec<String>>,
    client_close_codes: Mutex<Vec<u16>>,
    instructions: Mutex<Vec<String>>,
    tool_responses: Mutex<Vec<(String, serde_json::Value)>>,
}

impl Counters {
    fn snapshot(&self) -> MockStats {
        MockStats {
            connections: self.connections.load(Ordering::SeqCst),
            open_connections: self.open_connections.load(Ordering::SeqCst),
            setups: self.setups.load(Ordering::SeqCst),
            resumed_setups: self.resumed_setups.load(Ordering::SeqCst),
            clean_closes: self.clean_closes.load(Ordering::SeqCst),
            audio_bytes_in: self.audio_bytes_in.load(Ordering::SeqCst),
            audio_messages_in: self.audio_messages_in.load(Ordering::SeqCst),
            caller_turns: self.caller_turns.load(Ordering::SeqCst),
            violations: self
                .violations
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
            instructions: self
                .instructions
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
            tool_responses: self
                .tool_responses
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
            client_close_codes: self
                .client_close_codes
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        }
    }

    /// Records how a connection ended (bounded: a test's worth).
    fn note_close(&self, code: u16) {
        if let Ok(mut v) = self.client_close_codes.lock()
            && v.len() < 10_000
        {
            v.push(code);
        }
    }
}

/// A provider mock: decides the handshake and runs each accepted connection.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Handshake behaviour for connection `index`.
    fn handshake(&self, index: usize) -> Handshake;
    /// Runs one connection until it ends.
    fn run(self: Arc<Self>, conn: MockConnection) -> BoxFuture<'static, ()>;
}

/// A running mock server; stops (with all its tasks) on
/// [`shutdown`](Self::shutdown) or drop.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl MockServer {
    /// Binds 127.0.0.1:0 and serves `handler`.
    pub async fn start<H: ConnectionHandler>(handler: Arc<H>) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (c, k, t) = (counters.clone(), cancel.clone(), tracker.clone());
        tracker.spawn(accept_loop(listener, handler, c, k, t));
        Ok(MockServer {
            addr,
            counters,
            cancel,
            tracker,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The counters now.
    pub fn stats(&self) -> MockStats {
        self.counters.snapshot()
    }

    /// Polls the counters until `pred` holds or `timeout` passes; returns the
    /// last snapshot and whether `pred` held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&MockStats) -> bool,
    ) -> (MockStats, bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.stats();
            if pred(&s) {
                return (s, true);
            }
            if tokio::time::Instant::now() >= deadline {
                return (s, false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Panics (for tests) if the client broke the protocol.
    pub fn assert_no_violations(&self) {
        let v = self.stats().violations;
        assert!(v.is_empty(), "client protocol violations: {v:#?}");
    }

    /// Stops accepting, ends every connection, and waits for the tasks.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}

async fn accept_loop<H: ConnectionHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _peer)) = accepted else { continue };
        let index = counters.connections.fetch_add(1, Ordering::SeqCst) as usize;
        let (h, c, k) = (handler.clone(), counters.clone(), cancel.clone());
        tracker.spawn(async move {
            tokio::select! {
                () = k.cancelled() => {}
                () = serve(tcp, index, h, c, k.clone()) => {}
            }
        });
    }
}

async fn serve<H: ConnectionHandler>(
    tcp: TcpStream,
    index: usize,
    handler: Arc<H>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let behaviour = handler.handshake(index);
    if behaviour == Handshake::DropTcp {
        drop(tcp);
        return;
    }
    let _ = tcp.set_nodelay(true);
    let mut headers = Vec::new();
    // The callback's signature is tungstenite's; its error is an HTTP response.
    #[allow(
        clippy::result_large_err,
        reason = "signature fixed by tungstenite's Callback trait"
    )]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        headers.push((":path".to_owned(), req.uri().to_string()));
        match behaviour {
            Handshake::RejectHttp(code) => {
                let mut r = ErrorResponse::new(Some("refused by mock".to_owned()));
                *r.status_mut() =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                Err(r)
            }
            _ => Ok(resp),
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(
        tcp,
        callback,
        Some(crate::server::ws_config()),
    )
    .await
    {
        Ok(ws) => ws,
        Err(_) => return,
    };
    counters.open_connections.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(counters.clone());
    let conn = MockConnection {
        ws,
        index,
        counters,
        cancel,
        headers,
        closed: false,
    };
    handler.run(conn).await;
}

struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON message (text or binary frame).
    Json(Value),
    /// A frame that is not JSON (recorded as a violation by the caller).
    NotJson(String),
    /// The client closed (with `code`, or 1005 when there was no code).
    Closed {
        /// The client's close code.
        code: u16,
    },
    /// The connection is gone (reset, EOF, or the server is shutting down).
    Gone,
}

/// One accepted WebSocket connection, for a provider mock.
#[derive(Debug)]
pub struct MockConnection {
    ws: WebSocketStream<TcpStream>,
    index: usize,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    headers: Vec<(String, String)>,
    closed: bool,
}

impl MockConnection {
    /// The connection's number in accept order (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// A request header of the upgrade (lower-case name; `:path` is the URI).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Records a protocol violation by the client.
    pub fn violation(&self, what: impl Into<String>) {
        let msg = format!("connection {}: {}", self.index, what.into());
        tracing::warn!(%msg, "mock: client protocol violation");
        if let Ok(mut v) = self.counters.violations.lock()
            && v.len() < 1000
        {
            v.push(msg);
        }
    }

    /// Counts an accepted setup.
    pub fn count_setup(&self, resumed: bool) {
        self.counters.setups.fetch_add(1, Ordering::SeqCst);
        if resumed {
            self.counters.resumed_setups.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Keeps the system instructions of an accepted setup (the first 100).
    pub fn record_instructions(&self, text: &str) {
        if let Ok(mut v) = self.counters.instructions.lock()
            && v.len() < 100
        {
            v.push(text.to_owned());
        }
    }

    /// Keeps a tool answer the client sent (the first 100).
    pub fn record_tool_response(&self, name: &str, response: serde_json::Value) {
        if let Ok(mut v) = self.counters.tool_responses.lock()
            && v.len() < 100
        {
            v.push((name.to_owned(), response));
        }
    }

    /// Counts one received audio message of `bytes` decoded bytes.
    pub fn count_audio(&self, bytes: usize) {
        self.counters
            .audio_bytes_in
            .fetch_add(bytes as u64, Ordering::SeqCst);
        self.counters
            .audio_messages_in
            .fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a detected caller turn.
    pub fn count_turn(&self) {
        self.counters.caller_turns.fetch_add(1, Ordering::SeqCst);
    }

    /// The next client message. A close frame is answered (tungstenite
    /// replies automatically) and counted as clean when its code is 1000.
    pub async fn recv(&mut self) -> Incoming {
        if self.closed {
            return Incoming::Gone;
        }
        loop {
            let msg = tokio::select! {
                () = self.cancel.cancelled() => return Incoming::Gone,
                m = self.ws.next() => m,
            };
            let payload: Bytes = match msg {
                Some(Ok(Message::Text(t))) => t.into(),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                    self.counters.note_close(code);
                    if code == 1000 {
                        self.counters.clean_closes.fetch_add(1, Ordering::SeqCst);
                    }
                    self.closed = true;
                    // Flush the automatic close reply and wait for the end.
                    let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
                    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                    return Incoming::Closed { code };
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed = true;
                    self.counters.note_close(1006);
                    return Incoming::Gone;
                }
            };
            return match serde_json::from_slice::<Value>(&payload) {
                Ok(v) => Incoming::Json(v),
                Err(e) => Incoming::NotJson(e.to_string()),
            };
        }
    }

    /// Sends a JSON message, in a binary frame (as Gemini does) or a text
    /// frame. Errors mean the client is gone.
    pub async fn send_json(&mut self, v: &Value, binary: bool) -> Result<(), tungstenite::Error> {
        let s = v.to_string();
        let msg = if binary {
            Message::Binary(Bytes::from(s))
        } else {
            Message::Text(s.into())
        };
        self.ws.send(msg).await
    }

    /// Sends raw text (for malformed-frame scripts).
    pub async fn send_raw(&mut self, msg: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(msg).await
    }

    /// Server-initiated close with `code` and `reason`; waits briefly for the
    /// client's reply.
    pub async fn close(&mut self, code: u16, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
            let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        }
    }

    /// Drops the TCP connection with no close frame (an abrupt end).
    pub fn abort(self) {
        drop(self);
    }

    /// Resolves when the server shuts down.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}
