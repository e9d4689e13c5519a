//! `sip.tcp_bind`, `sip.tls_*` and the connection limits: SIP over TCP and
//! TLS (RFC 3261 section 18). Every certificate and key file is loaded
//! here, so a file rustls cannot use is a configuration error at start,
//! not a failed handshake later. Relative paths are relative to the
//! configuration file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use callbridge_llm_bridge::TlsRoots;
use callbridge_session::dns::{Destination, Locate};
use callbridge_sip::driver::tls::{self, CertFiles, TlsClient, Trust};
use callbridge_sip::transport::Transport;
use callbridge_sip::{Host, Uri};

use super::check::Check;
use super::error::ConfigError;

/// The validated SIP stream transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTransport {
    /// `sip.tcp_bind`: the TCP listener.
    pub tcp_bind: Option<SocketAddr>,
    /// `sip.tls_bind` with `sip.tls_cert` and `sip.tls_key`.
    pub tls_bind: Option<(SocketAddr, CertFiles)>,
    /// `sip.tls_ca`: the only CA outbound TLS trusts; `None`: `tls.roots`.
    pub tls_ca: Option<PathBuf>,
    /// `sip.tls_client_cert` and `sip.tls_client_key`.
    pub client_cert: Option<CertFiles>,
    /// `sip.max_connections`.
    pub max_connections: usize,
    /// `sip.max_connections_per_ip`.
    pub max_per_ip: usize,
    /// `sip.connection_idle_timeout`.
    pub idle_timeout: Duration,
    /// `sip.udp_to_tcp`: requests over 1,300 bytes go over TCP (RFC 3261
    /// section 18.1.1); only with `sip.tcp_bind`.
    pub udp_to_tcp: bool,
    /// `sip.dns_servers`: the name servers RFC 3263 locations ask
    /// (`ip:port`); empty: the system's.
    pub dns_servers: Vec<SocketAddr>,
}

impl SipTransport {
    /// The outbound TLS client settings (`roots` from `tls.roots`).
    pub fn tls_client(&self, roots: TlsRoots) -> TlsClient {
        TlsClient {
            trust: match &self.tls_ca {
                Some(ca) => Trust::CaFile(ca.clone()),
                None => Trust::Roots(roots),
            },
            client_cert: self.client_cert.clone(),
        }
    }
}

/// Where SIP requests go: an address or a domain to locate (RFC 3263),
/// the transport, and for TLS the name the server's certificate must
/// carry (a domain; `None`: its IP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address, or the domain located when a request goes out.
    pub addr: Destination,
    /// The transport the Request-URI names (a located domain's DNS
    /// records may pick another per target).
    pub transport: Transport,
    /// The host name in the URI, when it is a domain.
    pub name: Option<String>,
}

/// `v` as a target: `host:port` (UDP; port 5060 when absent; resolved
/// now), or a SIP URI whose scheme and `transport` parameter pick the
/// transport (RFC 3263 section 4.1: `sips:` is TLS, port 5061 when absent;
/// `;transport=tcp`). A URI whose host is a domain is located by RFC 3263
/// (NAPTR, SRV, A/AAAA) each time a request goes out, not now. `None`
/// when it does not resolve or names a transport we lack.
pub fn target(v: &str, resolve: impl Fn(&str) -> Option<SocketAddr>) -> Option<Target> {
    let v = v.trim();
    let is_uri = ["sip:", "sips:"]
        .iter()
        .any(|s| v.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)));
    if !is_uri {
        return Some(Target {
            addr: Destination::Addr(resolve(v)?),
            transport: Transport::Udp,
            name: None,
        });
    }
    let uri = Uri::parse(&Bytes::from(v.to_owned())).ok()?;
    let sip = uri.as_sip()?;
    let transport = Transport::of_uri(sip)?;
    let host = match sip.host() {
        Host::Domain(d) => {
            let d = String::from_utf8_lossy(d).into_owned();
            return Some(Target {
                addr: Destination::Locate(locate_of(sip, &d)?),
                transport,
                name: Some(d),
            });
        }
        Host::Ipv4(a) => a.to_string(),
        Host::Ipv6(a) => format!("[{a}]"),
    };
    let port = sip.port().unwrap_or(match transport {
        Transport::Tls => 5061,
        _ => 5060,
    });
    Some(Target {
        addr: Destination::Addr(resolve(&format!("{host}:{port}"))?),
        transport,
        name: None,
    })
}

/// What RFC 3263 locates for a SIP URI whose host is the domain `host`:
/// its port, its explicit `;transport=` and its scheme. `None` for a
/// transport we lack.
pub fn locate_of(sip: &callbridge_sip::SipUri, host: &str) -> Option<Locate> {
    let transport = match sip.params().get("transport") {
        Some(Some(t)) => Some(Transport::from_token(&t)?),
        _ => None,
    };
    Some(Locate {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port: sip.port(),
        transport,
        secure: sip.is_secure(),
    })
}

