//! The Via header (RFC 3261 sections 8.1.1.7, 18.2.1 and 20.42; RFC 3581
//! `rport`).

use crate::encode::Encode;
use crate::ids::Branch;
use crate::params::Params;
use crate::parse::lex::Source;
use crate::parse::lex::{self, generic_params_with, sep, sws, token};
use crate::uri::{Host, parse_host};
use bytes::Bytes;
use std::net::IpAddr;

/// One Via value: `SIP/2.0/<transport> <host>[:<port>];params`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Via {
    version: Bytes,
    transport: Bytes,
    host: Host,
    port: Option<u16>,
    params: Params,
}

impl Via {
    /// A Via for `transport` (e.g. `UDP`) at `host[:port]` with `branch`.
    pub fn new(transport: &'static str, host: Host, port: Option<u16>, branch: &Branch) -> Via {
        let mut params = Params::new();
        params.push("branch", Some(branch.as_bytes()));
        Via {
            version: Bytes::from_static(b"2.0"),
            transport: Bytes::from_static(transport.as_bytes()),
            host,
            port,
            params,
        }
    }

    /// Replace the transport token (RFC 3261 section 18.1.1: a request
    /// moved from UDP to TCP for its size says so in its top Via).
    pub fn set_transport(&mut self, transport: &'static str) {
        self.transport = Bytes::from_static(transport.as_bytes());
    }

    /// The SIP version of the sent-protocol (`2.0`; anything else makes
    /// the message invalid, but the Via can still route a 505).
    pub fn version(&self) -> &Bytes {
        &self.version
    }

    /// The transport token as written (`UDP`, `TCP`, `TLS`, ...).
    pub fn transport(&self) -> &Bytes {
        &self.transport
    }

    /// The sent-by host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The sent-by port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// All parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// All parameters, mutable.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// The `branch` parameter (the transaction id).
    pub fn branch(&self) -> Option<Branch> {
        self.params.get("branch").flatten().map(Branch::new)
    }

    /// The `received` parameter as an address.
    pub fn received(&self) -> Option<IpAddr> {
        let v = self.params.get("received").flatten()?;
        parse_ip(&v)
    }

    /// The `rport` parameter: `None` when absent, `Some(None)` when present
    /// without a value (a request asking for it), `Some(Some(port))` when
    /// filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| {
            v.and_then(|v| lex::decimal(&v, u64::from(u16::MAX)))
                // decimal() bounded the value by u16::MAX.
                .map(|p| p as u16)
        })
    }

    /// Set `received` (RFC 3261 section 18.2.1).
    pub fn set_received(&mut self, addr: IpAddr) {
        self.params
            .set("received", Some(addr.to_string().as_bytes()));
    }

    /// Fill in `rport` with the source port (RFC 3581 section 4).
    pub fn set_rport(&mut self, port: u16) {
        self.params.set("rport", Some(port.to_string().as_bytes()));
    }
}

fn parse_ip(v: &[u8]) -> Option<IpAddr> {
    let v = v
        .strip_prefix(b"[")
        .and_then(|v| v.strip_suffix(b"]"))
        .unwrap_or(v);
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Encode for Via {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/");
        out.extend_from_slice(&self.version);
        out.push(b'/');
        out.extend_from_slice(&self.transport);
        out.push(b' ');
        self.host.encode(out);
        if let Some(p) = self.port {
            out.push(b':');
            out.extend_from_slice(p.to_string().as_bytes());
        }
        out.extend_from_slice(self.params.as_bytes());
    }
}

/// Parse one Via value (`s` is a sub-slice of `src`, already split at commas).
pub(crate) fn parse_via(src: impl Source, s: &[u8]) -> Result<Via, &'static str> {
    parse_via_versioned(src, s).map(|(via, _)| via)
}

