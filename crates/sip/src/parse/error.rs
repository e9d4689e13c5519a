//! [`ParseError`]: a message that could not be parsed, with what the stack
//! needs to answer it (RFC 3261 section 8.2.6.2).

use crate::error::{Disposition, Error};
use crate::header::{HeaderName, Headers};
use crate::ids::Tag;
use crate::message::{Response, with_to_tag};
use crate::method::Method;

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
                    let v = with_to_tag(h.value(), to_tag);
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
