//! The tokio driver: one UDP socket, the TCP and TLS listeners and
//! connections ([`StreamConfig`], module `streams`), the clock, and the run
//! loop around the sans-IO [`UserAgent`] (RFC 3261 section 18). It feeds
//! each datagram and each framed stream message (with its real source and
//! transport, for `received`/`rport`, RFC 3581, and for answering on the
//! same connection) and each command to the core, sends what the core
//! wants sent, hands events to the application through a bounded channel,
//! and sleeps until the core's next deadline or the next input. Nothing
//! else lives here.
//!
//! The driver never waits on the application. Events go out as the
//! channel has room; while it has none they stay queued in the core, and
//! the loop goes on answering commands, firing timers and reading the
//! socket. The application may therefore call a [`Handle`] (and await its
//! answer) from the very task that reads the events. The core's queue is
//! bounded by [`DriverConfig::event_backlog`]: at the bound the driver
//! stops reading the socket until the application catches up, so the
//! kernel's socket buffer and the peers' retransmissions (RFC 3261
//! section 17) absorb the rest, and nothing the core already accepted is
//! dropped.
//!
//! ```no_run
//! use callbridge_sip::driver::{Driver, DriverConfig};
//! use callbridge_sip::random::os_rng;
//! use callbridge_sip::ua::{Config, Event};
//! # async fn demo() -> std::io::Result<()> {
//! let cfg = DriverConfig::new("0.0.0.0:5060".parse().unwrap(), Config::new("192.0.2.10:5060".parse().unwrap()));
//! let (driver, handle, mut events) = Driver::bind(cfg, os_rng()).await?;
//! let run = tokio::spawn(driver.run(async { let _ = tokio::signal::ctrl_c().await; }));
//! while let Some(event) = events.recv().await {
//!     if let Event::IncomingCall(call) = event {
//!         let _ = handle.answer(call.call, bytes::Bytes::from_static(b"v=0\r\n")).await;
//!     }
//! }
//! let _stats = run.await;
//! # Ok(()) }
//! ```

use crate::ids::CallId;
use crate::random::CryptoRng;
use crate::status::StatusCode;
use crate::transport::{Peer, Transport};
use crate::ua::{
    CallRef, Config, Event, Originate, Register, RegistrationId, Stats, UaError, UserAgent,
};
use crate::uri::Uri;
use bytes::Bytes;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod streams;
pub mod tls;

use streams::{Input, Streams};
pub use streams::{StreamConfig, StreamStats};
use tls::TlsSetupError;

/// Settings of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Where the socket binds (`0.0.0.0:5060`, `[::]:5060`, port 0 for any).
    pub bind: SocketAddr,
    /// The core's settings. A `contact_addr` with port 0 or an unspecified
    /// IP takes the bound socket's.
    pub ua: Config,
    /// Capacity of the event channel to the application.
    pub event_capacity: usize,
    /// Most events kept in the core while the channel is full; at this
    /// many the driver stops reading the socket (see the module docs).
    pub event_backlog: usize,
    /// Capacity of the command channel from [`Handle`]s.
    pub command_capacity: usize,
    /// After shutdown starts, how long calls may take to end.
    pub shutdown_grace: Duration,
    /// TCP and TLS: listeners, outbound TLS, connection limits.
    pub streams: StreamConfig,
}

impl DriverConfig {
    /// Defaults: 256 events (and 1,024 more kept in the core), 256
    /// commands, 30 s shutdown grace.
    pub fn new(bind: SocketAddr, ua: Config) -> DriverConfig {
        DriverConfig {
            bind,
            ua,
            event_capacity: 256,
            event_backlog: 1024,
            command_capacity: 256,
            shutdown_grace: Duration::from_secs(30),
            streams: StreamConfig::default(),
        }
    }
}

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The driver has stopped.
    #[error("SIP driver stopped")]
    Stopped,
    /// The core refused the command.
    #[error(transparent)]
    Ua(#[from] UaError),
}

type Reply<T> = oneshot::Sender<Result<T, UaError>>;

