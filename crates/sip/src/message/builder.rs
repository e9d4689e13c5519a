//! Builders for requests and responses that a user agent originates
//! (RFC 3261 section 8.1.1: the mandatory headers of a request).

use super::{Request, Response, set_body};
use crate::encode::Encode;
use crate::error::Error;
use crate::header::{CSeq, HeaderName, Headers, MediaType, NameAddr, Via};
use crate::ids::CallId;
use crate::method::Method;
use crate::status::StatusCode;
use crate::uri::Uri;
use bytes::Bytes;

/// Builds a [`Request`]. Headers are written in the order they are added;
/// `build` appends CSeq (from the sequence number and the method),
/// Max-Forwards (70 unless set) and Content-Length.
///
/// ```
/// use callbridge_sip::{Branch, CallId, Encode, Host, Method, NameAddr, Request, SipUri, Tag, Via};
/// let uri = SipUri::new(Host::domain("example.com")).with_user("bob");
/// let req = Request::builder(Method::Options, uri.clone())
///     .via(&Via::new("UDP", Host::Ipv4([192, 0, 2, 1].into()), Some(5060), &Branch::from("z9hG4bK1")))
///     .from_addr(&NameAddr::new(SipUri::new(Host::domain("example.org"))).with_tag(&Tag::from("t1")))
///     .to_addr(&NameAddr::new(uri))
///     .call_id(&CallId::from("c1"))
///     .cseq(1)
///     .build()?;
/// assert_eq!(
///     &req.to_bytes()[..],
///     &b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
///        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
///        From: <sip:example.org>;tag=t1\r\n\
///        To: <sip:bob@example.com>\r\n\
///        Call-ID: c1\r\n\
///        CSeq: 1 OPTIONS\r\n\
///        Max-Forwards: 70\r\n\
///        Content-Length: 0\r\n\r\n"[..]
/// );
/// # Ok::<(), callbridge_sip::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    method: Method,
    uri: Uri,
    headers: Headers,
    cseq: Option<u32>,
    max_forwards: u8,
    body: Option<(MediaType, Bytes)>,
}

impl RequestBuilder {
    pub(crate) fn new(method: Method, uri: Uri) -> RequestBuilder {
        RequestBuilder {
            method,
            uri,
            headers: Headers::with_capacity(12),
            cseq: None,
            max_forwards: 70,
            body: None,
        }
    }

    /// Add a Via (add the top one first).
    pub fn via(mut self, via: &Via) -> RequestBuilder {
        self.headers.push_typed(HeaderName::Via, via);
        self
    }

    /// Set From (with the local tag).
    pub fn from_addr(mut self, addr: &NameAddr) -> RequestBuilder {
        self.headers.push_typed(HeaderName::From, addr);
        self
    }

    /// Set To (with the remote tag inside a dialog).
    pub fn to_addr(mut self, addr: &NameAddr) -> RequestBuilder {
        self.headers.push_typed(HeaderName::To, addr);
        self
    }

    /// Set Call-ID.
    pub fn call_id(mut self, id: &CallId) -> RequestBuilder {
        self.headers.push(HeaderName::CallId, id.to_bytes());
        self
    }

    /// Set the CSeq number; the method is the request's.
    pub fn cseq(mut self, seq: u32) -> RequestBuilder {
        self.cseq = Some(seq);
        self
    }

    /// Set Max-Forwards (default 70).
    pub fn max_forwards(mut self, hops: u8) -> RequestBuilder {
        self.max_forwards = hops;
        self
    }

    /// Add a Contact.
    pub fn contact(mut self, addr: &NameAddr) -> RequestBuilder {
        self.headers.push_typed(HeaderName::Contact, addr);
        self
    }

    /// Add a Route (in route-set order).
    pub fn route(mut self, addr: &NameAddr) -> RequestBuilder {
        self.headers.push_typed(HeaderName::Route, addr);
        self
    }

    /// Add any header with a raw value (no CR or LF).
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> RequestBuilder {
        self.headers.push(name, value);
        self
    }

    /// Add any header with a typed value.
    pub fn typed_header(mut self, name: HeaderName, value: &impl Encode) -> RequestBuilder {
        self.headers.push_typed(name, value);
        self
    }

    /// Set the body and its type.
    pub fn body(mut self, content_type: MediaType, body: Bytes) -> RequestBuilder {
        self.body = Some((content_type, body));
        self
    }

    /// Finish; fails when Via, From, To, Call-ID or the CSeq number is
    /// missing.
    pub fn build(self) -> Result<Request, Error> {
        let RequestBuilder {
            method,
            uri,
            mut headers,
            cseq,
            max_forwards,
            body,
        } = self;
        for (name, what) in [
            (HeaderName::Via, "no Via"),
            (HeaderName::From, "no From"),
            (HeaderName::To, "no To"),
            (HeaderName::CallId, "no Call-ID"),
        ] {
            if headers.get(&name).is_none() {
                return Err(Error::Build(what));
            }
        }
        let seq = cseq.ok_or(Error::Build("no CSeq number"))?;
        headers.push_typed(
            HeaderName::CSeq,
            &CSeq {
                seq,
                method: method.clone(),
            },
        );
        if headers.get(&HeaderName::MaxForwards).is_none() {
            headers.push(
                HeaderName::MaxForwards,
                Bytes::from(max_forwards.to_string()),
            );
        }
        let mut req = Request::from_parts(method, uri, headers, Bytes::new());
        match body {
            Some((ct, b)) => req.set_body(&ct, b),
            None => req
                .headers
                .set(HeaderName::ContentLength, Bytes::from_static(b"0")),
        }
        Ok(req)
    }
}

/// Builds a [`Response`] from scratch (stateless answers, tests). Headers
/// are written in the order added; `build` appends Content-Length.
#[derive(Clone, Debug)]
pub struct ResponseBuilder {
    status: StatusCode,
    reason: Bytes,
    headers: Headers,
    body: Option<(MediaType, Bytes)>,
}

impl ResponseBuilder {
    pub(crate) fn new(status: StatusCode) -> ResponseBuilder {
        ResponseBuilder {
            status,
            reason: Bytes::from_static(status.canonical_reason().as_bytes()),
            headers: Headers::with_capacity(8),
            body: None,
        }
    }

    /// Set the reason phrase (no CR or LF).
    pub fn reason(mut self, reason: impl Into<Bytes>) -> ResponseBuilder {
        self.reason = reason.into();
        self
    }

    /// Add any header with a raw value (no CR or LF).
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> ResponseBuilder {
        self.headers.push(name, value);
        self
    }

    /// Add any header with a typed value.
    pub fn typed_header(mut self, name: HeaderName, value: &impl Encode) -> ResponseBuilder {
        self.headers.push_typed(name, value);
        self
    }

    /// Set the body and its type.
    pub fn body(mut self, content_type: MediaType, body: Bytes) -> ResponseBuilder {
        self.body = Some((content_type, body));
        self
    }

    /// Finish.
    pub fn build(self) -> Response {
        let mut resp = Response::from_parts(self.status, self.reason, self.headers, Bytes::new());
        match self.body {
            Some((ct, b)) => set_body(&mut resp.headers, &mut resp.body, &ct, b),
            None => resp
                .headers
                .set(HeaderName::ContentLength, Bytes::from_static(b"0")),
        }
        resp
    }
}
