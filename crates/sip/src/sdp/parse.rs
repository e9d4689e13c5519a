//! The SDP line parser (RFC 4566 section 5): `<type>=<value>` lines, CRLF or
//! LF ends, session section then media sections.

use super::{
    Address, Attribute, Connection, MAX_LINES, MAX_MEDIA, MAX_SDP_LEN, Media, Origin, Rtcp, RtpMap,
    SdpError, Session,
};

fn syntax(line: usize, reason: &'static str) -> SdpError {
    SdpError::Syntax { line, reason }
}

pub(super) fn parse(body: &[u8]) -> Result<Session, SdpError> {
    if body.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge("size"));
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut version = false;
    let mut origin = None;
    let mut name = None;
    let mut session = Session {
        origin: Origin {
            username: String::new(),
            session_id: 0,
            session_version: 0,
            address: Address::Other {
                addr_type: String::new(),
                address: String::new(),
            },
        },
        name: String::new(),
        connection: None,
        bandwidth: Vec::new(),
        timing: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
        media: Vec::new(),
    };
    let mut lines = 0;
    for (k, raw) in text.split('\n').enumerate() {
        let n = k + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        lines += 1;
        if lines > MAX_LINES {
            return Err(SdpError::TooLarge("line count"));
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(syntax(n, "not a <type>=<value> line"));
        }
        let kind = char::from(bytes[0]);
        let value = &line[2..];
        if value.contains('\r') || value.contains('\0') {
            return Err(syntax(n, "control character in value"));
        }
        if !version {
            if kind != 'v' || value != "0" {
                return Err(syntax(n, "first line must be v=0"));
            }
            version = true;
            continue;
        }
        match (kind, session.media.last_mut()) {
            ('v', _) => return Err(syntax(n, "repeated v=")),
            ('m', _) => {
                if session.media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooLarge("media count"));
                }
                session
                    .media
                    .push(media_line(value).ok_or(syntax(n, "malformed m= line"))?);
            }
            ('a', Some(m)) => m
                .attributes
                .push(attribute(value).ok_or(syntax(n, "malformed a= line"))?),
            ('c', Some(m)) => {
                m.connection = Some(Connection {
                    address: address(value).ok_or(syntax(n, "malformed c= line"))?,
                });
            }
            ('b', Some(m)) => m.bandwidth.push(value.to_owned()),
            ('i' | 'k', Some(m)) => m.other.push((kind, value.to_owned())),
            (_, Some(_)) => return Err(syntax(n, "line type not allowed in a media section")),
            ('o', None) => {
                if origin.is_some() {
                    return Err(syntax(n, "repeated o="));
                }
                origin = Some(origin_line(value).ok_or(syntax(n, "malformed o= line"))?);
            }
            ('s', None) => {
                if name.is_some() {
                    return Err(syntax(n, "repeated s="));
                }
                name = Some(value.to_owned());
            }
            ('c', None) => {
                session.connection = Some(Connection {
                    address: address(value).ok_or(syntax(n, "malformed c= line"))?,
                });
            }
            ('b', None) => session.bandwidth.push(value.to_owned()),
            ('t', None) => {
                let mut parts = value.split(' ');
                let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
                if !ok {
                    return Err(syntax(n, "malformed t= line"));
                }
                session.timing.push(value.to_owned());
            }
            ('a', None) => session
                .attributes
                .push(attribute(value).ok_or(syntax(n, "malformed a= line"))?),
            ('i' | 'u' | 'e' | 'p' | 'r' | 'z' | 'k', None) => {
                session.other.push((kind, value.to_owned()))
            }
            _ => return Err(syntax(n, "unknown line type")),
        }
    }
    if !version {
        return Err(SdpError::Missing("v="));
    }
    // The writer emits i/u/e/p before c= and r/z/k after t= (RFC 4566
    // section 5 order); keep the stored order the same so that a written
    // session parses back equal.
    session
        .other
        .sort_by_key(|(c, _)| matches!(c, 'r' | 'z' | 'k'));
    for m in &mut session.media {
        m.other.sort_by_key(|(c, _)| *c == 'k');
    }
    session.origin = origin.ok_or(SdpError::Missing("o="))?;
    session.name = name.ok_or(SdpError::Missing("s="))?;
    if session.timing.is_empty() {
        return Err(SdpError::Missing("t="));
    }
    Ok(session)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic())
}

fn address_parts(net: &str, addr_type: &str, addr: &str) -> Option<Address> {
    if net != "IN" || !is_token(addr) {
        return None;
    }
    match (addr_type, addr.parse()) {
        ("IP4", Ok(ip @ std::net::IpAddr::V4(_))) | ("IP6", Ok(ip @ std::net::IpAddr::V6(_))) => {
            Some(Address::Ip(ip))
        }
        ("IP4" | "IP6", _) => Some(Address::Other {
            addr_type: addr_type.to_owned(),
            address: addr.to_owned(),
        }),
        _ => None,
    }
}

fn address(v: &str) -> Option<Address> {
    let mut p = v.split(' ');
    let (Some(net), Some(t), Some(a), None) = (p.next(), p.next(), p.next(), p.next()) else {
        return None;
    };
    address_parts(net, t, a)
}

fn origin_line(v: &str) -> Option<Origin> {
    let p: Vec<&str> = v.split(' ').collect();
    let [user, id, version, net, t, a] = p.as_slice() else {
        return None;
    };
    if !is_token(user) {
        return None;
    }
    Some(Origin {
        username: (*user).to_owned(),
        session_id: id.parse().ok()?,
        session_version: version.parse().ok()?,
        address: address_parts(net, t, a)?,
    })
}

fn media_line(v: &str) -> Option<Media> {
    let mut p = v.split(' ');
    let kind = p.next().filter(|k| is_token(k))?;
    let port_spec = p.next()?;
    let (port, port_count) = match port_spec.split_once('/') {
        Some((a, b)) => (a.parse().ok()?, Some(b.parse().ok()?)),
        None => (port_spec.parse().ok()?, None),
    };
    let protocol = p.next().filter(|k| is_token(k))?;
    let formats: Vec<String> = p.map(str::to_owned).collect();
    if formats.iter().any(|f| !is_token(f)) {
        return None;
    }
    Some(Media {
        kind: kind.to_owned(),
        port,
        port_count,
        protocol: protocol.to_owned(),
        formats,
        connection: None,
        bandwidth: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
    })
}

fn attribute(v: &str) -> Option<Attribute> {
    let (name, value) = match v.split_once(':') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (v, None),
    };
    if !is_token(name) {
        return None;
    }
    Some(Attribute {
        name: name.to_owned(),
        value,
    })
}

pub(super) fn rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty())?;
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        payload_type: pt.parse().ok().filter(|&p: &u8| p < 128)?,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

pub(super) fn rtcp(v: &str) -> Option<Rtcp> {
    let mut p = v.trim().splitn(2, ' ');
    let port = p.next()?.parse().ok()?;
    let address = match p.next() {
        Some(rest) => Some(address(rest)?),
        None => None,
    };
    Some(Rtcp { port, address })
}
