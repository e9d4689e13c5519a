//! Transactions (RFC 3261 section 17) over UDP, TCP and TLS: the four state
//! machines and the endpoint layer that routes messages to them. Each
//! transaction is bound to one [`Peer`] (transport and address); over a
//! reliable transport it does not retransmit ([`TimerConfig::reliable`]).
//!
//! Each machine ([`ClientInvite`], [`ClientNonInvite`], [`ServerInvite`],
//! [`ServerNonInvite`]) is its own enum of states carrying that state's
//! data, owns a [`Timers`] table and never sees the others. [`Transactions`]
//! matches a message to its transaction by key (sections 17.1.3 and
//! 17.2.3), hands it over, and queues what comes out: datagrams to send
//! and events for the transaction user (the UA core). The number of live
//! transactions is bounded.

mod client_invite;
mod client_non_invite;
mod server_invite;
mod server_non_invite;
mod timer;

pub use client_invite::ClientInvite;
#[cfg(test)]
use client_invite::ack_for;
pub use client_non_invite::ClientNonInvite;
pub use server_invite::{ServerInvite, ServerInviteState};
pub use server_non_invite::ServerNonInvite;
pub use timer::{Timer, TimerConfig, Timers};

use crate::error::Error;
use crate::ids::Branch;
use crate::message::{Request, Response};
use crate::method::Method;
use crate::transport::{Peer, Transport};
use crate::uri::Host;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Normally (its absorb timer ran out, or it was never needed).
    Done,
    /// Timer B, F or H fired.
    TimedOut,
}

/// What one input to a transaction produced.
#[derive(Debug, Default)]
pub struct Output {
    /// A datagram to send to the transaction's peer.
    pub transmit: Option<Bytes>,
    /// Something for the transaction user.
    pub to_tu: Option<ToTu>,
}

impl Output {
    fn transmit(b: Bytes) -> Output {
        Output {
            transmit: Some(b),
            to_tu: None,
        }
    }

    fn to_tu(e: ToTu) -> Output {
        Output {
            transmit: None,
            to_tu: Some(e),
        }
    }
}

/// What a transaction tells its user.
#[derive(Debug)]
pub enum ToTu {
    /// A response for a client transaction (provisional, the first final,
    /// and 2xx retransmits in Accepted).
    Response(Response),
    /// Timer B, F (client) or H (server) fired.
    Timeout,
}

/// A client transaction's key (RFC 3261 section 17.1.3): the top Via
/// branch we generated and the CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The branch.
    pub branch: Branch,
    /// The method (CSeq method of the response).
    pub method: Method,
}

/// A server transaction's key (RFC 3261 section 17.2.3): branch, sent-by
/// and method, with ACK folded onto INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// The branch (or, for RFC 2543 peers, Call-ID, CSeq and From tag).
    pub branch: Branch,
    /// The top Via's sent-by host.
    pub host: Host,
    /// The top Via's sent-by port.
    pub port: Option<u16>,
    /// The request method (ACK is stored as INVITE).
    pub method: Method,
}

impl ServerKey {
    /// The key of a received request.
    pub fn of(request: &Request) -> Result<ServerKey, Error> {
        let h = request.headers();
        let via = h.top_via()?;
        let branch = match via.branch() {
            Some(b) if b.is_rfc3261() => b,
            _ => {
                let call_id = h.call_id()?;
                let seq = h.cseq()?.seq;
                let tag = h.from_addr()?.tag();
                let tag = tag.as_ref().map_or(&b""[..], |t| t.as_bytes());
                let mut v = b"rfc2543:".to_vec();
                v.extend_from_slice(call_id.as_bytes());
                v.extend_from_slice(format!(":{seq}:").as_bytes());
                v.extend_from_slice(tag);
                Branch::new(v)
            }
        };
        let method = match request.method() {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        Ok(ServerKey {
            branch,
            host: via.host().clone(),
            port: via.port(),
            method,
        })
    }

    /// The key of the INVITE a CANCEL with this key cancels (section 9.2).
    pub fn invite(&self) -> ServerKey {
        ServerKey {
            method: Method::Invite,
            ..self.clone()
        }
    }
}

/// A message to send: a datagram, or one message on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Over which transport.
    pub transport: Transport,
    /// Where to (over a reliable transport, the connection to this
    /// address: for responses, the one the request came on).
    pub dest: SocketAddr,
    /// The bytes.
    pub data: Bytes,
}

