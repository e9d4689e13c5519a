//! Small typed header values: CSeq (RFC 3261 section 20.16), Content-Type
//! media types (section 20.15), Reason (RFC 3326) and the authentication
//! headers' `scheme param=value, ...` shape (RFC 3261 section 20.7, 20.27,
//! 20.28, 20.44; RFC 7616).

use crate::encode::Encode;
use crate::method::Method;
use crate::params::Params;
use crate::parse::lex::Source;
use crate::parse::lex::{self, generic_params, lws, quoted_string, sep, sws, token};
use bytes::Bytes;

/// `CSeq: <seq> <method>`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CSeq {
    /// Sequence number (RFC 3261 limits it to 32 bits).
    pub seq: u32,
    /// The method of the request.
    pub method: Method,
}

impl Encode for CSeq {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.method.as_bytes());
    }
}

pub(crate) fn parse_cseq(s: &[u8]) -> Result<CSeq, &'static str> {
    let s = lex::trim(s);
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let seq = lex::decimal(&s[..n], u64::from(u32::MAX))
        .ok_or("sequence number is not a 32-bit number")?;
    let (i, _) = lws(&s[n..]).map_err(|_| "no space before method")?;
    let (i, m) = token(i).map_err(|_| "bad method")?;
    if !i.is_empty() {
        return Err("junk after method");
    }
    Ok(CSeq {
        // decimal() bounded the value by u32::MAX.
        seq: seq as u32,
        method: Method::from_token(m),
    })
}

/// A media type with parameters, e.g. `application/sdp`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MediaType {
    kind: Bytes,
    subtype: Bytes,
    params: Params,
}

impl MediaType {
    /// `type/subtype` with no parameters.
    pub fn new(kind: &'static str, subtype: &'static str) -> MediaType {
        MediaType {
            kind: Bytes::from_static(kind.as_bytes()),
            subtype: Bytes::from_static(subtype.as_bytes()),
            params: Params::new(),
        }
    }

    /// `application/sdp`.
    pub fn sdp() -> MediaType {
        MediaType::new("application", "sdp")
    }

    /// The top-level type.
    pub fn kind(&self) -> &Bytes {
        &self.kind
    }

    /// The subtype.
    pub fn subtype(&self) -> &Bytes {
        &self.subtype
    }

    /// Parameters (`;charset=...`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether this is `application/sdp` (case-insensitive).
    pub fn is_sdp(&self) -> bool {
        self.kind.eq_ignore_ascii_case(b"application") && self.subtype.eq_ignore_ascii_case(b"sdp")
    }
}

impl Encode for MediaType {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.kind);
        out.push(b'/');
        out.extend_from_slice(&self.subtype);
        out.extend_from_slice(self.params.as_bytes());
    }
}

pub(crate) fn parse_media_type(src: impl Source, s: &[u8]) -> Result<MediaType, &'static str> {
    let bad = |_| "malformed media type";
    let (i, kind) = token(lex::trim(s)).map_err(bad)?;
    let (i, _) = sep(b'/')(i).map_err(bad)?;
    let (i, subtype) = token(i).map_err(bad)?;
    let (i, params) = generic_params(i).map_err(bad)?;
    let (i, _) = sws(i).map_err(bad)?;
    if !i.is_empty() {
        return Err("junk after media type");
    }
    Ok(MediaType {
        kind: src.slice(kind),
        subtype: src.slice(subtype),
        params: Params::from_raw(src.slice(params)),
    })
}

/// One Reason value (RFC 3326): `SIP ;cause=200 ;text="Call completed"`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reason {
    protocol: Bytes,
    params: Params,
}

impl Reason {
    /// A `SIP` reason with a cause code and text.
    pub fn sip(cause: u16, text: &str) -> Reason {
        let mut params = Params::new();
        params.push("cause", Some(cause.to_string().as_bytes()));
        let mut q = Vec::with_capacity(text.len() + 2);
        q.push(b'"');
        for c in text.bytes().filter(|&c| c != b'\r' && c != b'\n') {
            if c == b'"' || c == b'\\' {
                q.push(b'\\');
            }
            q.push(c);
        }
        q.push(b'"');
        params.push("text", Some(&q));
        Reason {
            protocol: Bytes::from_static(b"SIP"),
            params,
        }
    }

    /// The protocol token (`SIP`, `Q.850`).
    pub fn protocol(&self) -> &Bytes {
        &self.protocol
    }

    /// The `cause` parameter.
    pub fn cause(&self) -> Option<u16> {
        let v = self.params.get("cause").flatten()?;
        // Bounded by u16::MAX.
        lex::decimal(&v, u64::from(u16::MAX)).map(|v| v as u16)
    }

    /// The `text` parameter, unquoted.
    pub fn text(&self) -> Option<Vec<u8>> {
        let v = self.params.get("text").flatten()?;
        Some(
            match v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")) {
                Some(inner) => lex::unquote(inner),
                None => v.to_vec(),
            },
        )
    }

    /// All parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
}

impl Encode for Reason {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.protocol);
        out.extend_from_slice(self.params.as_bytes());
    }
}

pub(crate) fn parse_reason(src: impl Source, s: &[u8]) -> Result<Reason, &'static str> {
    let bad = |_| "malformed Reason";
    let (i, protocol) = token(lex::trim(s)).map_err(bad)?;
    let (i, params) = generic_params(i).map_err(bad)?;
    let (i, _) = sws(i).map_err(bad)?;
    if !i.is_empty() {
        return Err("junk after Reason");
    }
    Ok(Reason {
        protocol: src.slice(protocol),
        params: Params::from_raw(src.slice(params)),
    })
}

