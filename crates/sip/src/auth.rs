//! The client side of SIP digest authentication (RFC 3261 section 22.2,
//! RFC 2617, RFC 8760): pick a challenge out of a 401/407, answer it with
//! [`crate::digest`], count nonce uses (`nc`) and reuse the nonce for later
//! requests (REGISTER refreshes) until the server issues a new one. A
//! request challenged by a proxy (407) and then by the far end (401)
//! carries an answer for each realm (RFC 3261 section 22.3).

use crate::digest::{self, Algorithm, Challenge};
use crate::header::{AuthValue, HeaderName};
use crate::message::Response;
use crate::status::StatusCode;
use crate::uri::Uri;
use callbridge_redact::Secret;
use std::fmt;

/// A username and password for digest authentication. `Debug` never shows
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The digest username.
    pub username: String,
    /// The password (`Debug` and `Display` print `<redacted>`).
    pub password: Secret<String>,
}

impl Credentials {
    /// Credentials from a username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: Secret::new(password.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// At most this many challenges are answered at once, one per header and
/// realm: the far end's (401) and the proxies' on the path (407).
const MAX_REALMS: usize = 4;

/// The challenges a request has to answer (RFC 3261 section 22.3: one
/// Authorization or Proxy-Authorization per realm that challenged it, kept
/// for the retries that follow), and how often each nonce was used.
#[derive(Debug, Default)]
pub(crate) struct DigestClient {
    answered: Vec<Answered>,
}

/// One realm's latest challenge.
#[derive(Debug)]
struct Answered {
    challenge: Challenge,
    header: HeaderName,
    /// Requests sent with this nonce (the next `nc` is one more).
    nc: u32,
}

/// Why a challenge was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No Digest challenge we can compute (unknown algorithm, auth-int),
    /// or more realms than we keep.
    Unusable,
    /// The server rejected our answer to this very nonce: wrong password.
    Rejected,
}

impl DigestClient {
    /// Take the challenge of a 401 or 407. A challenge for a realm we
    /// answered, with the nonce we answered (and not `stale=true`), means
    /// the credentials are wrong. A challenge for a new realm is answered
    /// alongside the earlier ones.
    pub(crate) fn challenge(&mut self, response: &Response) -> Result<(), Refusal> {
        let h = response.headers();
        let (values, header) = if response.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            (h.proxy_authenticate(), HeaderName::ProxyAuthorization)
        } else {
            (h.www_authenticate(), HeaderName::Authorization)
        };
        let values = values.map_err(|_| Refusal::Unusable)?;
        let mut challenges: Vec<Challenge> = values
            .iter()
            .filter_map(|v| Challenge::from_auth(v).ok())
            .collect();
        // Prefer SHA-256 (RFC 8760 section 2.4) over MD5.
        challenges.sort_by_key(|c| match c.algorithm {
            Algorithm::Sha256 | Algorithm::Sha256Sess => 0,
            _ => 1,
        });
        let best = challenges.into_iter().next().ok_or(Refusal::Unusable)?;
        let same_realm = self
            .answered
            .iter()
            .position(|a| a.header == header && a.challenge.realm == best.realm);
        match same_realm {
            Some(i) => {
                let a = &mut self.answered[i];
                if a.challenge.nonce == best.nonce && a.nc > 0 && !best.stale {
                    return Err(Refusal::Rejected);
                }
                a.challenge = best;
                a.nc = 0;
            }
            None if self.answered.len() >= MAX_REALMS => return Err(Refusal::Unusable),
            None => self.answered.push(Answered {
                challenge: best,
                header,
                nc: 0,
            }),
        }
        Ok(())
    }

    /// The headers answering the kept challenges for a request, counting
    /// one more use of each nonce. Empty before any challenge.
    pub(crate) fn authorize(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &Uri,
        cnonce: &str,
    ) -> Vec<(HeaderName, AuthValue)> {
        if self.answered.is_empty() {
            return Vec::new();
        }
        let uri = String::from_utf8_lossy(&crate::encode::Encode::to_bytes(uri)).into_owned();
        self.answered
            .iter_mut()
            .map(|a| {
                a.nc += 1;
                let value = digest::authorization(
                    &a.challenge,
                    &credentials.username,
                    credentials.password.expose(),
                    method,
                    &uri,
                    a.nc,
                    cnonce,
                );
                (a.header.clone(), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn challenge_401(extra: &str) -> Response {
        let text = format!(
            "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(bytes::Bytes::from(text)) {
            Ok(Message::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefers_sha256_and_counts_nonce_uses() {
        let r = challenge_401(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", qop=\"auth\", algorithm=MD5\r\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256\r\n",
        );
        let mut c = DigestClient::default();
        c.challenge(&r).unwrap();
        let creds = Credentials::new("alice", "secret");
        let uri = Uri::parse(&bytes::Bytes::from_static(b"sip:h")).unwrap();
        let (name, v1) = c.authorize(&creds, "REGISTER", &uri, "cn").remove(0);
        assert_eq!(name, HeaderName::Authorization);
        assert_eq!(v1.param("algorithm").as_deref(), Some(&b"SHA-256"[..]));
        assert_eq!(v1.param("nc").as_deref(), Some(&b"00000001"[..]));
        let (_, v2) = c.authorize(&creds, "REGISTER", &uri, "cn").remove(0);
        assert_eq!(v2.param("nc").as_deref(), Some(&b"00000002"[..]));
        // The same nonce challenged again: the password is wrong.
        assert_eq!(c.challenge(&r), Err(Refusal::Rejected));
        assert!(!format!("{creds:?}").contains("secret"));
    }

    #[test]
    fn a_stale_nonce_is_answered_again() {
        let mut c = DigestClient::default();
        c.challenge(&challenge_401(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\"\r\n",
        ))
        .unwrap();
        let uri = Uri::parse(&bytes::Bytes::from_static(b"sip:h")).unwrap();
        c.authorize(&Credentials::new("a", "b"), "INVITE", &uri, "x");
        assert!(
            c.challenge(&challenge_401(
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", stale=true\r\n",
            ))
            .is_ok()
        );
    }
}
