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
//!
//! The keys are validated with the other keys ([`read`]); the secrets with
//! the other secrets ([`with_secrets`]), which yields the HTTP layer's
//! [`CarrierSettings`].

use std::io::Read as _;
use std::time::Duration;

use callbridge_carrier::vonage_jwt::{self, ApplicationId, JwtError, VonageBearer, VonageSigner};
use callbridge_redact::Secret;

use super::check::Check;
use super::error::ConfigError;
use crate::http::carrier_config::{CarrierEntry, CarrierSettings};

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

/// Largest `stream_token_ttl_s`.
pub const MAX_STREAM_TOKEN_TTL_S: u64 = 300;

/// One enabled carrier's keys, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierKeys {
    /// `https://host[:port]` without a trailing slash.
    pub public_url: String,
    /// Check signatures.
    pub verify_signatures: bool,
    /// REST API base, without a trailing slash.
    pub api_base: String,
    /// How long a per-call stream token waits for its stream.
    pub stream_token_ttl: Duration,
}

/// The enabled carriers' keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carriers {
    /// Twilio, when enabled.
    pub twilio: Option<CarrierKeys>,
    /// Vonage, when enabled.
    pub vonage: Option<CarrierKeys>,
}

/// Which carriers are enabled, and whether each checks signatures: what
/// decides the secrets they need (known even when a key is bad).
#[derive(Debug, Clone, Copy, Default)]
pub struct CarrierNeeds {
    /// Twilio enabled: `Some(verify_signatures)`.
    pub twilio: Option<bool>,
    /// Vonage enabled: `Some(verify_signatures)`.
    pub vonage: Option<bool>,
}

impl Carriers {
    /// The secrets these carriers need.
    pub fn needs(&self) -> CarrierNeeds {
        CarrierNeeds {
            twilio: self.twilio.as_ref().map(|k| k.verify_signatures),
            vonage: self.vonage.as_ref().map(|k| k.verify_signatures),
        }
    }
}

/// Reads and validates `[carrier.*]`.
pub fn read(c: &Check<'_>) -> (Option<Carriers>, CarrierNeeds) {
    let (twilio, twilio_needs) = entry(c, "twilio");
    let (vonage, vonage_needs) = entry(c, "vonage");
    let needs = CarrierNeeds {
        twilio: twilio_needs,
        vonage: vonage_needs,
    };
    let keys = (|| {
        Some(Carriers {
            twilio: twilio?,
            vonage: vonage?,
        })
    })();
    (keys, needs)
}

/// One carrier's keys: `Some(None)` when it is not enabled, `None` when a
/// key is bad; with whether it is enabled and checks signatures.
fn entry(c: &Check<'_>, name: &str) -> (Option<Option<CarrierKeys>>, Option<bool>) {
    let key = |k: &str| format!("carrier.{name}.{k}");
    if !c.present(&format!("carrier.{name}")) {
        return (Some(None), None);
    }
    match c.flag(&key("enabled")) {
        Some(true) => {}
        Some(false) => return (Some(None), None),
        None => return (None, None),
    }
    let url = c.text(&key("public_url"));
    let verify = c.flag(&key("verify_signatures"));
    let api_base = c.text(&key("api_base"));
    let ttl = c.int(&key("stream_token_ttl_s"));
    let public_url = url.and_then(|raw| {
        let url = raw.trim().trim_end_matches('/').to_owned();
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || url.len() <= "https://".len() {
            return c.invalid(
                &key("public_url"),
                format!("{raw:?}"),
                "the https:// URL the carrier reaches this agent at",
            );
        }
        Some(url)
    });
    let stream_token_ttl = ttl.and_then(|s| match u64::try_from(s) {
        Ok(secs) if (1..=MAX_STREAM_TOKEN_TTL_S).contains(&secs) => Some(Duration::from_secs(secs)),
        _ => c.invalid(
            &key("stream_token_ttl_s"),
            s,
            &format!("seconds, 1 to {MAX_STREAM_TOKEN_TTL_S}"),
        ),
    });
    let keys = (|| {
        Some(CarrierKeys {
            public_url: public_url?,
            verify_signatures: verify?,
            api_base: api_base?.trim_end_matches('/').to_owned(),
            stream_token_ttl: stream_token_ttl?,
        })
    })();
    // A bad verify_signatures (reported) counts as checking: its secret
    // is then asked for too.
    (keys.map(Some), Some(verify.unwrap_or(true)))
}

/// The enabled carriers with their secrets from `get`; every missing or
/// unusable secret goes into `errors`. `keys` is `None` when a key was
/// bad (the result is then only for the errors).
pub fn with_secrets(
    keys: Option<&Carriers>,
    needs: CarrierNeeds,
    get: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> CarrierSettings {
    let mut secret = |name: &str, verify: bool, var: &'static str| {
        let secret = get(var);
        if verify && secret.is_none() {
            errors.push(ConfigError::MissingSecret {
                var,
                why: format!("carrier.{name}.verify_signatures = true checks signatures with it"),
            });
        }
        secret
    };
    let twilio_secret = needs
        .twilio
        .and_then(|verify| secret("twilio", verify, TWILIO_AUTH_TOKEN));
    let vonage_secret = needs
        .vonage
        .and_then(|verify| secret("vonage", verify, VONAGE_SIGNATURE_SECRET));
    let bearer = match needs.vonage {
        None => None,
        Some(_) => vonage_bearer(get).unwrap_or_else(|e| {
            errors.push(e);
            None
        }),
    };
    let entry = |k: &CarrierKeys, secret: Option<String>| CarrierEntry {
        public_url: k.public_url.clone(),
        verify_signatures: k.verify_signatures,
        api_base: k.api_base.clone(),
        secret: secret.map(Secret::new),
        hangup_bearer: None,
        stream_token_ttl: k.stream_token_ttl,
        application_id: None,
    };
    let keys = keys.cloned().unwrap_or_default();
    CarrierSettings {
        twilio: keys.twilio.as_ref().map(|k| entry(k, twilio_secret)),
        vonage: keys.vonage.as_ref().map(|k| CarrierEntry {
            hangup_bearer: bearer,
            // Checked as a UUID by `vonage_bearer` when set.
            application_id: get(VONAGE_APPLICATION_ID),
            ..entry(k, vonage_secret)
        }),
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
mod tests;
