//! The core's configuration ([`Config`]), its counters ([`Stats`]) and the
//! commands it refuses ([`UaError`]).

use crate::error::Error;
use crate::filter::SourceFilter;
use crate::parse::Limits;
use crate::session_timer::TimerSettings;
use crate::transaction::TimerConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Configuration of the core.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address written in Via and Contact (the socket's public address).
    pub contact_addr: SocketAddr,
    /// The address written in Via and Contact for TCP (the listener's
    /// public address); `None`: `contact_addr`.
    pub tcp_addr: Option<SocketAddr>,
    /// The address written in Via and Contact for TLS; `None`:
    /// `contact_addr` with port 5061.
    pub tls_addr: Option<SocketAddr>,
    /// Requests larger than this go to UDP peers over TCP (RFC 3261
    /// section 18.1.1 says 1,300 bytes); `None`: never (no TCP).
    pub udp_max_request: Option<usize>,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// T1, T2, T4 and D.
    pub timers: TimerConfig,
    /// Most live transactions; beyond it new requests get a stateless 503.
    pub max_transactions: usize,
    /// Most live calls; beyond it new INVITEs get 486 Busy Here.
    pub max_calls: usize,
    /// Who may send us requests.
    pub filter: SourceFilter,
    /// How long an outbound call may ring before we cancel it.
    pub ring_timeout: Duration,
    /// `Retry-After` seconds in the 503 answering INVITEs while shutting down.
    pub retry_after: u32,
    /// Parser limits.
    pub limits: Limits,
    /// Delay before retrying a failed registration.
    pub register_retry: Duration,
    /// How long an inbound call may wait for the application's answer or
    /// rejection before the core answers 480 itself.
    pub answer_timeout: Duration,
    /// How long after sending a REFER we wait for the NOTIFY with the
    /// transfer's final status before reporting it failed (408).
    pub transfer_timeout: Duration,
    /// Session timers (RFC 4028): the interval we ask for and the least
    /// we accept ([`crate::session_timer`]).
    pub session_timer: TimerSettings,
}

impl Config {
    /// The address we advertise (Via sent-by, Contact) over `transport`.
    pub fn advertised(&self, transport: crate::transport::Transport) -> SocketAddr {
        use crate::transport::Transport;
        match transport {
            Transport::Udp => self.contact_addr,
            Transport::Tcp => self.tcp_addr.unwrap_or(self.contact_addr),
            Transport::Tls => self
                .tls_addr
                .unwrap_or_else(|| SocketAddr::new(self.contact_addr.ip(), 5061)),
        }
    }

    /// Defaults for a user agent reachable at `contact_addr`.
    pub fn new(contact_addr: SocketAddr) -> Config {
        Config {
            contact_addr,
            tcp_addr: None,
            tls_addr: None,
            udp_max_request: None,
            user_agent: "callbridge".to_string(),
            timers: TimerConfig::default(),
            max_transactions: 4096,
            max_calls: 1024,
            filter: SourceFilter::allow_all(),
            ring_timeout: Duration::from_secs(60),
            retry_after: 30,
            limits: Limits::default(),
            register_retry: Duration::from_secs(30),
            answer_timeout: Duration::from_secs(120),
            transfer_timeout: Duration::from_secs(90),
            session_timer: TimerSettings::default(),
        }
    }
}

/// Counters of what the core did with its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// Unparsable datagrams dropped (no answer possible).
    pub malformed_dropped: u64,
    /// Unparsable requests answered 400 (or 505/513).
    pub malformed_answered: u64,
    /// Requests from sources outside the allowlist.
    pub filtered: u64,
    /// Retransmitted requests absorbed by a server transaction.
    pub retransmissions_absorbed: u64,
    /// Responses that matched no transaction.
    pub stray_responses: u64,
    /// Requests refused because a table was full.
    pub overloaded: u64,
    /// INVITEs refused with 503 while shutting down.
    pub refused_shutting_down: u64,
    /// Inbound calls offered to the application.
    pub inbound_calls: u64,
    /// Outbound calls started.
    pub outbound_calls: u64,
    /// Outbound INVITEs sent on to the next target of their location
    /// (RFC 3263 section 4.3).
    pub failovers: u64,
    /// REGISTERs sent on to the next target of their registrar's location.
    pub register_failovers: u64,
    /// Registration rounds that failed (every target refused, did not
    /// answer or could not be reached, or none was located).
    pub register_failures: u64,
}

/// A command the core refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// No such call (it ended, or never existed).
    #[error("unknown call")]
    UnknownCall,
    /// The call is not in a state where the command applies.
    #[error("call is {0}")]
    WrongState(&'static str),
    /// The transaction or call table is full.
    #[error("too many transactions or calls")]
    Overloaded,
    /// The core is shutting down and starts no new calls.
    #[error("shutting down")]
    ShuttingDown,
    /// The target URI names a transport we do not have (RFC 3261
    /// section 18: UDP, TCP and TLS are implemented).
    #[error("unsupported transport in the target URI")]
    UnsupportedTransport,
    /// A message could not be built from the given parts.
    #[error("cannot build request: {0}")]
    Build(#[from] Error),
}
