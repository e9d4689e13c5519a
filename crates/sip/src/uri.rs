//! URIs: SIP and SIPS (RFC 3261 section 19.1), tel (RFC 3966) and any other
//! absolute URI kept opaque (RFC 3261 section 25.1 `absoluteURI`). Parts are
//! views of the buffer the URI was parsed from; escapes stay escaped until a
//! caller asks for the decoded form.

use crate::encode::Encode;
use crate::error::Error;
use crate::params::Params;
use crate::parse::lex::Source;
use crate::parse::lex::{self, check_escaped};
use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

static HOST: [bool; 256] = lex::class(b"-.");
static USER: [bool; 256] = lex::uri_class(b"&=+$,;?/");
static PASSWORD: [bool; 256] = lex::uri_class(b"&=+$,");
static PARAM: [bool; 256] = lex::uri_class(b"[]/:&+$");
static HEADER: [bool; 256] = lex::uri_class(b"[]/?:+$");
static URIC: [bool; 256] = lex::uri_class(b";/?:@&=+$,");

fn is_user_char(c: u8) -> bool {
    USER[usize::from(c)]
}

fn is_password_char(c: u8) -> bool {
    PASSWORD[usize::from(c)]
}

fn is_param_char(c: u8) -> bool {
    PARAM[usize::from(c)]
}

fn is_header_char(c: u8) -> bool {
    HEADER[usize::from(c)]
}

fn is_uric(c: u8) -> bool {
    URIC[usize::from(c)]
}

fn is_scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"+-.".contains(&c)
}

/// Parse `s` (a sub-slice of `src`) as one whole URI.
pub(crate) fn parse_uri(src: impl Source, s: &[u8], ctx: UriContext) -> Result<Uri, &'static str> {
    let colon = memchr::memchr(b':', s).ok_or("no scheme")?;
    let scheme = &s[..colon];
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme.iter().all(|&c| is_scheme_char(c))
    {
        return Err("bad scheme");
    }
    let rest = &s[colon + 1..];
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        parse_sip(src, rest, scheme.len() == 4, ctx).map(Uri::Sip)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        parse_tel(src, rest).map(Uri::Tel)
    } else {
        if rest.is_empty() || !check_escaped(rest, |c| is_uric(c) || c == b'#') {
            return Err("bad characters in URI");
        }
        Ok(Uri::Other(OtherUri {
            scheme: src.slice(scheme),
            rest: src.slice(rest),
        }))
    }
}

fn parse_sip(
    src: impl Source,
    s: &[u8],
    secure: bool,
    ctx: UriContext,
) -> Result<SipUri, &'static str> {
    let (user, password, hostpart) = match memchr::memchr(b'@', s) {
        Some(at) => {
            let userinfo = &s[..at];
            let (user, pw) = match userinfo.iter().position(|&c| c == b':') {
                Some(k) => (&userinfo[..k], Some(&userinfo[k + 1..])),
                None => (userinfo, None),
            };
            if user.is_empty() || !check_escaped(user, is_user_char) {
                return Err("bad user part");
            }
            if let Some(pw) = pw {
                if !check_escaped(pw, is_password_char) {
                    return Err("bad password");
                }
            }
            (
                Some(src.slice(user)),
                pw.map(|p| src.slice(p)),
                &s[at + 1..],
            )
        }
        None => (None, None, s),
    };
    let (host, rest) = parse_host(src, hostpart).ok_or("bad host")?;
    let (port, rest) = match rest.strip_prefix(b":") {
        Some(r) => {
            let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
            let port = lex::decimal(&r[..n], u64::from(u16::MAX)).ok_or("bad port")?;
            // decimal() bounded the value by u16::MAX.
            (Some(port as u16), &r[n..])
        }
        None => (None, rest),
    };
    let (params, headers) = match memchr::memchr(b'?', rest) {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    if !params.is_empty() {
        if params[0] != b';' {
            return Err("junk after host");
        }
        for p in params[1..].split(|&c| c == b';') {
            let (name, value) = match p.iter().position(|&c| c == b'=') {
                Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
                None => (p, None),
            };
            if name.is_empty() || !check_escaped(name, is_param_char) {
                return Err("bad URI parameter");
            }
            if let Some(v) = value {
                if v.is_empty() || !check_escaped(v, is_param_char) {
                    return Err("bad URI parameter value");
                }
            }
        }
    }
    if let Some(h) = headers {
        match ctx {
            UriContext::RequestUri => return Err("headers are not allowed in a Request-URI"),
            UriContext::AddrSpec => return Err("a URI with headers must be in <...>"),
            UriContext::NameAddr => {}
        }
        for hv in h.split(|&c| c == b'&') {
            let eq = hv.iter().position(|&c| c == b'=').ok_or("bad URI header")?;
            if eq == 0
                || !check_escaped(&hv[..eq], is_header_char)
                || !check_escaped(&hv[eq + 1..], is_header_char)
            {
                return Err("bad URI header");
            }
        }
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: Params::from_raw(src.slice(params)),
        headers: headers.map(|h| src.slice(h)),
    })
}

