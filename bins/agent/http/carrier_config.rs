//! `[carrier.twilio]` and `[carrier.vonage]` (issue 9): which carriers may
//! stream calls to this agent over a WebSocket, the public base URL the
//! carrier reaches us at (signatures are computed over it, and the TwiML /
//! NCCO point the carrier at its `wss://` form), whether webhook
//! signatures are checked, and the REST API base for hangups. Secrets come
//! from the environment only:
//!
//! | variable | used for |
//! |---|---|
//! | `TWILIO_AUTH_TOKEN` | `X-Twilio-Signature` checks (webhooks and the Media Streams upgrade) and the REST hangup |
//! | `VONAGE_SIGNATURE_SECRET` | signed webhook (JWT HS256) checks |
//! | `VONAGE_APPLICATION_ID` | the Vonage application whose JWTs authorize the REST hangup |
//! | `VONAGE_PRIVATE_KEY` | that application's private key, PEM text (literal `\n` accepted for line breaks) |
//! | `VONAGE_PRIVATE_KEY_PATH` | or the path of a file holding it (set one of the two, not both) |
//! | `VONAGE_API_JWT` | a ready-made bearer token, used as is instead of minting (it expires; for tests and short trials) |
//!
//! Without an application id and key (or `VONAGE_API_JWT`) Vonage calls end
//! when the agent closes the socket, with no REST hangup. A key that is
//! not a usable RSA PEM, an application id that is not a UUID, or one of
//! the pair without the other is a configuration error at start.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::Duration;

use callbridge_session::carrier::vonage_jwt::{
    self, ApplicationId, JwtError, VonageBearer, VonageSigner,
};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The Twilio auth token's variable.
pub const TWILIO_AUTH_TOKEN: &str = "TWILIO_AUTH_TOKEN";
/// The Vonage signature secret's variable.
pub const VONAGE_SIGNATURE_SECRET: &str = "VONAGE_SIGNATURE_SECRET";
/// The Vonage REST bearer token's variable (a fixed override).
pub const VONAGE_API_JWT: &str = "VONAGE_API_JWT";
/// The Vonage application id's variable.
pub const VONAGE_APPLICATION_ID: &str = "VONAGE_APPLICATION_ID";
/// The Vonage application private key's variable (PEM text).
pub const VONAGE_PRIVATE_KEY: &str = "VONAGE_PRIVATE_KEY";
/// The variable naming a file that holds the Vonage private key.
pub const VONAGE_PRIVATE_KEY_PATH: &str = "VONAGE_PRIVATE_KEY_PATH";

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
    /// Seconds a per-call stream token may wait for its stream (1 to 300).
    pub stream_token_ttl_s: u64,
}

/// Default `stream_token_ttl_s`: a carrier opens the stream within a
/// second or two of our answer.
pub const DEFAULT_STREAM_TOKEN_TTL_S: u64 = 30;
/// Largest `stream_token_ttl_s`.
pub const MAX_STREAM_TOKEN_TTL_S: u64 = 300;

