//! Where a SIP request goes: a fixed address, or a server located by RFC
//! 3263 when the request is sent. The location itself is the sans-IO
//! [`callbridge_sip::locate::Locator`]; this module is its driver, doing
//! the NAPTR, SRV and A/AAAA lookups it asks for with hickory-resolver
//! (a maintained, pure-Rust async resolver with a cache; no SIP location
//! logic of its own, which stays in the locator).
//!
//! The name servers are the system's (`/etc/resolv.conf`) unless
//! [`Resolver::new`] is given some (`sip.dns_servers`). A failed lookup is
//! an empty answer: the locator then tries what RFC 3263 says comes next
//! (the SRV names after NAPTR, A/AAAA after SRV), and a location that
//! finds nothing gives no targets.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use callbridge_sip::locate::{
    Answer, Locator, NaptrRecord, Query, SrvRecord, Step, Target, default_port,
};
use callbridge_sip::transport::Transport;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

/// A whole location (all its lookups) gives up after this long.
pub const LOCATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// This address, over the transport the Request-URI names.
    Addr(SocketAddr),
    /// A server to locate (RFC 3263) each time a request goes out.
    Locate(Locate),
}

impl From<SocketAddr> for Destination {
    fn from(a: SocketAddr) -> Destination {
        Destination::Addr(a)
    }
}

impl std::str::FromStr for Destination {
    type Err = std::net::AddrParseError;

    /// An address (`ip:port`); a domain to locate is made from a URI
    /// ([`Locate`]).
    fn from_str(s: &str) -> Result<Destination, Self::Err> {
        s.parse().map(Destination::Addr)
    }
}

impl fmt::Display for Destination {
    /// The address, or the host (with its port, if any).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Addr(a) => write!(f, "{a}"),
            Destination::Locate(l) => match l.port {
                Some(p) => write!(f, "{}:{p}", l.host),
                None => f.write_str(&l.host),
            },
        }
    }
}

/// What RFC 3263 locates: a SIP URI's host, port, `;transport=` and
/// scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locate {
    /// The host: a domain name (an IP address needs no DNS).
    pub host: String,
    /// The URI's port, if it has one (then only A/AAAA are looked up).
    pub port: Option<u16>,
    /// The URI's `;transport=`, if it has one.
    pub transport: Option<Transport>,
    /// A `sips:` URI: only TLS targets.
    pub secure: bool,
}

impl Locate {
    /// The transport a request takes when no DNS record names one.
    #[must_use]
    pub fn default_transport(&self) -> Transport {
        self.transport.unwrap_or(if self.secure {
            Transport::Tls
        } else {
            Transport::Udp
        })
    }

    /// The address `host:port` would be without SRV (for logs).
    #[must_use]
    pub fn default_port(&self) -> u16 {
        self.port
            .unwrap_or_else(|| default_port(self.default_transport()))
    }
}

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The system's resolver configuration is unreadable.
    #[error("the system resolver configuration: {0}")]
    SystemConfig(String),
}

/// An RFC 3263 locator driver over hickory-resolver. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver asking `servers` (UDP, then TCP for a truncated
    /// answer), or the system's name servers when `servers` is empty.
    ///
    /// # Errors
    /// [`DnsError::SystemConfig`] when `servers` is empty and the system
    /// configuration cannot be read.
    pub fn new(servers: &[SocketAddr]) -> Result<Resolver, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let builder = if servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsError::SystemConfig(e.to_string()))?
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            )
        };
        let inner = builder
            .build()
            .map_err(|e| DnsError::SystemConfig(e.to_string()))?;
        Ok(Resolver { inner })
    }

    /// The targets of `dest` in the order to try them: the address itself
    /// (with `transport`, the Request-URI's), or what RFC 3263 finds for
    /// the name (empty: nothing found, or not within
    /// [`LOCATE_TIMEOUT`]).
    pub async fn targets(&self, dest: &Destination, transport: Transport) -> Vec<Target> {
        match dest {
            Destination::Addr(addr) => vec![Target {
                transport,
                addr: *addr,
            }],
            Destination::Locate(l) => {
                let locator = Locator::new(&l.host, l.port, l.transport, l.secure)
                    .with_random(|n| rand::random_range(0..=n));
                match tokio::time::timeout(LOCATE_TIMEOUT, self.run(locator)).await {
                    Ok(t) => t,
                    Err(_) => {
                        tracing::warn!(host = %l.host, "SIP server location timed out");
                        Vec::new()
                    }
                }
            }
        }
    }

    /// Drives the locator to its targets.
    async fn run(&self, mut locator: Locator) -> Vec<Target> {
        loop {
            match locator.poll() {
                Step::Done(targets) => return targets,
                Step::Query(q) => {
                    let answer = self.answer(&q).await;
                    tracing::debug!(?q, ?answer, "SIP location lookup");
                    locator.answer(answer);
                }
            }
        }
    }

    async fn answer(&self, q: &Query) -> Answer {
        // Fully qualified: no search domains appended.
        let fqdn = |n: &str| format!("{}.", n.trim_end_matches('.'));
        match q {
            Query::Naptr(name) => {
                let Ok(found) = self.inner.lookup(fqdn(name), RecordType::NAPTR).await else {
                    return Answer::None;
                };
                Answer::Naptr(
                    found
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::NAPTR(n) => Some(NaptrRecord {
                                order: n.order,
                                preference: n.preference,
                                flags: String::from_utf8_lossy(&n.flags).into_owned(),
                                service: String::from_utf8_lossy(&n.services).into_owned(),
                                replacement: n.replacement.to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Query::Srv(name) => {
                let Ok(found) = self.inner.lookup(fqdn(name), RecordType::SRV).await else {
                    return Answer::None;
                };
                Answer::Srv(
                    found
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::SRV(s) => Some(SrvRecord {
                                priority: s.priority,
                                weight: s.weight,
                                port: s.port,
                                target: s.target.to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Query::Addrs(host) => match self.inner.lookup_ip(fqdn(host)).await {
                Ok(ips) => Answer::Addrs(ips.iter().collect()),
                Err(_) => Answer::None,
            },
        }
    }
}
