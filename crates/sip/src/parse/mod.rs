//! The message parser (RFC 3261 sections 7 and 25): start line, header lines
//! with folding and compact names, and the body framed by Content-Length over
//! UDP (section 18.3: a datagram shorter than Content-Length is an error,
//! bytes after the body are ignored). The parser works on one `Bytes` buffer
//! and every header value it returns is a slice of that buffer, except a
//! folded value, which is rebuilt once with each fold replaced by a space.

use crate::error::Error;
use crate::header::{HeaderName, Headers};
use crate::message::{Message, Request, Response};
use crate::method::Method;
use crate::status::StatusCode;
use crate::uri::{UriContext, parse_uri};
use bytes::Bytes;

mod error;
pub(crate) mod lex;

pub use error::ParseError;

/// Bounds on what the parser accepts from the network (STYLE rule 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest datagram accepted, in bytes.
    pub max_message_len: usize,
    /// Most header lines (a folded header counts once).
    pub max_headers: usize,
    /// Longest physical line, in bytes.
    pub max_line_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_len: 65_535,
            max_headers: 128,
            max_line_len: 8_192,
        }
    }
}

/// Find the end of the line starting at `at`: returns (content end, next
/// line start). Accepts CRLF and, leniently, a bare LF.
fn line_end(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let lf = memchr::memchr(b'\n', &buf[at..])? + at;
    let end = if lf > at && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

struct Framed {
    start: (usize, usize),
    headers: Headers,
    body_start: usize,
    /// The first malformed header line; the others were still collected so
    /// that the request can be answered.
    bad_line: Option<Error>,
}

fn frame(buf: &Bytes, limits: &Limits) -> Result<Framed, Error> {
    let b = &buf[..];
    let mut at = 0;
    // RFC 3261 section 7.5: ignore CRLFs before the start line.
    while b[at..].starts_with(b"\r\n") {
        at += 2;
    }
    let (end, next) = line_end(b, at).ok_or(Error::Incomplete)?;
    if end - at > limits.max_line_len {
        return Err(Error::LineTooLong {
            limit: limits.max_line_len,
        });
    }
    let start = (at, end);
    at = next;
    let mut headers = Headers::with_capacity(24);
    let mut bad_line = None;
    loop {
        let (end, next) = line_end(b, at).ok_or(Error::Incomplete)?;
        if end == at {
            return Ok(Framed {
                start,
                headers,
                body_start: next,
                bad_line,
            });
        }
        // A header line plus its continuation lines.
        let mut value_end = end;
        let mut line_next = next;
        let mut folded = false;
        loop {
            if value_end - at > limits.max_line_len * 4 || end - at > limits.max_line_len {
                return Err(Error::LineTooLong {
                    limit: limits.max_line_len,
                });
            }
            match b.get(line_next) {
                Some(b' ' | b'\t') => {
                    let (e, n) = line_end(b, line_next).ok_or(Error::Incomplete)?;
                    if e - line_next > limits.max_line_len {
                        return Err(Error::LineTooLong {
                            limit: limits.max_line_len,
                        });
                    }
                    value_end = e;
                    line_next = n;
                    folded = true;
                }
                _ => break,
            }
        }
        if headers.len() >= limits.max_headers {
            return Err(Error::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let line = &b[at..value_end];
        let name_len = line.iter().take_while(|&&c| lex::is_token_char(c)).count();
        let rest = match line[name_len..].iter().position(|&c| !lex::is_wsp(c)) {
            _ if name_len == 0 => Err(Error::HeaderLine("no header name")),
            Some(k) if line[name_len + k] == b':' => Ok(&line[name_len + k + 1..]),
            _ => Err(Error::HeaderLine("no colon after header name")),
        };
        let rest = match rest {
            Ok(rest) => rest,
            Err(e) => {
                bad_line.get_or_insert(e);
                at = line_next;
                continue;
            }
        };
        let name = HeaderName::known(&line[..name_len])
            .unwrap_or_else(|| HeaderName::Other(buf.slice_ref(&line[..name_len])));
        let value = if folded {
            Bytes::from(unfold(rest))
        } else {
            buf.slice_ref(lex::trim(rest))
        };
        headers.push(name, value);
        at = line_next;
    }
}

/// Replace every line fold (`[CR] LF 1*WSP`) with one space and trim.
fn unfold(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut k = 0;
    while k < v.len() {
        match v[k] {
            b'\r' | b'\n' => {
                while k < v.len() && matches!(v[k], b'\r' | b'\n' | b' ' | b'\t') {
                    k += 1;
                }
                out.push(b' ');
            }
            c => {
                out.push(c);
                k += 1;
            }
        }
    }
    lex::trim(&out).to_vec()
}

enum StartLine {
    Request(Method, crate::uri::Uri),
    Response(StatusCode, Bytes),
}

fn parse_version(v: &[u8]) -> Result<(), Error> {
    if v == b"SIP/2.0" {
        return Ok(());
    }
    // SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; "SIP" is case-insensitive.
    let Some(rest) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case(b"SIP/"))
        .map(|_| &v[4..])
    else {
        return Err(Error::StartLine("no SIP version"));
    };
    let mut parts = rest.split(|&c| c == b'.');
    let (Some(major), Some(minor), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::StartLine("malformed SIP version"));
    };
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) {
        return Err(Error::StartLine("malformed SIP version"));
    }
    if lex::decimal(major, 100) == Some(2) && lex::decimal(minor, 100) == Some(0) {
        Ok(())
    } else {
        Err(Error::Version)
    }
}

