//! Lexical building blocks of RFC 3261 section 25.1 as nom parsers over `&[u8]`.
//!
//! Header values reach these parsers with line folding already replaced by a
//! single space, so linear white space (LWS) is a run of SP / HTAB here.

use bytes::Bytes;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::recognize;

/// Where the typed parsers take the bytes of the values they return: the
/// header's buffer (views, reference counted), or nowhere when the parser
/// only validates.
pub(crate) trait Source: Copy {
    /// The value for `s`, a sub-slice of the parsed input.
    fn slice(self, s: &[u8]) -> Bytes;
}

impl Source for &Bytes {
    #[inline]
    fn slice(self, s: &[u8]) -> Bytes {
        // Callers only pass sub-slices of the input they were given.
        self.slice_ref(s)
    }
}

/// Validation only: parts come back empty, with no reference counting.
#[derive(Clone, Copy)]
pub(crate) struct Validate;

impl Source for Validate {
    #[inline]
    fn slice(self, _: &[u8]) -> Bytes {
        Bytes::new()
    }
}

/// Result of the internal parsers; the error carries no data because every
/// caller maps a failure to its own typed [`crate::Error`].
pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, ()>;

/// A 256-entry membership table for a character class: ASCII letters and
/// digits plus `extra`.
pub(crate) const fn class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let mut k = 0;
    while k < extra.len() {
        t[extra[k] as usize] = true;
        k += 1;
    }
    t
}

static TOKEN: [bool; 256] = class(b"-.!%*_+`'~");
static WORD: [bool; 256] = class(b"-.!%*_+`'~()<>:\\\"/[]?{}");

/// `token` characters (RFC 3261 section 25.1).
#[inline]
pub(crate) fn is_token_char(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

/// `word` characters, used by Call-ID (RFC 3261 section 25.1).
#[inline]
pub(crate) fn is_word_char(c: u8) -> bool {
    WORD[usize::from(c)]
}

/// White space inside a header value.
pub(crate) fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Build a character-class table for URI parts: `unreserved` (RFC 3261
/// section 25.1) plus `extra`.
pub(crate) const fn uri_class(extra: &[u8]) -> [bool; 256] {
    let mut t = class(b"-_.!~*'()");
    let mut k = 0;
    while k < extra.len() {
        t[extra[k] as usize] = true;
        k += 1;
    }
    t
}

/// Optional white space.
pub(crate) fn sws(i: &[u8]) -> PResult<'_, &[u8]> {
    take_while(is_wsp)(i)
}

/// Required white space.
pub(crate) fn lws(i: &[u8]) -> PResult<'_, &[u8]> {
    take_while1(is_wsp)(i)
}

/// A token.
pub(crate) fn token(i: &[u8]) -> PResult<'_, &[u8]> {
    take_while1(is_token_char)(i)
}

/// A separator character with optional white space on both sides
/// (SEMI, COMMA, EQUAL, SLASH, COLON of RFC 3261 section 25.1).
pub(crate) fn sep(c: u8) -> impl Fn(&[u8]) -> PResult<'_, &[u8]> {
    move |i: &[u8]| {
        let (i, _) = sws(i)?;
        match i.first() {
            Some(&b) if b == c => {
                let (i, _) = sws(&i[1..])?;
                Ok((i, &[][..]))
            }
            _ => Err(nom::Err::Error(())),
        }
    }
}

/// A quoted string; returns the raw content between the quotes, escapes kept.
pub(crate) fn quoted_string(i: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, _) = tag(&b"\""[..])(i)?;
    let mut k = 0;
    while k < rest.len() {
        match rest[k] {
            b'"' => return Ok((&rest[k + 1..], &rest[..k])),
            b'\\' => {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                match rest.get(k + 1) {
                    Some(&c) if c != b'\r' && c != b'\n' && c < 0x80 => k += 2,
                    _ => return Err(nom::Err::Error(())),
                }
            }
            b'\r' | b'\n' => return Err(nom::Err::Error(())),
            c if c < 0x20 && c != b'\t' => return Err(nom::Err::Error(())),
            0x7f => return Err(nom::Err::Error(())),
            _ => k += 1,
        }
    }
    Err(nom::Err::Error(()))
}

/// Undo the escapes of a quoted string's content.
pub(crate) fn unquote(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.iter();
    while let Some(&c) = it.next() {
        if c == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parse a decimal number of at most `max`, allowing leading zeros.
pub(crate) fn decimal(i: &[u8], max: u64) -> Option<u64> {
    if i.is_empty() || i.len() > 40 || !i.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in i {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (v <= max).then_some(v)
}

/// Check that every `%` in `s` starts a two-hex-digit escape and every other
/// byte satisfies `allowed`.
pub(crate) fn check_escaped(s: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    // Fast path: no escapes.
    if !s.contains(&b'%') {
        return s.iter().all(|&c| allowed(c));
    }
    let mut k = 0;
    while k < s.len() {
        if s[k] == b'%' {
            match (s.get(k + 1), s.get(k + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => k += 3,
                _ => return false,
            }
        } else if allowed(s[k]) {
            k += 1;
        } else {
            return false;
        }
    }
    true
}

/// Decode `%XX` escapes (RFC 3261 section 19.1.2); input already checked.
pub(crate) fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut k = 0;
    while k < s.len() {
        if s[k] == b'%' && k + 2 < s.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(a), Some(b)) = (hex(s[k + 1]), hex(s[k + 2])) {
                // Two hex digits make at most 0xff.
                out.push((a * 16 + b) as u8);
                k += 3;
                continue;
            }
        }
        out.push(s[k]);
        k += 1;
    }
    out
}

/// `gen-value = token / host / quoted-string`; returns the raw value
/// including quotes.
pub(crate) fn gen_value(i: &[u8]) -> PResult<'_, &[u8]> {
    if i.first() == Some(&b'"') {
        recognize(quoted_string).parse(i)
    } else if i.first() == Some(&b'[') {
        let end = i
            .iter()
            .position(|&c| c == b']')
            .ok_or(nom::Err::Error(()))?;
        Ok((&i[end + 1..], &i[..=end]))
    } else {
        // token covers hostnames and IPv4 addresses; ':' admits the
        // unbracketed IPv6 addresses of `received` (RFC 5118 section 4.5).
        take_while1(|c| is_token_char(c) || c == b':')(i)
    }
}

