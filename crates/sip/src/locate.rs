//! Locating a SIP server (RFC 3263 section 4), sans-IO: which DNS
//! queries to make for a URI's host, and the ordered list of
//! [`Target`]s (transport and address) their answers give. The caller
//! does the lookups (the session crate's `dns` module, with
//! hickory-resolver) and hands the targets to
//! [`UserAgent::originate_located`](crate::ua::UserAgent::originate_located),
//! which fails over along them.
//!
//! ```text
//!   Locator::new(host, port, transport, secure)
//!   loop: poll() -> Step::Query(q)  -> look q up -> answer(q, Answer::..)
//!                   Step::Done(targets)  (in the order to try them)
//! ```
//!
//! - A numeric host needs no DNS: one target, the port given or the
//!   transport's default (5060, 5061 for TLS).
//! - A host with a port: A/AAAA only (section 4.2), transport from the
//!   URI (`;transport=`, else TLS for `sips:`, else UDP).
//! - A `;transport=` and no port: the SRV of that transport, else A/AAAA
//!   with the default port.
//! - Neither: NAPTR (section 4.1): the records with flag `S` and a service
//!   we speak (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`; only `SIPS+D2T` for a
//!   `sips:` URI), by order then preference, each replacement's SRV. No
//!   usable NAPTR: the SRV names of each transport we speak (`_sips._tcp`,
//!   `_sip._tcp`, `_sip._udp`). No SRV either: A/AAAA with the default
//!   port over UDP (TLS for `sips:`).
//! - SRV records (RFC 2782) by priority, and within a priority in the
//!   weighted random order of RFC 2782's algorithm, with the randomness
//!   passed in ([`Locator::with_random`]); each record's target's A/AAAA
//!   give its addresses, in the order the resolver gave them.
//!
//! The caller tries the targets in order and moves to the next on a
//! transport failure, a timeout or a 503 (section 4.3). Every list the
//! network controls is bounded ([`MAX_RECORDS`], [`MAX_QUERIES`],
//! [`MAX_TARGETS`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::transport::Transport;

/// Records of one answer that are looked at (the rest are ignored).
pub const MAX_RECORDS: usize = 32;
/// Queries one location makes at most.
pub const MAX_QUERIES: usize = 32;
/// Targets one location yields at most.
pub const MAX_TARGETS: usize = 32;

/// One place to send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The transport.
    pub transport: Transport,
    /// The address and port.
    pub addr: SocketAddr,
}

/// A DNS query the locator needs answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    /// NAPTR records of the domain.
    Naptr(String),
    /// SRV records of the name (`_sip._udp.example.com`).
    Srv(String),
    /// A and AAAA records of the host.
    Addrs(String),
}

/// A NAPTR record (RFC 3403), as a resolver returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower first.
    pub order: u16,
    /// Lower first among equal orders.
    pub preference: u16,
    /// `S` for an SRV replacement.
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, ...
    pub service: String,
    /// The SRV name to look up.
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower first.
    pub priority: u16,
    /// Relative weight among equal priorities.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host (`.` means the service is not offered there).
    pub target: String,
}

/// A query's answer. An error or an empty answer is [`Answer::None`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// NAPTR records.
    Naptr(Vec<NaptrRecord>),
    /// SRV records.
    Srv(Vec<SrvRecord>),
    /// Addresses.
    Addrs(Vec<IpAddr>),
    /// No records (NXDOMAIN, no data, or a failed lookup).
    None,
}

/// What the locator needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look this up and [`Locator::answer`] it.
    Query(Query),
    /// The targets, in the order to try them (empty: nothing found).
    Done(Vec<Target>),
}

/// The default port of a transport (RFC 3261 section 19.1.2).
#[must_use]
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => 5061,
        _ => 5060,
    }
}

/// The SRV name of a transport for `domain` (RFC 3263 section 4.1).
#[must_use]
pub fn srv_name(transport: Transport, domain: &str) -> String {
    match transport {
        Transport::Udp => format!("_sip._udp.{domain}"),
        Transport::Tcp => format!("_sip._tcp.{domain}"),
        Transport::Tls => format!("_sips._tcp.{domain}"),
    }
}

/// The transport a NAPTR service names, if we speak it.
fn naptr_transport(service: &str) -> Option<Transport> {
    match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Transport::Udp),
        "SIP+D2T" => Some(Transport::Tcp),
        "SIPS+D2T" => Some(Transport::Tls),
        _ => None,
    }
}

