//! `[webhooks]`: the global default receivers of call events (issue 23;
//! `callbridge_session::webhooks`). A routing profile may name receivers
//! of its own (`[profiles.webhooks]`: `urls`, `secret_env`, `events`);
//! its calls' events then go to those only, and these are the receivers
//! of every other call. The time limit, retry schedule and retention
//! below apply to the profiles' receivers too.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `urls` | none (off) | where each event is POSTed (http or https) |
//! | `secret_env` | none | the environment variable holding the signing secret |
//! | `events` | all | which of `call.started`, `call.answered`, `call.ended`, `transcript.turn`, `summary.ready`, `amd.verdict`, `tool.called` |
//! | `timeout` | 10 s | one attempt's time limit |
//! | `retry_initial` | 1 s | the first retry's delay (doubling, jittered) |
//! | `retry_max` | 5 min | the longest delay between attempts |
//! | `give_up_after` | 24 h | no attempt after this long from the event |
//! | `retention` | 7 days | delivered and failed rows kept this long |

use callbridge_session::webhooks::{Backoff, WebhookConfig};

use super::check::Check;

/// The validated `[webhooks]` section (without its secret, which comes
/// from the environment at start).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Receivers, filter and schedule.
    pub config: WebhookConfig,
    /// The variable holding the signing secret, if any.
    pub secret_env: Option<String>,
}

/// The section's schedule without receivers (what the profiles' own
/// webhooks take), and the global receivers: `None` in the pair when
/// there are none (global webhooks off). `None`: a key is bad, recorded
/// in `c`.
pub fn read(c: &Check<'_>) -> Option<(WebhookConfig, Option<WebhookSettings>)> {
    let urls = c.list("webhooks.urls");
    let events = c.list("webhooks.events");
    let secret_env = c
        .optional("webhooks.secret_env")
        .map(|v| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()));
    let timeout = c.duration("webhooks.timeout");
    let initial = c.duration("webhooks.retry_initial");
    let max = c.duration("webhooks.retry_max");
    let give_up_after = c.duration("webhooks.give_up_after");
    let retention = c.duration("webhooks.retention");
    let config = WebhookConfig {
        profile: None,
        urls: urls?.into_iter().map(|u| u.trim().to_owned()).collect(),
        secret: None,
        events: events?.into_iter().map(|e| e.trim().to_owned()).collect(),
        timeout: timeout?,
        backoff: Backoff {
            initial: initial?,
            max: max?,
            give_up_after: give_up_after?,
        },
        retention: retention?,
    };
    if let Err(errs) = config.validate() {
        for e in errs {
            let key = match e {
                callbridge_session::webhooks::WebhookConfigError::BadUrl(_) => "webhooks.urls",
                _ => "webhooks.events",
            };
            let _: Option<()> = c.invalid(key, e.to_string(), "see agent.example.toml");
        }
        return None;
    }
    if config.backoff.initial.is_zero() || config.backoff.max < config.backoff.initial {
        return c.invalid(
            "webhooks.retry_max",
            "below retry_initial",
            "retry_initial above zero and retry_max at least retry_initial",
        );
    }
    let base = WebhookConfig {
        urls: Vec::new(),
        events: Vec::new(),
        ..config.clone()
    };
    if config.urls.is_empty() {
        return Some((base, None));
    }
    Some((
        base,
        Some(WebhookSettings {
            config,
            secret_env: secret_env?,
        }),
    ))
}