/// What a [`Handle`] asks of the driver.
#[derive(Debug)]
enum Command {
    Ring(CallRef, Reply<()>),
    Answer(CallRef, Bytes, Reply<()>),
    Reject(CallRef, StatusCode, Option<Duration>, Reply<()>),
    RejectWarning(
        CallRef,
        StatusCode,
        Option<Duration>,
        &'static str,
        Reply<()>,
    ),
    Hangup(CallRef, Reply<()>),
    Originate(Box<Originate>, Reply<CallRef>),
    OriginateWithCallId(Box<Originate>, Reply<(CallRef, CallId)>),
    OriginateLocated(Box<Located>, Reply<(CallRef, CallId)>),
    LearnTlsName(SocketAddr, String, Reply<()>),
    TransactionCount(Reply<usize>),
    Stats(Reply<Stats>),
    Register(Box<Register>, Reply<RegistrationId>),
    RegisterLocated(Box<RegisterLocated>, Reply<RegistrationId>),
    RegistrationLocated(RegistrationId, RegistrarTargets, Reply<()>),
    Unregister(RegistrationId, Reply<()>),
    Reinvite(CallRef, Bytes, Reply<()>),
    Refer(CallRef, Box<Uri>, Reply<()>),
    ReloadTls(oneshot::Sender<Result<(), TlsSetupError>>),
    StreamStats(oneshot::Sender<(usize, StreamStats)>),
    SetReady(bool),
    Shutdown,
}

/// A located call: what [`Handle::originate_located`] sends.
#[derive(Debug)]
struct Located {
    spec: Originate,
    route: Vec<crate::locate::Target>,
    tls_name: Option<String>,
}

/// A registration with a located registrar: what
/// [`Handle::register_located`] sends.
#[derive(Debug)]
struct RegisterLocated {
    spec: Register,
    targets: RegistrarTargets,
}

/// A location of a registrar: its targets, and the domain a TLS target's
/// certificate must carry.
#[derive(Debug)]
struct RegistrarTargets {
    targets: Vec<crate::locate::Target>,
    tls_name: Option<String>,
}

