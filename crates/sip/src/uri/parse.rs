//! The URI grammar of RFC 3261 section 25.1 (SIP-URI, SIPS-URI,
//! absoluteURI) and RFC 3966 (tel), checked byte by byte with lookup tables.

use super::{Host, OtherUri, SipUri, TelUri, Uri, UriContext};
use crate::params::Params;
use crate::parse::lex::{self, Source, check_escaped};
use std::net::{Ipv4Addr, Ipv6Addr};

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
            if let Some(pw) = pw
                && !check_escaped(pw, is_password_char)
            {
                return Err("bad password");
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
            if let Some(v) = value
                && (v.is_empty() || !check_escaped(v, is_param_char))
            {
                return Err("bad URI parameter value");
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
    use crate::encode::Encode;
    use bytes::Bytes;

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
