//! SIP over TCP and TLS for the driver (RFC 3261 section 18): the
//! listeners, the connection table and one task per connection.
//!
//! A connection task reads its stream, frames it with
//! [`StreamFramer`] (the datagram limits apply), answers CRLF keep-alive
//! pings itself (RFC 5626 section 4.4.1) and hands each whole message to
//! the run loop through one bounded channel, tagged with its [`Peer`]
//! (transport and remote address); it writes what the run loop queues for
//! it. The run loop owns the table, keyed by [`Peer`], so a response goes
//! back over the connection its request came on (section 18.2.2), and a
//! request to a peer reuses the connection to it, or dials one.
//!
//! What bounds a slow or hostile peer: at most
//! [`StreamConfig::max_connections`] connections, and
//! [`StreamConfig::max_per_ip`] per remote IP (more are accepted and closed
//! at once); a framing error (endless line or header section, missing or
//! huge Content-Length) closes that connection only; a message must be
//! complete within [`StreamConfig::message_timeout`] of its first byte
//! (slowloris), a connection idle for [`StreamConfig::idle_timeout`] is
//! closed, a TLS handshake must finish within
//! [`StreamConfig::handshake_timeout`]; each connection holds at most
//! [`StreamConfig::write_queue`] messages to send, and a peer that does
//! not read them is disconnected rather than buffered for.

use super::tls::{CertFiles, TlsClient, TlsSetupError};
use crate::parse::Limits;
use crate::stream::{Frame, PONG, StreamFramer};
use crate::transport::{Peer, Transport};
use bytes::Bytes;
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Settings of the TCP and TLS transports.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Where the TCP listener binds; `None`: no TCP listener (outbound
    /// TCP still works).
    pub tcp_bind: Option<SocketAddr>,
    /// Where the TLS listener binds, with its certificate; `None`: no TLS
    /// listener.
    pub tls_bind: Option<(SocketAddr, CertFiles)>,
    /// The client side of outbound TLS.
    pub tls_client: TlsClient,
    /// The name to verify for outbound TLS to an address (the trunk's
    /// domain); an address not listed is verified as an IP address.
    pub tls_names: HashMap<SocketAddr, String>,
    /// Most connections, inbound and outbound together.
    pub max_connections: usize,
    /// Most connections from or to one IP address.
    pub max_per_ip: usize,
    /// A connection with no traffic this long is closed.
    pub idle_timeout: Duration,
    /// A message must be complete this long after its first byte.
    pub message_timeout: Duration,
    /// A TCP connect or TLS handshake must finish this soon.
    pub handshake_timeout: Duration,
    /// Most messages queued for one connection's writer.
    pub write_queue: usize,
    /// On connections we dialed (to trunks and callees), a double-CRLF
    /// keep-alive ping this often (RFC 5626 section 4.4.1); `None`: none.
    pub keepalive: Option<Duration>,
    /// A ping not answered within this long (by a pong or anything else)
    /// closes the connection (RFC 5626 section 4.4.1: 10 s).
    pub keepalive_timeout: Duration,
}

