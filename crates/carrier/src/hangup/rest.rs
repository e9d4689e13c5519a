//! The carriers' REST hangups over HTTPS: reqwest on the rustls
//! configuration of `callbridge-tls` (the aws-lc-rs provider, trusting the
//! system store or the bundled roots, as every outbound client of the
//! agent).

use std::sync::Arc;

use callbridge_tls::TlsRoots;

use super::{BoxFuture, CarrierHangup, HANGUP_TIMEOUT, HangupError, HangupTarget};
use crate::Carrier;
use crate::vonage_jwt::VonageBearer;
use callbridge_redact::Secret;

/// Connect timeout of the hangup client (as the summary clients').
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The HTTP client of `carrier`'s REST hangups at `base`: `roots`'
/// configuration (not read for a plain `http://` base), no redirects, a
/// bounded connect.
fn client(carrier: Carrier, base: &str, roots: TlsRoots) -> Result<reqwest::Client, HangupError> {
    let tls = roots
        .client_config_for(base)
        .map_err(|source| HangupError::Tls { carrier, source })?;
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| HangupError::Transport(carrier))
}

/// Twilio's REST hangup.
#[derive(Debug, Clone)]
pub struct TwilioRest {
    client: reqwest::Client,
    base: String,
    auth_token: Secret<Arc<str>>,
}

impl TwilioRest {
    /// Hangs up through `base` (`https://api.twilio.com`) with the
    /// account's auth token, trusting `roots`.
    ///
    /// # Errors
    /// [`HangupError::Tls`] (no usable system trust store), or
    /// [`HangupError::Transport`] (the HTTP client could not be built).
    pub fn new(base: &str, auth_token: String, roots: TlsRoots) -> Result<TwilioRest, HangupError> {
        Ok(TwilioRest {
            client: client(Carrier::Twilio, base, roots)?,
            base: base.trim_end_matches('/').to_owned(),
            auth_token: Secret::new(auth_token.into()),
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
                .basic_auth(&account, Some(&**this.auth_token.expose()))
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
    /// `bearer` (a token minted per request, or reused while fresh),
    /// trusting `roots`.
    ///
    /// # Errors
    /// [`HangupError::Tls`] (no usable system trust store), or
    /// [`HangupError::Transport`] (the HTTP client could not be built).
    pub fn new(
        base: &str,
        bearer: VonageBearer,
        roots: TlsRoots,
    ) -> Result<VonageRest, HangupError> {
        Ok(VonageRest {
            client: client(Carrier::Vonage, base, roots)?,
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
    use crate::CarrierCallId;
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
        let rest = TwilioRest::new(&base, "tok".into(), TlsRoots::System).unwrap();
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
        let rest =
            VonageRest::new(&base, VonageBearer::fixed("jwt".into()), TlsRoots::System).unwrap();
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
        use crate::vonage_jwt::test_key;
        let (base, h) = one_request(204).await;
        let bearer = VonageBearer::minted(test_key::signer(test_key::KEY));
        let rest = VonageRest::new(&base, bearer, TlsRoots::System).unwrap();
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
        let rest = TwilioRest::new("http://x", "very-secret".into(), TlsRoots::System).unwrap();
        assert!(!format!("{rest:?}").contains("very-secret"));
    }
}