/// Sends commands to a running driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| DriverError::Stopped)?;
        Ok(rx.await.map_err(|_| DriverError::Stopped)??)
    }

    /// Send 180 Ringing.
    pub async fn ring(&self, call: CallRef) -> Result<(), DriverError> {
        self.ask(|r| Command::Ring(call, r)).await
    }

    /// Answer with 200 OK and this SDP (also answers a pending re-INVITE).
    pub async fn answer(&self, call: CallRef, sdp: Bytes) -> Result<(), DriverError> {
        self.ask(|r| Command::Answer(call, sdp, r)).await
    }

    /// Refuse an inbound call or a re-INVITE with a 3xx-6xx.
    pub async fn reject(&self, call: CallRef, status: StatusCode) -> Result<(), DriverError> {
        self.ask(|r| Command::Reject(call, status, None, r)).await
    }

    /// Refuse like [`Handle::reject`], with a `Retry-After` header of
    /// `retry_after` (seconds, rounded up): e.g. a 503 before the answer.
    pub async fn reject_retry_after(
        &self,
        call: CallRef,
        status: StatusCode,
        retry_after: Duration,
    ) -> Result<(), DriverError> {
        self.ask(|r| Command::Reject(call, status, Some(retry_after), r))
            .await
    }

    /// Refuse like [`Handle::reject_retry_after`] (no `Retry-After` when
    /// `None`), with a `Warning: 399 callbridge "<text>"` header saying why
    /// (e.g. `out of file descriptors`).
    pub async fn reject_warning(
        &self,
        call: CallRef,
        status: StatusCode,
        retry_after: Option<Duration>,
        text: &'static str,
    ) -> Result<(), DriverError> {
        self.ask(|r| Command::RejectWarning(call, status, retry_after, text, r))
            .await
    }

    /// Hang up (CANCEL, BYE or 603, whichever fits).
    pub async fn hangup(&self, call: CallRef) -> Result<(), DriverError> {
        self.ask(|r| Command::Hangup(call, r)).await
    }

    /// Place a call.
    pub async fn originate(&self, spec: Originate) -> Result<CallRef, DriverError> {
        self.ask(|r| Command::Originate(Box::new(spec), r)).await
    }

    /// Place a call, and learn the Call-ID its INVITE carries (to index
    /// the call by it before any response arrives).
    pub async fn originate_with_call_id(
        &self,
        spec: Originate,
    ) -> Result<(CallRef, CallId), DriverError> {
        self.ask(|r| Command::OriginateWithCallId(Box::new(spec), r))
            .await
    }

    /// Place a call to the targets an RFC 3263 location gave, in order
    /// (see [`UserAgent::originate_located`]), and learn its Call-ID.
    /// `tls_name`: the domain the location was for, which a TLS target's
    /// certificate must carry (RFC 5922 section 4).
    pub async fn originate_located(
        &self,
        spec: Originate,
        route: Vec<crate::locate::Target>,
        tls_name: Option<String>,
    ) -> Result<(CallRef, CallId), DriverError> {
        let located = Located {
            spec,
            route,
            tls_name,
        };
        self.ask(|r| Command::OriginateLocated(Box::new(located), r))
            .await
    }

    /// Verify outbound TLS to `addr` against `name` (a target an RFC
    /// 3263 location of the domain `name` found, e.g. the registrar's).
    pub async fn learn_tls_name(&self, addr: SocketAddr, name: String) -> Result<(), DriverError> {
        self.ask(|r| Command::LearnTlsName(addr, name, r)).await
    }

    /// The number of live SIP transactions (see
    /// [`UserAgent::transaction_count`]).
    pub async fn transaction_count(&self) -> Result<usize, DriverError> {
        self.ask(Command::TransactionCount).await
    }

    /// The core's counters so far (see [`UserAgent::stats`]): what a
    /// metrics page reads while the driver runs.
    pub async fn stats(&self) -> Result<Stats, DriverError> {
        self.ask(Command::Stats).await
    }

    /// Start a registration.
    pub async fn register(&self, spec: Register) -> Result<RegistrationId, DriverError> {
        self.ask(|r| Command::Register(Box::new(spec), r)).await
    }

    /// Start a registration with a located registrar (see
    /// [`UserAgent::register_located`]): `targets` in order; `tls_name`
    /// the domain located, which a TLS target's certificate must carry.
    pub async fn register_located(
        &self,
        spec: Register,
        targets: Vec<crate::locate::Target>,
        tls_name: Option<String>,
    ) -> Result<RegistrationId, DriverError> {
        let targets = RegistrarTargets { targets, tls_name };
        let located = RegisterLocated { spec, targets };
        self.ask(|r| Command::RegisterLocated(Box::new(located), r))
            .await
    }

    /// Answer [`Event::LocateRegistrar`] (see
    /// [`UserAgent::registration_located`]).
    pub async fn registration_located(
        &self,
        id: RegistrationId,
        targets: Vec<crate::locate::Target>,
        tls_name: Option<String>,
    ) -> Result<(), DriverError> {
        let targets = RegistrarTargets { targets, tls_name };
        self.ask(|r| Command::RegistrationLocated(id, targets, r))
            .await
    }

    /// Remove a registration's binding (REGISTER with Expires: 0).
    pub async fn unregister(&self, id: RegistrationId) -> Result<(), DriverError> {
        self.ask(|r| Command::Unregister(id, r)).await
    }

    /// Send a re-INVITE with a new offer (hold: `a=sendonly`; resume:
    /// `a=sendrecv`).
    pub async fn reinvite(&self, call: CallRef, sdp: Bytes) -> Result<(), DriverError> {
        self.ask(|r| Command::Reinvite(call, sdp, r)).await
    }

    /// Blind-transfer an established call to `target` (REFER, RFC 3515);
    /// the outcome arrives as [`Event::TransferAccepted`] or
    /// [`Event::TransferFailed`].
    pub async fn refer(&self, call: CallRef, target: Uri) -> Result<(), DriverError> {
        self.ask(|r| Command::Refer(call, Box::new(target), r))
            .await
    }

    /// Read the TLS listener's certificate and key files again (on SIGHUP);
    /// on an error the old ones stay in use. New connections get the new
    /// certificate; established ones keep theirs.
    pub async fn reload_tls(&self) -> Result<(), ReloadError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::ReloadTls(reply))
            .await
            .map_err(|_| ReloadError::Stopped)?;
        rx.await
            .map_err(|_| ReloadError::Stopped)?
            .map_err(ReloadError::Tls)
    }

    /// Open TCP/TLS connections, and the stream counters so far.
    pub async fn stream_stats(&self) -> Result<(usize, StreamStats), DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::StreamStats(reply))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Whether the application admits new calls, for the answer to an
    /// out-of-dialog OPTIONS ([`UserAgent::set_ready`]).
    pub async fn set_ready(&self, ready: bool) -> Result<(), DriverError> {
        self.tx
            .send(Command::SetReady(ready))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Start a graceful shutdown (like the `shutdown` future of
    /// [`Driver::run`]).
    pub async fn shutdown(&self) -> Result<(), DriverError> {
        self.tx
            .send(Command::Shutdown)
            .await
            .map_err(|_| DriverError::Stopped)
    }
}

/// Why the TLS certificate was not reloaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The driver has stopped.
    #[error("SIP driver stopped")]
    Stopped,
    /// The files could not be used (the old certificate stays).
    #[error(transparent)]
    Tls(TlsSetupError),
}