fn path(c: &Check<'_>, key: &str, base: &Path) -> Option<Option<PathBuf>> {
    c.optional(key).map(|v| match v.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(base.join(p)),
    })
}

/// A certificate and key pair of keys: both or neither.
fn pair(
    c: &Check<'_>,
    (cert_key, key_key): (&str, &str),
    base: &Path,
) -> Option<Option<CertFiles>> {
    match (path(c, cert_key, base)?, path(c, key_key, base)?) {
        (Some(cert), Some(key)) => Some(Some(CertFiles { cert, key })),
        (None, None) => Some(None),
        (Some(_), None) => missing(c, key_key, &format!("the private key for {cert_key}")),
        (None, Some(_)) => missing(c, cert_key, &format!("the certificate for {key_key}")),
    }
}

fn missing<T>(c: &Check<'_>, key: &str, expected: &str) -> Option<T> {
    c.push(ConfigError::Missing {
        key: key.into(),
        expected: expected.into(),
    });
    None
}

/// Reads and checks the keys.
pub fn read(c: &Check<'_>, base: &Path) -> Option<SipTransport> {
    let bind = |key: &str| {
        c.optional(key)
            .and_then(|v| match v.as_deref().map(str::trim) {
                None | Some("") => Some(None),
                Some(a) => c.addr(key, a).map(Some),
            })
    };
    let tcp_bind = bind("sip.tcp_bind");
    let tls_addr = bind("sip.tls_bind");
    let server = pair(c, ("sip.tls_cert", "sip.tls_key"), base);
    let tls_ca = path(c, "sip.tls_ca", base);
    let client_cert = pair(c, ("sip.tls_client_cert", "sip.tls_client_key"), base);
    let max_connections = c.count("sip.max_connections", 1_000_000);
    let max_per_ip = c.count("sip.max_connections_per_ip", 1_000_000);
    let idle_timeout = c.duration("sip.connection_idle_timeout");
    let udp_to_tcp = c.flag("sip.udp_to_tcp");
    let dns_servers = c.list("sip.dns_servers").and_then(|l| {
        l.iter()
            .map(|v| c.addr("sip.dns_servers", v))
            .collect::<Option<Vec<SocketAddr>>>()
    });

    let tls_bind = match (tls_addr?, server?) {
        (Some(addr), Some(files)) => match tls::server_config(&files) {
            Ok(_) => Some((addr, files)),
            Err(e) => {
                return c.invalid(
                    "sip.tls_cert",
                    format!("{:?}", files.cert.display().to_string()),
                    &format!("a PEM certificate chain with sip.tls_key its PEM private key ({e})"),
                );
            }
        },
        (Some(_), None) => {
            return missing(
                c,
                "sip.tls_cert",
                "a PEM certificate chain (and sip.tls_key) for sip.tls_bind",
            );
        }
        (None, Some(files)) => {
            return c.invalid(
                "sip.tls_cert",
                format!("{:?}", files.cert.display().to_string()),
                "set only with sip.tls_bind (the TLS listener it serves)",
            );
        }
        (None, None) => None,
    };
    let tls_ca = tls_ca?;
    let client_cert = client_cert?;
    // The CA and the client certificate are loaded now (the bundled roots
    // stand in for tls.roots: the system store is read when first needed).
    let probe = TlsClient {
        trust: match &tls_ca {
            Some(ca) => Trust::CaFile(ca.clone()),
            None => Trust::Roots(TlsRoots::Bundled),
        },
        client_cert: client_cert.clone(),
    };
    if let Err(e) = tls::client_config(&probe) {
        let (key, value) = match (&tls_ca, &client_cert) {
            (Some(ca), _)
                if tls::client_config(&TlsClient {
                    trust: Trust::CaFile(ca.clone()),
                    client_cert: None,
                })
                .is_err() =>
            {
                ("sip.tls_ca", ca.display().to_string())
            }
            (_, Some(files)) => ("sip.tls_client_cert", files.cert.display().to_string()),
            _ => ("sip.tls_ca", String::new()),
        };
        return c.invalid(
            key,
            format!("{value:?}"),
            &format!("usable PEM files ({e})"),
        );
    }
    Some(SipTransport {
        tcp_bind: tcp_bind?,
        tls_bind,
        tls_ca,
        client_cert,
        max_connections: max_connections?.max(1),
        max_per_ip: max_per_ip?.max(1),
        idle_timeout: idle_timeout?,
        udp_to_tcp: udp_to_tcp?,
        dns_servers: dns_servers?,
    })
}
