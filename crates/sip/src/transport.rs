//! Transports (RFC 3261 section 18): which one a message came over or goes
//! over, as a tag the sans-IO core carries with every address. The core
//! never holds a connection: a [`Peer`] names the transport and the
//! remote address, and the driver maps a reliable peer to its connection
//! (the one the request came on, for responses: section 18.2.2).
//!
//! What the transport changes in the core: the Via `sent-protocol`
//! ([`Transport::via_token`]), the Contact (`;transport=tcp`, or a `sips:`
//! URI for TLS), where responses go (the source itself on a reliable
//! transport, section 18.2.2), and the transaction timers (no
//! retransmissions and no absorb timers on a reliable transport, section
//! 17; see [`crate::transaction::TimerConfig::reliable`]).
//!
//! ```
//! use callbridge_sip::transport::{Peer, Transport};
//! let p = Peer::new(Transport::Tls, "192.0.2.7:5061".parse()?);
//! assert!(p.transport.is_reliable());
//! assert_eq!(p.transport.via_token(), "TLS");
//! assert_eq!(Peer::from(p.addr).transport, Transport::Udp);
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// UDP: datagrams, retransmitted by the transaction layer.
    #[default]
    Udp,
    /// TCP: a reliable stream, framed by Content-Length.
    Tcp,
    /// TLS over TCP (`sips:`).
    Tls,
}

impl Transport {
    /// Whether the transport is reliable (RFC 3261 section 17: no
    /// retransmission timers).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via `sent-protocol` transport token (section 20.42).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The transport a Via transport token or a URI `transport` parameter
    /// names (case-insensitive); `None` for others (SCTP, WS).
    pub fn from_token(token: &[u8]) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| token.eq_ignore_ascii_case(t.via_token().as_bytes()))
    }

    /// The transport a SIP URI asks for (RFC 3261 sections 18.1.1 and
    /// 19.1.2): `sips:` means TLS; else its `transport` parameter; else
    /// UDP. `None` when the parameter names a transport we lack.
    pub fn of_uri(uri: &crate::SipUri) -> Option<Transport> {
        if uri.is_secure() {
            return Some(Transport::Tls);
        }
        match uri.params().get("transport") {
            Some(Some(v)) => Transport::from_token(&v),
            _ => Some(Transport::Udp),
        }
    }
}

impl Transport {
    /// [`Transport::of_uri`] for any URI: a `tel:` or other URI (sent to a
    /// configured target) goes over UDP.
    pub fn of_uri_or_udp(uri: &crate::Uri) -> Option<Transport> {
        match uri {
            crate::Uri::Sip(u) => Transport::of_uri(u),
            _ => Some(Transport::Udp),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Where a message came from or goes to: a transport and an address. A
/// bare [`SocketAddr`] converts to a UDP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote address (for an accepted connection, its source).
    pub addr: SocketAddr,
}

impl Peer {
    /// A peer over `transport` at `addr`.
    pub fn new(transport: Transport, addr: SocketAddr) -> Peer {
        Peer { transport, addr }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        Peer::new(Transport::Udp, addr)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.transport, self.addr)
    }
}