/// The sockets, the core and the channels.
pub struct Driver {
    socket: UdpSocket,
    local: SocketAddr,
    streams: Streams,
    stream_input: mpsc::Receiver<Input>,
    ua: UserAgent,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    backlog: usize,
    grace: Duration,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("local", &self.local)
            .finish()
    }
}

impl Driver {
    /// Bind the socket and build the core. Returns the driver (run it with
    /// [`Driver::run`]), a command handle and the event receiver.
    pub async fn bind(
        cfg: DriverConfig,
        rng: impl CryptoRng + Send + 'static,
    ) -> std::io::Result<(Driver, Handle, mpsc::Receiver<Event>)> {
        let socket = UdpSocket::bind(cfg.bind).await?;
        let local = socket.local_addr()?;
        let mut ua_cfg = cfg.ua;
        let (streams, stream_input) = Streams::bind(cfg.streams, ua_cfg.limits).await?;
        if ua_cfg.contact_addr.port() == 0 {
            ua_cfg.contact_addr.set_port(local.port());
        }
        if ua_cfg.contact_addr.ip().is_unspecified() {
            ua_cfg.contact_addr.set_ip(local.ip());
        }
        // Advertise the listeners at the contact IP unless told otherwise.
        let ip = ua_cfg.contact_addr.ip();
        if ua_cfg.tcp_addr.is_none() {
            ua_cfg.tcp_addr = streams.tcp_addr().map(|a| SocketAddr::new(ip, a.port()));
        }
        if ua_cfg.tls_addr.is_none() {
            ua_cfg.tls_addr = streams.tls_addr().map(|a| SocketAddr::new(ip, a.port()));
        }
        let (cmd_tx, commands) = mpsc::channel(cfg.command_capacity.max(1));
        let (events, ev_rx) = mpsc::channel(cfg.event_capacity.max(1));
        let driver = Driver {
            socket,
            local,
            streams,
            stream_input,
            ua: UserAgent::new(ua_cfg, rng),
            commands,
            events,
            backlog: cfg.event_backlog.max(1),
            grace: cfg.shutdown_grace,
        };
        Ok((driver, Handle { tx: cmd_tx }, ev_rx))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The TCP listener's address, if there is one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.streams.tcp_addr()
    }

