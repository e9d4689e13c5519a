//! Secrets: from the environment only, never from the file, never shown.
//! Which are needed follows from the settings ([`Needs`]): the provider's
//! API key, the trunk's digest password, the enabled carriers' signature
//! secrets and REST credentials.

use std::collections::BTreeMap;

use super::carrier::{self, Carriers};
use super::error::{ConfigError, ConfigErrors};
use super::values::{Needs, Settings};
use crate::http::carrier_config::CarrierSettings;

/// The trunk password's variable.
pub const TRUNK_PASSWORD: &str = "CALLBRIDGE_SIP_TRUNK_PASSWORD";

/// Every variable holding a secret, with what it is for (for
/// `check-config --list-env`, which shows names only, never values).
pub const SECRET_ENV: &[(&str, &str)] = &[
    ("GEMINI_API_KEY", "model.provider = \"gemini\": the API key"),
    (
        "OPENAI_API_KEY",
        "model.provider = \"openai\" or \"gpt-live\": the API key",
    ),
    (TRUNK_PASSWORD, "the SIP trunk's digest password"),
    (
        "CALLBRIDGE_STORE_PASSWORD",
        "store.url = \"postgres://...\": the database password (else PGPASSWORD)",
    ),
    (
        carrier::TWILIO_AUTH_TOKEN,
        "Twilio: signatures and REST hang-up",
    ),
    (
        carrier::VONAGE_SIGNATURE_SECRET,
        "Vonage: signed webhook checks",
    ),
    (
        carrier::VONAGE_APPLICATION_ID,
        "Vonage: REST application id",
    ),
    (
        carrier::VONAGE_PRIVATE_KEY,
        "Vonage: application private key (PEM)",
    ),
    (
        carrier::VONAGE_PRIVATE_KEY_PATH,
        "Vonage: or a file holding that key",
    ),
    (carrier::VONAGE_API_JWT, "Vonage: a ready-made bearer token"),
];

/// Secrets, from the environment only. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The model's API key (none for `mock`).
    pub model_key: Option<String>,
    /// The trunk's digest password.
    pub trunk_password: Option<String>,
    /// The enabled carriers with their secrets.
    pub carrier: CarrierSettings,
    /// The summary provider's API key, when `summary.provider` names
    /// another provider than the call model's.
    pub summary_key: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("model_key", &self.model_key.as_ref().map(|_| "<redacted>"))
            .field(
                "trunk_password",
                &self.trunk_password.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "summary_key",
                &self.summary_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Secrets {
    /// Reads the secrets `settings` needs from `env`; every missing or
    /// unusable one is reported.
    pub fn from_env(
        settings: &Settings,
        env: &BTreeMap<String, String>,
    ) -> Result<Secrets, ConfigErrors> {
        let mut errors = Vec::new();
        let mut secrets =
            Secrets::read(&settings.needs(), Some(&settings.carrier), env, &mut errors);
        // `summary.provider` set: its own key (the call model's may be
        // another provider's).
        if settings.summary.enabled
            && let Some(p) = settings.summary.provider
        {
            let var = p.api_key_var();
            secrets.summary_key = env
                .get(var)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            if secrets.summary_key.is_none() {
                errors.push(ConfigError::MissingSecret {
                    var,
                    why: "summary.provider is set and summaries are on: its API key".into(),
                });
            }
        }
        ConfigErrors::check(errors).map(|()| secrets)
    }

    /// Reads what `needs` asks for, recording every problem in `errors`.
    /// `carriers` is `None` when a carrier key was bad (the carriers'
    /// secrets are then checked, not kept).
    pub fn read(
        needs: &Needs,
        carriers: Option<&Carriers>,
        env: &BTreeMap<String, String>,
        errors: &mut Vec<ConfigError>,
    ) -> Secrets {
        let get = |v: &str| {
            env.get(v)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let model_key = needs.provider.and_then(|p| {
            let var = p.key_var()?;
            let key = get(var);
            if key.is_none() {
                errors.push(ConfigError::MissingSecret {
                    var,
                    why: format!("model.provider = \"{}\" needs its API key", p.name()),
                });
            }
            key
        });
        let trunk_password = if needs.trunk {
            let password = get(TRUNK_PASSWORD);
            if password.is_none() {
                errors.push(ConfigError::MissingSecret {
                    var: TRUNK_PASSWORD,
                    why: "[sip.trunk] is configured and registers with a digest password".into(),
                });
            }
            password
        } else {
            None
        };
        let carrier = carrier::with_secrets(carriers, needs.carrier, &get, errors);
        Secrets {
            model_key,
            trunk_password,
            carrier,
            summary_key: None,
        }
    }
}