/// [`parse_via`], also telling whether the version is `2.0`.
pub(crate) fn parse_via_versioned(src: impl Source, s: &[u8]) -> Result<(Via, bool), &'static str> {
    let bad = |_| "malformed sent-protocol";
    let (i, name) = token(s).map_err(bad)?;
    let (i, _) = sep(b'/')(i).map_err(bad)?;
    let (i, version) = token(i).map_err(bad)?;
    let (i, _) = sep(b'/')(i).map_err(bad)?;
    let (i, transport) = token(i).map_err(bad)?;
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    let version_ok = matches!(version.iter().position(|&c| c == b'.'), Some(dot) if digits(&version[..dot]) && digits(&version[dot + 1..]));
    if !name.eq_ignore_ascii_case(b"SIP") || !version_ok {
        return Err("sent-protocol is not SIP/x.y");
    }
    let (i, _) = lex::lws(i).map_err(|_| "no space before sent-by")?;
    let (host, i) = parse_host(src, i).ok_or("bad sent-by host")?;
    let (i, port) = match sep(b':')(i) {
        Ok((r, _)) => {
            let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
            let p = lex::decimal(&r[..n], u64::from(u16::MAX)).ok_or("bad sent-by port")?;
            // decimal() bounded the value by u16::MAX.
            (&r[n..], Some(p as u16))
        }
        Err(_) => (i, None),
    };
    let mut bad_param = None;
    let (i, params) = generic_params_with(i, |n, v| {
        let problem = if n.eq_ignore_ascii_case(b"received") && v.and_then(parse_ip).is_none() {
            Some("received is not an IP address")
        } else if n.eq_ignore_ascii_case(b"branch") && v.is_none() {
            Some("empty branch")
        } else if n.eq_ignore_ascii_case(b"rport")
            && v.is_some_and(|v| lex::decimal(v, u64::from(u16::MAX)).is_none())
        {
            Some("bad rport")
        } else {
            None
        };
        bad_param = bad_param.or(problem);
        problem.is_none()
    })
    .map_err(|_| bad_param.unwrap_or("bad parameter"))?;
    let (i, _) = sws(i).map_err(|_| "bad parameter")?;
    if !i.is_empty() {
        return Err("junk after parameters");
    }
    let via = Via {
        version: src.slice(version),
        transport: src.slice(transport),
        host,
        port,
        params: Params::from_raw(src.slice(params)),
    };
    Ok((via, version == b"2.0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &'static str) -> Result<Via, &'static str> {
        let b = Bytes::from_static(s.as_bytes());
        parse_via(&b, &b)
    }

    #[test]
    fn via_with_white_space_everywhere_parses() {
        let v = via("SIP  /   2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
            .unwrap();
        assert_eq!(&v.transport()[..], b"TCP");
        assert_eq!(
            v.host(),
            &Host::domain(Bytes::from_static(b"spindle.example.com"))
        );
        assert_eq!(v.branch(), Some(Branch::from("z9hG4bK9ikj8")));
    }

    #[test]
    fn received_and_rport_are_typed() {
        let v =
            via("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKx;rport=4000;received=2001:db8::9")
                .unwrap();
        assert_eq!(v.port(), Some(5070));
        assert_eq!(v.rport(), Some(Some(4000)));
        assert_eq!(v.received(), Some("2001:db8::9".parse().unwrap()));
        let v = via("SIP/2.0/UDP host;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.rport(), Some(None));
    }

    #[test]
    fn set_received_and_rport_encode_into_the_params() {
        let mut v = via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport").unwrap();
        v.set_received("192.0.2.7".parse().unwrap());
        v.set_rport(40000);
        assert_eq!(
            &v.to_bytes()[..],
            b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;received=192.0.2.7;rport=40000"
        );
    }

    #[test]
    fn malformed_vias_are_rejected() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/x/UDP host",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host:70000",
            "SIP/2.0/UDP host;received=example.com",
            "SIP/2.0/UDP host junk",
        ] {
            assert!(via(bad).is_err(), "{bad} should be rejected");
        }
    }
}