    /// The TLS listener's address, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.streams.tls_addr()
    }

    /// Run until `shutdown` completes (or a [`Handle::shutdown`]), then
    /// refuse new INVITEs (503) while existing calls end, for at most the
    /// shutdown grace. Returns the core's counters. Stops early when the
    /// event receiver is dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> std::io::Result<Stats> {
        let mut buf = vec![0u8; 65_535];
        let mut commands_open = true;
        let mut drain_until: Option<Instant> = None;
        tokio::pin!(shutdown);
        loop {
            self.flush().await;
            if !self.deliver() {
                tracing::info!("event receiver dropped; SIP driver stops");
                break;
            }
            if self.ua.is_drained() && self.ua.pending_events() == 0 {
                break;
            }
            let deadline = self.ua.poll_timeout().map(Instant::from_std);
            let waiting = self.ua.pending_events();
            // An owned permit: the branch's output must not borrow `self`.
            let room = self.events.clone();
            tokio::select! {
                // Room in the channel for the events the core holds.
                permit = room.reserve_owned(), if waiting > 0 => match permit {
                    Ok(permit) => {
                        if let Some(e) = self.ua.poll_event() {
                            permit.send(e);
                        }
                    }
                    Err(_) => {
                        tracing::info!("event receiver dropped; SIP driver stops");
                        break;
                    }
                },
                (transport, r) = self.streams.accept() => match r {
                    Ok((stream, from)) => {
                        // A source outside the allowlist gets no connection
                        // slot (over UDP it would get 403 or nothing).
                        let allowed = self.ua.config().filter.allows(from.ip().to_canonical());
                        self.streams.accepted(transport, stream, from, allowed);
                    }
                    Err(e) => tracing::warn!(error = %e, %transport, "SIP accept failed"),
                },
                input = self.stream_input.recv(), if waiting < self.backlog => match input {
                    Some(Input::Message(peer, data)) => self.ua.handle_message(now(), peer, data),
                    Some(Input::Closed(peer, id)) => self.streams.closed(peer, id),
                    Some(Input::Unreachable(peer, id)) => {
                        if let Some(id) = id {
                            self.streams.closed(peer, id);
                        }
                        self.ua.transport_failed(now(), peer);
                    }
                    // The table keeps a sender: never closed while we run.
                    None => {}
                },
                r = self.socket.recv_from(&mut buf), if waiting < self.backlog => match r {
                    Ok((n, src)) => {
                        let src = SocketAddr::new(src.ip().to_canonical(), src.port());
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        self.ua.handle_datagram(now(), src, data);
                    }
                    Err(e) => tracing::warn!(error = %e, "UDP receive failed"),
                },
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(Command::Shutdown) => {
                        drain_until.get_or_insert_with(|| Instant::now() + self.grace);
                        self.ua.shutdown();
                    }
                    Some(cmd) => self.command(cmd),
                    None => commands_open = false,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.ua.handle_timeout(now()),
                _ = &mut shutdown, if drain_until.is_none() => {
                    tracing::info!(calls = self.ua.call_count(), "SIP shutdown: refusing new calls");
                    drain_until = Some(Instant::now() + self.grace);
                    self.ua.shutdown();
                }
                _ = sleep_until(drain_until), if drain_until.is_some() => {
                    tracing::warn!(calls = self.ua.call_count(), "SIP shutdown grace over");
                    break;
                }
            }
        }
        self.flush().await;
        self.streams.shutdown();
        Ok(self.ua.stats())
    }

    /// Verify a registrar's TLS targets against the domain located.
    fn learn_tls_names(&mut self, located: RegistrarTargets) -> Vec<crate::locate::Target> {
        if let Some(name) = &located.tls_name {
            for t in located
                .targets
                .iter()
                .filter(|t| t.transport == Transport::Tls)
            {
                self.streams.learn_tls_name(t.addr, name);
            }
        }
        located.targets
    }

    fn command(&mut self, cmd: Command) {
        let now = now();
        let ua = &mut self.ua;
        // A dropped reply receiver only means the caller stopped waiting.
        match cmd {
            Command::Ring(c, r) => drop(r.send(ua.ring(now, c))),
            Command::Answer(c, sdp, r) => drop(r.send(ua.answer(now, c, sdp))),
            Command::Reject(c, s, None, r) => drop(r.send(ua.reject(now, c, s))),
            Command::Reject(c, s, Some(after), r) => {
                drop(r.send(ua.reject_retry_after(now, c, s, after)))
            }
            Command::RejectWarning(c, s, after, text, r) => {
                drop(r.send(ua.reject_warning(now, c, s, after, text)))
            }
            Command::Hangup(c, r) => drop(r.send(ua.hangup(now, c))),
            Command::Originate(o, r) => drop(r.send(ua.originate(now, *o))),
            Command::OriginateWithCallId(o, r) => {
                let placed = ua.originate(now, *o).and_then(|call| {
                    let id = ua.call_id(call).cloned().ok_or(UaError::UnknownCall)?;
                    Ok((call, id))
                });
                drop(r.send(placed));
            }
            Command::OriginateLocated(l, r) => {
                let Located {
                    spec,
                    route,
                    tls_name,
                } = *l;
                if let Some(name) = &tls_name {
                    for t in route.iter().filter(|t| t.transport == Transport::Tls) {
                        self.streams.learn_tls_name(t.addr, name);
                    }
                }
                let ua = &mut self.ua;
                let placed = ua.originate_located(now, spec, route).and_then(|call| {
                    let id = ua.call_id(call).cloned().ok_or(UaError::UnknownCall)?;
                    Ok((call, id))
                });
                drop(r.send(placed));
            }
            Command::LearnTlsName(addr, name, r) => {
                self.streams.learn_tls_name(addr, &name);
                drop(r.send(Ok(())));
            }
            Command::TransactionCount(r) => drop(r.send(Ok(self.ua.transaction_count()))),
            Command::Stats(r) => drop(r.send(Ok(ua.stats()))),
            Command::Register(s, r) => drop(r.send(ua.register(now, *s))),
            Command::RegisterLocated(l, r) => {
                let RegisterLocated { spec, targets } = *l;
                let targets = self.learn_tls_names(targets);
                drop(r.send(self.ua.register_located(now, spec, targets)));
            }
            Command::RegistrationLocated(id, targets, r) => {
                let targets = self.learn_tls_names(targets);
                drop(r.send(self.ua.registration_located(now, id, targets)));
            }
            Command::Unregister(id, r) => drop(r.send(ua.unregister(now, id))),
            Command::Reinvite(c, sdp, r) => drop(r.send(ua.reinvite(now, c, sdp))),
            Command::Refer(c, target, r) => drop(r.send(ua.refer(now, c, *target))),
            Command::ReloadTls(r) => drop(r.send(self.streams.reload_tls())),
            Command::StreamStats(r) => drop(r.send((self.streams.len(), self.streams.stats))),
            Command::SetReady(ready) => ua.set_ready(ready),
            Command::Shutdown => {}
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            if t.transport != Transport::Udp {
                self.streams.send(Peer::new(t.transport, t.dest), t.data);
                continue;
            }
            let dest = match (self.local.ip(), t.dest.ip()) {
                (IpAddr::V6(_), IpAddr::V4(v4)) => {
                    SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), t.dest.port())
                }
                _ => t.dest,
            };
            if let Err(e) = self.socket.send_to(&t.data, dest).await {
                tracing::warn!(%dest, error = %e, "UDP send failed");
            }
        }
    }

    /// Hands the application as many events as its channel has room for,
    /// without waiting (the rest stay in the core); false when it is gone.
    fn deliver(&mut self) -> bool {
        while self.ua.pending_events() > 0 {
            match self.events.try_reserve() {
                Ok(permit) => {
                    if let Some(e) = self.ua.poll_event() {
                        permit.send(e);
                    }
                }
                Err(mpsc::error::TrySendError::Full(())) => return true,
                Err(mpsc::error::TrySendError::Closed(())) => return false,
            }
        }
        true
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
