//! The client side of SIP digest authentication (RFC 3261 section 22.2,
//! RFC 2617, RFC 8760): pick a challenge out of a 401/407, answer it with
//! [`crate::digest`], count nonce uses (`nc`) and reuse the nonce for later
//! requests (REGISTER refreshes) until the server issues a new one.

use crate::digest::{self, Algorithm, Challenge};
use crate::header::{AuthValue, HeaderName};
use crate::message::Response;
use crate::status::StatusCode;
use crate::uri::Uri;
use std::fmt;

/// A username and password for digest authentication. `Debug` never shows
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The digest username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl Credentials {
    /// Credentials from a username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The last challenge of a server, and how often its nonce was used.
#[derive(Debug, Default)]
pub(crate) struct DigestClient {
    current: Option<(Challenge, HeaderName)>,
    nc: u32,
}

/// Why a challenge was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No Digest challenge we can compute (unknown algorithm, auth-int).
    Unusable,
    /// The server rejected our answer to this very nonce: wrong password.
    Rejected,
}

impl DigestClient {
    /// Take the challenge of a 401 or 407. A challenge with the nonce we
    /// just answered (and not `stale=true`) means the credentials are
    /// wrong.
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
        let answered_before = self
            .current
            .as_ref()
            .is_some_and(|(c, _)| c.nonce == best.nonce && self.nc > 0);
        if answered_before && !best.stale {
            return Err(Refusal::Rejected);
        }
        self.current = Some((best, header));
        self.nc = 0;
        Ok(())
    }

    /// The header answering the current challenge for a request, counting
    /// one more use of its nonce. `None` before any challenge.
    pub(crate) fn authorize(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &Uri,
        cnonce: &str,
    ) -> Option<(HeaderName, AuthValue)> {
        let (challenge, header) = self.current.as_ref()?;
        self.nc += 1;
        let uri = String::from_utf8_lossy(&crate::encode::Encode::to_bytes(uri)).into_owned();
        let value = digest::authorization(
            challenge,
            &credentials.username,
            &credentials.password,
            method,
            &uri,
            self.nc,
            cnonce,
        );
        Some((header.clone(), value))
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
        let (name, v1) = c.authorize(&creds, "REGISTER", &uri, "cn").unwrap();
        assert_eq!(name, HeaderName::Authorization);
        assert_eq!(v1.param("algorithm").as_deref(), Some(&b"SHA-256"[..]));
        assert_eq!(v1.param("nc").as_deref(), Some(&b"00000001"[..]));
        let (_, v2) = c.authorize(&creds, "REGISTER", &uri, "cn").unwrap();
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