impl Default for StreamConfig {
    /// No listeners; 1,024 connections, 16 per IP, 10 min idle, 30 s per
    /// message, 10 s handshake, 64 queued messages, a keep-alive ping
    /// every 100 s (`KEEPALIVE`) on dialed connections, answered within 10 s.
    fn default() -> StreamConfig {
        StreamConfig {
            tcp_bind: None,
            tls_bind: None,
            tls_client: TlsClient::default(),
            tls_names: HashMap::new(),
            max_connections: 1024,
            max_per_ip: 16,
            idle_timeout: Duration::from_secs(600),
            message_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            write_queue: 64,
            keepalive: Some(KEEPALIVE),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// The keep-alive period of dialed connections: inside RFC 5626 section
/// 4.4.1's 95 to 120 s for connection-oriented transports.
pub const KEEPALIVE: Duration = Duration::from_secs(100);

/// What a connection task tells the run loop.
#[derive(Debug)]
pub(super) enum Input {
    /// One whole message.
    Message(Peer, Bytes),
    /// The connection `id` to `peer` is gone.
    Closed(Peer, u64),
    /// The connection to `peer` could not be made (`id`: the task that
    /// tried, `None` when none was started).
    Unreachable(Peer, Option<u64>),
}

/// Counters of the stream transports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections accepted and closed at once (a limit was reached, or
    /// the source is outside the allowlist).
    pub refused: u64,
    /// Connections we dialed.
    pub dialed: u64,
    /// Connections closed because their writer fell behind.
    pub slow: u64,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    task: tokio::task::AbortHandle,
}

/// The listeners and the connection table.
pub(super) struct Streams {
    cfg: StreamConfig,
    limits: Limits,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor, CertFiles)>,
    connector: Option<tokio_rustls::TlsConnector>,
    conns: HashMap<Peer, Conn>,
    next_id: u64,
    input_tx: mpsc::Sender<Input>,
    /// TLS server names added by [`Streams::learn_tls_name`].
    learnt_names: usize,
    pub(super) stats: StreamStats,
}

/// TLS server names learnt from located targets, at most.
pub(super) const MAX_LEARNT_NAMES: usize = 1024;

impl Streams {
    /// Bind the listeners and load the certificates. The receiver gets what
    /// the connections read.
    pub(super) async fn bind(
        cfg: StreamConfig,
        limits: Limits,
    ) -> std::io::Result<(Streams, mpsc::Receiver<Input>)> {
        let tcp = match cfg.tcp_bind {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let tls = match &cfg.tls_bind {
            Some((a, files)) => {
                let server = super::tls::server_config(files).map_err(invalid)?;
                let acceptor = tokio_rustls::TlsAcceptor::from(server);
                Some((TcpListener::bind(a).await?, acceptor, files.clone()))
            }
            None => None,
        };
        // The client configuration is made when first needed: a host
        // without a trust store can still serve UDP and TCP.
        let (input_tx, input) = mpsc::channel(256);
        let streams = Streams {
            cfg,
            limits,
            tcp,
            tls,
            connector: None,
            conns: HashMap::new(),
            next_id: 1,
            input_tx,
            learnt_names: 0,
            stats: StreamStats::default(),
        };
        Ok((streams, input))
    }

    pub(super) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub(super) fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, ..)| l.local_addr().ok())
    }

    /// Read the listener's certificate files again.
    pub(super) fn reload_tls(&mut self) -> Result<(), TlsSetupError> {
        if let Some((_, acceptor, files)) = &mut self.tls {
            *acceptor = tokio_rustls::TlsAcceptor::from(super::tls::server_config(files)?);
            tracing::info!("SIP TLS certificate reloaded");
        }
        Ok(())
    }

    /// The next inbound connection, TCP or TLS (pending forever without
    /// listeners).
    pub(super) async fn accept(&self) -> (Transport, std::io::Result<(TcpStream, SocketAddr)>) {
        let tcp = async {
            match &self.tcp {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        let tls = async {
            match &self.tls {
                Some((l, ..)) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tcp => (Transport::Tcp, r),
            r = tls => (Transport::Tls, r),
        }
    }

    fn count_ip(&self, ip: IpAddr) -> usize {
        self.conns.keys().filter(|p| p.addr.ip() == ip).count()
    }

    fn has_room(&self, ip: IpAddr) -> bool {
        self.conns.len() < self.cfg.max_connections && self.count_ip(ip) < self.cfg.max_per_ip
    }

    /// Serve an accepted connection, or close it when its source is not
    /// `allowed` or a limit is reached.
    pub(super) fn accepted(
        &mut self,
        transport: Transport,
        stream: TcpStream,
        from: SocketAddr,
        allowed: bool,
    ) {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        if !allowed {
            self.stats.refused += 1;
            tracing::debug!(%from, %transport, "SIP connection from outside the allowlist closed");
            return;
        }
        if !self.has_room(from.ip()) {
            self.stats.refused += 1;
            tracing::warn!(%from, %transport, "SIP connection refused: connection limit");
            return;
        }
        self.stats.accepted += 1;
        let _ = stream.set_nodelay(true);
        let peer = Peer::new(transport, from);
        let acceptor = match (&self.tls, transport) {
            (Some((_, a, _)), Transport::Tls) => Some(a.clone()),
            _ => None,
        };
        let handshake = self.cfg.handshake_timeout;
        self.spawn(peer, move |serve| async move {
            match acceptor {
                None => serve.run(stream).await,
                Some(a) => match tokio::time::timeout(handshake, a.accept(stream)).await {
                    Ok(Ok(tls)) => serve.run(tls).await,
                    _ => {
                        tracing::debug!(%peer, "TLS handshake failed");
                        serve.closed().await;
                    }
                },
            }
        });
    }

    /// Queue a message for `peer`, dialing a connection when there is none.
    pub(super) fn send(&mut self, peer: Peer, data: Bytes) {
        if !self.conns.contains_key(&peer) && !self.dial(peer) {
            return;
        }
        let Some(conn) = self.conns.get(&peer) else {
            return;
        };
        match conn.tx.try_send(data) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The peer does not read: drop it rather than buffer.
                tracing::warn!(%peer, "SIP connection's write queue full; closing it");
                self.stats.slow += 1;
                self.close(peer);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.close(peer),
        }
    }

    /// Verify outbound TLS to `addr` against `name` from now on (a
    /// target an RFC 3263 location found for the domain `name`). The
    /// names configured at start stay; at most [`MAX_LEARNT_NAMES`] are
    /// added.
    pub(super) fn learn_tls_name(&mut self, addr: SocketAddr, name: &str) {
        if self.cfg.tls_names.contains_key(&addr) {
            return;
        }
        if self.learnt_names >= MAX_LEARNT_NAMES {
            tracing::warn!(%addr, "too many TLS server names learnt; verified as its IP address");
            return;
        }
        self.learnt_names += 1;
        self.cfg.tls_names.insert(addr, name.to_owned());
    }

    fn dial(&mut self, peer: Peer) -> bool {
        let ok = self.try_dial(peer);
        if !ok && peer.transport != Transport::Udp {
            // The core hears of it like of a failed connect (a full input
            // channel only delays the call's failure to its Timer B).
            let _ = self.input_tx.try_send(Input::Unreachable(peer, None));
        }
        ok
    }

    fn try_dial(&mut self, peer: Peer) -> bool {
        if !self.has_room(peer.addr.ip()) {
            tracing::warn!(%peer, "no SIP connection opened: connection limit");
            return false;
        }
        let tls = match peer.transport {
            Transport::Udp => return false,
            Transport::Tcp => None,
            Transport::Tls => {
                let Some(connector) = self.connector() else {
                    return false;
                };
                let name = match self.cfg.tls_names.get(&peer.addr) {
                    Some(n) => ServerName::try_from(n.clone()).ok(),
                    None => Some(ServerName::from(peer.addr.ip())),
                };
                let Some(name) = name else {
                    tracing::warn!(%peer, "invalid TLS server name configured");
                    return false;
                };
                Some((connector, name))
            }
        };
        self.stats.dialed += 1;
        let timeout = self.cfg.handshake_timeout;
        let keepalive = self
            .cfg
            .keepalive
            .map(|every| (every, self.cfg.keepalive_timeout));
        self.spawn(peer, move |mut serve| async move {
            serve.keepalive = keepalive;
            let connect = async {
                let tcp = TcpStream::connect(peer.addr).await.ok()?;
                let _ = tcp.set_nodelay(true);
                match tls {
                    None => Some(Stream::Tcp(tcp)),
                    Some((c, name)) => match c.connect(name, tcp).await {
                        Ok(s) => Some(Stream::Tls(Box::new(s))),
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "SIP TLS handshake failed");
                            None
                        }
                    },
                }
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(Some(Stream::Tcp(s))) => serve.run(s).await,
                Ok(Some(Stream::Tls(s))) => serve.run(*s).await,
                _ => {
                    tracing::warn!(%peer, "cannot connect to the SIP peer");
                    serve.unreachable().await;
                }
            }
        });
        true
    }

    fn connector(&mut self) -> Option<tokio_rustls::TlsConnector> {
        if self.connector.is_none() {
            match super::tls::client_config(&self.cfg.tls_client) {
                Ok(c) => self.connector = Some(tokio_rustls::TlsConnector::from(c)),
                Err(e) => tracing::warn!(error = %e, "no outbound SIP TLS"),
            }
        }
        self.connector.clone()
    }

    fn spawn<F, Fut>(&mut self, peer: Peer, task: F)
    where
        F: FnOnce(Serve) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = mpsc::channel(self.cfg.write_queue.max(1));
        let serve = Serve {
            peer,
            id,
            rx,
            out: self.input_tx.clone(),
            limits: self.limits,
            idle: self.cfg.idle_timeout,
            message: self.cfg.message_timeout,
            keepalive: None,
        };
        let task = tokio::spawn(task(serve)).abort_handle();
        if let Some(old) = self.conns.insert(peer, Conn { id, tx, task }) {
            old.task.abort();
        }
    }

    /// A connection task ended (or was replaced).
    pub(super) fn closed(&mut self, peer: Peer, id: u64) {
        if self.conns.get(&peer).is_some_and(|c| c.id == id) {
            self.conns.remove(&peer);
        }
    }

    fn close(&mut self, peer: Peer) {
        if let Some(c) = self.conns.remove(&peer) {
            c.task.abort();
        }
    }

    /// Open connections.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Close every connection.
    pub(super) fn shutdown(&mut self) {
        for (_, c) in self.conns.drain() {
            c.task.abort();
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

fn invalid(e: TlsSetupError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
}

/// One connection's task: what it needs besides the stream.
struct Serve {
    peer: Peer,
    id: u64,
    rx: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Input>,
    limits: Limits,
    idle: Duration,
    message: Duration,
    /// Dialed connections: (ping period, pong timeout).
    keepalive: Option<(Duration, Duration)>,
}

impl Serve {
    async fn closed(self) {
        let _ = self.out.send(Input::Closed(self.peer, self.id)).await;
    }

    async fn unreachable(self) {
        let _ = self
            .out
            .send(Input::Unreachable(self.peer, Some(self.id)))
            .await;
    }

    /// Read, frame and hand over; write what is queued; until the peer
    /// closes, misbehaves or idles, or the run loop drops the queue.
    async fn run<S: AsyncRead + AsyncWrite + Send + Unpin>(mut self, stream: S) {
        let peer = self.peer;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut framer = StreamFramer::new(self.limits);
        let mut buf = vec![0u8; 16 * 1024];
        let mut idle_at = Instant::now() + self.idle;
        // Set while a message is incomplete: when it must be complete.
        let mut message_by: Option<Instant> = None;
        // RFC 5626 section 4.4.1 on connections we dialed: the next ping,
        // and while one is unanswered, when the connection is given up.
        let mut ping_at = self.keepalive.map(|(every, _)| Instant::now() + every);
        let mut pong_by: Option<Instant> = None;
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    // Anything from the peer answers a ping; only SIP
                    // (not a pong or a ping alone) keeps it from idling.
                    pong_by = None;
                    if buf[..n].iter().any(|b| !matches!(b, b'\r' | b'\n')) {
                        idle_at = Instant::now() + self.idle;
                    }
                    if let Err(e) = framer.push(&buf[..n]) {
                        tracing::warn!(%peer, error = %e, "closing SIP connection");
                        break;
                    }
                    if !self.drain(&mut framer, &mut wr).await {
                        break;
                    }
                    message_by = match framer.buffered() {
                        0 => None,
                        _ => message_by.or(Some(Instant::now() + self.message)),
                    };
                }
                m = self.rx.recv() => match m {
                    Some(data) => {
                        if wr.write_all(&data).await.is_err() {
                            break;
                        }
                        idle_at = Instant::now() + self.idle;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(idle_at) => {
                    tracing::debug!(%peer, "closing idle SIP connection");
                    break;
                }
                _ = sleep_until(message_by) => {
                    tracing::warn!(%peer, "SIP message not completed in time; closing the connection");
                    break;
                }
                _ = sleep_until(ping_at), if pong_by.is_none() => {
                    if wr.write_all(crate::stream::PING).await.is_err() {
                        break;
                    }
                    let (every, timeout) = self.keepalive.unwrap_or_default();
                    pong_by = Some(Instant::now() + timeout);
                    ping_at = Some(Instant::now() + every);
                }
                _ = sleep_until(pong_by) => {
                    tracing::warn!(%peer, "SIP keep-alive ping unanswered; closing the connection");
                    break;
                }
            }
        }
        let _ = wr.shutdown().await;
        self.closed().await;
    }

    /// Hand over every whole frame; false when the connection must close.
    async fn drain<W: AsyncWrite + Unpin>(
        &mut self,
        framer: &mut StreamFramer,
        wr: &mut W,
    ) -> bool {
        loop {
            match framer.poll() {
                Ok(None) => return true,
                Ok(Some(Frame::Ping)) => {
                    if wr.write_all(PONG).await.is_err() {
                        return false;
                    }
                }
                Ok(Some(Frame::Message(m))) => {
                    // Waiting here is the backpressure: while the run loop
                    // is behind, this connection is not read.
                    if self.out.send(Input::Message(self.peer, m)).await.is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "closing SIP connection");
                    return false;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