/// `*( SEMI generic-param )` as in header parameters; returns the raw span.
pub(crate) fn generic_params(i: &[u8]) -> PResult<'_, &[u8]> {
    generic_params_with(i, |_, _| true)
}

/// [`generic_params`], calling `check(name, value)` for each parameter (the
/// value raw, quotes included); a `false` fails the parse.
pub(crate) fn generic_params_with(
    i: &[u8],
    mut check: impl FnMut(&[u8], Option<&[u8]>) -> bool,
) -> PResult<'_, &[u8]> {
    let start = i;
    let mut i = i;
    loop {
        let Ok((r, _)) = sep(b';')(i) else { break };
        let (r, name) = token(r)?;
        let (r, value) = match sep(b'=')(r) {
            Ok((r2, _)) => {
                let (r3, v) = gen_value(r2)?;
                (r3, Some(v))
            }
            Err(_) => (r, None),
        };
        if !check(name, value) {
            return Err(nom::Err::Error(()));
        }
        i = r;
    }
    let used = start.len() - i.len();
    Ok((i, &start[..used]))
}

/// Split a header value at top-level commas (outside quotes and `<...>`).
pub(crate) fn split_commas(v: &[u8]) -> CommaSplit<'_> {
    CommaSplit { rest: Some(v) }
}

/// Iterator behind [`split_commas`].
pub(crate) struct CommaSplit<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        // Most values have no comma at all.
        if memchr::memchr(b',', s).is_none() {
            self.rest = None;
            return Some(trim(s));
        }
        let mut in_quote = false;
        let mut in_angle = false;
        let mut k = 0;
        while k < s.len() {
            match s[k] {
                b'\\' if in_quote => k += 1,
                b'"' => in_quote = !in_quote,
                b'<' if !in_quote => in_angle = true,
                b'>' if !in_quote => in_angle = false,
                b',' if !in_quote && !in_angle => {
                    self.rest = Some(&s[k + 1..]);
                    return Some(trim(&s[..k]));
                }
                _ => {}
            }
            k += 1;
        }
        self.rest = None;
        Some(trim(s))
    }
}

/// Trim SP / HTAB on both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !is_wsp(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|&c| !is_wsp(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Split raw `;name=value` parameters (already validated) into pairs.
pub(crate) fn split_params(raw: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            // Find the next top-level ';' (outside quotes).
            let mut in_quote = false;
            let mut k = 0;
            while k < rest.len() {
                match rest[k] {
                    b'\\' if in_quote => k += 1,
                    b'"' => in_quote = !in_quote,
                    b';' if !in_quote && k > 0 => break,
                    _ => {}
                }
                k += 1;
            }
            let k = k.min(rest.len());
            let item = &rest[..k];
            rest = &rest[k..];
            let item = trim(item.strip_prefix(b";").unwrap_or(item));
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            return Some(match item.iter().position(|&c| c == b'=') {
                Some(eq) => (trim(&item[..eq]), Some(trim(&item[eq + 1..]))),
                None => (item, None),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_string_keeps_escapes_and_stops_at_closing_quote() {
        let (rest, q) = quoted_string(b"\"J Rosenberg \\\\\\\"\" <x>").unwrap();
        assert_eq!(q, b"J Rosenberg \\\\\\\"");
        assert_eq!(rest, b" <x>");
        assert_eq!(unquote(q), b"J Rosenberg \\\"");
    }

    #[test]
    fn unterminated_quoted_string_is_an_error() {
        assert!(quoted_string(b"\"abc").is_err());
    }

    #[test]
    fn split_commas_ignores_commas_in_quotes_and_angles() {
        let v: Vec<_> = split_commas(b"\"a,b\" <sip:x,y>, c").collect();
        assert_eq!(v, vec![&b"\"a,b\" <sip:x,y>"[..], &b"c"[..]]);
    }

    #[test]
    fn decimal_rejects_overflow_and_accepts_leading_zeros() {
        assert_eq!(decimal(b"0068", 255), Some(68));
        assert_eq!(decimal(b"300", 255), None);
        assert_eq!(decimal(b"36893488147419103232", u64::MAX), None);
        assert_eq!(decimal(b"-1", 10), None);
    }

    #[test]
    fn split_params_trims_white_space() {
        let v: Vec<_> = split_params(b" ;  tag    = 19n ; lr").collect();
        assert_eq!(
            v,
            vec![(&b"tag"[..], Some(&b"19n"[..])), (&b"lr"[..], None)]
        );
    }
}
