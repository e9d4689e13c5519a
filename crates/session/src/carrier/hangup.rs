//! Hanging up a carrier call through the carrier's REST API, behind the
//! [`CarrierHangup`] trait so tests (and operators without API access)
//! plug in their own: [`RecordingHangup`] records what was asked,
//! [`NoHangup`] only closes the socket.
//!
//! - Twilio: `POST {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`
//!   with the form `Status=completed`, HTTP basic auth (RFC 7617) with the
//!   account SID and auth token.
//! - Vonage: `PUT {base}/v1/calls/{uuid}` with `{"action":"hangup"}` and a
//!   bearer JWT (RFC 6750): an application JWT minted and cached by
//!   [`super::vonage_jwt::VonageBearer`] (RS256 with the application's
//!   private key), or a fixed token from configuration.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_llm_bridge::{BoxFuture, TlsRoots};

use super::vonage_jwt::VonageBearer;
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
    /// The bearer token could not be made (see
    /// [`super::vonage_jwt::JwtError`]).
    #[error("{0}: hangup token not signed")]
    Token(Carrier),
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

/// An HTTP client for `carrier`'s REST API: rustls on ring with the
/// bundled webpki roots, as the carriers' public APIs need, no redirects.
fn rest_client(carrier: Carrier) -> Result<reqwest::Client, HangupError> {
    let tls = TlsRoots::Bundled
        .client_config()
        .map_err(|_| HangupError::Transport(carrier))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
        .connect_timeout(HANGUP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| HangupError::Transport(carrier))
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
            client: rest_client(Carrier::Twilio)?,
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
    bearer: VonageBearer,
}

impl VonageRest {
    /// Hangs up through `base` (`https://api.nexmo.com`), authorized by
    /// `bearer` (a token minted per request, or reused while fresh).
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(base: &str, bearer: VonageBearer) -> Result<VonageRest, HangupError> {
        Ok(VonageRest {
            client: rest_client(Carrier::Vonage)?,
            base: base.trim_end_matches('/').to_owned(),
            bearer,
        })
    }
}

impl CarrierHangup for VonageRest {
    fn hangup(&self, target: HangupTarget) -> BoxFuture<'static, Result<(), HangupError>> {
        let this = self.clone();
        Box::pin(async move {
            let url = format!("{}/v1/calls/{}", this.base, target.call.as_str());
            let bearer = this
                .bearer
                .token()
                .map_err(|_| HangupError::Token(Carrier::Vonage))?;
            let r = this
                .client
                .put(url)
                .timeout(HANGUP_TIMEOUT)
                .bearer_auth(&*bearer)
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
        let rest = VonageRest::new(&base, VonageBearer::fixed("jwt".into())).unwrap();
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

    #[tokio::test]
    async fn vonage_hangup_sends_a_minted_rs256_jwt_that_verifies() {
        use crate::carrier::vonage_jwt::test_key;
        let (base, h) = one_request(204).await;
        let bearer = VonageBearer::minted(test_key::signer(test_key::KEY));
        let rest = VonageRest::new(&base, bearer).unwrap();
        let target = HangupTarget {
            call: CarrierCallId::new(Carrier::Vonage, "u-2").unwrap(),
            account: None,
        };
        let before = jiff::Timestamp::now().as_second();
        rest.hangup(target).await.unwrap();
        let req = h.await.unwrap();
        assert!(req.starts_with("PUT /v1/calls/u-2 HTTP/1.1"), "{req}");
        let jwt = req
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("authorization")
                    .then(|| v.trim().strip_prefix("Bearer "))?
            })
            .expect("a bearer token");
        let (header, claims) = test_key::verify(jwt);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["application_id"], test_key::APP);
        let iat = claims["iat"].as_i64().unwrap();
        assert!((before..before + 60).contains(&iat), "{iat}");
        assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
        assert!(!format!("{rest:?}").contains(jwt), "token redacted");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let rest = TwilioRest::new("http://x", "very-secret".into()).unwrap();
        assert!(!format!("{rest:?}").contains("very-secret"));
    }
}
