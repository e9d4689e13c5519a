//! URIs: SIP and SIPS (RFC 3261 section 19.1), tel (RFC 3966) and any other
//! absolute URI kept opaque (RFC 3261 section 25.1 `absoluteURI`). Parts are
//! views of the buffer the URI was parsed from; escapes stay escaped until a
//! caller asks for the decoded form.

use crate::encode::Encode;
use crate::error::Error;
use crate::params::Params;
use crate::parse::lex;
use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod parse;

pub(crate) use parse::{parse_host, parse_uri};

/// A URI as found in a Request-URI or a name-addr.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:`.
    Tel(TelUri),
    /// Any other scheme, kept opaque (the application answers 416).
    Other(OtherUri),
}

/// A `sip:` or `sips:` URI.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    secure: bool,
    user: Option<Bytes>,
    password: Option<Bytes>,
    host: Host,
    port: Option<u16>,
    params: Params,
    headers: Option<Bytes>,
}

/// A `tel:` URI (RFC 3966): the number and its parameters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TelUri {
    number: Bytes,
    params: Params,
}

/// An absolute URI of a scheme this stack does not interpret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OtherUri {
    scheme: Bytes,
    rest: Bytes,
}

/// The host part of a SIP URI or Via sent-by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as written.
    Domain(Bytes),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written as a `[...]` reference).
    Ipv6(Ipv6Addr),
}

/// Where a URI appears; the grammar differs slightly.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriContext {
    /// Request-URI: no headers allowed (RFC 3261 section 19.1.1 table 1).
    RequestUri,
    /// Inside `<...>`.
    NameAddr,
    /// A bare addr-spec in a header: no `?` headers (RFC 3261 section 20).
    AddrSpec,
}

impl Uri {
    /// Parse a whole URI (as it would appear inside `<...>`).
    pub fn parse(src: &Bytes) -> Result<Uri, Error> {
        parse_uri(src, src, UriContext::NameAddr).map_err(Error::Uri)
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The scheme as written in canonical lower case for sip/sips/tel.
    pub fn scheme(&self) -> &[u8] {
        match self {
            Uri::Sip(u) if u.secure => b"sips",
            Uri::Sip(_) => b"sip",
            Uri::Tel(_) => b"tel",
            Uri::Other(o) => &o.scheme,
        }
    }

    /// The user part for SIP (escaped) or the number for tel.
    pub fn user(&self) -> Option<&Bytes> {
        match self {
            Uri::Sip(u) => u.user.as_ref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other(_) => None,
        }
    }
}

impl SipUri {
    /// `sip:host` with no user, port or parameters.
    pub fn new(host: Host) -> SipUri {
        SipUri {
            secure: false,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: None,
        }
    }

    /// Make it `sips:` (or `sip:`).
    pub fn with_secure(mut self, secure: bool) -> SipUri {
        self.secure = secure;
        self
    }

    /// Set the user part; the caller escapes it (RFC 3261 section 19.1.2).
    pub fn with_user(mut self, user: impl Into<Bytes>) -> SipUri {
        self.user = Some(user.into());
        self
    }

    /// Set the port.
    pub fn with_port(mut self, port: u16) -> SipUri {
        self.port = Some(port);
        self
    }

    /// Append a URI parameter.
    pub fn with_param(mut self, name: &str, value: Option<&[u8]>) -> SipUri {
        self.params.push(name, value);
        self
    }

    /// `sips:` rather than `sip:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The user part, still escaped.
    pub fn user(&self) -> Option<&Bytes> {
        self.user.as_ref()
    }

    /// The user part with `%XX` escapes decoded.
    pub fn user_unescaped(&self) -> Option<Cow<'_, [u8]>> {
        self.user.as_ref().map(|u| {
            if u.contains(&b'%') {
                Cow::Owned(lex::unescape(u))
            } else {
                Cow::Borrowed(&u[..])
            }
        })
    }

    /// The password, still escaped.
    pub fn password(&self) -> Option<&Bytes> {
        self.password.as_ref()
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// URI parameters (`;transport=udp;lr`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Mutable URI parameters.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// The raw `?` headers part without the `?`.
    pub fn headers(&self) -> Option<&Bytes> {
        self.headers.as_ref()
    }
}

impl TelUri {
    /// A `tel:` URI for `number` (e.g. `+15551234567`).
    pub fn new(number: impl Into<Bytes>) -> TelUri {
        TelUri {
            number: number.into(),
            params: Params::new(),
        }
    }

    /// The number as written, visual separators included.
    pub fn number(&self) -> &Bytes {
        &self.number
    }

    /// The parameters (`;phone-context=...`).
    pub fn params(&self) -> &Params {
        &self.params
    }
}

impl OtherUri {
    /// The scheme as written.
    pub fn scheme(&self) -> &Bytes {
        &self.scheme
    }

    /// Everything after the first `:`.
    pub fn rest(&self) -> &Bytes {
        &self.rest
    }
}

impl Host {
    /// A domain name host; the caller supplies a valid hostname.
    pub fn domain(name: impl Into<Bytes>) -> Host {
        Host::Domain(name.into())
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

impl Encode for Host {
    fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self {
            Host::Domain(d) => out.extend_from_slice(d),
            // Writing into a Vec cannot fail.
            Host::Ipv4(a) => drop(write!(out, "{a}")),
            Host::Ipv6(a) => drop(write!(out, "[{a}]")),
        }
    }
}

impl Encode for Uri {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Uri::Sip(u) => {
                out.extend_from_slice(if u.secure { b"sips:" } else { b"sip:" });
                if let Some(user) = &u.user {
                    out.extend_from_slice(user);
                    if let Some(pw) = &u.password {
                        out.push(b':');
                        out.extend_from_slice(pw);
                    }
                    out.push(b'@');
                }
                u.host.encode(out);
                if let Some(p) = u.port {
                    out.push(b':');
                    out.extend_from_slice(p.to_string().as_bytes());
                }
                out.extend_from_slice(u.params.as_bytes());
                if let Some(h) = &u.headers {
                    out.push(b'?');
                    out.extend_from_slice(h);
                }
            }
            Uri::Tel(t) => {
                out.extend_from_slice(b"tel:");
                out.extend_from_slice(&t.number);
                out.extend_from_slice(t.params.as_bytes());
            }
            Uri::Other(o) => {
                out.extend_from_slice(&o.scheme);
                out.push(b':');
                out.extend_from_slice(&o.rest);
            }
        }
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({self})")
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Debug for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Uri::Sip(self.clone()))
    }
}

impl fmt::Debug for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Uri::Tel(self.clone()))
    }
}

impl fmt::Debug for OtherUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Uri::Other(self.clone()))
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Uri {
        Uri::Sip(u)
    }
}

impl From<TelUri> for Uri {
    fn from(u: TelUri) -> Uri {
        Uri::Tel(u)
    }
}
