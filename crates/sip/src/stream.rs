//! Framing SIP messages on a byte stream (TCP, TLS), sans-IO.
//!
//! On a stream the Content-Length header is the only message boundary
//! (RFC 3261 section 18.3): it is mandatory, and a message without it is
//! an error that closes the connection. Between messages a peer may send
//! keep-alives (RFC 5626 section 4.4.1): a double CRLF ("ping") must be
//! answered with a single CRLF ("pong"), and a single CRLF is ignored
//! (it is a pong, or the CRLFs RFC 3261 section 7.5 allows before a start
//! line).
//!
//! [`StreamFramer`] takes the bytes as they arrive ([`StreamFramer::push`])
//! and yields whole messages and pings ([`StreamFramer::poll`]). It
//! enforces the same [`Limits`] as the datagram parser, so a message is
//! never larger over TCP than over UDP, and it never holds more than twice
//! the largest message: a peer that sends an endless header line, an
//! endless header section or a huge Content-Length gets a [`StreamError`]
//! as soon as the bound is crossed, and the driver closes that connection
//! (and only that one). The framer only finds the boundaries: each frame
//! is then parsed (and checked) by [`crate::Message::parse_with`].
//!
//! Written by hand: the framing rules are SIP's own (Content-Length with
//! its compact form `l`, CRLF keep-alives) and no maintained crate frames
//! SIP on a stream without also owning the socket.
//!
//! Scanning is incremental: each byte of a header section is examined
//! once however the stream is split, so a peer dribbling one byte at a
//! time costs linear work.
//!
//! ```
//! use callbridge_sip::stream::{Frame, StreamFramer};
//! use callbridge_sip::Limits;
//! let mut framer = StreamFramer::new(Limits::default());
//! framer.push(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n")?;
//! assert_eq!(framer.poll()?, Some(Frame::Ping));
//! assert!(matches!(framer.poll()?, Some(Frame::Message(m)) if m.starts_with(b"OPTIONS")));
//! assert_eq!(framer.poll()?, None);
//! # Ok::<(), callbridge_sip::stream::StreamError>(())
//! ```

use crate::parse::Limits;
use bytes::{Buf, Bytes, BytesMut};

/// The answer to a [`Frame::Ping`] (RFC 5626 section 4.4.1).
pub const PONG: &[u8] = b"\r\n";

/// The keep-alive ping a client sends on a connection (RFC 5626 section
/// 4.4.1): a double CRLF, answered with [`PONG`].
pub const PING: &[u8] = b"\r\n\r\n";

/// What the stream carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message (start line, headers, and exactly Content-Length
    /// bytes of body), to parse with [`crate::Message::parse_with`].
    Message(Bytes),
    /// A keep-alive ping (a double CRLF between messages): write [`PONG`].
    Ping,
}

/// Why a stream cannot be framed. Every variant ends the connection: after
/// one, the framer returns the same error forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A line longer than [`Limits::max_line_len`].
    #[error("a line is longer than {limit} bytes")]
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The header section, or the headers and the announced body, exceed
    /// [`Limits::max_message_len`].
    #[error("message of at least {len} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// The length known so far (the announced length when known).
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The headers end without a Content-Length (mandatory on a stream,
    /// RFC 3261 section 18.3).
    #[error("message without Content-Length on a stream")]
    MissingContentLength,
    /// A Content-Length that is not a decimal number.
    #[error("malformed Content-Length")]
    BadContentLength,
    /// Two Content-Length headers with different values.
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    /// More bytes pushed than the framer holds (the caller did not drain
    /// [`StreamFramer::poll`], or pushed a chunk larger than a message).
    #[error("stream buffer full ({limit} bytes)")]
    BufferFull {
        /// The buffer's bound.
        limit: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Between messages: CRLF keep-alives may come.
    Idle,
    /// In a header section; the lines before `scanned` were examined.
    Headers {
        scanned: usize,
        content_length: Option<usize>,
    },
    /// The header section ended; the message is `len` bytes long.
    Body { len: usize },
    /// The stream is broken; the error is returned again.
    Failed(StreamError),
}

/// Splits a byte stream into SIP messages and keep-alive pings (see the
/// module docs).
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    state: State,
}

