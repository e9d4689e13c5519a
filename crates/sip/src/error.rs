//! Errors of the message layer (RFC 3261 sections 7, 8.2, 21.4) and what each
//! one puts on the wire: an answerable request gets a 4xx/5xx with the error as
//! its reason phrase, everything else is dropped (and counted by the caller).

use crate::header::{HeaderName, Headers};
use crate::ids::Tag;
use crate::message::Response;
use crate::method::Method;
use crate::status::StatusCode;

/// What is wrong with a message, a header or a builder call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The datagram is larger than [`crate::Limits::max_message_len`].
    #[error("message of {len} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// Length of the input.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// More header lines than [`crate::Limits::max_headers`].
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// A line longer than [`crate::Limits::max_line_len`].
    #[error("a line is longer than {limit} bytes")]
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The input ends before the blank line that ends the headers.
    #[error("message ends before the end of the headers")]
    Incomplete,
    /// The request or status line is malformed.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The SIP version is not SIP/2.0.
    #[error("unsupported SIP version")]
    Version,
    /// The Request-URI is malformed.
    #[error("malformed Request-URI: {0}")]
    RequestUri(&'static str),
    /// A header line has no name or no colon.
    #[error("malformed header line: {0}")]
    HeaderLine(&'static str),
    /// A header's value does not follow its grammar.
    #[error("invalid {header} header: {reason}")]
    Header {
        /// The header's canonical name.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header that the message needs is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// The datagram holds fewer body bytes than Content-Length says.
    #[error("body is {available} bytes but Content-Length is {declared}")]
    BodyTruncated {
        /// Content-Length.
        declared: usize,
        /// Bytes after the headers.
        available: usize,
    },
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// A URI outside a Request-URI is malformed.
    #[error("invalid URI: {0}")]
    Uri(&'static str),
    /// A builder was used without a required part.
    #[error("cannot build message: {0}")]
    Build(&'static str),
}

impl Error {
    /// The status code a UAS answers with when this error is found in an
    /// answerable request: 505 for a version, 513 for size, otherwise 400.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Version => StatusCode::VERSION_NOT_SUPPORTED,
            Error::MessageTooLarge { .. } => StatusCode::MESSAGE_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A short reason phrase for the status line of the answer.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            Error::MessageTooLarge { .. } => "Message Too Large",
            Error::TooManyHeaders { .. } => "Too Many Headers",
            Error::LineTooLong { .. } => "Line Too Long",
            Error::Incomplete => "Incomplete Message",
            Error::StartLine(_) => "Bad Request Line",
            Error::Version => "Version Not Supported",
            Error::RequestUri(_) => "Bad Request-URI",
            Error::HeaderLine(_) => "Malformed Header Line",
            Error::Header { header, .. } => match *header {
                "Via" => "Bad Via",
                "From" => "Bad From",
                "To" => "Bad To",
                "Call-ID" => "Bad Call-ID",
                "CSeq" => "Bad CSeq",
                "Max-Forwards" => "Bad Max-Forwards",
                "Contact" => "Bad Contact",
                "Content-Length" => "Bad Content-Length",
                "Content-Type" => "Bad Content-Type",
                "Expires" => "Bad Expires",
                "Date" => "Bad Date",
                "Route" | "Record-Route" => "Bad Route",
                _ => "Bad Header",
            },
            Error::MissingHeader(h) => match *h {
                "Via" => "Missing Via",
                "From" => "Missing From",
                "To" => "Missing To",
                "Call-ID" => "Missing Call-ID",
                "CSeq" => "Missing CSeq",
                _ => "Missing Header",
            },
            Error::BodyTruncated { .. } => "Body Shorter Than Content-Length",
            Error::CSeqMethodMismatch => "CSeq Method Mismatch",
            Error::Uri(_) => "Bad URI",
            Error::Build(_) => "Bad Request",
        }
    }
}

/// What the stack does with a message that failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answer the request with this status; the reason phrase is
    /// [`Error::reason_phrase`].
    Respond(StatusCode),
    /// Drop it silently and count it: a response, an ACK, or a request too
    /// broken to route an answer (no usable top Via).
    Drop,
}

/// A message that could not be parsed: the error and, when the input was a
/// request that can still be answered, its raw headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct ParseError {
    error: Error,
    answer: Option<Box<Answerable>>,
}

/// The parts of an unparsable request needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answerable {
    method: Method,
    headers: Headers,
}

impl ParseError {
    /// An error about input that cannot be answered.
    pub(crate) fn drop(error: Error) -> ParseError {
        ParseError {
            error,
            answer: None,
        }
    }

    /// An error about a request that can be answered with `error.status()`.
    pub(crate) fn answerable(error: Error, method: Method, headers: Headers) -> ParseError {
        ParseError {
            error,
            answer: Some(Box::new(Answerable { method, headers })),
        }
    }

    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The method of the request, when the error is answerable.
    pub fn method(&self) -> Option<&Method> {
        self.answer.as_ref().map(|a| &a.method)
    }

    /// Whether to answer (and with which status) or drop.
    pub fn disposition(&self) -> Disposition {
        match &self.answer {
            Some(_) => Disposition::Respond(self.error.status()),
            None => Disposition::Drop,
        }
    }

    /// Build the answer for an answerable request: the status of
    /// [`ParseError::disposition`], [`Error::reason_phrase`] as reason phrase,
    /// and the request's Via, From, To, Call-ID and CSeq copied verbatim
    /// (RFC 3261 section 8.2.6.2). `to_tag` is added to To when To has none.
    pub fn response(&self, to_tag: &Tag) -> Option<Response> {
        let a = self.answer.as_ref()?;
        let mut headers = Headers::new();
        for h in a.headers.iter() {
            match h.name() {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.name().clone(), h.value().clone());
                }
                HeaderName::To => {
                    let v = crate::message::with_to_tag(h.value(), to_tag);
                    headers.push(HeaderName::To, v);
                }
                _ => {}
            }
        }
        headers.push(HeaderName::ContentLength, bytes::Bytes::from_static(b"0"));
        Some(Response::from_parts(
            self.error.status(),
            bytes::Bytes::from_static(self.error.reason_phrase().as_bytes()),
            headers,
            bytes::Bytes::new(),
        ))
    }
}
