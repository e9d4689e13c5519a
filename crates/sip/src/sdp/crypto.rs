//! SDES (RFC 4568): the `a=crypto` attribute that carries SRTP master keys
//! in SDP, and the policy for `RTP/SAVP` offers and answers.
//!
//! Only what SIP trunks use is taken: one `inline:` key per line, no MKI,
//! no session parameters (RFC 4568 section 6.3: a line whose parameters
//! we do not know is not used), the default key lifetime (a written one is
//! kept and ignored: the call ends long before 2^31 packets). A line that
//! does not parse, or that we cannot use, is skipped; the next one is
//! tried (the offerer's preference order).
//!
//! Keys are [`KeyMaterial`]: wiped when dropped and never printed. The
//! `Attribute` that carries one in a parsed or written [`Session`](super::Session)
//! holds the same text: a [`Session`](super::Session) is never logged.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// `a=crypto` lines read from one media section, at most (more are
/// ignored: an offer lists a handful).
pub const MAX_CRYPTO_LINES: usize = 16;

/// An SRTP crypto suite SDES can name (RFC 4568 section 6.2, RFC 7714
/// section 14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CryptoSuite {
    /// `AES_CM_128_HMAC_SHA1_80`.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`.
    AesCm128HmacSha1_32,
    /// `AEAD_AES_128_GCM`.
    AeadAes128Gcm,
}

impl CryptoSuite {
    /// Every suite we speak, in our preference order.
    pub const ALL: [CryptoSuite; 3] = [
        CryptoSuite::AesCm128HmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32,
        CryptoSuite::AeadAes128Gcm,
    ];

    /// The name SDP writes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            CryptoSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite SDP names `name`, if we speak it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<CryptoSuite> {
        CryptoSuite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes of the master key and salt together (the `inline:` key).
    #[must_use]
    pub fn master_len(self) -> usize {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 | CryptoSuite::AesCm128HmacSha1_32 => 30,
            CryptoSuite::AeadAes128Gcm => 28,
        }
    }
}

/// An SRTP master key and salt: wiped when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    /// Wraps key bytes (the master key then the salt).
    #[must_use]
    pub fn new(bytes: &[u8]) -> KeyMaterial {
        KeyMaterial(Zeroizing::new(bytes.to_vec()))
    }

    /// The key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Why an `a=crypto` line cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// It does not follow RFC 4568's grammar.
    #[error("a=crypto: {0}")]
    Syntax(&'static str),
    /// A suite we do not speak.
    #[error("a=crypto: unknown crypto suite")]
    UnknownSuite,
    /// Something we do not support: an MKI, several keys, a session
    /// parameter, a key method other than `inline`.
    #[error("a=crypto: unsupported {0}")]
    Unsupported(&'static str),
}

/// One `a=crypto:<tag> <suite> inline:<key>[|<lifetime>]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag (1 to 9 digits) the answer repeats.
    pub tag: u32,
    /// The suite.
    pub suite: CryptoSuite,
    /// The master key and salt.
    pub key: KeyMaterial,
}

impl CryptoAttribute {
    /// Parses the value of an `a=crypto` attribute (what follows the colon).
    ///
    /// ```
    /// use callbridge_sip::sdp::{CryptoAttribute, CryptoSuite};
    ///
    /// let a = CryptoAttribute::parse(
    ///     "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20",
    /// )
    /// .unwrap();
    /// assert_eq!((a.tag, a.suite), (1, CryptoSuite::AesCm128HmacSha1_80));
    /// assert_eq!(a.key.as_bytes().len(), 30);
    /// assert_eq!(a.to_value(), "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz");
    /// ```
    pub fn parse(value: &str) -> Result<CryptoAttribute, CryptoError> {
        let mut fields = value.split([' ', '\t']).filter(|f| !f.is_empty());
        let tag = fields.next().ok_or(CryptoError::Syntax("no tag"))?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CryptoError::Syntax("tag"));
        }
        let tag: u32 = tag.parse().map_err(|_| CryptoError::Syntax("tag"))?;
        let suite = fields.next().ok_or(CryptoError::Syntax("no suite"))?;
        let params = fields.next().ok_or(CryptoError::Syntax("no key"))?;
        if fields.next().is_some() {
            return Err(CryptoError::Unsupported("session parameter"));
        }
        let suite = CryptoSuite::from_name(suite).ok_or(CryptoError::UnknownSuite)?;
        if params.contains(';') {
            return Err(CryptoError::Unsupported("several keys"));
        }
        let info = params
            .strip_prefix("inline:")
            .ok_or(CryptoError::Unsupported("key method"))?;
        let mut parts = info.split('|');
        let key = parts.next().unwrap_or_default();
        for part in parts {
            if part.contains(':') {
                return Err(CryptoError::Unsupported("MKI"));
            }
            check_lifetime(part)?;
        }
        let bytes = Zeroizing::new(
            STANDARD
                .decode(key)
                .map_err(|_| CryptoError::Syntax("key is not base64"))?,
        );
        if bytes.len() != suite.master_len() {
            return Err(CryptoError::Syntax("key length"));
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            key: KeyMaterial(bytes),
        })
    }

    /// The attribute's value as we write it: no lifetime, no MKI.
    #[must_use]
    pub fn to_value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.key.as_bytes())
        )
    }
}

/// A lifetime: decimal digits or `2^` and digits (RFC 4568 section 9.2).
fn check_lifetime(s: &str) -> Result<(), CryptoError> {
    let digits = s.strip_prefix("2^").unwrap_or(s);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoError::Syntax("lifetime"));
    }
    Ok(())
}

/// Whether calls use SRTP (the agent's `rtp.srtp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only: an offer of `RTP/SAVP` alone is refused (488); our
    /// offers are `RTP/AVP`.
    #[default]
    Off,
    /// SRTP when the peer offers it, plain RTP otherwise; our offers are
    /// `RTP/SAVP` when the caller of [`make_offer`](super::make_offer)
    /// gives keys (the agent does for `sips:` targets).
    Offer,
    /// SRTP only: a plaintext offer is refused (488), and every offer we
    /// make is `RTP/SAVP`.
    Require,
}

impl SrtpPolicy {
    /// Every policy, in the order the settings list them.
    pub const ALL: [SrtpPolicy; 3] = [SrtpPolicy::Off, SrtpPolicy::Offer, SrtpPolicy::Require];

    /// The setting's value (`off`, `offer`, `require`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Offer => "offer",
            SrtpPolicy::Require => "require",
        }
    }
}

/// The SRTP of a negotiated stream: the suite and both keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedSrtp {
    /// The suite both sides use.
    pub suite: CryptoSuite,
    /// Our key: what we send is protected with it.
    pub local: KeyMaterial,
    /// The peer's key: what we receive is checked with it.
    pub remote: KeyMaterial,
}

#[cfg(test)]
mod tests;