impl Transmit {
    fn new(to: Peer, data: Bytes) -> Transmit {
        Transmit {
            transport: to.transport,
            dest: to.addr,
            data,
        }
    }

    /// The transport and the destination together.
    pub fn peer(&self) -> Peer {
        Peer::new(self.transport, self.dest)
    }
}

/// An event from a transaction to its user.
#[derive(Debug)]
pub enum TxEvent {
    /// A response arrived on a client transaction.
    Response {
        /// The transaction.
        key: ClientKey,
        /// The response.
        response: Response,
    },
    /// A client transaction timed out (Timer B or F): act as on a 408.
    ClientTimeout {
        /// The transaction.
        key: ClientKey,
    },
    /// An INVITE server transaction never got the ACK for its non-2xx
    /// final response (Timer H).
    ServerTimeout {
        /// The transaction.
        key: ServerKey,
    },
}

/// Where a received request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// A new request: a server transaction was made; the TU must answer.
    New(ServerKey),
    /// A retransmission or the ACK of a non-2xx: absorbed (maybe answered
    /// again from the transaction). The TU never sees it.
    Absorbed,
    /// An ACK that matches no transaction: the ACK of a 2xx, for the dialog.
    Ack,
    /// Too many live transactions: answer 503 statelessly.
    Full,
}

/// The transaction table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many pending transactions ({limit})")]
pub struct TooManyTransactions {
    /// The configured limit.
    pub limit: usize,
}

#[derive(Debug)]
enum Client {
    Invite(Box<ClientInvite>),
    NonInvite(Box<ClientNonInvite>),
}

#[derive(Debug)]
enum Server {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl Client {
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Client::Invite(t) => t.poll_timeout(),
            Client::NonInvite(t) => t.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) -> Output {
        match self {
            Client::Invite(t) => t.handle_timeout(now),
            Client::NonInvite(t) => t.handle_timeout(now),
        }
    }
    fn terminated(&self) -> bool {
        match self {
            Client::Invite(t) => t.termination().is_some(),
            Client::NonInvite(t) => t.termination().is_some(),
        }
    }
}

impl Server {
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Server::Invite(t) => t.poll_timeout(),
            Server::NonInvite(t) => t.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) -> Output {
        match self {
            Server::Invite(t) => t.handle_timeout(now),
            Server::NonInvite(t) => t.handle_timeout(now),
        }
    }
    fn terminated(&self) -> bool {
        match self {
            Server::Invite(t) => t.termination().is_some(),
            Server::NonInvite(t) => t.termination().is_some(),
        }
    }
}

/// The endpoint layer: every live transaction by key, with the peer its
/// messages go to; the queues of messages and events they produced.
#[derive(Debug)]
pub struct Transactions {
    cfg: TimerConfig,
    limit: usize,
    udp_max_request: Option<usize>,
    clients: HashMap<ClientKey, (Client, Peer)>,
    servers: HashMap<ServerKey, (Server, Peer)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
}

