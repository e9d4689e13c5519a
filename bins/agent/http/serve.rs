//! Serving a router on one listener: the accept loop with its connection
//! caps, the per-connection idle and header timeouts, and what happens when
//! the process runs out of file descriptors. HTTP/1.1 only (hyper's
//! `http1` server with upgrades, for the media WebSockets): nothing here
//! needs HTTP/2, and protocol detection would read the first bytes of every
//! connection without a deadline.
//!
//! Each connection is served by [`connection`] (its phases, Idle, Head,
//! Busy and Upgraded, set its deadlines); this module keeps the
//! listener's table of connections, the caps and the accept loop.
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

mod connection;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::limits::Limits;
use connection::{Conn, Phase, connection};

/// How often "out of file descriptors" is logged at most.
const FD_WARN_EVERY: Duration = Duration::from_secs(10);
/// First and longest pause after a failed accept.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

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
/// which it travels with, also into a WebSocket: [`connection`]'s guard).
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
    info!(
        listener = local.map(tracing::field::display),
        max_connections = cap,
        per_ip = limits.max_connections_per_ip,
        "HTTP listener up"
    );
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

    #[test]
    fn the_cap_stays_under_half_the_open_file_limit() {
        assert_eq!(connection_cap(1024, 1, Some(256)), 128);
        assert_eq!(connection_cap(1024, 2, Some(256)), 64);
        assert_eq!(connection_cap(100, 1, Some(65_536)), 100);
        assert_eq!(connection_cap(100, 1, None), 100);
        assert_eq!(connection_cap(100, 3, Some(1)), 1);
    }
}
