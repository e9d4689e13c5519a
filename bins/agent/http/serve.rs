//! Serving a router on one listener: the accept loop with its connection
//! caps, the per-connection idle and header timeouts, and what happens when
//! the process runs out of file descriptors. HTTP/1.1 only (hyper's
//! `http1` server with upgrades, for the media WebSockets): nothing here
//! needs HTTP/2, and protocol detection would read the first bytes of every
//! connection without a deadline.
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
//!
//! Caps: a connection beyond `max_connections_per_ip` for its address, or
//! beyond the listener's cap, first takes the place of the longest idle
//! connection (of that address, or of the listener); when none is idle it
//! is refused (429, or 503, written without waiting, then closed). While
//! [`EVICTING_MAX`] connections are still closing, the loop stops
//! accepting until one has closed (for at most [`EVICTING_WAIT`]), so a
//! newcomer waits in the listen backlog for the room a flood's evictions
//! make instead of being refused. The
//! listener's cap is `max_connections`, kept under its share of half the
//! process's open-file limit, read at every accept.
//!
//! When `accept` fails for want of file descriptors (EMFILE/ENFILE) the
//! loop logs "out of file descriptors" (at most every 10 s), closes the
//! longest idle connection and backs off (10 ms doubling to 1 s).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{debug, error, info, warn};

use super::Limits;

/// How often "out of file descriptors" is logged at most.
const FD_WARN_EVERY: Duration = Duration::from_secs(10);
/// First and longest pause after a failed accept.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where a connection is in its request cycle (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle { since: Instant },
    Head { since: Instant },
    Busy,
    Upgraded,
}

/// One connection as the listener's table and its task share it.
#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    phase: Mutex<Phase>,
    changed: Notify,
    evict: CancellationToken,
}

impl Conn {
    fn new(ip: IpAddr, now: Instant) -> Conn {
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

    fn phase(&self) -> Phase {
        *self.lock()
    }

    /// Moves to `to` when the current phase satisfies `from`.
    fn shift(&self, from: impl FnOnce(Phase) -> bool, to: Phase) {
        let mut p = self.lock();
        if from(*p) {
            *p = to;
            drop(p);
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn bytes_read(&self) {
        self.shift(
            |p| matches!(p, Phase::Idle { .. }),
            Phase::Head {
                since: Instant::now(),
            },
        );
    }

    /// The head is parsed and the router has the request.
    fn request_started(&self) {
        self.shift(|p| p != Phase::Upgraded, Phase::Busy);
    }

    /// The response (head and body) is out.
    fn request_done(&self) {
        self.shift(
            |p| p == Phase::Busy,
            Phase::Idle {
                since: Instant::now(),
            },
        );
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match self.phase() {
            Phase::Idle { since } => Some(since + limits.idle_timeout),
            Phase::Head { since } => Some(since + limits.header_read_timeout),
            Phase::Busy | Phase::Upgraded => None,
        }
    }
}

/// Connections told to close to make room but not closed yet that a
/// listener keeps beyond its cap at most: its sockets stay bounded while
/// the evicted tasks wind down.
const EVICTING_MAX: usize = 16;

/// How long the accept loop waits, with [`EVICTING_MAX`] connections still
/// closing, for one of them to close before it accepts anyway.
const EVICTING_WAIT: Duration = Duration::from_secs(1);

/// The listener's open connections, by id and by client address. A
/// connection stays until its socket is closed (its [`Slot`] dropped);
/// one told to make room counts in `evicting`, not in `per_ip`.
#[derive(Debug, Default)]
struct Table {
    conns: HashMap<u64, Arc<Conn>>,
    per_ip: HashMap<IpAddr, usize>,
    evicting: usize,
    next: u64,
    /// Woken whenever a connection leaves the table.
    closed: Arc<Notify>,
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its address is at `max_connections_per_ip` and none of its
    /// connections is idle.
    PerIp,
    /// The listener is at its cap and no connection is idle.
    Full,
}

impl Table {
    /// Connections open and not told to close.
    fn live(&self) -> usize {
        self.conns.len() - self.evicting
    }

    fn uncount_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            if c.evict.is_cancelled() {
                self.evicting -= 1;
            } else {
                self.uncount_ip(c.ip);
            }
        }
    }

    /// Tells the connection idle the longest (of `ip` when given) to
    /// close; whether there was one. It stops counting against the caps
    /// at once and leaves the table when its socket is closed.
    fn evict_idle(&mut self, ip: Option<IpAddr>) -> bool {
        if self.evicting >= EVICTING_MAX {
            return false;
        }
        let victim = self
            .conns
            .values()
            .filter(|c| !c.evict.is_cancelled() && ip.is_none_or(|ip| c.ip == ip))
            .filter_map(|c| match c.phase() {
                Phase::Idle { since } => Some((since, Arc::clone(c))),
                _ => None,
            })
            .min_by_key(|(since, _)| *since);
        let Some((_, c)) = victim else {
            return false;
        };
        c.evict.cancel();
        self.evicting += 1;
        self.uncount_ip(c.ip);
        true
    }

    fn admit(
        &mut self,
        ip: IpAddr,
        cap: usize,
        per_ip: usize,
        now: Instant,
    ) -> Result<(u64, Arc<Conn>), Refusal> {
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= per_ip && !self.evict_idle(Some(ip)) {
            return Err(Refusal::PerIp);
        }
        if self.live() >= cap && !self.evict_idle(None) {
            return Err(Refusal::Full);
        }
        let id = self.next;
        self.next += 1;
        let conn = Arc::new(Conn::new(ip, now));
        self.conns.insert(id, Arc::clone(&conn));
        *self.per_ip.entry(ip).or_default() += 1;
        Ok((id, conn))
    }
}

/// A connection's place in the table; freed when dropped (with the socket,
/// which it travels with, also into a WebSocket).
#[derive(Debug)]
struct Slot {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        t.remove(self.id);
        t.closed.notify_waiters();
    }
}