/// An authentication header value: a challenge (WWW-Authenticate,
/// Proxy-Authenticate) or credentials (Authorization, Proxy-Authorization):
/// `Digest realm="x", nonce="y", ...`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuthValue {
    scheme: Bytes,
    params: Bytes,
}

impl AuthValue {
    /// A value of `scheme` with no parameters yet.
    pub fn new(scheme: &'static str) -> AuthValue {
        AuthValue {
            scheme: Bytes::from_static(scheme.as_bytes()),
            params: Bytes::new(),
        }
    }

    /// Append `name=value`; `quoted` writes the value as a quoted string.
    pub fn push_param(&mut self, name: &str, value: &[u8], quoted: bool) {
        let mut v = Vec::with_capacity(self.params.len() + name.len() + value.len() + 6);
        v.extend_from_slice(&self.params);
        if !v.is_empty() {
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(name.as_bytes());
        v.push(b'=');
        if quoted {
            v.push(b'"');
            for &c in value.iter().filter(|&&c| c != b'\r' && c != b'\n') {
                if c == b'"' || c == b'\\' {
                    v.push(b'\\');
                }
                v.push(c);
            }
            v.push(b'"');
        } else {
            v.extend_from_slice(value);
        }
        self.params = Bytes::from(v);
    }

    /// The scheme (`Digest`).
    pub fn scheme(&self) -> &Bytes {
        &self.scheme
    }

    /// Whether the scheme is `Digest` (case-insensitive).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"Digest")
    }

    /// Every parameter as (name, value) with quoted values unquoted.
    pub fn params(&self) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
        lex::split_commas(&self.params).filter_map(move |item| {
            let eq = item.iter().position(|&c| c == b'=')?;
            let name = lex::trim(&item[..eq]);
            let value = lex::trim(&item[eq + 1..]);
            let value = match value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
            {
                Some(inner) if inner.contains(&b'\\') => Bytes::from(lex::unquote(inner)),
                Some(inner) => self.params.slice_ref(inner),
                None => self.params.slice_ref(value),
            };
            Some((self.params.slice_ref(name), value))
        })
    }

    /// The first parameter named `name` (case-insensitive), unquoted.
    pub fn param(&self, name: &str) -> Option<Bytes> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

impl Encode for AuthValue {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.scheme);
        if !self.params.is_empty() {
            out.push(b' ');
            out.extend_from_slice(&self.params);
        }
    }
}

pub(crate) fn parse_auth(src: impl Source, s: &[u8]) -> Result<AuthValue, &'static str> {
    let s = lex::trim(s);
    let (i, scheme) = token(s).map_err(|_| "bad scheme")?;
    if i.is_empty() {
        return Ok(AuthValue {
            scheme: src.slice(scheme),
            params: Bytes::new(),
        });
    }
    let (params, _) = lws(i).map_err(|_| "no space after scheme")?;
    let mut i = params;
    loop {
        let (r, _) = token(i).map_err(|_| "bad parameter name")?;
        let (r, _) = sep(b'=')(r).map_err(|_| "parameter without =")?;
        let r = if r.first() == Some(&b'"') {
            quoted_string(r)
                .map_err(|_| "unterminated quoted string")?
                .0
        } else {
            token(r).map_err(|_| "bad parameter value")?.0
        };
        match sep(b',')(r) {
            Ok((r, _)) => i = r,
            Err(_) => {
                if !lex::trim(r).is_empty() {
                    return Err("junk after parameters");
                }
                break;
            }
        }
    }
    Ok(AuthValue {
        scheme: src.slice(scheme),
        params: src.slice(lex::trim(params)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_accepts_leading_zeros_and_rejects_overflow() {
        assert_eq!(
            parse_cseq(b"0009 INVITE"),
            Ok(CSeq {
                seq: 9,
                method: Method::Invite
            })
        );
        assert!(parse_cseq(b"36893488147419103232 INVITE").is_err());
        assert!(parse_cseq(b"-1 INVITE").is_err());
        assert!(parse_cseq(b"1").is_err());
    }

    #[test]
    fn auth_params_are_unquoted_and_commas_in_quotes_kept() {
        let b = Bytes::from_static(
            b"Digest realm=\"a,b\", qop=\"auth,auth-int\", nonce=\"n\", algorithm=MD5",
        );
        let a = parse_auth(&b, &b).unwrap();
        assert!(a.is_digest());
        assert_eq!(a.param("realm").as_deref(), Some(&b"a,b"[..]));
        assert_eq!(a.param("QOP").as_deref(), Some(&b"auth,auth-int"[..]));
        assert_eq!(a.param("algorithm").as_deref(), Some(&b"MD5"[..]));
    }

    #[test]
    fn built_auth_value_round_trips() {
        let mut a = AuthValue::new("Digest");
        a.push_param("username", b"bob", true);
        a.push_param("nc", b"00000001", false);
        let bytes = a.to_bytes();
        assert_eq!(&bytes[..], b"Digest username=\"bob\", nc=00000001");
        assert_eq!(parse_auth(&bytes, &bytes), Ok(a));
    }

    #[test]
    fn reason_cause_and_text_are_typed() {
        let r = Reason::sip(200, "Call \"done\"");
        let b = r.to_bytes();
        assert_eq!(&b[..], b"SIP;cause=200;text=\"Call \\\"done\\\"\"");
        let p = parse_reason(&b, &b).unwrap();
        assert_eq!(p.cause(), Some(200));
        assert_eq!(p.text().as_deref(), Some(&b"Call \"done\""[..]));
    }
}
