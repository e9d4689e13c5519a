//! Serving one accepted connection: hyper's HTTP/1.1 server over the
//! socket, raced against the deadline of the connection's phase, its
//! eviction and shutdown. The accept loop (`super`) shares each
//! connection's [`Conn`] with its table of connections.
//!
//! Each connection is in one phase, moved by the bytes it reads and by the
//! router answering:
//!
//! ```text
//!            first byte read              request head parsed
//!   Idle{t} ----------------> Head{t} -----------------------> Busy
//!     ^                                                          |
//!     +------------- response sent (its body done or dropped) ---+
//!   Busy --101 Switching Protocols--> Upgraded (a WebSocket)
//! ```
//!
//! | phase | closed when |
//! |---|---|
//! | `Idle { since }` | `since + idle_timeout` passes, or a new client needs its place |
//! | `Head { since }` | `since + header_read_timeout` passes (a header trickle) |
//! | `Busy` | never here: the router's body read timeout and request timeout bound it |
//! | `Upgraded` | never here: the WebSocket's own timeouts bound it; it still counts against the caps until it closes |

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::debug;

use crate::http::limits::Limits;

/// Where a connection is in its request cycle (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Idle { since: Instant },
    Head { since: Instant },
    Busy,
    Upgraded,
}

/// One connection as the listener's table and its task share it.
#[derive(Debug)]
pub(super) struct Conn {
    /// The client's address.
    pub(super) ip: IpAddr,
    phase: Mutex<Phase>,
    changed: Notify,
    /// Cancelled when the connection must close to make room.
    pub(super) evict: CancellationToken,
}

impl Conn {
    pub(super) fn new(ip: IpAddr, now: Instant) -> Conn {
        Conn {
            ip,
            phase: Mutex::new(Phase::Idle { since: now }),
            changed: Notify::new(),
            evict: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn phase(&self) -> Phase {
        *self.lock()
    }

    /// Moves to `to` when the current phase satisfies `from`.
    pub(super) fn shift(&self, from: impl FnOnce(Phase) -> bool, to: Phase) {
        let mut p = self.lock();
        if from(*p) {
            *p = to;
            drop(p);
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection starts a request head.
    pub(super) fn bytes_read(&self) {
        self.shift(
            |p| matches!(p, Phase::Idle { .. }),
            Phase::Head {
                since: Instant::now(),
            },
        );
    }

    /// The head is parsed and the router has the request.
    pub(super) fn request_started(&self) {
        self.shift(|p| p != Phase::Upgraded, Phase::Busy);
    }

    /// The response (head and body) is out.
    pub(super) fn request_done(&self) {
        self.shift(
            |p| p == Phase::Busy,
            Phase::Idle {
                since: Instant::now(),
            },
        );
    }

    /// When the current phase runs out, if it can.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match self.phase() {
            Phase::Idle { since } => Some(since + limits.idle_timeout),
            Phase::Head { since } => Some(since + limits.header_read_timeout),
            Phase::Busy | Phase::Upgraded => None,
        }
    }
}

/// The socket, telling its connection when bytes arrive; with it travels
/// `guard` (the connection's place in the accept loop's table), dropped
/// when the socket is closed, also from inside a WebSocket.
#[derive(Debug)]
struct Tracked<G> {
    inner: TcpStream,
    conn: Arc<Conn>,
    _guard: G,
}

impl<G: Unpin> AsyncRead for Tracked<G> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.bytes_read();
        }
        r
    }
}

impl<G: Unpin> AsyncWrite for Tracked<G> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that marks its connection idle once it is sent (hyper
/// drops it then) or abandoned.
struct DoneOnDrop {
    inner: Body,
    conn: Arc<Conn>,
}

impl http_body::Body for DoneOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.conn.request_done();
    }
}

/// One connection: hyper's HTTP/1.1 server over the tracked socket, raced
/// against the phase deadlines, eviction and shutdown. `guard` is dropped
/// with the socket.
pub(super) async fn connection<G: Unpin + Send + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    guard: G,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: Arc::clone(&conn),
        _guard: guard,
    });
    let svc_conn = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        svc_conn.request_started();
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let conn = Arc::clone(&svc_conn);
        async move {
            let res: Response<Body> = match router.oneshot(req.map(Body::new)).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            if res.status() == StatusCode::SWITCHING_PROTOCOLS {
                conn.shift(|_| true, Phase::Upgraded);
            }
            Ok::<_, Infallible>(res.map(|inner| DoneOnDrop { inner, conn }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own head timeout runs from the moment it waits for a
    // request: a backstop behind the phase deadlines below.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout + limits.header_read_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let mut draining = false;
    loop {
        // Shutting down: a connection between requests (or mid-head)
        // closes now; one with a request in progress finishes it.
        if draining && matches!(conn.phase(), Phase::Idle { .. } | Phase::Head { .. }) {
            return;
        }
        let deadline = conn.deadline(&limits);
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = conn.evict.cancelled() => {
                debug!(%peer, "idle HTTP connection closed to make room");
                return;
            }
            () = conn.changed.notified() => {}
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    debug!(%peer, phase = ?conn.phase(), "HTTP connection timed out");
                    return;
                }
            }
            () = shutdown.cancelled(), if !draining => {
                served.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn phases_set_the_deadlines() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(7),
            ..Limits::default()
        };
        let t0 = Instant::now();
        let c = Conn::new(A, t0);
        assert_eq!(c.deadline(&limits), Some(t0 + Duration::from_secs(7)));
        tokio::time::advance(Duration::from_secs(2)).await;
        c.bytes_read();
        assert_eq!(c.deadline(&limits), Some(t0 + Duration::from_secs(5)));
        c.request_started();
        assert_eq!(c.deadline(&limits), None, "a request in progress");
        tokio::time::advance(Duration::from_secs(30)).await;
        c.request_done();
        assert_eq!(
            c.deadline(&limits),
            Some(t0 + Duration::from_secs(39)),
            "idle again from the response"
        );
        c.shift(|_| true, Phase::Upgraded);
        c.request_done();
        assert_eq!(c.deadline(&limits), None, "a WebSocket is not idle");
    }
}
