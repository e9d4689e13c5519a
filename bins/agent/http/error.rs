//! The API's one error type, [`ApiError`], and the guarantees that every
//! error answer is JSON `{"error": "..."}` (`callbridge_api::ErrorBody`):
//! extractor rejections go through [`Json`] and [`Query`] (our wrappers
//! around axum's), unknown routes through [`not_found`], and
//! [`json_errors`] rewrites any remaining non-JSON error (axum's 405, a
//! body-limit 413) into the same shape, keeping headers such as `Allow`;
//! the console's HTML error pages (`text/html`) are left as they are.

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbridge_api::ErrorBody;
use serde::de::DeserializeOwned;
use tracing::warn;

/// Why a request failed; each variant is one HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or a value is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or a token the store does not know.
    #[error("{}", if *.presented { "invalid API token" } else { "missing bearer token" })]
    Unauthorized {
        /// Whether a token was presented (RFC 6750 `invalid_token`).
        presented: bool,
    },
    /// 403: the user's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or not visible to this user).
    #[error("{0}")]
    NotFound(String),
    /// 409: a conflicting call is live.
    #[error("{0}")]
    Conflict(String),
    /// 412: a precondition (`If-Match`) is not met.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the request body is over the limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 416: the Range cannot be served from a file of `len` bytes.
    #[error("range not satisfiable (the recording has {len} bytes)")]
    RangeNotSatisfiable {
        /// The file's length.
        len: u64,
    },
    /// 501: the agent is not set up for this.
    #[error("{0}")]
    NotConfigured(String),
    /// 503: try again after `retry_after` seconds (`Retry-After`).
    #[error("{message}")]
    Unavailable {
        /// Why.
        message: String,
        /// Seconds for `Retry-After`, if any.
        retry_after: Option<u64>,
    },
    /// 500: logged with its cause; the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The 500 for an unexpected failure: logs `what` (never sent out).
    pub fn internal(what: impl std::fmt::Display) -> Self {
        let what = what.to_string();
        warn!(error = %what, "HTTP request failed");
        ApiError::Internal(what)
    }

    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::NotConfigured(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 404 naming the session that does not exist.
    pub fn no_session(id: &str) -> Self {
        ApiError::NotFound(format!("session {id} does not exist"))
    }
}

/// `{"error": message}` with `status`.
pub fn error_response(status: StatusCode, message: String) -> Response {
    let body = serde_json::to_vec(&ErrorBody { error: message })
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = error_response(status, self.to_string());
        let h = res.headers_mut();
        match &self {
            ApiError::Unauthorized { presented } => {
                let v = if *presented {
                    r#"Bearer realm="callbridge", error="invalid_token""#
                } else {
                    r#"Bearer realm="callbridge""#
                };
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
            }
            ApiError::Unavailable {
                retry_after: Some(s),
                ..
            } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*s));
            }
            ApiError::RangeNotSatisfiable { len } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        res
    }
}

/// The router's fallback: unknown paths are a JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Middleware: answers 503 (`Retry-After: 1`) when every request slot is
/// taken, instead of queueing; the slot is held until the response starts.
pub async fn shed(
    axum::extract::State(slots): axum::extract::State<std::sync::Arc<tokio::sync::Semaphore>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_slot) = slots.try_acquire() else {
        return ApiError::Unavailable {
            message: "too many requests in flight".into(),
            retry_after: Some(1),
        }
        .into_response();
    };
    next.run(req).await
}

/// A handler panicked: logged, answered 500 (the panic text stays in the
/// log, it may hold request data).
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "HTTP handler panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

/// Outermost middleware: an error answer that is not JSON already (axum's
/// own 405, 413 from the body limit, ...) gets a JSON body with the
/// status's reason; its other headers (`Allow`) are kept.
pub async fn json_errors(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // JSON errors are the API's; HTML ones the console's own pages.
    let kept = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if kept {
        return res;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed for this endpoint".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ErrorBody { error: message })
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    Response::from_parts(parts, Body::from(body))
}

/// The largest request body accepted (413 above it): a JSON body's limit.
pub const MAX_BODY: usize = 64 * 1024;

/// axum's `Json` with rejections as [`ApiError`]: 415 for a missing or
/// wrong content type, 413 over the body limit, 400 for anything else
/// (bad syntax, wrong or unknown fields).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge(MAX_BODY);
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        JsonRejection::JsonDataError(e) => ApiError::BadRequest(own_words("body", &e.body_text())),
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(format!(
            "the request body is not valid JSON{}",
            position(&e.body_text())
        )),
        other => ApiError::BadRequest(own_words("body", &other.body_text())),
    }
}

