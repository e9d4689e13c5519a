//! The user-agent core (RFC 3261 sections 8, 12, 13, 15, 17): a sans-IO
//! [`UserAgent`] that takes datagrams, commands and the time, and yields
//! datagrams to send, [`Event`]s for the application and its next deadline.
//!
//! Layers, from the wire up: the parser; the source filter
//! ([`crate::filter`]); the transaction layer ([`crate::transaction`]),
//! which absorbs every retransmission; the dialogs and calls here. An
//! inbound INVITE becomes one [`Event::IncomingCall`] however often it is
//! retransmitted. Every table the network can grow is bounded (transactions
//! by [`Config::max_transactions`], calls by [`Config::max_calls`]).
//!
//! Besides calls, registrations and re-INVITEs, the core does outbound
//! blind transfer ([`UserAgent::refer`]: REFER and its `refer` NOTIFYs,
//! RFC 3515 / RFC 5589). An incoming REFER is refused with 405 (we do not
//! act as transferee).
//!
//! Offer/answer beyond the plain INVITE with SDP (module `refresh`): an
//! INVITE without SDP is answered with the application's offer and the ACK
//! must bring the answer ([`Event::AnswerInAck`]; without a usable one the
//! core sends BYE, [`EndReason::BadAnswerInAck`]); a re-INVITE without SDP
//! is answered by the core itself with our current SDP, unchanged; UPDATE
//! (RFC 3311) is answered in the dialog, an UPDATE with an offer like a
//! re-INVITE's. Session timers (RFC 4028, [`crate::session_timer`]) run
//! per call: 422 below our `Min-SE`, `Session-Expires` in our 2xx and
//! requests, our refreshes at half the interval, and BYE with
//! [`EndReason::SessionExpired`] when the session is not refreshed.
//!
//! The run loop of a driver:
//!
//! ```
//! use callbridge_sip::ua::{Config, UserAgent};
//! use callbridge_sip::random::seeded_rng;
//! use std::time::Instant;
//! let mut ua = UserAgent::new(Config::new("127.0.0.1:5060".parse()?), seeded_rng(1));
//! let now = Instant::now();
//! // ... ua.handle_datagram(now, source, bytes) for each datagram ...
//! ua.handle_timeout(now);
//! while let Some(t) = ua.poll_transmit() { /* socket.send_to(&t.data, t.dest) */ }
//! while let Some(e) = ua.poll_event() { /* hand to the application */ }
//! let _sleep_until = ua.poll_timeout();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod event;
mod probe;
mod refer;
mod refresh;
mod register;
mod uac;
mod uas;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_auth;
#[cfg(test)]
mod tests_failover;
#[cfg(test)]
mod tests_guard;
#[cfg(test)]
mod tests_probe;
#[cfg(test)]
mod tests_raw;
#[cfg(test)]
mod tests_refer;
#[cfg(test)]
mod tests_register;
#[cfg(test)]
mod tests_timer;
#[cfg(test)]
mod tests_transport;

pub use config::{Config, Stats, UaError};
pub use event::{
    CallRef, EndReason, Event, IncomingCall, MAX_EXTENSION_HEADERS, Originate, Outcome, Register,
    RegistrationId, RegistrationState, is_extension_header,
};
pub use register::{LOCATE_REGISTRAR_GUARD, MAX_REGISTER_BACKOFF};

use crate::auth::{Credentials, DigestClient};
use crate::dialog::Dialog;
use crate::encode::Encode;
use crate::error::Disposition;
use crate::header::{HeaderName, NameAddr, Via};
use crate::ids::{CallId, Tag};
use crate::message::{Message, Request, Response};
use crate::random::{CryptoRng, Ids};
use crate::session_timer::SessionTimer;
use crate::status::StatusCode;
use crate::transaction::{ClientKey, ServerKey, TimerConfig, Transactions, Transmit, TxEvent};
use crate::transport::{Peer, Transport};
use crate::uri::{Host, SipUri};
use bytes::Bytes;
use register::Registration;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The methods this user agent implements (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE";

/// The extensions this user agent supports (the `Supported` header):
/// session timers (RFC 4028).
pub const SUPPORTED: &str = "timer";

/// Who started a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// An INVITE or BYE of a call.
    Call(CallRef),
    /// A REGISTER.
    Registration(RegistrationId),
    /// A REFER of a call (a transfer).
    Refer(CallRef),
}

