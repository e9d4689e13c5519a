//! The HTTP limits (`[http]` timeouts and connection caps, see
//! [`Limits`]) and the request body rules every route gets from
//! [`bound_body`]: a size limit per route checked against `Content-Length`
//! before a byte is read, and a read deadline from the request head.
//!
//! | route | body limit |
//! |---|---|
//! | `POST /api/calls` | [`MAX_BODY`] |
//! | `/carrier/...` | [`CARRIER_MAX_BODY`] |
//! | `PUT /api/profiles` | [`PROFILES_MAX_BODY`] |
//! | everything else (no body expected) | [`OTHER_MAX_BODY`] |
//!
//! API bodies are read whole here, under the deadline, before the request
//! takes one of the in-flight slots: a client that sends its body slowly
//! holds a connection (bounded by the connection caps) but never a slot.
//! Carrier bodies are read by their handlers, which check the carrier and
//! its signature header first; the deadline and the limit travel with the
//! body ([`Deadline`]).

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use super::error::{ApiError, MAX_BODY, error_response};

/// Largest carrier webhook body (form fields or a JSON event; both are a
/// few hundred bytes): the carrier routes' own limit.
pub const CARRIER_MAX_BODY: usize = 32 * 1024;
/// Largest `PUT /api/profiles` body: up to 256 profiles with prompts.
pub const PROFILES_MAX_BODY: usize = 1024 * 1024;
/// Largest body of a route that takes none.
pub const OTHER_MAX_BODY: usize = 1024;

/// Timeouts and caps of every HTTP listener (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request head must be complete this long after its first byte.
    pub header_read_timeout: Duration,
    /// A request body must be complete this long after its head.
    pub body_read_timeout: Duration,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Most connections per listener (also kept under a share of the
    /// open-file limit).
    pub max_connections: usize,
    /// Most connections per client address, per listener.
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
            max_connections: 1024,
            max_connections_per_ip: 32,
        }
    }
}

/// The body limit of a route.
pub fn body_limit(method: &Method, path: &str) -> usize {
    if path.starts_with("/carrier/") {
        CARRIER_MAX_BODY
    } else if method == Method::PUT && path == "/api/profiles" {
        PROFILES_MAX_BODY
    } else if method == Method::POST && (path == "/api/calls" || super::console::is_form(path)) {
        // The API's call request, and the console's forms (a pasted CSV
        // of leads is the largest).
        MAX_BODY
    } else {
        OTHER_MAX_BODY
    }
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// An answer after which the connection is closed (the rest of the body
/// is not read).
fn closing(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn timed_out(limit: Duration) -> Response {
    closing(error_response(
        StatusCode::REQUEST_TIMEOUT,
        format!("request body not received within {limit:?}"),
    ))
}

/// Why collecting a body failed.
#[derive(Debug)]
enum Collect {
    TooLarge,
    Failed,
}

/// Reads `body` whole, at most `limit` bytes.
async fn collect(mut body: Body, limit: usize) -> Result<Bytes, Collect> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| Collect::Failed)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(Collect::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Middleware: the route's body limit (413 on `Content-Length` before
/// reading, or once the body passes it) and the body read deadline (408
/// and the connection closed).
pub async fn bound_body(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let limit = body_limit(req.method(), req.uri().path());
    if content_length(&req).is_some_and(|n| n > limit as u64) {
        return closing(ApiError::TooLarge(limit).into_response());
    }
    let (parts, body) = req.into_parts();
    if parts.uri.path().starts_with("/carrier/") {
        let body = Body::new(Deadline::new(body, timeout, limit));
        return next.run(Request::from_parts(parts, body)).await;
    }
    match tokio::time::timeout(timeout, collect(body, limit)).await {
        Err(_) => timed_out(timeout),
        Ok(Err(Collect::TooLarge)) => closing(ApiError::TooLarge(limit).into_response()),
        Ok(Err(Collect::Failed)) => closing(
            ApiError::BadRequest("the request body could not be read".into()).into_response(),
        ),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// Why a [`Deadline`] body stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body was not complete in time.
    #[error("request body not received in time")]
    TimedOut,
    /// The body is over its route's limit.
    #[error("request body too large")]
    TooLarge,
}

/// A body that fails once its deadline passes or its limit is crossed
/// (for bodies their handlers read).
pub struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    left: usize,
}

impl Deadline {
    /// `inner`, due within `timeout` from now, at most `limit` bytes.
    pub fn new(inner: Body, timeout: Duration, limit: usize) -> Deadline {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            left: limit,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    if d.len() > this.left {
                        return Poll::Ready(Some(Err(axum::Error::new(BodyError::TooLarge))));
                    }
                    this.left -= d.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyError::TimedOut)))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
