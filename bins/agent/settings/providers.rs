//! `model.providers` (issue 23): the model providers routing profiles may
//! choose besides `model.provider`, each `name` or `name=endpoint`. Their
//! clients are built when the settings are read (to check the profiles of
//! the file), again with their keys once the secrets are read (a profile
//! naming a provider whose key is not set is refused then, with every
//! other error), and again on each `PUT /api/profiles`.

use std::collections::BTreeMap;
use std::sync::Arc;

use callbridge_llm_bridge::{
    ApiKey, AudioFormat, GeminiLive, GptLive, OpenAiRealtime, RealtimeModel, SessionConfig,
};
use callbridge_session::profile::Profiles;
use callbridge_session::profile::provider::{ModelClient, ProviderChoices};

use super::check::Check;
use super::error::{ConfigError, ConfigErrors, Origin};
pub use super::values::OtherProvider;
use super::values::{Provider, Settings};

const KEY: &str = "model.providers";

/// Reads `model.providers`: known providers other than `main` and the
/// built-in mock, each once, endpoints `ws://` or `wss://`.
pub fn read(c: &Check<'_>, main: Option<Provider>) -> Option<Vec<OtherProvider>> {
    let entries = c.list(KEY)?;
    let mut out: Vec<OtherProvider> = Vec::with_capacity(entries.len());
    let mut ok = true;
    for e in entries {
        let (name, endpoint) = match e.split_once('=') {
            Some((n, u)) => (n.trim(), Some(u.trim().to_owned())),
            None => (e.trim(), None),
        };
        let provider = match name {
            "gemini" => Provider::Gemini,
            "openai" => Provider::OpenAi,
            "gpt-live" => Provider::GptLive,
            _ => {
                ok = false;
                let _: Option<()> = c.invalid(KEY, format!("{e:?}"), "\"gemini\", \"openai\" or \"gpt-live\", optionally =ws(s)://endpoint (the built-in mock serves model.provider only)");
                continue;
            }
        };
        if endpoint
            .as_deref()
            .is_some_and(|u| !(u.starts_with("ws://") || u.starts_with("wss://")))
        {
            ok = false;
            let _: Option<()> = c.invalid(
                KEY,
                format!("{e:?}"),
                "an endpoint that is a ws:// or wss:// URL",
            );
            continue;
        }
        if Some(provider) == main || out.iter().any(|o| o.provider == provider) {
            ok = false;
            let _: Option<()> = c.invalid(
                KEY,
                format!("{e:?}"),
                "each provider once, and not model.provider itself",
            );
            continue;
        }
        out.push(OtherProvider { provider, endpoint });
    }
    ok.then_some(out)
}

fn client(p: Provider, delegation_model: Option<&str>) -> Arc<dyn RealtimeModel> {
    match p {
        Provider::Gemini | Provider::Mock => Arc::new(GeminiLive::new()),
        Provider::OpenAi => Arc::new(OpenAiRealtime::new()),
        Provider::GptLive => Arc::new(match delegation_model {
            Some(m) => GptLive::new().with_delegation_model(m),
            None => GptLive::new(),
        }),
    }
}

/// The clients of `others`. With `env`, each takes its key from there,
/// and a provider whose key is not set is an `Err` naming the variable;
/// without, keys are not looked at (the settings pass, before secrets).
pub fn choices(
    others: &[OtherProvider],
    env: Option<&BTreeMap<String, String>>,
    delegation_model: Option<&str>,
) -> ProviderChoices {
    let base = SessionConfig::default();
    others
        .iter()
        .map(|o| {
            let name = o.provider.name().to_owned();
            let key = match (env, o.provider.key_var()) {
                (Some(env), Some(var)) => {
                    match env.get(var).map(|k| k.trim()).filter(|k| !k.is_empty()) {
                        Some(k) => Some(ApiKey::new(k)),
                        None => {
                            let why = format!("{var} is not set: this provider needs its API key");
                            return (name, Err(why));
                        }
                    }
                }
                _ => None,
            };
            // G.711 both ways for the OpenAI protocols (as for
            // model.provider); Gemini takes its own rates.
            let formats = match o.provider {
                Provider::OpenAi | Provider::GptLive => (AudioFormat::Pcmu, AudioFormat::Pcmu),
                Provider::Gemini | Provider::Mock => (base.input_format, base.output_format),
            };
            let c = ModelClient {
                name: name.clone(),
                client: client(o.provider, delegation_model),
                endpoint: o.endpoint.clone(),
                api_key: key,
                model: o.provider.default_model().to_owned(),
                formats: Some(formats),
            };
            (name, Ok(Arc::new(c)))
        })
        .collect()
}

/// Once the secrets are known: the other providers' clients with their
/// keys, and the profiles checked again against them.
///
/// # Errors
/// Each profile that names a provider whose key is not set.
pub fn attach_keys(
    settings: &mut Settings,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigErrors> {
    if settings.other_providers.is_empty() {
        return Ok(());
    }
    let r = &mut settings.routing;
    r.defaults.providers = choices(
        &settings.other_providers,
        Some(env),
        settings.delegation_model.as_deref(),
    );
    let specs = r.profiles.specs();
    match Profiles::load(&specs, r.profiles.default_name(), &r.defaults) {
        Ok(p) => {
            r.profiles = p;
            Ok(())
        }
        Err(errors) => {
            let origin = if r.from_file {
                Origin::File(r.profiles_file.clone())
            } else {
                Origin::Default
            };
            let list: Vec<ConfigError> = errors
                .into_iter()
                .map(|e| ConfigError::Invalid {
                    key: format!("profiles[{}].{}", e.index, e.field),
                    origin: origin.clone(),
                    value: format!("{:?}", e.name),
                    expected: e.message,
                })
                .collect();
            ConfigErrors::check(list)
        }
    }
}