fn parse_tel(src: impl Source, s: &[u8]) -> Result<TelUri, &'static str> {
    let end = s.iter().position(|&c| c == b';').unwrap_or(s.len());
    let number = &s[..end];
    if number.is_empty()
        || !number
            .iter()
            .all(|&c| c.is_ascii_hexdigit() || b"*#+-.()".contains(&c))
    {
        return Err("bad telephone number");
    }
    let params = &s[end..];
    if !params.is_empty() {
        for p in params[1..].split(|&c| c == b';') {
            if p.is_empty() || !check_escaped(p, |c| is_param_char(c) || c == b'=') {
                return Err("bad tel parameter");
            }
        }
    }
    Ok(TelUri {
        number: src.slice(number),
        params: Params::from_raw(src.slice(params)),
    })
}

/// A dotted-quad IPv4 address (four decimal octets, no leading `+`).
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut k = 0;
    let mut value: u16 = 0;
    let mut digits = 0;
    for &c in s {
        if c == b'.' {
            if digits == 0 || k == 3 {
                return None;
            }
            // value <= 255, checked below as each digit arrives.
            octets[k] = value as u8;
            k += 1;
            value = 0;
            digits = 0;
        } else {
            value = value * 10 + u16::from(c.wrapping_sub(b'0'));
            digits += 1;
            if !c.is_ascii_digit() || digits > 3 || value > 255 {
                return None;
            }
        }
    }
    if digits == 0 || k != 3 {
        return None;
    }
    octets[3] = value as u8;
    Some(Ipv4Addr::from(octets))
}