/// 2xx retransmission until the ACK (RFC 3261 section 13.3.1.4): every
/// T1 doubling to T2, giving up after 64*T1.
#[derive(Debug)]
struct Retransmit {
    wire: Bytes,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

impl Retransmit {
    fn start(now: Instant, wire: Bytes, t: &TimerConfig) -> Retransmit {
        Retransmit {
            wire,
            interval: t.t1,
            next: now + t.t1,
            give_up: now + t.timeout(),
        }
    }

    fn deadline(&self) -> Instant {
        self.next.min(self.give_up)
    }
}

/// An outbound INVITE waiting for its final response.
#[derive(Debug)]
struct Calling {
    key: ClientKey,
    invite: Request,
    credentials: Option<Credentials>,
    auth: DigestClient,
    challenges: u8,
    /// Set once the application hung up (or the ring timer fired): the
    /// outcome to report; a CANCEL goes out once a provisional arrived.
    cancel: Option<Outcome>,
    cancel_sent: bool,
    ring_deadline: Instant,
    /// Where the INVITE goes next if this target fails (RFC 3263 section
    /// 4.3): a 503, Timer B, or a connection that cannot be made.
    next: std::collections::VecDeque<Peer>,
    /// A provisional response other than 100 came: the request reached a
    /// server that took it on, and is no longer sent elsewhere.
    progressed: bool,
}

/// A re-INVITE inside an established dialog, from the peer or from us
/// (only one at a time: a second gets 491, RFC 3261 section 14.2).
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "at most one per call, kept in place"
)]
enum Reinvite {
    /// Waiting for the application's answer (a re-INVITE, or an UPDATE
    /// with an offer: RFC 3311 section 5.2).
    Offered { key: ServerKey, request: Request },
    /// 2xx sent, retransmitting until the ACK. `offer`: the SDP our 2xx
    /// offered when the re-INVITE had none (RFC 3264 section 8); the ACK
    /// must answer it.
    Answered {
        retx: Retransmit,
        offer: Option<Bytes>,
    },
    /// Our own re-INVITE (hold/resume), or our session refresh (re-INVITE
    /// or UPDATE, `refresh`: not reported to the application), is waiting
    /// for its final response.
    Sent { key: ClientKey, refresh: bool },
}

/// The states of one call. Inbound calls go Offered -> Answered ->
/// Established, outbound ones Calling -> Established; both may end through
/// Ending (our BYE in flight).
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per call, kept in place in the call table"
)]
enum CallState {
    /// Inbound INVITE handed to the application, no final response yet.
    Offered {
        key: ServerKey,
        invite: Request,
        dialog: Dialog,
        /// When the core gives up waiting for the application (480).
        deadline: Instant,
    },
    /// Our 2xx is out; retransmitted until the ACK. `offer`: the SDP our
    /// 2xx offered to an INVITE without one (delayed offer, RFC 3261
    /// section 13.2.1); the ACK must carry the answer.
    Answered {
        dialog: Dialog,
        retx: Retransmit,
        offer: Option<Bytes>,
    },
    /// Outbound INVITE in progress.
    Calling(Box<Calling>),
    /// Confirmed dialog.
    Established {
        dialog: Dialog,
        /// For outbound calls: the INVITE transaction and our ACK, resent
        /// for each retransmitted 2xx.
        ack: Option<(ClientKey, Bytes)>,
        reinvite: Option<Reinvite>,
    },
    /// Our BYE is in flight; `reason` is reported when it completes
    /// (`None` when the call's end was already reported).
    Ending {
        bye: ClientKey,
        reason: Option<EndReason>,
    },
}

#[derive(Debug)]
struct Call {
    /// Where in-dialog requests and 2xx retransmissions go.
    peer: Peer,
    call_id: CallId,
    local_tag: Tag,
    state: CallState,
    /// Our REFER in progress, if any.
    transfer: Option<refer::Transfer>,
    /// The SDP we last sent (offer or answer): what an offerless re-INVITE
    /// or a session refresh gets again, unchanged (RFC 3264 section 8).
    local_sdp: Option<Bytes>,
    /// The dialog's session timer (RFC 4028), once a 2xx set one.
    timer: Option<SessionTimer>,
    /// Whether the peer listed UPDATE in its Allow (we refresh with it).
    peer_allows_update: bool,
    /// Whether the dialog's Request-URI was `sips:` (the INVITE's, ours or
    /// the peer's): our Contact takes the same scheme (RFC 5630 section
    /// 3.1.3), `sip:...;transport=tls` over TLS otherwise.
    sips: bool,
}