impl Transactions {
    /// An empty table holding at most `limit` transactions.
    pub fn new(cfg: TimerConfig, limit: usize) -> Transactions {
        Transactions {
            cfg,
            limit,
            udp_max_request: None,
            clients: HashMap::new(),
            servers: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Send requests larger than `max` bytes to UDP peers over TCP instead
    /// (RFC 3261 section 18.1.1: 1,300 bytes when the path MTU is unknown);
    /// `None` (the default) keeps them on UDP, for a user agent without
    /// TCP.
    pub fn set_udp_max_request(&mut self, max: Option<usize>) {
        self.udp_max_request = max;
    }

    /// The timer values in use.
    pub fn timer_config(&self) -> TimerConfig {
        self.cfg
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, dest: Peer, out: Output, tu: impl FnOnce(ToTu) -> TxEvent) {
        if let Some(data) = out.transmit {
            self.transmits.push_back(Transmit::new(dest, data));
        }
        if let Some(e) = out.to_tu {
            self.events.push_back(tu(e));
        }
    }

    /// Queue a datagram sent outside any transaction (stateless answers,
    /// 2xx retransmissions, the ACK of a 2xx), in order with the rest.
    pub fn send_raw(&mut self, dest: impl Into<Peer>, data: Bytes) {
        self.transmits.push_back(Transmit::new(dest.into(), data));
    }

    /// Queue the datagram of a server transaction's output (server
    /// transactions only report to the TU from `handle_timeout`).
    fn send(&mut self, dest: Peer, out: Output) {
        if let Some(data) = out.transmit {
            self.transmits.push_back(Transmit::new(dest, data));
        }
    }

    /// Route a received request (RFC 3261 section 17.2.3). `reply_to` is
    /// where responses go (section 18.2.2 with RFC 3581 `rport`; over a
    /// reliable transport, the connection the request came on).
    pub fn route_request(
        &mut self,
        now: Instant,
        request: &Request,
        reply_to: impl Into<Peer>,
    ) -> Result<Routed, Error> {
        let reply_to = reply_to.into();
        let key = ServerKey::of(request)?;
        let is_ack = request.method() == &Method::Ack;
        if let Some((tx, dest)) = self.servers.get_mut(&key) {
            let dest = *dest;
            let out = match tx {
                Server::Invite(t) => {
                    if is_ack && t.state() != ServerInviteState::Completed {
                        return Ok(Routed::Ack);
                    }
                    t.handle_request(now, is_ack)
                }
                Server::NonInvite(t) => t.handle_request(),
            };
            self.send(dest, out);
            self.reap();
            return Ok(Routed::Absorbed);
        }
        if is_ack {
            return Ok(Routed::Ack);
        }
        if self.len() >= self.limit {
            return Ok(Routed::Full);
        }
        let cfg = self.cfg.on(reply_to.transport);
        let tx = match request.method() {
            Method::Invite => Server::Invite(ServerInvite::new(cfg)),
            _ => Server::NonInvite(ServerNonInvite::new(cfg)),
        };
        self.servers.insert(key.clone(), (tx, reply_to));
        Ok(Routed::New(key))
    }

    /// Send a response on a server transaction. Returns false when the
    /// transaction no longer exists.
    pub fn respond(&mut self, now: Instant, key: &ServerKey, response: &Response) -> bool {
        let Some((tx, dest)) = self.servers.get_mut(key) else {
            return false;
        };
        let dest = *dest;
        let out = match tx {
            Server::Invite(t) => t.respond(now, response),
            Server::NonInvite(t) => t.respond(now, response),
        };
        self.send(dest, out);
        true
    }

    /// The state of an INVITE server transaction, if it is alive.
    pub fn server_invite_state(&self, key: &ServerKey) -> Option<ServerInviteState> {
        match self.servers.get(key) {
            Some((Server::Invite(t), _)) => Some(t.state()),
            _ => None,
        }
    }

    /// Start a client transaction for `request` (whose top Via carries a
    /// fresh branch) toward `dest`.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        dest: impl Into<Peer>,
    ) -> Result<ClientKey, TooManyTransactions> {
        let (request, dest) = self.choose_transport(request, dest.into());
        let cfg = self.cfg.on(dest.transport);
        if self.len() >= self.limit {
            return Err(TooManyTransactions { limit: self.limit });
        }
        let branch = request
            .headers()
            .top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or_else(|| Branch::new(Bytes::new()));
        let key = ClientKey {
            branch,
            method: request.method().clone(),
        };
        let (tx, wire) = match request.method() {
            Method::Invite => {
                let (t, w) = ClientInvite::start(now, request, cfg);
                (Client::Invite(Box::new(t)), w)
            }
            _ => {
                let (t, w) = ClientNonInvite::start(now, &request, cfg);
                (Client::NonInvite(Box::new(t)), w)
            }
        };
        self.transmits.push_back(Transmit::new(dest, wire));
        self.clients.insert(key.clone(), (tx, dest));
        Ok(key)
    }

    /// The transport a new request really goes over (RFC 3261 section
    /// 18.1.1): a CANCEL goes where its INVITE went (section 9.1); a
    /// request too large for UDP goes over TCP; the top Via says which.
    fn choose_transport(&self, mut request: Request, dest: Peer) -> (Request, Peer) {
        let branch = request.headers().top_via().ok().and_then(|v| v.branch());
        let invite = branch.and_then(|branch| {
            let key = ClientKey {
                branch,
                method: Method::Invite,
            };
            self.clients.get(&key).map(|(_, p)| *p)
        });
        let to = match (request.method(), invite) {
            (Method::Cancel, Some(p)) => p,
            _ => match self.udp_max_request {
                Some(max)
                    if dest.transport == Transport::Udp
                        && crate::encode::Encode::to_bytes(&request).len() > max =>
                {
                    Peer::new(Transport::Tcp, dest.addr)
                }
                _ => dest,
            },
        };
        if to.transport != dest.transport
            && let Ok(mut via) = request.headers().top_via()
        {
            via.set_transport(to.transport.via_token());
            request.headers_mut().set_top_via(&via);
        }
        (request, to)
    }

    /// Whether a client transaction with this key is alive.
    pub fn has_client(&self, key: &ClientKey) -> bool {
        self.clients.contains_key(key)
    }

    /// Whether an INVITE client transaction has had any response (a
    /// CANCEL may be sent only then, RFC 3261 section 9.1).
    pub fn client_invite_has_response(&self, key: &ClientKey) -> bool {
        matches!(self.clients.get(key), Some((Client::Invite(t), _)) if t.has_response())
    }

    /// The request of a live INVITE client transaction.
    pub fn client_invite_request(&self, key: &ClientKey) -> Option<&Request> {
        match self.clients.get(key) {
            Some((Client::Invite(t), _)) => Some(t.request()),
            _ => None,
        }
    }

    /// Route a received response (RFC 3261 section 17.1.3). Returns false
    /// when it matches no transaction (a stray response, dropped).
    pub fn route_response(&mut self, now: Instant, response: Response) -> bool {
        let h = response.headers();
        let (Some(branch), Ok(cseq)) = (h.top_via().ok().and_then(|v| v.branch()), h.cseq()) else {
            return false;
        };
        let key = ClientKey {
            branch,
            method: cseq.method,
        };
        let Some((tx, dest)) = self.clients.get_mut(&key) else {
            return false;
        };
        let dest = *dest;
        let out = match tx {
            Client::Invite(t) => t.handle_response(now, response),
            Client::NonInvite(t) => t.handle_response(now, response),
        };
        self.push(dest, out, |e| client_event(key, e));
        self.reap();
        true
    }

    /// Fire every expired timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, (t, _))| t.poll_timeout().is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            while let Some((tx, dest)) = self.clients.get_mut(&key) {
                if tx.poll_timeout().is_none_or(|at| at > now) {
                    break;
                }
                let dest = *dest;
                let out = tx.handle_timeout(now);
                let k = key.clone();
                self.push(dest, out, |e| client_event(k, e));
            }
        }
        let due: Vec<ServerKey> = self
            .servers
            .iter()
            .filter(|(_, (t, _))| t.poll_timeout().is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            while let Some((tx, dest)) = self.servers.get_mut(&key) {
                if tx.poll_timeout().is_none_or(|at| at > now) {
                    break;
                }
                let dest = *dest;
                let out = tx.handle_timeout(now);
                let k = key.clone();
                self.push(dest, out, |_| TxEvent::ServerTimeout { key: k });
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        self.clients.retain(|_, (t, _)| !t.terminated());
        self.servers.retain(|_, (t, _)| !t.terminated());
    }

    /// The earliest deadline of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.clients.values().filter_map(|(t, _)| t.poll_timeout());
        let s = self.servers.values().filter_map(|(t, _)| t.poll_timeout());
        c.chain(s).min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }
}

fn client_event(key: ClientKey, e: ToTu) -> TxEvent {
    match e {
        ToTu::Response(response) => TxEvent::Response { key, response },
        ToTu::Timeout => TxEvent::ClientTimeout { key },
    }
}

#[cfg(test)]
mod tests;