/// The NAPTR records' SRV lookups in the order to try them: flag `S`,
/// a service we speak (only TLS when `secure`), by order then preference.
#[must_use]
pub fn order_naptr(records: &[NaptrRecord], secure: bool) -> Vec<(Transport, String)> {
    let mut usable: Vec<&NaptrRecord> = records
        .iter()
        .take(MAX_RECORDS)
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| naptr_transport(&r.service).is_some_and(|t| !secure || t == Transport::Tls))
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    usable
        .into_iter()
        .filter_map(|r| Some((naptr_transport(&r.service)?, trim_dot(&r.replacement))))
        .collect()
}

/// SRV records in the order to try them (RFC 2782): by priority; within a
/// priority, repeatedly pick one at random with probability proportional
/// to its weight (zero-weight records get a small chance, first in line
/// as the RFC orders them). `random(n)` returns a number in `0..=n`.
/// Records whose target is `.` are dropped.
pub fn order_srv(records: &[SrvRecord], random: &mut dyn FnMut(u32) -> u32) -> Vec<SrvRecord> {
    let mut by_priority: Vec<SrvRecord> = records
        .iter()
        .take(MAX_RECORDS)
        .filter(|r| !trim_dot(&r.target).is_empty())
        .cloned()
        .collect();
    by_priority.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(by_priority.len());
    let mut rest = by_priority.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(n);
        // RFC 2782: zero weights first, then the running sums.
        let mut group: Vec<SrvRecord> = group.to_vec();
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total).min(total);
            let mut sum = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    sum += u32::from(r.weight);
                    sum >= pick
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(index));
        }
        rest = tail;
    }
    out
}

