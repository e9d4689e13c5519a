//! SIP messages (RFC 3261 section 7): [`Message`], [`Request`], [`Response`],
//! parsing from one datagram and serialization to exact bytes.
//!
//! A parsed message keeps its header values as views of the datagram; the
//! serializer writes the start line, each header as `Name: value` with the
//! canonical long name, a blank line and the body. Parsing what it writes
//! gives an equal message.

mod builder;

pub use builder::{RequestBuilder, ResponseBuilder};

use crate::encode::Encode;
use crate::header::{HeaderName, Headers, MediaType};
use crate::ids::Tag;
use crate::method::Method;
use crate::status::StatusCode;
use crate::uri::Uri;
use bytes::Bytes;

/// A request or a response.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// A SIP request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Request {
    method: Method,
    uri: Uri,
    headers: Headers,
    body: Bytes,
}

/// A SIP response.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Response {
    status: StatusCode,
    reason: Bytes,
    headers: Headers,
    body: Bytes,
}

impl Message {
    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}

impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.encode(out),
            Message::Response(r) => r.encode(out),
        }
    }

    fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl Request {
    /// Assemble a request from parts, as given (no header is added).
    pub fn from_parts(method: Method, uri: Uri, headers: Headers, body: Bytes) -> Request {
        Request {
            method,
            uri,
            headers,
            body,
        }
    }

    /// Start building a request; see [`RequestBuilder`].
    pub fn builder(method: Method, uri: impl Into<Uri>) -> RequestBuilder {
        RequestBuilder::new(method, uri.into())
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Replace the Request-URI.
    pub fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, mutable.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Replace the body, setting Content-Type and Content-Length.
    pub fn set_body(&mut self, content_type: &MediaType, body: Bytes) {
        set_body(&mut self.headers, &mut self.body, content_type, body);
    }

    /// Build a response to this request (RFC 3261 section 8.2.6.2): copies
    /// every Via, From, To, Call-ID and CSeq; adds `to_tag` to To when To
    /// has no tag and the status is not 100; copies Record-Route for 101..=299
    /// (responses that can establish a dialog, section 12.1.1);
    /// Content-Length 0 and the canonical reason phrase. Add a body with
    /// [`Response::set_body`].
    pub fn make_response(&self, status: StatusCode, to_tag: Option<&Tag>) -> Response {
        let mut headers = Headers::with_capacity(8);
        for h in self.headers.iter() {
            match h.name() {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.name().clone(), h.value().clone());
                }
                HeaderName::RecordRoute if (101..300).contains(&status.as_u16()) => {
                    headers.push(HeaderName::RecordRoute, h.value().clone());
                }
                HeaderName::To => {
                    let value = match to_tag {
                        Some(tag) if status != StatusCode::TRYING => with_to_tag(h.value(), tag),
                        _ => h.value().clone(),
                    };
                    headers.push(HeaderName::To, value);
                }
                _ => {}
            }
        }
        headers.push(HeaderName::ContentLength, Bytes::from_static(b"0"));
        Response {
            status,
            reason: Bytes::from_static(status.canonical_reason().as_bytes()),
            headers,
            body: Bytes::new(),
        }
    }

    /// The number of bytes [`Encode::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let uri_len = self.uri.to_bytes().len();
        self.method.as_bytes().len()
            + 1
            + uri_len
            + 10
            + self.headers.encoded_len()
            + 2
            + self.body.len()
    }
}

impl Encode for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        self.uri.encode(out);
        out.extend_from_slice(b" SIP/2.0\r\n");
        self.headers.encode(out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        Bytes::from(v)
    }
}

impl Response {
    /// Assemble a response from parts, as given (no header is added).
    pub fn from_parts(
        status: StatusCode,
        reason: Bytes,
        headers: Headers,
        body: Bytes,
    ) -> Response {
        Response {
            status,
            reason,
            headers,
            body,
        }
    }

    /// Start building a response from scratch; see [`ResponseBuilder`].
    /// Responses to a received request come from [`Request::make_response`].
    pub fn builder(status: StatusCode) -> ResponseBuilder {
        ResponseBuilder::new(status)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason phrase as received (UTF-8 allowed).
    pub fn reason(&self) -> &Bytes {
        &self.reason
    }

    /// Replace the reason phrase (no CR or LF).
    pub fn set_reason(&mut self, reason: impl Into<Bytes>) {
        self.reason = reason.into();
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, mutable.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Replace the body, setting Content-Type and Content-Length.
    pub fn set_body(&mut self, content_type: &MediaType, body: Bytes) {
        set_body(&mut self.headers, &mut self.body, content_type, body);
    }

    /// The number of bytes [`Encode::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        8 + 4 + self.reason.len() + 2 + self.headers.encoded_len() + 2 + self.body.len()
    }
}

impl Encode for Response {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(self.status.as_u16().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.reason);
        out.extend_from_slice(b"\r\n");
        self.headers.encode(out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        Bytes::from(v)
    }
}

fn set_body(headers: &mut Headers, slot: &mut Bytes, content_type: &MediaType, body: Bytes) {
    if body.is_empty() {
        headers.remove(&HeaderName::ContentType);
    } else {
        headers.set(HeaderName::ContentType, content_type.to_bytes());
    }
    headers.set(
        HeaderName::ContentLength,
        Bytes::from(body.len().to_string()),
    );
    *slot = body;
}

/// A raw To value with `;tag=` appended unless it already has a tag.
pub(crate) fn with_to_tag(to: &Bytes, tag: &Tag) -> Bytes {
    if crate::header::parse_name_addr(to, to).is_ok_and(|a| a.tag().is_some()) {
        return to.clone();
    }
    let mut v = Vec::with_capacity(to.len() + 5 + tag.as_bytes().len());
    v.extend_from_slice(to);
    v.extend_from_slice(b";tag=");
    v.extend_from_slice(tag.as_bytes());
    Bytes::from(v)
}

#[cfg(test)]
mod tests;