impl Call {
    fn new(peer: Peer, call_id: CallId, local_tag: Tag, state: CallState) -> Call {
        Call {
            peer,
            call_id,
            local_tag,
            state,
            transfer: None,
            local_sdp: None,
            timer: None,
            peer_allows_update: false,
            sips: false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let timer = match &self.state {
            CallState::Established { .. } => self.timer.as_ref().and_then(SessionTimer::deadline),
            _ => None,
        };
        let state = self.state_deadline();
        match (timer, state) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn state_deadline(&self) -> Option<Instant> {
        match &self.state {
            CallState::Offered { deadline, .. } => Some(*deadline),
            CallState::Answered { retx, .. } => Some(retx.deadline()),
            CallState::Calling(c) if c.cancel.is_none() || c.cancel_sent => Some(c.ring_deadline),
            CallState::Established {
                reinvite: Some(Reinvite::Answered { retx, .. }),
                ..
            } => Some(retx.deadline()),
            _ => None,
        }
    }
}

/// The sans-IO SIP user agent.
pub struct UserAgent {
    cfg: Config,
    ids: Ids,
    tx: Transactions,
    calls: HashMap<CallRef, Call>,
    /// In-dialog routing: (Call-ID, our tag) -> call.
    dialogs: HashMap<(CallId, Tag), CallRef>,
    /// Inbound INVITE server transactions -> call (for CANCEL).
    invites: HashMap<ServerKey, CallRef>,
    owners: HashMap<ClientKey, Owner>,
    registrations: HashMap<RegistrationId, Registration>,
    next_id: u64,
    events: VecDeque<Event>,
    stats: Stats,
    draining: bool,
    /// The application admits calls (module `probe`).
    ready: bool,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("calls", &self.calls.len())
            .field("transactions", &self.tx.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl UserAgent {
    /// A user agent with `cfg`, drawing tags, branches, Call-IDs and client
    /// nonces from `rng` (see [`crate::random`]).
    pub fn new(cfg: Config, rng: impl CryptoRng + Send + 'static) -> UserAgent {
        let mut tx = Transactions::new(cfg.timers, cfg.max_transactions);
        tx.set_udp_max_request(cfg.udp_max_request);
        UserAgent {
            tx,
            cfg,
            ids: Ids::new(Box::new(rng)),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            invites: HashMap::new(),
            owners: HashMap::new(),
            registrations: HashMap::new(),
            next_id: 1,
            events: VecDeque::new(),
            stats: Stats::default(),
            draining: false,
            ready: true,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The Call-ID of a live call (for an originated call, the one our
    /// INVITE carries); `None` once the call is gone.
    pub fn call_id(&self, call: CallRef) -> Option<&crate::CallId> {
        self.calls.get(&call).map(|c| &c.call_id)
    }

    /// Live transactions, client and server (RFC 3261 section 17): they
    /// linger after a call for Timer J/K (64*T1 / T4) by design, then the
    /// table is empty.
    pub fn transaction_count(&self) -> usize {
        self.tx.len()
    }

    /// One datagram from `source` over UDP.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: Bytes) {
        self.handle_message(now, Peer::from(source), datagram);
    }

    /// One message from `source`: a datagram, or one frame of a stream
    /// (see [`crate::stream::StreamFramer`]). Responses to a request from
    /// a reliable transport go back to the same peer, i.e. over the
    /// connection it came on (RFC 3261 section 18.2.2).
    pub fn handle_message(&mut self, now: Instant, source: Peer, datagram: Bytes) {
        self.stats.datagrams += 1;
        match Message::parse_with(datagram, &self.cfg.limits) {
            Ok(Message::Request(req)) => self.on_request(now, source, req),
            Ok(Message::Response(resp)) => {
                if !self.tx.route_response(now, resp) {
                    self.stats.stray_responses += 1;
                }
            }
            Err(e) => match e.disposition() {
                Disposition::Respond(_) if self.cfg.filter.allows(source.addr.ip()) => {
                    let tag = self.ids.tag();
                    if let Some(resp) = e.response(&tag) {
                        tracing::debug!(%source, error = %e, "answering malformed request");
                        self.stats.malformed_answered += 1;
                        self.send(source, resp.to_bytes());
                    }
                }
                _ => {
                    tracing::debug!(%source, error = %e, "dropping malformed datagram");
                    self.stats.malformed_dropped += 1;
                }
            },
        }
        self.process_tx_events(now);
    }

    /// Fire every timer due at `now` (an early or repeated call is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.process_tx_events(now);
        let due: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline().is_some_and(|d| d <= now))
            .map(|(r, _)| *r)
            .collect();
        for call in due {
            self.call_timeout(now, call);
            self.session_timer_timeout(now, call);
        }
        self.registration_timeouts(now);
        self.transfer_timeouts(now);
        self.process_tx_events(now);
        let tx = &self.tx;
        self.owners.retain(|k, _| tx.has_client(k));
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Events not yet taken with [`UserAgent::poll_event`] (a driver
    /// bounds this queue by pausing its input while the application lags).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// When to call [`UserAgent::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.values().filter_map(Call::deadline);
        let regs = self.registrations.values().filter_map(|r| r.deadline());
        let transfers = self
            .calls
            .values()
            .filter_map(|c| c.transfer.as_ref().map(refer::Transfer::deadline));
        calls
            .chain(regs)
            .chain(transfers)
            .chain(self.tx.poll_timeout())
            .min()
    }

    /// Stop taking new calls: INVITEs get 503 with Retry-After while the
    /// existing calls end (hang them up, or let the peers do it).
    pub fn shutdown(&mut self) {
        self.draining = true;
    }

    /// Whether [`UserAgent::shutdown`] was called and no call is left.
    pub fn is_drained(&self) -> bool {
        self.draining && self.calls.is_empty()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Send outside a transaction; one queue keeps the wire order.
    fn send(&mut self, dest: impl Into<Peer>, data: Bytes) {
        self.tx.send_raw(dest, data);
    }

    /// The transport of a call's peer (UDP for an unknown call).
    fn call_transport(&self, call: CallRef) -> Transport {
        self.calls
            .get(&call)
            .map_or(Transport::Udp, |c| c.peer.transport)
    }

    /// Our Via for a new client transaction over `transport`, asking for
    /// `rport` (RFC 3581).
    fn our_via(&mut self, transport: Transport) -> Via {
        let a = self.cfg.advertised(transport);
        let mut via = Via::new(
            transport.via_token(),
            Host::from(a.ip()),
            Some(a.port()),
            &self.ids.branch(),
        );
        via.params_mut().push("rport", None);
        via
    }

    /// Our Contact for a dialog or registration over `transport`: a
    /// `sips:` URI for TLS, `;transport=tcp` for TCP (RFC 3261 sections
    /// 8.1.1.8 and 19.1.4).
    fn contact(&self, transport: Transport) -> NameAddr {
        self.contact_as(transport, transport == Transport::Tls)
    }

    /// Our Contact over `transport` for a request or dialog whose
    /// Request-URI is `sips:` (`sips`) or not: over TLS, a `sips:` URI for
    /// a `sips:` Request-URI and `sip:...;transport=tls` for a `sip:` one
    /// (RFC 5630 sections 3.1.3 and 4.1: the scheme follows the
    /// Request-URI's; a UA reached by `sip:` need not take `sips:`).
    fn contact_as(&self, transport: Transport, sips: bool) -> NameAddr {
        let a = self.cfg.advertised(transport);
        let uri = SipUri::new(Host::from(a.ip())).with_port(a.port());
        NameAddr::new(match transport {
            Transport::Udp => uri,
            Transport::Tcp => uri.with_param("transport", Some(b"tcp")),
            Transport::Tls if sips => uri.with_secure(true),
            Transport::Tls => uri.with_param("transport", Some(b"tls")),
        })
    }

    /// Our Contact in a call's dialog (see [`UserAgent::contact_as`]).
    fn call_contact(&self, call: CallRef) -> NameAddr {
        match self.calls.get(&call) {
            Some(c) => self.contact_as(c.peer.transport, c.sips),
            None => self.contact(Transport::Udp),
        }
    }

    fn end_call(&mut self, call: CallRef) -> Option<Call> {
        let c = self.calls.remove(&call)?;
        self.dialogs
            .remove(&(c.call_id.clone(), c.local_tag.clone()));
        self.invites.retain(|_, r| *r != call);
        Some(c)
    }

    fn process_tx_events(&mut self, now: Instant) {
        while let Some(e) = self.tx.poll_event() {
            match e {
                TxEvent::Response { key, response } => match self.owners.get(&key).copied() {
                    Some(Owner::Call(call)) => self.on_call_response(now, call, &key, response),
                    Some(Owner::Registration(id)) => {
                        self.on_register_response(now, id, &key, &response)
                    }
                    Some(Owner::Refer(call)) => self.on_refer_response(call, &key, &response),
                    None => {}
                },
                TxEvent::ClientTimeout { key } => match self.owners.remove(&key) {
                    Some(Owner::Call(call)) => self.on_call_timeout(now, call, &key),
                    Some(Owner::Registration(id)) => self.on_register_timeout(now, id, &key),
                    Some(Owner::Refer(call)) => self.on_refer_timeout(call, &key),
                    None => {}
                },
                TxEvent::ServerTimeout { key } => {
                    tracing::debug!(?key, "no ACK for a non-2xx final response");
                }
            }
        }
    }

    /// A response with our `Server` header.
    fn decorate(&self, mut resp: Response) -> Response {
        resp.headers_mut()
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        resp
    }

    fn call_timeout(&mut self, now: Instant, call: CallRef) {
        let t = self.cfg.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let peer = c.peer;
        if let CallState::Offered { deadline, .. } = &c.state {
            if *deadline <= now
                && let Some(Call {
                    state: CallState::Offered { key, invite, .. },
                    local_tag,
                    ..
                }) = self.end_call(call)
            {
                tracing::info!(?call, "inbound call never answered by the application");
                let r = invite.make_response(StatusCode::TEMPORARILY_UNAVAILABLE, Some(&local_tag));
                let r = self.decorate(r);
                self.tx.respond(now, &key, &r);
                let reason = EndReason::Unanswered;
                self.events.push_back(Event::Ended { call, reason });
            }
            return;
        }
        let (retx, is_setup) = match &mut c.state {
            CallState::Answered { retx, .. } => (retx, true),
            CallState::Established {
                reinvite: Some(Reinvite::Answered { retx, .. }),
                ..
            } => (retx, false),
            CallState::Calling(calling) => {
                if calling.ring_deadline > now {
                    return;
                }
                if calling.cancel_sent {
                    // RFC 3261 section 9.1: no final response 64*T1 after
                    // the CANCEL; the INVITE is over.
                    let outcome = calling.cancel.unwrap_or(Outcome::NoAnswer);
                    self.end_call(call);
                    self.events.push_back(Event::Failed { call, outcome });
                } else if calling.cancel.is_none() {
                    calling.cancel = Some(Outcome::NoAnswer);
                    self.try_cancel(now, call);
                }
                return;
            }
            _ => return,
        };
        if now >= retx.give_up {
            if is_setup {
                // The call is over the moment we give up on the ACK: the
                // application hears it now, not when our BYE completes
                // (that may take another 64*T1 if the peer is gone).
                tracing::info!(?call, "2xx never ACKed; ending the call");
                self.send_bye(now, call, None);
                self.events.push_back(Event::Ended {
                    call,
                    reason: EndReason::AckTimeout,
                });
            } else if let CallState::Established { reinvite, .. } = &mut c.state {
                *reinvite = None;
            }
            return;
        }
        if now >= retx.next {
            let wire = retx.wire.clone();
            retx.interval = (retx.interval * 2).min(t.t2);
            retx.next = now + retx.interval;
            self.send(peer, wire);
        }
    }
}

/// Whether `uri` is a `sips:` URI (the UAC's requests and the UAS's
/// Contact both ask; here so that neither module uses the other).
fn is_sips(uri: &crate::uri::Uri) -> bool {
    uri.as_sip().is_some_and(crate::SipUri::is_secure)
}