impl Default for RawCarrierEntry {
    fn default() -> Self {
        RawCarrierEntry {
            enabled: false,
            public_url: String::new(),
            verify_signatures: true,
            api_base: None,
            stream_token_ttl_s: DEFAULT_STREAM_TOKEN_TTL_S,
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
            stream_token_ttl_s: 0,
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
    /// The Vonage REST hangup's bearer (minted or fixed); `None`: no
    /// REST hangup.
    pub hangup_bearer: Option<VonageBearer>,
    /// How long a per-call stream token waits for its stream.
    pub stream_token_ttl: Duration,
    /// Vonage: our application id (`VONAGE_APPLICATION_ID`), when set;
    /// signed webhooks naming another application are refused.
    pub application_id: Option<String>,
}

impl std::fmt::Debug for CarrierEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierEntry")
            .field("public_url", &self.public_url)
            .field("verify_signatures", &self.verify_signatures)
            .field("api_base", &self.api_base)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("hangup_bearer", &self.hangup_bearer)
            .field("stream_token_ttl", &self.stream_token_ttl)
            .field("application_id", &self.application_id)
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
            if !(1..=MAX_STREAM_TOKEN_TTL_S).contains(&r.stream_token_ttl_s) {
                return Err(ConfigError::Invalid {
                    key: format!("carrier.{name}.stream_token_ttl_s"),
                    origin: String::new(),
                    value: r.stream_token_ttl_s.to_string(),
                    expected: format!("seconds, 1 to {MAX_STREAM_TOKEN_TTL_S}"),
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
                hangup_bearer: None,
                stream_token_ttl: Duration::from_secs(r.stream_token_ttl_s),
                application_id: None,
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
            v.hangup_bearer = vonage_bearer(&get)?;
            // Checked as a UUID by `vonage_bearer` when set.
            v.application_id = get(VONAGE_APPLICATION_ID);
        }
        Ok(CarrierSettings { twilio, vonage })
    }
}

/// The Vonage REST hangup's bearer from the environment: `VONAGE_API_JWT`
/// as is when set, else tokens minted from `VONAGE_APPLICATION_ID` and the
/// key in `VONAGE_PRIVATE_KEY` or the file `VONAGE_PRIVATE_KEY_PATH`. The
/// key is parsed (and one token signed, by [`VonageSigner::from_pem`])
/// here, so that a bad key stops the start, not a hangup.
fn vonage_bearer(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<VonageBearer>, ConfigError> {
    let bad = |var: &'static str, why: String| ConfigError::BadSecret { var, why };
    let app = get(VONAGE_APPLICATION_ID);
    let pem = match (get(VONAGE_PRIVATE_KEY), get(VONAGE_PRIVATE_KEY_PATH)) {
        (Some(_), Some(_)) => {
            return Err(bad(
                VONAGE_PRIVATE_KEY_PATH,
                format!(
                    "set {VONAGE_PRIVATE_KEY} (the PEM text) or {VONAGE_PRIVATE_KEY_PATH} (a file), not both"
                ),
            ));
        }
        (Some(text), None) => Some((VONAGE_PRIVATE_KEY, text.into_bytes())),
        (None, Some(path)) => Some((VONAGE_PRIVATE_KEY_PATH, read_key_file(&path)?)),
        (None, None) => None,
    };
    let signer = match (app, pem) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::MissingSecret {
                var: VONAGE_PRIVATE_KEY,
                why: format!(
                    "{VONAGE_APPLICATION_ID} is set: the REST hangup's JWTs are signed with the application's private key ({VONAGE_PRIVATE_KEY} or {VONAGE_PRIVATE_KEY_PATH})"
                ),
            });
        }
        (None, Some((var, _))) => {
            return Err(ConfigError::MissingSecret {
                var: VONAGE_APPLICATION_ID,
                why: format!("{var} is set: the REST hangup's JWTs name the application"),
            });
        }
        (Some(app), Some((var, pem))) => {
            let app =
                ApplicationId::new(&app).map_err(|e| bad(VONAGE_APPLICATION_ID, e.to_string()))?;
            // The key is parsed and signs once here: an error is a
            // start-up error, never a hang-up's.
            Some(VonageSigner::from_pem(app, &pem).map_err(|e| bad(var, e.to_string()))?)
        }
    };
    Ok(match (get(VONAGE_API_JWT), signer) {
        (Some(fixed), _) => Some(VonageBearer::fixed(fixed)),
        (None, Some(signer)) => Some(VonageBearer::minted(signer)),
        (None, None) => None,
    })
}

