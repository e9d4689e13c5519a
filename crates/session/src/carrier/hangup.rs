//! Hanging up a carrier call through the carrier's REST API, behind the
//! [`CarrierHangup`] trait so tests (and operators without API access)
//! plug in their own: [`RecordingHangup`] records what was asked,
//! [`NoHangup`] only closes the socket.
//!
//! - Twilio: `POST {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`
//!   with the form `Status=completed`, HTTP basic auth (RFC 7617) with the
//!   account SID and auth token.
//! - Vonage: `PUT {base}/v1/calls/{uuid}` with `{"action":"hangup"}` and a
//!   bearer JWT (RFC 6750). Vonage's application JWTs are RS256-signed
//!   with the application's private key; this crate takes a ready token
//!   from configuration instead of minting one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_llm_bridge::BoxFuture;

use super::{Carrier, CarrierCallId};

/// Bound on one REST hangup request.
pub const HANGUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The call to hang up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupTarget {
    /// The carrier's call id (Twilio CallSid, Vonage uuid).
    pub call: CarrierCallId,
    /// Twilio's AccountSid (from `start`); `None` for Vonage.
    pub account: Option<String>,
}

/// Why a REST hangup failed (the call still ends on our side: the socket
/// is closed either way).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HangupError {
    /// The request could not be sent or timed out.
    #[error("{0}: hangup request failed")]
    Transport(Carrier),
    /// The carrier answered with a non-2xx status.
    #[error("{carrier}: hangup refused with HTTP {status}")]
    Status {
        /// Whose API.
        carrier: Carrier,
        /// The HTTP status.
        status: u16,
    },
    /// The target lacks what the API needs (Twilio's AccountSid).
    #[error("{0}: hangup target incomplete")]
    Target(Carrier),
}

/// Hangs up a carrier call (mockable).
pub trait CarrierHangup: Send + Sync + 'static {
    /// Asks the carrier to end `target`.
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>>;
}

/// Does nothing: the call ends when we close the socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHangup;

impl CarrierHangup for NoHangup {
    fn hangup(&self, _target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Records every hangup asked of it (tests).
#[derive(Debug, Clone, Default)]
pub struct RecordingHangup {
    calls: Arc<Mutex<Vec<HangupTarget>>>,
}

impl RecordingHangup {
    /// The targets hung up so far, in order.
    pub fn calls(&self) -> Vec<HangupTarget> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CarrierHangup for RecordingHangup {
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target);
        Box::pin(async { Ok(()) })
    }
}

/// A secret kept out of `Debug`.
#[derive(Clone)]
struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Twilio's REST hangup.
#[derive(Debug, Clone)]
pub struct TwilioRest {
    client: reqwest::Client,
    base: String,
    auth_token: Secret,
}

impl TwilioRest {
    /// Hangs up through `base` (`https://api.twilio.com`) with the
    /// account's auth token.
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(base: &str, auth_token: String) -> Result<TwilioRest, HangupError> {
        Ok(TwilioRest {
            client: crate::summary::http::client("twilio")
                .map_err(|_| HangupError::Transport(Carrier::Twilio))?,
            base: base.trim_end_matches('/').to_owned(),
            auth_token: Secret(auth_token.into()),
        })
    }
}

impl CarrierHangup for TwilioRest {
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        let this = self.clone();
        Box::pin(async move {
            let account = target.account.ok_or(HangupError::Target(Carrier::Twilio))?;
            let url = format!(
                "{}/2010-04-01/Accounts/{account}/Calls/{}.json",
                this.base,
                target.call.as_str()
            );
            let r = this
                .client
                .post(url)
                .timeout(HANGUP_TIMEOUT)
                .basic_auth(&account, Some(&*this.auth_token.0))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body("Status=completed")
                .send()
                .await
                .map_err(|_| HangupError::Transport(Carrier::Twilio))?;
            status(Carrier::Twilio, r.status().as_u16())
        })
    }
}

/// Vonage's REST hangup.
#[derive(Debug, Clone)]
pub struct VonageRest {
    client: reqwest::Client,
    base: String,
    bearer: Secret,
}

impl VonageRest {
    /// Hangs up through `base` (`https://api.nexmo.com`) with the bearer
    /// JWT `bearer`.
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(base: &str, bearer: String) -> Result<VonageRest, HangupError> {
        Ok(VonageRest {
            client: crate::summary::http::client("vonage")
                .map_err(|_| HangupError::Transport(Carrier::Vonage))?,
            base: base.trim_end_matches('/').to_owned(),
            bearer: Secret(bearer.into()),
        })
    }
}

impl CarrierHangup for VonageRest {
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        let this = self.clone();
        Box::pin(async move {
            let url = format!("{}/v1/calls/{}", this.base, target.call.as_str());
            let r = this
                .client
                .put(url)
                .timeout(HANGUP_TIMEOUT)
                .bearer_auth(&*this.bearer.0)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(r#"{"action":"hangup"}"#)
                .send()
                .await
                .map_err(|_| HangupError::Transport(Carrier::Vonage))?;
            status(Carrier::Vonage, r.status().as_u16())
        })
    }
}

fn status(carrier: Carrier, status: u16) -> Result<(), HangupError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(HangupError::Status { carrier, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-request HTTP server on loopback that answers `status` and
    /// returns the request it read.
    async fn one_request(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = 0;
            loop {
                let n = s.read(&mut buf[got..]).await.unwrap();
                got += n;
                let text = String::from_utf8_lossy(&buf[..got]).to_string();
                if n == 0
                    || (text.contains("\r\n\r\n")
                        && (text.ends_with("completed") || text.ends_with('}')))
                {
                    break;
                }
            }
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
            s.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..got]).to_string()
        });
        (base, h)
    }

    #[tokio::test]
    async fn twilio_hangup_posts_status_completed_with_basic_auth() {
        let (base, h) = one_request(200).await;
        let rest = TwilioRest::new(&base, "tok".into()).unwrap();
        let target = HangupTarget {
            call: CarrierCallId::new(Carrier::Twilio, "CA9").unwrap(),
            account: Some("AC1".into()),
        };
        rest.hangup(target).await.unwrap();
        let req = h.await.unwrap();
        assert!(req.starts_with("POST /2010-04-01/Accounts/AC1/Calls/CA9.json HTTP/1.1"));
        // base64("AC1:tok")
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: basic qumxonrvaw==")
        );
        assert!(req.ends_with("Status=completed"));
    }

    #[tokio::test]
    async fn vonage_hangup_puts_action_hangup_and_reports_refusal() {
        let (base, h) = one_request(404).await;
        let rest = VonageRest::new(&base, "jwt".into()).unwrap();
        let target = HangupTarget {
            call: CarrierCallId::new(Carrier::Vonage, "u-1").unwrap(),
            account: None,
        };
        assert_eq!(
            rest.hangup(target).await,
            Err(HangupError::Status {
                carrier: Carrier::Vonage,
                status: 404
            })
        );
        let req = h.await.unwrap();
        assert!(req.starts_with("PUT /v1/calls/u-1 HTTP/1.1"));
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer jwt")
        );
        assert!(req.ends_with(r#"{"action":"hangup"}"#));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let rest = TwilioRest::new("http://x", "very-secret".into()).unwrap();
        assert!(!format!("{rest:?}").contains("very-secret"));
    }
}
