//! `name-addr` and `addr-spec` (RFC 3261 section 20.10, 25.1) as used by
//! From, To, Contact, Route and Record-Route, with header parameters.

use crate::encode::Encode;
use crate::ids::Tag;
use crate::params::Params;
use crate::parse::lex::Source;
use crate::parse::lex::{self, generic_params, is_wsp, quoted_string, sws, token};
use crate::uri::{Uri, UriContext, parse_uri};
use bytes::Bytes;
use std::borrow::Cow;

/// An address with optional display name and header parameters, e.g.
/// `"Alice" <sip:alice@example.com>;tag=1928301774`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NameAddr {
    display: Option<Bytes>,
    uri: Uri,
    params: Params,
    angle: bool,
}

impl NameAddr {
    /// `<uri>` with no display name and no parameters.
    pub fn new(uri: impl Into<Uri>) -> NameAddr {
        NameAddr {
            display: None,
            uri: uri.into(),
            params: Params::new(),
            angle: true,
        }
    }

    /// Set a display name; it is written as a quoted string with `"` and
    /// `\` escaped.
    pub fn with_display_name(mut self, name: &str) -> NameAddr {
        let mut v = Vec::with_capacity(name.len() + 2);
        v.push(b'"');
        for c in name.bytes().filter(|&c| c != b'\r' && c != b'\n') {
            if c == b'"' || c == b'\\' {
                v.push(b'\\');
            }
            v.push(c);
        }
        v.push(b'"');
        self.display = Some(Bytes::from(v));
        self
    }

    /// Append a header parameter.
    pub fn with_param(mut self, name: &str, value: Option<&[u8]>) -> NameAddr {
        self.params.push(name, value);
        self
    }

    /// Set the `tag` parameter.
    pub fn with_tag(mut self, tag: &Tag) -> NameAddr {
        self.params.set("tag", Some(tag.as_bytes()));
        self
    }

    /// The display name as written (quotes included when quoted).
    pub fn display_raw(&self) -> Option<&Bytes> {
        self.display.as_ref()
    }

    /// The display name with quotes and escapes removed.
    pub fn display_name(&self) -> Option<Cow<'_, [u8]>> {
        let d = self.display.as_ref()?;
        Some(
            match d.strip_prefix(b"\"").and_then(|d| d.strip_suffix(b"\"")) {
                Some(inner) if inner.contains(&b'\\') => Cow::Owned(lex::unquote(inner)),
                Some(inner) => Cow::Borrowed(inner),
                None => Cow::Borrowed(&d[..]),
            },
        )
    }

    /// The URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Header parameters (after the URI).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Header parameters, mutable.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<Tag> {
        self.params.get("tag").flatten().map(Tag::new)
    }

    /// Contact `expires` parameter in seconds.
    pub fn expires(&self) -> Option<u32> {
        let v = self.params.get("expires").flatten()?;
        // Bounded by u32::MAX.
        lex::decimal(&v, u64::from(u32::MAX)).map(|v| v as u32)
    }
}

impl Encode for NameAddr {
    fn encode(&self, out: &mut Vec<u8>) {
        if let Some(d) = &self.display {
            out.extend_from_slice(d);
            out.push(b' ');
        }
        let angle = self.angle || self.display.is_some();
        if angle {
            out.push(b'<');
        }
        self.uri.encode(out);
        if angle {
            out.push(b'>');
        }
        out.extend_from_slice(self.params.as_bytes());
    }
}

/// Parse one name-addr or addr-spec with header parameters.
pub(crate) fn parse_name_addr(src: impl Source, s: &[u8]) -> Result<NameAddr, &'static str> {
    let s = lex::trim(s);
    let mut display = None;
    let mut rest = s;
    if s.first() == Some(&b'"') {
        let (r, _) = quoted_string(s).map_err(|_| "unterminated quoted display name")?;
        display = Some(&s[..s.len() - r.len()]);
        let (r, _) = sws(r).map_err(|_| "bad display name")?;
        if r.first() != Some(&b'<') {
            return Err("display name without <...>");
        }
        rest = r;
    } else {
        // display-name = *(token LWS): find out whether tokens precede '<'.
        let mut i = s;
        let mut last_end = 0;
        while let Ok((r, _)) = token(i) {
            last_end = s.len() - r.len();
            let (r2, _) = sws(r).map_err(|_| "bad display name")?;
            i = r2;
        }
        if i.first() == Some(&b'<') {
            if last_end > 0 {
                display = Some(&s[..last_end]);
            }
            rest = i;
        }
    }
    let (uri, angle, after) = if let Some(r) = rest.strip_prefix(b"<") {
        let end = memchr::memchr(b'>', r).ok_or("missing >")?;
        let inner = &r[..end];
        if memchr::memchr2(b' ', b'\t', inner).is_some() {
            return Err("white space inside <...>");
        }
        let uri = parse_uri(src, inner, UriContext::NameAddr)?;
        (uri, true, &r[end + 1..])
    } else {
        let end = rest
            .iter()
            .position(|&c| c == b';' || is_wsp(c) || c == b',')
            .unwrap_or(rest.len());
        let uri = parse_uri(src, &rest[..end], UriContext::AddrSpec)?;
        (uri, false, &rest[end..])
    };
    let (i, params) = generic_params(after).map_err(|_| "bad header parameter")?;
    let (i, _) = sws(i).map_err(|_| "bad header parameter")?;
    if !i.is_empty() {
        return Err("junk after address");
    }
    Ok(NameAddr {
        display: display.map(|d| src.slice(d)),
        uri,
        params: Params::from_raw(src.slice(params)),
        angle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &'static str) -> Result<NameAddr, &'static str> {
        let b = Bytes::from_static(s.as_bytes());
        parse_name_addr(&b, &b)
    }

    #[test]
    fn quoted_display_name_is_unescaped() {
        let a = na(r#""J Rosenberg \\\"" <sip:jdrosen@example.com> ; tag = 98asjd8"#).unwrap();
        assert_eq!(a.display_name().as_deref(), Some(&br#"J Rosenberg \""#[..]));
        assert_eq!(a.tag(), Some(Tag::from("98asjd8")));
    }

    #[test]
    fn token_display_name_may_touch_the_angle_bracket() {
        let a = na("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_name().as_deref(), Some(&b"caller"[..]));
        assert_eq!(a.tag(), Some(Tag::from("323")));
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let a = na("sip:caller@example.net;tag=134161461246").unwrap();
        assert_eq!(a.tag(), Some(Tag::from("134161461246")));
        assert!(a.uri().as_sip().is_some_and(|u| u.params().is_empty()));
    }

    #[test]
    fn invalid_addresses_are_rejected() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:joe@example.org",
        ] {
            assert!(na(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn built_address_encodes_exactly() {
        let uri = Uri::parse(&Bytes::from_static(b"sip:bob@example.com")).unwrap();
        let a = NameAddr::new(uri)
            .with_display_name("Bob \"B\"")
            .with_tag(&Tag::from("abc"));
        assert_eq!(
            &a.to_bytes()[..],
            br#""Bob \"B\"" <sip:bob@example.com>;tag=abc"#
        );
    }
}
