//! Errors of the message layer (RFC 3261 sections 7, 8.2, 21.4) and what each
//! one puts on the wire: an answerable request gets a 4xx/5xx with the error as
//! its reason phrase, everything else is dropped (and counted by the caller).
//!
//! A leaf module: the parser's [`ParseError`](crate::ParseError), which
//! carries the headers needed to answer, lives with the parser.

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