fn parse_start(buf: &Bytes, line: &[u8]) -> Result<StartLine, Error> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = line
            .iter()
            .position(|&c| c == b' ')
            .ok_or(Error::StartLine("no status code"))?;
        parse_version(&line[..sp])?;
        let rest = &line[sp + 1..];
        if rest.len() < 4 || rest[3] != b' ' || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(Error::StartLine("status code is not three digits"));
        }
        let code = lex::decimal(&rest[..3], 699)
            // decimal() bounded the value by 699.
            .and_then(|c| StatusCode::new(c as u16))
            .ok_or(Error::StartLine("status code out of range"))?;
        let reason = &rest[4..];
        if reason.iter().any(|&c| c < 0x20 && c != b'\t') {
            return Err(Error::StartLine("control character in reason phrase"));
        }
        return Ok(StartLine::Response(code, buf.slice_ref(reason)));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces).
    let mut parts = line.split(|&c| c == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::StartLine(
            "request line is not three fields separated by single spaces",
        ));
    };
    if method.is_empty() || !method.iter().all(|&c| lex::is_token_char(c)) {
        return Err(Error::StartLine("bad method"));
    }
    parse_version(version)?;
    let uri = parse_uri(buf, uri, UriContext::RequestUri).map_err(Error::RequestUri)?;
    Ok(StartLine::Request(Method::from_token(method), uri))
}

/// The method token of a request line that otherwise failed, so the request
/// can still be answered.
fn request_method(line: &[u8]) -> Option<Method> {
    let n = line.iter().take_while(|&&c| lex::is_token_char(c)).count();
    (n > 0 && line.get(n) == Some(&b' ') && !line[..n].eq_ignore_ascii_case(b"SIP/2.0"))
        .then(|| Method::from_token(&line[..n]))
}

/// Parse one datagram.
pub(crate) fn parse(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_len {
        return Err(ParseError::drop(Error::MessageTooLarge {
            len: buf.len(),
            limit: limits.max_message_len,
        }));
    }
    let framed = frame(&buf, limits).map_err(ParseError::drop)?;
    let line = &buf[framed.start.0..framed.start.1];
    let headers = framed.headers;
    // An answerable request: a method we can name, not ACK, and a top Via we
    // can send the answer to.
    let fail = |error: Error, headers: Headers| -> ParseError {
        match request_method(line) {
            Some(m) if m != Method::Ack && headers.top_via().is_ok() => {
                ParseError::answerable(error, m, headers)
            }
            _ => ParseError::drop(error),
        }
    };
    let start = match parse_start(&buf, line) {
        Ok(s) => s,
        Err(e) => return Err(fail(e, headers)),
    };
    if let Some(e) = framed.bad_line {
        return Err(fail(e, headers));
    }
    let checked = match headers.check() {
        Ok(c) => c,
        Err(e) => return Err(fail(e, headers)),
    };
    let available = buf.len() - framed.body_start.min(buf.len());
    let body = match checked.content_length {
        Some(n) if n > available => {
            return Err(fail(
                Error::BodyTruncated {
                    declared: n,
                    available,
                },
                headers,
            ));
        }
        Some(n) => buf.slice(framed.body_start..framed.body_start + n),
        None => buf.slice(framed.body_start.min(buf.len())..),
    };
    match start {
        StartLine::Request(method, uri) => {
            if checked.cseq_method != method {
                return Err(fail(Error::CSeqMethodMismatch, headers));
            }
            Ok(Message::Request(Request::from_parts(
                method, uri, headers, body,
            )))
        }
        StartLine::Response(status, reason) => Ok(Message::Response(Response::from_parts(
            status, reason, headers, body,
        ))),
    }
}

impl Message {
    /// Parse one UDP datagram with the default [`Limits`].
    ///
    /// ```
    /// use callbridge_sip::{Message, Method};
    /// let dgram = bytes::Bytes::from_static(
    ///     b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
    ///       Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK776\r\n\
    ///       From: <sip:alice@example.com>;tag=1\r\n\
    ///       To: <sip:bob@example.com>\r\n\
    ///       Call-ID: a84b4c76e66710\r\n\
    ///       CSeq: 1 OPTIONS\r\n\
    ///       Content-Length: 0\r\n\r\n",
    /// );
    /// let Message::Request(req) = Message::parse(dgram)? else { panic!() };
    /// assert_eq!(req.method(), &Method::Options);
    /// assert_eq!(req.headers().call_id()?.as_bytes(), b"a84b4c76e66710");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(datagram: Bytes) -> Result<Message, ParseError> {
        parse(datagram, &Limits::default())
    }

    /// Parse one UDP datagram with explicit limits.
    pub fn parse_with(datagram: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        parse(datagram, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_replaces_each_fold_with_one_space() {
        assert_eq!(unfold(b"a\r\n  b\r\n\tc"), b"a b c");
    }

    #[test]
    fn version_other_than_2_0_is_a_version_error() {
        assert_eq!(parse_version(b"SIP/7.0"), Err(Error::Version));
        assert_eq!(parse_version(b"SIP/2.0"), Ok(()));
        assert!(matches!(
            parse_version(b"HTTP/1.1"),
            Err(Error::StartLine(_))
        ));
    }
}