/// Parse a host at the start of `s`; returns it and the rest.
pub(crate) fn parse_host(src: impl Source, s: &[u8]) -> Option<(Host, &[u8])> {
    if s.first() == Some(&b'[') {
        let end = s.iter().position(|&c| c == b']')?;
        let text = std::str::from_utf8(&s[1..end]).ok()?;
        let addr: Ipv6Addr = text.parse().ok()?;
        return Some((Host::Ipv6(addr), &s[end + 1..]));
    }
    let n = s
        .iter()
        .position(|&c| !HOST[usize::from(c)])
        .unwrap_or(s.len());
    let name = &s[..n];
    let numeric = name.iter().all(|&c| c.is_ascii_digit() || c == b'.');
    if !numeric {
        // hostname = *( domainlabel "." ) toplabel [ "." ]
        let trimmed = name.strip_suffix(b".").unwrap_or(name);
        for label in trimmed.split(|&c| c == b'.') {
            match (label.first(), label.last()) {
                (Some(&a), Some(&z)) if a != b'-' && z != b'-' => {}
                _ => return None,
            }
        }
    }
    if name.is_empty() {
        return None;
    }
    if numeric {
        return Some((Host::Ipv4(parse_ipv4(name)?), &s[n..]));
    }
    Some((Host::Domain(src.slice(name)), &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &'static str) -> Result<Uri, &'static str> {
        let b = Bytes::from_static(s.as_bytes());
        parse_uri(&b, &b, UriContext::NameAddr)
    }

    #[test]
    fn sip_uri_parts_are_split_out() {
        let Ok(Uri::Sip(u)) =
            uri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi")
        else {
            panic!("expected a SIP URI");
        };
        assert!(u.is_secure());
        assert_eq!(u.user().map(|b| &b[..]), Some(&b"alice"[..]));
        assert_eq!(u.password().map(|b| &b[..]), Some(&b"secret"[..]));
        assert_eq!(u.host(), &Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(
            u.params().get("transport"),
            Some(Some(Bytes::from_static(b"tcp")))
        );
        assert!(u.params().contains("lr"));
        assert_eq!(u.headers().map(|b| &b[..]), Some(&b"subject=hi"[..]));
    }

    #[test]
    fn escaped_user_is_decoded_on_request() {
        let Ok(Uri::Sip(u)) = uri("sip:sips%3Auser%40example.com@example.net") else {
            panic!("expected a SIP URI");
        };
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some(&b"sips:user@example.com"[..])
        );
        assert_eq!(u.host(), &Host::domain(Bytes::from_static(b"example.net")));
    }

    #[test]
    fn user_may_contain_semicolon_params_before_the_at_sign() {
        let Ok(Uri::Sip(u)) = uri("sip:user;par=u%40example.net@example.com") else {
            panic!("expected a SIP URI");
        };
        assert_eq!(
            u.user().map(|b| &b[..]),
            Some(&b"user;par=u%40example.net"[..])
        );
        assert!(u.params().is_empty());
    }

    #[test]
    fn tel_and_unknown_schemes_parse() {
        assert!(matches!(
            uri("tel:+1-201-555-0123;phone-context=example.com"),
            Ok(Uri::Tel(_))
        ));
        assert!(matches!(
            uri("nobodyKnowsThisScheme:totallyopaquecontent"),
            Ok(Uri::Other(_))
        ));
        assert!(matches!(
            uri("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other(_))
        ));
    }

    #[test]
    fn malformed_uris_are_rejected() {
        for bad in [
            "sip:user@",
            "sip:user@exa mple.com",
            "sip:user@example.com:99999",
            "sip:us%2@example.com",
            "sip:user@example.com;;lr",
            "sip:user@[::1",
            "sip:user@300.1.1.1",
            "<sip:user@example.com>",
            "sip:user@example.com?Route",
        ] {
            assert!(uri(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn ipv4_hosts_are_four_octets_of_at_most_255() {
        assert_eq!(parse_ipv4(b"192.0.2.1"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            parse_ipv4(b"010.0.0.255"),
            Some(Ipv4Addr::new(10, 0, 0, 255))
        );
        for bad in [
            &b"1.2.3"[..],
            b"1..2.3",
            b"256.1.1.1",
            b"1.2.3.4.5",
            b"1.2.3.",
            b".1.2.3",
            b"1.2.3.0004",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_uri_rejects_headers() {
        let b = Bytes::from_static(b"sip:user@example.com?Route=%3Csip:example.com%3E");
        assert!(parse_uri(&b, &b, UriContext::RequestUri).is_err());
        assert!(parse_uri(&b, &b, UriContext::NameAddr).is_ok());
    }

    #[test]
    fn encode_writes_what_was_parsed() {
        for s in [
            "sip:alice@example.com:5060;transport=udp",
            "sips:[2001:db8::1]",
            "sip:192.0.2.1;lr",
            "tel:+15551234;phone-context=x",
        ] {
            assert_eq!(uri(s).unwrap().to_bytes(), s.as_bytes());
        }
    }
}