impl StreamFramer {
    /// A framer enforcing `limits` (those of the datagram parser).
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            state: State::Idle,
        }
    }

    /// The most bytes the framer holds: two maximal messages. Drain
    /// [`StreamFramer::poll`] after each push and push chunks no larger
    /// than [`Limits::max_message_len`], and this is never reached.
    pub fn capacity(&self) -> usize {
        self.limits.max_message_len.saturating_mul(2)
    }

    /// Bytes received and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if self.buf.len() + data.len() > self.capacity() {
            return Err(self.fail(StreamError::BufferFull {
                limit: self.capacity(),
            }));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next whole frame, `None` until more bytes arrive, or the error
    /// that ends the connection.
    pub fn poll(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            match self.state.clone() {
                State::Failed(e) => return Err(e),
                State::Idle => {
                    const PING: &[u8] = b"\r\n\r\n";
                    if self.buf.starts_with(PING) {
                        self.buf.advance(PING.len());
                        return Ok(Some(Frame::Ping));
                    }
                    if PING.starts_with(&self.buf) {
                        // Empty, or maybe the start of a ping: wait.
                        return Ok(None);
                    }
                    if self.buf.starts_with(PONG) {
                        self.buf.advance(PONG.len());
                        continue;
                    }
                    self.state = State::Headers {
                        scanned: 0,
                        content_length: None,
                    };
                }
                State::Headers {
                    scanned,
                    content_length,
                } => match self.scan_headers(scanned, content_length) {
                    Ok(true) => {}
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(self.fail(e)),
                },
                State::Body { len } => {
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Idle;
                    return Ok(Some(Frame::Message(self.buf.split_to(len).freeze())));
                }
            }
        }
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.state = State::Failed(e.clone());
        self.buf = BytesMut::new();
        e
    }

    /// Examine the complete lines after `scanned`. True when the header
    /// section ended (the state is then `Body`); false when more bytes are
    /// needed (the progress is kept in the state).
    fn scan_headers(
        &mut self,
        mut scanned: usize,
        mut content_length: Option<usize>,
    ) -> Result<bool, StreamError> {
        let limits = self.limits;
        let too_large = |len: usize| StreamError::MessageTooLarge {
            len,
            limit: limits.max_message_len,
        };
        loop {
            let Some(lf) = memchr::memchr(b'\n', &self.buf[scanned..]).map(|i| scanned + i) else {
                if self.buf.len() - scanned > limits.max_line_len {
                    return Err(StreamError::LineTooLong {
                        limit: limits.max_line_len,
                    });
                }
                if self.buf.len() > limits.max_message_len {
                    return Err(too_large(self.buf.len()));
                }
                self.state = State::Headers {
                    scanned,
                    content_length,
                };
                return Ok(false);
            };
            let next = lf + 1;
            if next > limits.max_message_len {
                return Err(too_large(next));
            }
            // CRLF, or leniently a bare LF, like the datagram parser.
            let end = if lf > scanned && self.buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            if end - scanned > limits.max_line_len {
                return Err(StreamError::LineTooLong {
                    limit: limits.max_line_len,
                });
            }
            let is_start_line = scanned == 0;
            let line = &self.buf[scanned..end];
            if line.is_empty() && !is_start_line {
                let body = content_length.ok_or(StreamError::MissingContentLength)?;
                let len = next.saturating_add(body);
                if len > limits.max_message_len {
                    return Err(too_large(len));
                }
                self.state = State::Body { len };
                return Ok(true);
            }
            if !is_start_line && let Some(value) = content_length_value(line) {
                let n = parse_length(value)?;
                if content_length.is_some_and(|old| old != n) {
                    return Err(StreamError::ConflictingContentLength);
                }
                content_length = Some(n);
            }
            scanned = next;
        }
    }
}

/// The value of a `Content-Length` (or compact `l`) header line, else
/// `None`. A folded continuation line (starting with SP/HTAB) is no header.
fn content_length_value(line: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', line)?;
    let name = line[..colon].trim_ascii();
    let named = !line.starts_with(b" ") && !line.starts_with(b"\t");
    (named && (name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")))
        .then(|| line[colon + 1..].trim_ascii())
}

/// A Content-Length value: decimal digits. Above 9 significant digits it
/// exceeds every message limit, so it saturates instead of overflowing.
fn parse_length(v: &[u8]) -> Result<usize, StreamError> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(StreamError::BadContentLength);
    }
    let digits = &v[v.iter().take_while(|&&d| d == b'0').count()..];
    if digits.len() > 9 {
        return Ok(usize::MAX);
    }
    Ok(digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

#[cfg(test)]
mod tests;