/// The key file named by `VONAGE_PRIVATE_KEY_PATH`, bounded in size.
fn read_key_file(path: &str) -> Result<Vec<u8>, ConfigError> {
    let bad = |why: String| ConfigError::BadSecret {
        var: VONAGE_PRIVATE_KEY_PATH,
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open {path}: {e}")))?;
    let mut pem = Vec::with_capacity(4096);
    file.take(vonage_jwt::MAX_PEM as u64 + 1)
        .read_to_end(&mut pem)
        .map_err(|e| bad(format!("cannot read {path}: {e}")))?;
    if pem.len() > vonage_jwt::MAX_PEM {
        return Err(bad(format!("{path}: {}", JwtError::TooLarge)));
    }
    Ok(pem)
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
            stream_token_ttl_s: DEFAULT_STREAM_TOKEN_TTL_S,
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

    const TEST_KEY: &str = include_str!("../../../crates/session/tests/data/vonage-test-key.pem");
    const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

    fn vonage_with(env: &[(&str, &str)]) -> Result<Option<VonageBearer>, String> {
        let raw = RawCarrier {
            twilio: None,
            vonage: entry("https://agent.example", false),
        };
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CarrierSettings::load(&raw, &env)
            .map(|s| s.vonage.unwrap().hangup_bearer)
            .map_err(|e| e.to_string())
    }

    fn key_path() -> String {
        format!(
            "{}/../../crates/session/tests/data/vonage-test-key.pem",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn vonage_hangup_tokens_are_minted_from_the_application_key_in_env_or_file() {
        let b = vonage_with(&[(VONAGE_APPLICATION_ID, APP), (VONAGE_PRIVATE_KEY, TEST_KEY)])
            .unwrap()
            .expect("a bearer");
        assert!(b.is_minted());
        let shown = format!("{b:?}");
        assert!(shown.contains(APP) && !shown.contains("MII"), "{shown}");
        let path = key_path();
        let b = vonage_with(&[
            (VONAGE_APPLICATION_ID, APP),
            (VONAGE_PRIVATE_KEY_PATH, &path),
        ])
        .unwrap()
        .expect("a bearer");
        assert!(b.is_minted());
        // One line with literal \n, as PEM often sits in an env file.
        let one_line = TEST_KEY.replace('\n', "\\n");
        assert!(
            vonage_with(&[
                (VONAGE_APPLICATION_ID, APP),
                (VONAGE_PRIVATE_KEY, &one_line)
            ])
            .unwrap()
            .is_some_and(|b| b.is_minted())
        );
        // Nothing configured: no REST hangup.
        assert!(vonage_with(&[]).unwrap().is_none());
    }

    #[test]
    fn vonage_api_jwt_overrides_minting() {
        let b = vonage_with(&[
            (VONAGE_API_JWT, "eyJ.fixed.sig"),
            (VONAGE_APPLICATION_ID, APP),
            (VONAGE_PRIVATE_KEY, TEST_KEY),
        ])
        .unwrap()
        .unwrap();
        assert!(!b.is_minted());
        assert_eq!(&*b.token().unwrap(), "eyJ.fixed.sig");
        let b = vonage_with(&[(VONAGE_API_JWT, "eyJ.fixed.sig")])
            .unwrap()
            .unwrap();
        assert!(!b.is_minted());
    }

    #[test]
    fn bad_or_incomplete_vonage_credentials_name_the_variable_and_hide_the_secret() {
        let path = key_path();
        let garbage =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[(VONAGE_APPLICATION_ID, APP)], VONAGE_PRIVATE_KEY),
            (&[(VONAGE_PRIVATE_KEY, TEST_KEY)], VONAGE_APPLICATION_ID),
            (
                &[(VONAGE_APPLICATION_ID, APP), (VONAGE_PRIVATE_KEY, garbage)],
                VONAGE_PRIVATE_KEY,
            ),
            (
                &[
                    (VONAGE_APPLICATION_ID, APP),
                    (VONAGE_PRIVATE_KEY, "hunter2"),
                ],
                VONAGE_PRIVATE_KEY,
            ),
            (
                &[
                    (VONAGE_APPLICATION_ID, "not-a-uuid"),
                    (VONAGE_PRIVATE_KEY, TEST_KEY),
                ],
                VONAGE_APPLICATION_ID,
            ),
            (
                &[
                    (VONAGE_APPLICATION_ID, APP),
                    (VONAGE_PRIVATE_KEY, TEST_KEY),
                    (VONAGE_PRIVATE_KEY_PATH, &path),
                ],
                VONAGE_PRIVATE_KEY_PATH,
            ),
            (
                &[
                    (VONAGE_APPLICATION_ID, APP),
                    (VONAGE_PRIVATE_KEY_PATH, "/nonexistent/vonage.key"),
                ],
                VONAGE_PRIVATE_KEY_PATH,
            ),
        ];
        for (env, var) in cases {
            let m = vonage_with(env).unwrap_err();
            assert!(m.starts_with(var), "{env:?}: {m}");
            for secret in ["c2VjcmV0", "hunter2", "MII"] {
                assert!(!m.contains(secret), "{m}");
            }
        }
    }

    #[test]
    fn stream_token_ttl_defaults_to_30_s_and_is_bounded() {
        let env = BTreeMap::from([(TWILIO_AUTH_TOKEN.to_owned(), "tok".to_owned())]);
        let load = |ttl: Option<u64>| {
            let mut e = entry("https://agent.example", true);
            if let (Some(e), Some(ttl)) = (&mut e, ttl) {
                e.stream_token_ttl_s = ttl;
            }
            let raw = RawCarrier {
                twilio: e,
                vonage: None,
            };
            CarrierSettings::load(&raw, &env).map(|s| s.twilio.unwrap().stream_token_ttl)
        };
        assert_eq!(load(None).unwrap(), Duration::from_secs(30));
        assert_eq!(load(Some(1)).unwrap(), Duration::from_secs(1));
        for bad in [0, 301] {
            let m = load(Some(bad)).unwrap_err().to_string();
            assert!(m.contains("carrier.twilio.stream_token_ttl_s"), "{m}");
        }
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
