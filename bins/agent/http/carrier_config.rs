//! `[carrier.twilio]` and `[carrier.vonage]` (issue 9): which carriers may
//! stream calls to this agent over a WebSocket, the public base URL the
//! carrier reaches us at (signatures are computed over it, and the TwiML /
//! NCCO point the carrier at its `wss://` form), whether webhook
//! signatures are checked, and the REST API base for hangups. Secrets come
//! from the environment only:
//!
//! | variable | used for |
//! |---|---|
//! | `TWILIO_AUTH_TOKEN` | `X-Twilio-Signature` checks and the REST hangup |
//! | `VONAGE_SIGNATURE_SECRET` | signed webhook (JWT HS256) checks |
//! | `VONAGE_API_JWT` | the REST hangup's bearer token (optional: without it the call ends when we close the socket) |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The Twilio auth token's variable.
pub const TWILIO_AUTH_TOKEN: &str = "TWILIO_AUTH_TOKEN";
/// The Vonage signature secret's variable.
pub const VONAGE_SIGNATURE_SECRET: &str = "VONAGE_SIGNATURE_SECRET";
/// The Vonage REST bearer token's variable.
pub const VONAGE_API_JWT: &str = "VONAGE_API_JWT";

/// `[carrier]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCarrier {
    /// `[carrier.twilio]`.
    pub twilio: Option<RawCarrierEntry>,
    /// `[carrier.vonage]`.
    pub vonage: Option<RawCarrierEntry>,
}

/// One carrier's keys (the same for both).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCarrierEntry {
    /// Serve this carrier's webhooks and WebSocket.
    pub enabled: bool,
    /// How the carrier reaches this agent (`https://agent.example.com`).
    pub public_url: String,
    /// Check webhook signatures (403 when missing or wrong).
    pub verify_signatures: bool,
    /// The REST API base for hangups.
    pub api_base: Option<String>,
}

impl Default for RawCarrierEntry {
    fn default() -> Self {
        RawCarrierEntry {
            enabled: false,
            public_url: String::new(),
            verify_signatures: true,
            api_base: None,
        }
    }
}

impl RawCarrier {
    /// Every key, for the configuration's key tree.
    pub fn key_tree() -> RawCarrier {
        let e = || RawCarrierEntry {
            enabled: false,
            public_url: String::new(),
            verify_signatures: false,
            api_base: Some(String::new()),
        };
        RawCarrier {
            twilio: Some(e()),
            vonage: Some(e()),
        }
    }
}

/// One enabled carrier, validated, with its secrets.
#[derive(Clone)]
pub struct CarrierEntry {
    /// `https://host[:port]` without a trailing slash.
    pub public_url: String,
    /// Check signatures.
    pub verify_signatures: bool,
    /// REST API base.
    pub api_base: String,
    /// Twilio auth token / Vonage signature secret (needed when signatures
    /// are checked).
    pub secret: Option<String>,
    /// Vonage REST bearer token.
    pub api_token: Option<String>,
}

impl std::fmt::Debug for CarrierEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierEntry")
            .field("public_url", &self.public_url)
            .field("verify_signatures", &self.verify_signatures)
            .field("api_base", &self.api_base)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl CarrierEntry {
    /// The `wss://` (or `ws://`) form of the public URL.
    pub fn ws_base(&self) -> String {
        if let Some(rest) = self.public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_url.clone()
        }
    }
}

/// The enabled carriers.
#[derive(Debug, Clone, Default)]
pub struct CarrierSettings {
    /// Twilio, when enabled.
    pub twilio: Option<CarrierEntry>,
    /// Vonage, when enabled.
    pub vonage: Option<CarrierEntry>,
}

impl CarrierSettings {
    /// Validates `[carrier.*]` and reads the secrets it needs from `env`.
    ///
    /// # Errors
    /// A bad `public_url`, or a missing secret for signature checks.
    pub fn load(
        raw: &RawCarrier,
        env: &BTreeMap<String, String>,
    ) -> Result<CarrierSettings, ConfigError> {
        let get = |v: &str| {
            env.get(v)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let entry = |name: &str,
                     raw: &Option<RawCarrierEntry>,
                     secret_var: &'static str,
                     default_api: &str|
         -> Result<Option<CarrierEntry>, ConfigError> {
            let Some(r) = raw.as_ref().filter(|r| r.enabled) else {
                return Ok(None);
            };
            let url = r.public_url.trim().trim_end_matches('/').to_owned();
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.len() <= "https://".len() {
                return Err(ConfigError::Invalid {
                    key: format!("carrier.{name}.public_url"),
                    origin: String::new(),
                    value: format!("{:?}", r.public_url),
                    expected: "the https:// URL the carrier reaches this agent at".into(),
                });
            }
            let secret = get(secret_var);
            if r.verify_signatures && secret.is_none() {
                return Err(ConfigError::MissingSecret {
                    var: secret_var,
                    why: format!(
                        "carrier.{name}.verify_signatures = true checks signatures with it"
                    ),
                });
            }
            Ok(Some(CarrierEntry {
                public_url: url,
                verify_signatures: r.verify_signatures,
                api_base: r
                    .api_base
                    .clone()
                    .unwrap_or_else(|| default_api.to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
                secret,
                api_token: None,
            }))
        };
        let twilio = entry(
            "twilio",
            &raw.twilio,
            TWILIO_AUTH_TOKEN,
            "https://api.twilio.com",
        )?;
        let mut vonage = entry(
            "vonage",
            &raw.vonage,
            VONAGE_SIGNATURE_SECRET,
            "https://api.nexmo.com",
        )?;
        if let Some(v) = &mut vonage {
            v.api_token = get(VONAGE_API_JWT);
        }
        Ok(CarrierSettings { twilio, vonage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, verify: bool) -> Option<RawCarrierEntry> {
        Some(RawCarrierEntry {
            enabled: true,
            public_url: url.into(),
            verify_signatures: verify,
            api_base: None,
        })
    }

    #[test]
    fn signature_checks_need_their_secret_from_the_environment() {
        let raw = RawCarrier {
            twilio: entry("https://agent.example/", true),
            vonage: None,
        };
        let m = CarrierSettings::load(&raw, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(m.contains(TWILIO_AUTH_TOKEN), "{m}");
        let env = BTreeMap::from([(TWILIO_AUTH_TOKEN.to_owned(), "tok".to_owned())]);
        let s = CarrierSettings::load(&raw, &env).unwrap();
        let t = s.twilio.unwrap();
        assert_eq!(t.public_url, "https://agent.example");
        assert_eq!(t.ws_base(), "wss://agent.example");
        assert_eq!(t.api_base, "https://api.twilio.com");
        assert!(!format!("{t:?}").contains("tok\""), "secret redacted");
    }

    #[test]
    fn a_public_url_must_be_http_or_https_and_disabled_carriers_are_off() {
        let raw = RawCarrier {
            twilio: None,
            vonage: entry("agent.example", false),
        };
        assert!(CarrierSettings::load(&raw, &BTreeMap::new()).is_err());
        let mut off = entry("x", true);
        if let Some(o) = &mut off {
            o.enabled = false;
        }
        let raw = RawCarrier {
            twilio: off,
            vonage: None,
        };
        assert!(
            CarrierSettings::load(&raw, &BTreeMap::new())
                .unwrap()
                .twilio
                .is_none()
        );
    }
}