fn trim_dot(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Where the locator is (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Waiting for the NAPTR answer.
    Naptr,
    /// Waiting for SRV answers, in this order: (transport, name).
    Srv(VecDeque<(Transport, String)>),
    /// Waiting for the addresses of these hosts, in order.
    Addrs(VecDeque<(Transport, String, u16)>),
    /// Finished.
    Done,
}

/// RFC 3263 server location for one URI. See the module docs.
///
/// ```
/// use callbridge_sip::locate::{Answer, Locator, Query, SrvRecord, Step};
/// use callbridge_sip::transport::Transport;
///
/// let mut l = Locator::new("example.com", None, Some(Transport::Tcp), false);
/// assert_eq!(l.poll(), Step::Query(Query::Srv("_sip._tcp.example.com".into())));
/// l.answer(Answer::Srv(vec![SrvRecord {
///     priority: 10, weight: 0, port: 5070, target: "sip1.example.com.".into(),
/// }]));
/// assert_eq!(l.poll(), Step::Query(Query::Addrs("sip1.example.com".into())));
/// l.answer(Answer::Addrs(vec!["192.0.2.7".parse().unwrap()]));
/// let Step::Done(targets) = l.poll() else { panic!() };
/// assert_eq!(targets[0].addr, "192.0.2.7:5070".parse().unwrap());
/// assert_eq!(targets[0].transport, Transport::Tcp);
/// ```
pub struct Locator {
    host: String,
    port: Option<u16>,
    transport: Option<Transport>,
    secure: bool,
    stage: Stage,
    /// SRV answers gathered, in the order asked: each name's records.
    srv_found: Vec<(Transport, Vec<SrvRecord>)>,
    targets: Vec<Target>,
    queries: usize,
    random: Box<dyn FnMut(u32) -> u32 + Send>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("host", &self.host)
            .field("stage", &self.stage)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Locator {
    /// A location of `host` (a URI's host: a name or an IP address),
    /// with the URI's port, its `;transport=` and whether it is `sips:`.
    /// SRV weights are drawn by a fixed sequence; use
    /// [`Locator::with_random`] to draw them at random.
    #[must_use]
    pub fn new(
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        secure: bool,
    ) -> Locator {
        let host = host.trim_matches(['[', ']']);
        // A sips: URI without `;transport=` still looks NAPTR up (RFC 3263
        // section 4.1), for TLS services only; where nothing names a
        // transport, sips: means TLS and sip: UDP.
        let default = transport.unwrap_or(if secure {
            Transport::Tls
        } else {
            Transport::Udp
        });
        let mut l = Locator {
            host: trim_dot(host),
            port,
            transport,
            secure,
            stage: Stage::Done,
            srv_found: Vec::new(),
            targets: Vec::new(),
            queries: 0,
            random: Box::new(|n| n / 2),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            l.targets.push(Target {
                transport: default,
                addr: SocketAddr::new(ip, port.unwrap_or(default_port(default))),
            });
            return l;
        }
        l.stage = match (port, transport) {
            (Some(p), _) => Stage::Addrs(VecDeque::from([(default, l.host.clone(), p)])),
            (None, Some(t)) => Stage::Srv(VecDeque::from([(t, srv_name(t, &l.host))])),
            (None, None) => Stage::Naptr,
        };
        l
    }

    /// The same with SRV weights drawn by `random(n)`, a number in `0..=n`.
    #[must_use]
    pub fn with_random(mut self, random: impl FnMut(u32) -> u32 + Send + 'static) -> Locator {
        self.random = Box::new(random);
        self
    }

    /// The next query, or the targets once every needed answer came.
    pub fn poll(&mut self) -> Step {
        if self.queries >= MAX_QUERIES {
            self.stage = Stage::Done;
        }
        match &self.stage {
            Stage::Naptr => Step::Query(Query::Naptr(self.host.clone())),
            Stage::Srv(q) => match q.front() {
                Some((_, name)) => Step::Query(Query::Srv(name.clone())),
                None => Step::Done(self.targets.clone()),
            },
            Stage::Addrs(q) => match q.front() {
                Some((_, host, _)) => Step::Query(Query::Addrs(host.clone())),
                None => Step::Done(self.targets.clone()),
            },
            Stage::Done => Step::Done(self.targets.clone()),
        }
    }

    /// The answer to the query [`poll`](Self::poll) returned last.
    pub fn answer(&mut self, answer: Answer) {
        self.queries += 1;
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        self.stage = match stage {
            Stage::Naptr => {
                let records = match answer {
                    Answer::Naptr(r) => r,
                    _ => Vec::new(),
                };
                let mut srv: VecDeque<_> = order_naptr(&records, self.secure).into();
                if srv.is_empty() {
                    srv = self.fallback_srv();
                }
                Stage::Srv(srv)
            }
            Stage::Srv(mut q) => {
                if let Some((t, _)) = q.pop_front()
                    && let Answer::Srv(records) = answer
                {
                    let ordered = order_srv(&records, &mut *self.random);
                    if !ordered.is_empty() {
                        self.srv_found.push((t, ordered));
                    }
                }
                if q.is_empty() {
                    self.addr_stage()
                } else {
                    Stage::Srv(q)
                }
            }
            Stage::Addrs(mut q) => {
                if let Some((t, _, port)) = q.pop_front()
                    && let Answer::Addrs(ips) = answer
                {
                    for ip in ips.into_iter().take(MAX_RECORDS) {
                        let target = Target {
                            transport: t,
                            addr: SocketAddr::new(ip, port),
                        };
                        if self.targets.len() < MAX_TARGETS && !self.targets.contains(&target) {
                            self.targets.push(target);
                        }
                    }
                }
                Stage::Addrs(q)
            }
            Stage::Done => Stage::Done,
        };
    }

    /// No usable NAPTR: the SRV name of each transport we may use.
    fn fallback_srv(&self) -> VecDeque<(Transport, String)> {
        let transports: &[Transport] = if self.secure {
            &[Transport::Tls]
        } else {
            &[Transport::Tls, Transport::Tcp, Transport::Udp]
        };
        transports
            .iter()
            .map(|&t| (t, srv_name(t, &self.host)))
            .collect()
    }

    /// After the SRV answers: each record's target's addresses, or the
    /// host's own with the default port when no SRV answered.
    fn addr_stage(&mut self) -> Stage {
        let found = std::mem::take(&mut self.srv_found);
        if found.is_empty() {
            let t = self.transport.unwrap_or(if self.secure {
                Transport::Tls
            } else {
                Transport::Udp
            });
            let port = self.port.unwrap_or(default_port(t));
            return Stage::Addrs(VecDeque::from([(t, self.host.clone(), port)]));
        }
        Stage::Addrs(
            found
                .into_iter()
                .flat_map(|(t, records)| {
                    records
                        .into_iter()
                        .map(move |r| (t, trim_dot(&r.target), r.port))
                })
                .take(MAX_QUERIES)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
