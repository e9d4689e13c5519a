//! HTTP Digest authentication computations for SIP (RFC 3261 section 22,
//! RFC 2617, RFC 7616 / RFC 8760): MD5 and SHA-256 (and their `-sess`
//! variants), `qop=auth` with nonce count and client nonce. Pure functions:
//! the client nonce is passed in so tests can pin it; the client
//! transaction logic that reacts to 401/407 lives elsewhere.
//!
//! ```
//! use callbridge_sip::digest::{Algorithm, request_digest};
//! // RFC 2617 section 3.5.
//! let r = request_digest(
//!     Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life",
//!     "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html",
//!     Some((1, "0a4f113b")),
//! );
//! assert_eq!(r, "6629fae49393a05397450978507c4ef1");
//! ```

use crate::header::AuthValue;
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The digest algorithm of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default when a challenge names none).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess` (RFC 8760).
    Sha256Sess,
}

impl Algorithm {
    /// The token used in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn from_token(t: &[u8]) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().as_bytes().eq_ignore_ascii_case(t))
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data)),
        }
    }
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The scheme is not Digest.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A required parameter is missing.
    #[error("challenge has no {0} parameter")]
    Missing(&'static str),
    /// The algorithm is not MD5/SHA-256 (or -sess).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// `qop` is offered but not `auth` (only `auth-int`).
    #[error("unsupported qop (only auth is implemented)")]
    UnsupportedQop,
    /// A parameter is not valid UTF-8.
    #[error("challenge parameter {0} is not UTF-8")]
    NotUtf8(&'static str),
}

/// A parsed Digest challenge from WWW-Authenticate or Proxy-Authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back.
    pub opaque: Option<String>,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// Whether `qop=auth` is offered (then nc and cnonce are used).
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired, retry with the same password.
    pub stale: bool,
}

fn utf8(v: bytes::Bytes, name: &'static str) -> Result<String, DigestError> {
    String::from_utf8(v.to_vec()).map_err(|_| DigestError::NotUtf8(name))
}

impl Challenge {
    /// Read a challenge header value.
    pub fn from_auth(value: &AuthValue) -> Result<Challenge, DigestError> {
        if !value.is_digest() {
            return Err(DigestError::NotDigest);
        }
        let realm = utf8(
            value.param("realm").ok_or(DigestError::Missing("realm"))?,
            "realm",
        )?;
        let nonce = utf8(
            value.param("nonce").ok_or(DigestError::Missing("nonce"))?,
            "nonce",
        )?;
        let opaque = value
            .param("opaque")
            .map(|o| utf8(o, "opaque"))
            .transpose()?;
        let algorithm = match value.param("algorithm") {
            Some(a) => Algorithm::from_token(&a).ok_or(DigestError::UnsupportedAlgorithm)?,
            None => Algorithm::Md5,
        };
        let qop_auth = match value.param("qop") {
            None => false,
            Some(q) => {
                let auth = q
                    .split(|&c| c == b',')
                    .any(|t| crate::parse::lex::trim(t).eq_ignore_ascii_case(b"auth"));
                if !auth {
                    return Err(DigestError::UnsupportedQop);
                }
                true
            }
        };
        let stale = value
            .param("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case(b"true"));
        Ok(Challenge {
            realm,
            nonce,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }
}

/// HA1 = H(username:realm:password), or for `-sess`
/// H(H(username:realm:password):nonce:cnonce) (RFC 2617 section 3.2.2.2).
pub fn ha1(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
) -> String {
    let base = alg.hash_hex(format!("{username}:{realm}:{password}").as_bytes());
    if alg.is_sess() {
        alg.hash_hex(format!("{base}:{nonce}:{cnonce}").as_bytes())
    } else {
        base
    }
}

/// HA2 = H(method:uri) for qop=auth or no qop (RFC 2617 section 3.2.2.3).
pub fn ha2(alg: Algorithm, method: &str, uri: &str) -> String {
    alg.hash_hex(format!("{method}:{uri}").as_bytes())
}

/// The `response` value: with `qop` = Some((nc, cnonce)) it is
/// H(HA1:nonce:nc:cnonce:auth:HA2), else H(HA1:nonce:HA2)
/// (RFC 2617 section 3.2.2.1). `nc` is written as 8 hex digits.
#[allow(
    clippy::too_many_arguments,
    reason = "the RFC's inputs, each a plain string"
)]
pub fn request_digest(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(u32, &str)>,
) -> String {
    let cnonce = qop.map_or("", |(_, c)| c);
    let ha1 = ha1(alg, username, realm, password, nonce, cnonce);
    let ha2 = ha2(alg, method, uri);
    match qop {
        Some((nc, cnonce)) => {
            alg.hash_hex(format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}").as_bytes())
        }
        None => alg.hash_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// Build the Authorization (or Proxy-Authorization) value answering
/// `challenge` for a request with `method` and Request-URI `uri`. `nc` is the
/// count of requests sent with this nonce (starting at 1) and `cnonce` a
/// fresh random string; both are used only when the challenge offers
/// `qop=auth`.
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> AuthValue {
    let qop = challenge.qop_auth.then_some((nc, cnonce));
    let response = request_digest(
        challenge.algorithm,
        username,
        &challenge.realm,
        password,
        &challenge.nonce,
        method,
        uri,
        qop,
    );
    let mut v = AuthValue::new("Digest");
    v.push_param("username", username.as_bytes(), true);
    v.push_param("realm", challenge.realm.as_bytes(), true);
    v.push_param("nonce", challenge.nonce.as_bytes(), true);
    v.push_param("uri", uri.as_bytes(), true);
    v.push_param("response", response.as_bytes(), true);
    v.push_param("algorithm", challenge.algorithm.as_str().as_bytes(), false);
    if let Some(opaque) = &challenge.opaque {
        v.push_param("opaque", opaque.as_bytes(), true);
    }
    if let Some((nc, cnonce)) = qop {
        v.push_param("qop", b"auth", false);
        v.push_param("nc", format!("{nc:08x}").as_bytes(), false);
        v.push_param("cnonce", cnonce.as_bytes(), true);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encode;
    use bytes::Bytes;

    fn auth(s: &'static str) -> AuthValue {
        let b = Bytes::from_static(s.as_bytes());
        crate::header::parse_auth(&b, &b).unwrap()
    }

    #[test]
    fn rfc2617_section_3_5_md5_vector() {
        let r = request_digest(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some((1, "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_section_3_9_1_md5_and_sha256_vectors() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let run = |alg| {
            request_digest(
                alg,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                nonce,
                "GET",
                "/dir/index.html",
                Some((1, cnonce)),
            )
        };
        assert_eq!(run(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            run(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn challenge_is_parsed_from_the_header_value() {
        let c = Challenge::from_auth(&auth(
            "Digest realm=\"atlanta.example.com\", qop=\"auth,auth-int\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\", stale=FALSE, algorithm=MD5",
        ))
        .unwrap();
        assert_eq!(c.realm, "atlanta.example.com");
        assert_eq!(c.nonce, "ea9c8e88df84f1cec4341ae6cbe5a359");
        assert_eq!(c.opaque.as_deref(), Some(""));
        assert!(c.qop_auth && !c.stale);
        assert_eq!(c.algorithm, Algorithm::Md5);
        let sha = Challenge::from_auth(&auth(
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, stale=true",
        ))
        .unwrap();
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert!(sha.stale && !sha.qop_auth);
    }

    #[test]
    fn unusable_challenges_are_errors() {
        assert_eq!(
            Challenge::from_auth(&auth("Basic realm=\"r\"")),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::from_auth(&auth("Digest nonce=\"n\"")),
            Err(DigestError::Missing("realm"))
        );
        assert_eq!(
            Challenge::from_auth(&auth(
                "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"
            )),
            Err(DigestError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Challenge::from_auth(&auth("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"")),
            Err(DigestError::UnsupportedQop)
        );
    }

    #[test]
    fn authorization_value_is_exact_and_parses_back() {
        let c = Challenge::from_auth(&auth(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        ))
        .unwrap();
        let v = authorization(
            &c,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        let bytes = v.to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
uri=\"/dir/index.html\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001, cnonce=\"0a4f113b\""
        );
        let back = crate::header::parse_auth(&bytes, &bytes).unwrap();
        assert_eq!(
            back.param("response").as_deref(),
            Some(&b"6629fae49393a05397450978507c4ef1"[..])
        );
    }

    #[test]
    fn nonce_count_is_eight_hex_digits_and_changes_the_response() {
        let c = Challenge::from_auth(&auth("Digest realm=\"r\", nonce=\"n\", qop=auth")).unwrap();
        let one = authorization(&c, "u", "p", "REGISTER", "sip:r", 1, "c");
        let eleven = authorization(&c, "u", "p", "REGISTER", "sip:r", 17, "c");
        assert_eq!(eleven.param("nc").as_deref(), Some(&b"00000011"[..]));
        assert_ne!(one.param("response"), eleven.param("response"));
    }

    #[test]
    fn without_qop_the_rfc2069_form_is_used() {
        let c = Challenge::from_auth(&auth("Digest realm=\"r\", nonce=\"n\"")).unwrap();
        let v = authorization(&c, "u", "p", "INVITE", "sip:b@r", 1, "c");
        assert!(v.param("qop").is_none() && v.param("nc").is_none());
        let ha1 = Algorithm::Md5.hash_hex(b"u:r:p");
        let ha2 = Algorithm::Md5.hash_hex(b"INVITE:sip:b@r");
        let expect = Algorithm::Md5.hash_hex(format!("{ha1}:n:{ha2}").as_bytes());
        assert_eq!(v.param("response").as_deref(), Some(expect.as_bytes()));
    }

    #[test]
    fn sess_variant_hashes_nonce_and_cnonce_into_ha1() {
        let plain = ha1(Algorithm::Sha256, "u", "r", "p", "n", "c");
        let sess = ha1(Algorithm::Sha256Sess, "u", "r", "p", "n", "c");
        assert_eq!(
            sess,
            Algorithm::Sha256.hash_hex(format!("{plain}:n:c").as_bytes())
        );
    }
}