/// The socket, telling its connection when bytes arrive.
#[derive(Debug)]
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    _slot: Slot,
}

impl AsyncRead for Tracked {
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

impl AsyncWrite for Tracked {
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

/// Whether an accept error means the process (EMFILE) or the system
/// (ENFILE) has no file descriptor left.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The open-file limit (soft), if it can be read.
fn nofile_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// `configured`, kept under this listener's share (one of `listeners`) of
/// half the open-file limit `nofile`.
pub fn connection_cap(configured: usize, listeners: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return configured;
    };
    let share = nofile / 2 / u64::try_from(listeners.max(1)).unwrap_or(1);
    let share = usize::try_from(share).unwrap_or(usize::MAX).max(1);
    configured.min(share)
}

/// Returns once fewer than [`EVICTING_MAX`] connections are closing, after
/// [`EVICTING_WAIT`], or on shutdown.
async fn wait_for_evictions(table: &Mutex<Table>, shutdown: &CancellationToken) {
    let closed = Arc::clone(&table.lock().unwrap_or_else(PoisonError::into_inner).closed);
    let deadline = Instant::now() + EVICTING_WAIT;
    loop {
        // Registered before the check, so a close between the two is not
        // missed (`notify_waiters` wakes futures created before it).
        let notified = closed.notified();
        if table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .evicting
            < EVICTING_MAX
        {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(deadline) => return,
            () = notified => {}
        }
    }
}

/// Writes a one-line refusal without waiting, then drops the socket.
fn refuse(stream: TcpStream, why: Refusal) {
    let (status, message) = match why {
        Refusal::PerIp => (
            "429 Too Many Requests",
            "too many connections from this address",
        ),
        Refusal::Full => ("503 Service Unavailable", "too many connections"),
    };
    let body = format!("{{\"error\":\"{message}\"}}");
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then stops
/// accepting, lets every open connection finish its request (idle ones
/// close at once) and returns when they are gone. `listeners` is how many
/// listeners share the process's descriptors.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    listeners: usize,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    let cap = connection_cap(limits.max_connections, listeners, nofile_limit());
    if cap < limits.max_connections {
        warn!(
            listener = ?local,
            configured = limits.max_connections,
            cap,
            "http.max_connections lowered to this listener's share of the open-file limit"
        );
    }
    info!(listener = ?local, max_connections = cap, per_ip = limits.max_connections_per_ip, "HTTP listener up");
    let table = Arc::new(Mutex::new(Table::default()));
    let tracker = TaskTracker::new();
    let mut backoff = Duration::ZERO;
    let mut fd_warned: Option<Instant> = None;
    loop {
        wait_for_evictions(&table, &shutdown).await;
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                let cap = connection_cap(limits.max_connections, listeners, nofile_limit());
                let admitted = table.lock().unwrap_or_else(PoisonError::into_inner).admit(
                    peer.ip(),
                    cap,
                    limits.max_connections_per_ip,
                    Instant::now(),
                );
                match admitted {
                    Ok((id, conn)) => {
                        let slot = Slot {
                            table: Arc::clone(&table),
                            id,
                        };
                        tracker.spawn(connection(
                            stream,
                            peer,
                            conn,
                            slot,
                            router.clone(),
                            limits.clone(),
                            shutdown.clone(),
                        ));
                    }
                    Err(why) => {
                        debug!(?why, "HTTP connection refused");
                        refuse(stream, why);
                    }
                }
            }
            Err(e) => {
                if out_of_fds(&e) {
                    if fd_warned.is_none_or(|t| t.elapsed() >= FD_WARN_EVERY) {
                        error!(
                            listener = ?local,
                            error = %e,
                            "out of file descriptors: the HTTP listener cannot accept connections (raise the open-file limit, LimitNOFILE, or lower http.max_connections)"
                        );
                        fd_warned = Some(Instant::now());
                    }
                    table
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .evict_idle(None);
                } else {
                    debug!(error = %e, "HTTP accept failed");
                }
                backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// One connection: hyper's HTTP/1.1 server over the tracked socket, raced
/// against the phase deadlines, eviction and shutdown.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    slot: Slot,
    router: Router,
    limits: super::Limits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: Arc::clone(&conn),
        _slot: slot,
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
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[tokio::test(start_paused = true)]
    async fn a_full_table_makes_room_by_closing_the_longest_idle_connection() {
        let mut t = Table::default();
        let (first, c1) = t.admit(A, 2, 10, Instant::now()).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, c2) = t.admit(A, 2, 10, Instant::now()).unwrap();
        let (_, c3) = t.admit(B, 2, 10, Instant::now()).unwrap();
        assert!(c1.evict.is_cancelled(), "the oldest idle one goes");
        assert!(!c2.evict.is_cancelled() && !c3.evict.is_cancelled());
        assert_eq!((t.live(), t.per_ip[&A]), (2, 1));
        // Its socket counts until it is closed.
        assert_eq!(t.conns.len(), 3);
        t.remove(first);
        assert_eq!((t.conns.len(), t.evicting), (2, 0));
        // Nobody idle: refused.
        c2.request_started();
        c3.bytes_read();
        c3.request_started();
        assert_eq!(
            t.admit(B, 2, 10, Instant::now()).unwrap_err(),
            Refusal::Full
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connections_told_to_close_but_not_closed_yet_are_bounded() {
        let mut t = Table::default();
        for _ in 0..EVICTING_MAX + 5 {
            let _ = t.admit(A, 1, 100, Instant::now());
        }
        assert_eq!(t.evicting, EVICTING_MAX);
        assert_eq!(
            t.conns.len(),
            EVICTING_MAX + 1,
            "then refused, not admitted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_is_capped_and_only_evicts_its_own() {
        let mut t = Table::default();
        let (_, other) = t.admit(B, 100, 2, Instant::now()).unwrap();
        let (_, a1) = t.admit(A, 100, 2, Instant::now()).unwrap();
        let (_, a2) = t.admit(A, 100, 2, Instant::now()).unwrap();
        a1.bytes_read();
        a2.bytes_read();
        assert_eq!(
            t.admit(A, 100, 2, Instant::now()).unwrap_err(),
            Refusal::PerIp
        );
        assert!(!other.evict.is_cancelled(), "B's idle connection stays");
        assert_eq!(t.per_ip[&A], 2);
    }

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

    #[test]
    fn the_cap_stays_under_half_the_open_file_limit() {
        assert_eq!(connection_cap(1024, 1, Some(256)), 128);
        assert_eq!(connection_cap(1024, 2, Some(256)), 64);
        assert_eq!(connection_cap(100, 1, Some(65_536)), 100);
        assert_eq!(connection_cap(100, 1, None), 100);
        assert_eq!(connection_cap(100, 3, Some(1)), 1);
    }
}