/// ` (line L, column C)` from the end of a serde_json message, or nothing.
fn position(raw: &str) -> String {
    raw.rfind(" at line ")
        .map(|i| {
            let at = raw[i + " at line ".len()..].replacen(" column ", ", column ", 1);
            format!(" (line {at})")
        })
        .unwrap_or_default()
}

/// An extractor rejection in our words: axum's prefix ("Failed to
/// deserialize ...: ") and serde_json's position go, the field path
/// (`voice: ...`) leads, and serde's phrasings become sentences with
/// quoted names. What serde says is not a stable interface, so this is a
/// rewrite of the known shapes (tested) and a plain fallback for the rest.
fn own_words(what: &str, raw: &str) -> String {
    let body = match raw.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("Failed to") => rest,
        _ => raw,
    };
    let body = body.rfind(" at line ").map_or(body, |i| &body[..i]);
    // serde_path_to_error's `path: message`; `.` is the top level.
    let (field, msg) = match body.split_once(": ") {
        Some((path, msg)) if !path.contains(' ') && path != "." => (Some(path), msg),
        _ => (None, body),
    };
    let unquote = |s: &str| s.replace('`', "");
    let sentence = if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (name, known) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let known = unquote(known.trim_start_matches("one of "));
        if known.is_empty() || known == "there are no fields" {
            format!("unknown field {:?}", unquote(name))
        } else {
            format!("unknown field {:?} (known fields: {known})", unquote(name))
        }
    } else if let Some(name) = msg.strip_prefix("missing field ") {
        format!("field {:?} is required", unquote(name))
    } else if let Some(rest) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
    {
        match rest.split_once(", expected ") {
            Some((found, expected)) => {
                format!("expected {}, found {}", unquote(expected), unquote(found))
            }
            None => unquote(rest),
        }
    } else {
        unquote(msg)
    };
    match field {
        Some(f) => format!("{what} field {f:?}: {sentence}"),
        None => format!("{what}: {sentence}"),
    }
}

/// axum's `Query` with rejections as 400 [`ApiError`]s.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(own_words("query string", &e.body_text()))
}

#[cfg(test)]
mod tests {
    use super::{own_words, position};

    /// The texts axum 0.8 and serde produce today, each in our words.
    #[test]
    fn framework_rejections_are_reworded() {
        let cases = [
            (
                "Failed to deserialize the JSON body into the target type: voice: unknown field `voice`, expected one of `to`, `from` at line 1 column 30",
                "body field \"voice\": unknown field \"voice\" (known fields: to, from)",
            ),
            (
                "Failed to deserialize the JSON body into the target type: missing field `to` at line 1 column 2",
                "body: field \"to\" is required",
            ),
            (
                "Failed to deserialize the JSON body into the target type: amd: invalid type: string \"yes\", expected a boolean at line 1 column 40",
                "body field \"amd\": expected a boolean, found string \"yes\"",
            ),
            (
                "Failed to deserialize query string: unknown field `foo`, expected one of `state`, `limit`",
                "query string: unknown field \"foo\" (known fields: state, limit)",
            ),
        ];
        for (raw, want) in cases {
            let got = own_words(
                if raw.contains("query") {
                    "query string"
                } else {
                    "body"
                },
                raw,
            );
            assert_eq!(got, want);
            assert!(!got.contains("Failed to") && !got.contains('`'), "{got}");
        }
    }

    #[test]
    fn a_syntax_error_keeps_its_position() {
        assert_eq!(
            position("Failed to parse the request body as JSON: expected value at line 1 column 7"),
            " (line 1, column 7)"
        );
        assert_eq!(position("no position"), "");
    }
}
