//! The agent's HTTP API from the dialer's side: `POST /api/calls` and
//! `GET /api/calls/{id}` with the shared wire types of this crate.
//! Answers are read up to [`MAX_BODY`] bytes; the token is sent as a bearer
//! header and never logged. TLS is rustls on the aws-lc-rs provider
//! trusting the [`TlsRoots`] given (the system store by default; a plain
//! `http://` agent never needs one); redirects are not followed.

use std::sync::Arc;
use std::time::Duration;

use callbridge_tls::{TlsError, TlsRoots};
use reqwest::StatusCode;

use crate::{CallAccepted, CallRequest, CallStatus, ErrorBody};

/// Largest answer body read from the agent.
pub const MAX_BODY: usize = 64 * 1024;
/// Per-request time limit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not `http://` or `https://`.
    #[error("`{base}`: expected an http:// or https:// URL")]
    NotHttp {
        /// The URL given, without trailing slashes.
        base: String,
    },
    /// The TLS roots cannot be used (an `https://` agent, the system trust
    /// store without a usable certificate).
    #[error("TLS roots {roots}: {source}")]
    Tls {
        /// The roots asked for.
        roots: TlsRoots,
        /// Why.
        source: TlsError,
    },
    /// The HTTP stack could not be set up.
    #[error("{what}: {why}")]
    Setup {
        /// Which part: `HTTP client setup`.
        what: &'static str,
        /// The stack's message.
        why: String,
    },
}

/// Why `POST /api/calls` did not place a call. Deliberately exhaustive: a
/// dialer decides per kind whether the lead is retried, settled or the run
/// stops, so a new kind must be handled by every caller.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 503 (at capacity or draining) or another 5xx: try again later.
    #[error("agent unavailable: {why}")]
    Unavailable {
        /// The HTTP status (503, 429, another 5xx).
        status: u16,
        /// The agent's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// What it said.
        why: String,
    },
    /// The request never reached the agent (connection refused...).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the agent, but no answer came back
    /// (timeout, connection reset): the call may exist.
    #[error("no answer, the call may exist: {0}")]
    Ambiguous(String),
    /// 409: the lead already has a live call, or the claim token the
    /// request carried no longer holds the lead's claim (nothing was
    /// dialled). Either way the store says whether this attempt has a call.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 401 or 403: the token is wrong or lacks the role.
    #[error("not authorized: {0}")]
    Auth(String),
    /// 404 or 405: no call API at this address (not the agent, or the
    /// wrong URL).
    #[error("no call API: {0}")]
    NoApi(String),
    /// Another 4xx: the agent refuses this call (bad number...).
    #[error("rejected: {0}")]
    Rejected(String),
}

/// A client of one agent's call API.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use callbridge_api::{AgentClient, CallRequest};
///
/// let agent = AgentClient::new("http://127.0.0.1:8080", "cbt_...".into())?;
/// let req = CallRequest { to: "+4930123456".into(), ..CallRequest::default() };
/// let accepted = agent.place(&req).await?;
/// let status = agent.status(&accepted.id).await?;
/// println!("{:?}", status.map(|s| s.state));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An error with every cause it carries, outermost first, joined by
/// `: ` (reqwest's own text is only `error sending request for url
/// (...)`; the cause, connection refused, a DNS failure, a TLS alert,
/// is in its sources). A cause whose text the chain already holds (hyper
/// repeats its inner error) is left out.
///
/// ```
/// let e = std::io::Error::new(
///     std::io::ErrorKind::Other,
///     std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
/// );
/// assert_eq!(callbridge_api::error_chain(&e), "connection refused");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Reads at most [`MAX_BODY`] bytes of an answer.
async fn body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer longer than {MAX_BODY} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn error_text(status: StatusCode, bytes: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => format!("{status}: {}", e.error),
        Err(_) => status.to_string(),
    }
}

impl AgentClient {
    /// A client for the agent at `base` (`http://127.0.0.1:8080`), trusting
    /// the system store for an `https://` agent.
    ///
    /// # Errors
    /// As [`AgentClient::with_roots`].
    pub fn new(base: &str, token: String) -> Result<Self, ClientError> {
        Self::with_roots(base, token, TlsRoots::System)
    }

    /// A client for the agent at `base`, trusting `roots` when `base` is
    /// `https://` (for `http://` no trust store is read).
    ///
    /// # Errors
    /// [`ClientError::NotHttp`], [`ClientError::Tls`] (an `https://` base
    /// and a system store without a usable certificate),
    /// [`ClientError::Setup`].
    pub fn with_roots(base: &str, token: String, roots: TlsRoots) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::NotHttp { base: base.into() });
        }
        let tls = roots
            .client_config_for(base)
            .map_err(|source| ClientError::Tls { roots, source })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Setup {
                what: "HTTP client setup",
                why: e.to_string(),
            })?;
        Ok(AgentClient {
            http,
            base: base.into(),
            token: token.into(),
        })
    }

    /// The agent's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/calls`.
    pub async fn place(&self, req: &CallRequest) -> Result<CallAccepted, PostError> {
        let json = serde_json::to_vec(req).map_err(|e| PostError::Rejected(e.to_string()))?;
        let sent = self
            .http
            .post(format!("{}/api/calls", self.base))
            .bearer_auth(&*self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(PostError::NotSent(error_chain(&e))),
            Err(e) => return Err(PostError::Ambiguous(error_chain(&e))),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        let bytes = match body(resp).await {
            Ok(b) => b,
            Err(e) if status.is_success() => return Err(PostError::Ambiguous(e)),
            Err(_) => Vec::new(),
        };
        match status {
            s if s.is_success() => serde_json::from_slice::<CallAccepted>(&bytes)
                .map_err(|e| PostError::Ambiguous(format!("{s} with an unreadable body: {e}"))),
            StatusCode::CONFLICT => Err(PostError::Conflict(error_text(status, &bytes))),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(PostError::Auth(error_text(status, &bytes)))
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                Err(PostError::NoApi(error_text(status, &bytes)))
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(PostError::Unavailable {
                    status: s.as_u16(),
                    retry_after,
                    why: error_text(status, &bytes),
                })
            }
            _ => Err(PostError::Rejected(error_text(status, &bytes))),
        }
    }

    /// `GET /api/calls/{id}`: `Ok(None)` when the agent does not know the
    /// call (404).
    pub async fn status(&self, id: &str) -> Result<Option<CallStatus>, String> {
        let resp = self
            .http
            .get(format!("{}/api/calls/{id}", self.base))
            .bearer_auth(&*self.token)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = body(resp).await?;
        if !status.is_success() {
            return Err(error_text(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("unreadable call status: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Layer {
        what: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    fn layer(what: &'static str, cause: Option<Layer>) -> Layer {
        Layer {
            what,
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = layer(
            "error sending request for url (http://127.0.0.1:9/api/calls)",
            Some(layer(
                "client error (Connect)",
                Some(layer(
                    "tcp connect error",
                    Some(layer("Connection refused (os error 111)", None)),
                )),
            )),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request for url (http://127.0.0.1:9/api/calls): \
             client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
        // A cause that repeats what the chain says is not said twice.
        let e = layer("dns error: no such host", Some(layer("no such host", None)));
        assert_eq!(error_chain(&e), "dns error: no such host");
        assert_eq!(error_chain(&layer("alone", None)), "alone");
    }
}
