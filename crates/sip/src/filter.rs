//! Source filtering: which peers may send requests to this user agent
//! (a trunk's signalling addresses, an office network). Requests from
//! anywhere else are answered 403 (RFC 3261 section 21.4.4) or dropped,
//! are counted, and never reach a call. Responses are not filtered: they
//! can only match transactions we started.

use ipnet::IpNet;
use std::net::IpAddr;

/// What to do with a request from a source outside the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rejection {
    /// Answer 403 Forbidden (the peer learns it is refused).
    #[default]
    Forbidden,
    /// Drop silently (scanners learn nothing).
    Drop,
}

/// An allowlist of peer networks. Empty means everyone is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFilter {
    allow: Vec<IpNet>,
    rejection: Rejection,
}

impl SourceFilter {
    /// Allow everyone.
    pub fn allow_all() -> SourceFilter {
        SourceFilter::default()
    }

    /// Allow only `networks` (single hosts are /32 or /128 networks).
    ///
    /// ```
    /// use callbridge_sip::filter::{Rejection, SourceFilter};
    /// let f = SourceFilter::only(vec!["192.0.2.0/24".parse()?], Rejection::Drop);
    /// assert!(f.allows("192.0.2.7".parse()?));
    /// assert!(!f.allows("198.51.100.1".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn only(networks: Vec<IpNet>, rejection: Rejection) -> SourceFilter {
        SourceFilter {
            allow: networks,
            rejection,
        }
    }

    /// Whether requests from `addr` are accepted. IPv4-mapped IPv6
    /// sources (from a dual-stack socket) are checked as IPv4.
    pub fn allows(&self, addr: IpAddr) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|n| n.contains(&addr))
    }

    /// The allowed networks (empty: everyone).
    pub fn networks(&self) -> &[IpNet] {
        &self.allow
    }

    /// What to do with a refused request.
    pub fn rejection(&self) -> Rejection {
        self.rejection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allowlist_allows_everyone() {
        assert!(SourceFilter::allow_all().allows("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn mapped_ipv6_sources_match_ipv4_networks() {
        let f = SourceFilter::only(vec!["10.0.0.0/8".parse().unwrap()], Rejection::Forbidden);
        assert!(f.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!f.allows("::1".parse().unwrap()));
        let f6 = SourceFilter::only(vec!["2001:db8::/32".parse().unwrap()], Rejection::Drop);
        assert!(f6.allows("2001:db8::1".parse().unwrap()));
        assert!(!f6.allows("10.1.2.3".parse().unwrap()));
    }
}
