//! Call-event webhooks: which events go to which receivers
//! ([`WebhookConfig`]: the agent's global `[webhooks]`, or a routing
//! profile's own, [`WebhookSpec`]), the outbox rows a call writes for
//! them ([`WebhookConfig::rows`]), the retry schedule ([`Backoff`],
//! sans-IO: the attempt number, the time and the jitter are passed in)
//! and the worker that delivers them ([`worker`]).
//!
//! A call's events go to its profile's webhooks when the profile names
//! any, and then to those only: the global `[webhooks]` are the default
//! for the calls of profiles without their own, not a copy of every
//! event (`Profile::event_receivers`). Each outbox row carries its target (the
//! profile's name, or none for the global receivers); the worker signs
//! and schedules it by that target's configuration as it is when the row
//! is sent ([`Targets`]), so a profile replaced through `PUT
//! /api/profiles` signs its pending rows with its new secret, and a row
//! whose profile no longer has webhooks is failed, not sent elsewhere.
//!
//! Delivery is at least once, from the store's outbox: the call task
//! writes a row per event and receiver through the store writer (journaled
//! when the store refuses writes), the worker claims due rows, POSTs each
//! one signed ([`crate::signing`], header `X-Callbridge-Signature`) with
//! its key in `Idempotency-Key`, and marks it delivered (2xx), to retry
//! (anything else, or no answer, while the give-up horizon lasts) or
//! failed. Rows survive a restart; a row claimed by a node that died is
//! claimed again once its lease ends.
//!
//! ```
//! use std::time::Duration;
//! use callbridge_session::webhooks::Backoff;
//! let b = Backoff::default();
//! // The first retry waits the initial delay (jitter 0.5: the middle).
//! assert_eq!(b.delay(1, 0.5), Duration::from_secs(1));
//! // Doubling, capped.
//! assert_eq!(b.delay(20, 0.5), b.max);
//! ```

pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::{MAX_OUTBOX_PAYLOAD, NewOutbox};
use callbridge_redact::Secret;
use serde::{Deserialize, Serialize};

use crate::events::{Envelope, WEBHOOK_EVENTS};

/// The receivers of call events and what they get: the agent's global
/// `[webhooks]`, or a routing profile's own (`profile` names it).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The routing profile these receivers belong to (`None`: the global
    /// `[webhooks]`); written on each outbox row as its target.
    pub profile: Option<String>,
    /// Where every event is POSTed (each gets its own outbox row).
    pub urls: Vec<String>,
    /// The signing secret; `None` sends no signature header.
    pub secret: Option<Secret<Vec<u8>>>,
    /// The events sent ([`WEBHOOK_EVENTS`] names); empty: all of them.
    pub events: Vec<String>,
    /// One attempt's time limit (connect to the end of the response).
    pub timeout: Duration,
    /// The retry schedule and give-up horizon.
    pub backoff: Backoff,
    /// How long delivered and failed rows are kept before pruning.
    pub retention: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            profile: None,
            urls: Vec::new(),
            secret: None,
            events: Vec::new(),
            timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a webhook configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// A URL is not `http://` or `https://`, or is too long.
    #[error("webhook url {0:?} is not an http(s) URL of at most 2048 bytes")]
    BadUrl(String),
    /// An event name is not one of [`WEBHOOK_EVENTS`].
    #[error("unknown webhook event {0:?} (known: {known})", known = WEBHOOK_EVENTS.join(", "))]
    UnknownEvent(String),
}

impl WebhookConfig {
    /// Every problem at once.
    ///
    /// # Errors
    /// Each URL that is not http(s) and each unknown event name.
    pub fn validate(&self) -> Result<(), Vec<WebhookConfigError>> {
        let mut errs = Vec::new();
        for u in &self.urls {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.len() <= callbridge_crm_store::MAX_OUTBOX_FIELD;
            if !ok {
                errs.push(WebhookConfigError::BadUrl(u.clone()));
            }
        }
        for e in &self.events {
            if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                errs.push(WebhookConfigError::UnknownEvent(e.clone()));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Whether an event of this name goes out.
    pub fn wants(&self, name: &str) -> bool {
        WEBHOOK_EVENTS.contains(&name)
            && (self.events.is_empty() || self.events.iter().any(|e| e == name))
    }

    /// The outbox rows of one event: one per receiver, or none when the
    /// event is not wanted. A payload over the outbox's limit keeps its
    /// envelope and says `"truncated": true` in place of its data.
    pub fn rows(&self, e: &Envelope) -> Vec<NewOutbox> {
        if self.urls.is_empty() || !self.wants(e.name()) {
            return Vec::new();
        }
        let mut doc = e.to_json();
        let mut payload = doc.to_string();
        if payload.len() > MAX_OUTBOX_PAYLOAD {
            doc["data"] = serde_json::json!({ "truncated": true });
            payload = doc.to_string();
        }
        let key = e.key();
        self.urls
            .iter()
            .map(|u| {
                NewOutbox::new(key.clone(), e.name(), u.clone(), payload.clone(), e.at)
                    .for_target(self.profile.clone())
            })
            .collect()
    }
}

/// Where the worker finds a profile's receivers when it sends one of
/// their rows (the set in force then, which `PUT /api/profiles` may have
/// replaced since the row was written).
pub trait Targets: Send + Sync + 'static {
    /// The webhooks of the profile called `name`, if it (still) has any.
    fn profile(&self, name: &str) -> Option<Arc<WebhookConfig>>;
}

/// No profile has webhooks of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProfiles;

impl Targets for NoProfiles {
    fn profile(&self, _: &str) -> Option<Arc<WebhookConfig>> {
        None
    }
}

/// A routing profile's own webhooks as written (`[profiles.webhooks]`
/// of a `[[profiles]]` table, `webhooks` of a `PUT /api/profiles`
/// entry). The signing secret is named by its environment variable,
/// never written here (so neither the profiles file nor `GET
/// /api/profiles` holds it); the time limit and retry schedule are the
/// global `[webhooks]` ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Where each of the profile's calls' events is POSTed (at least one).
    pub urls: Vec<String>,
    /// The environment variable holding the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// The events sent ([`WEBHOOK_EVENTS`] names); empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// Most receivers of one configuration.
pub const MAX_URLS: usize = 16;

impl WebhookSpec {
    /// The profile `profile`'s configuration: `base`'s time limit, retry
    /// schedule and retention with this spec's receivers, events and
    /// secret (read through `env`).
    ///
    /// # Errors
    /// Every problem, each as a `(field, message)` pair: no URL or more
    /// than [`MAX_URLS`], a bad URL or event name, a secret variable that
    /// is not set.
    pub fn resolve(
        &self,
        profile: &str,
        base: &WebhookConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhookConfig, Vec<(&'static str, String)>> {
        let mut errs = Vec::new();
        if self.urls.is_empty() || self.urls.len() > MAX_URLS {
            errs.push(("webhooks.urls", format!("1 to {MAX_URLS} receiver URLs")));
        }
        let mut secret = None;
        if let Some(var) = &self.secret_env {
            match env(var.trim()).filter(|v| !v.trim().is_empty()) {
                Some(v) => secret = Some(Secret::new(v.into_bytes())),
                None => errs.push((
                    "webhooks.secret_env",
                    format!("{var}: the variable is not set (the secret is read from the environment only)"),
                )),
            }
        }
        let cfg = WebhookConfig {
            profile: Some(profile.to_owned()),
            urls: self.urls.iter().map(|u| u.trim().to_owned()).collect(),
            secret,
            events: self.events.iter().map(|e| e.trim().to_owned()).collect(),
            ..base.clone()
        };
        if let Err(e) = cfg.validate() {
            for e in e {
                let field = match e {
                    WebhookConfigError::BadUrl(_) => "webhooks.urls",
                    WebhookConfigError::UnknownEvent(_) => "webhooks.events",
                };
                errs.push((field, e.to_string()));
            }
        }
        if errs.is_empty() { Ok(cfg) } else { Err(errs) }
    }
}

/// The retry schedule: exponential from `initial`, capped at `max`, with
/// full jitter around it (0.5x to 1.5x), until `give_up_after` from the
/// event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub initial: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// No attempt is made later than this after the event.
    pub give_up_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (from 1), with
    /// `jitter` in `[0, 1)` (0.5 is the undisturbed delay): `initial *
    /// 2^(attempt-1)`, capped at `max`, times `0.5 + jitter`, and never
    /// above `max`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        let j = jitter.clamp(0.0, 1.0) + 0.5;
        base.mul_f64(j).min(self.max)
    }

    /// When to try again after failed attempt number `attempt` of an event
    /// from `first`, at `now`; `None`: give up (the next attempt would be
    /// past the horizon).
    pub fn next(
        &self,
        attempt: u32,
        first: jiff::Timestamp,
        now: jiff::Timestamp,
        jitter: f64,
    ) -> Option<jiff::Timestamp> {
        let at = now.checked_add(self.delay(attempt, jitter)).ok()?;
        let horizon = first.checked_add(self.give_up_after).ok()?;
        (at <= horizon).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CallEvent, EventBus};
    use callbridge_crm_store::SessionId;

    fn cfg(events: &[&str]) -> WebhookConfig {
        WebhookConfig {
            urls: vec!["http://a.test/h".into(), "https://b.test/h".into()],
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_delay_doubles_from_the_initial_up_to_the_cap_with_bounded_jitter() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            give_up_after: Duration::from_secs(60),
        };
        assert_eq!(b.delay(1, 0.5), Duration::from_millis(100));
        assert_eq!(b.delay(2, 0.5), Duration::from_millis(200));
        assert_eq!(b.delay(4, 0.5), Duration::from_millis(800));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(50));
        let top = b.delay(1, 0.999);
        assert!(top > Duration::from_millis(149) && top < Duration::from_millis(150));
        assert_eq!(b.delay(40, 0.9), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn no_retry_is_scheduled_past_the_horizon() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(10),
            give_up_after: Duration::from_secs(60),
        };
        let first = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let at = |s: i64| jiff::Timestamp::from_second(1_700_000_000 + s).unwrap();
        assert_eq!(b.next(1, first, at(0), 0.5), Some(at(10)));
        assert_eq!(b.next(5, first, at(50), 0.5), Some(at(60)));
        assert_eq!(b.next(6, first, at(51), 0.5), None);
    }

    #[test]
    fn rows_go_to_every_receiver_for_wanted_events_only() {
        let bus = EventBus::default();
        let id = SessionId::new_v4();
        let mut p = bus.publisher(id);
        let state = p.publish(CallEvent::State { state: "active" });
        let answered = p.publish(CallEvent::Answered);
        let all = cfg(&[]);
        assert!(all.rows(&state).is_empty(), "call.state is live-view only");
        let rows = all.rows(&answered);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, format!("{id}:2"));
        assert_eq!(rows[0].event, "call.answered");
        let doc: serde_json::Value = serde_json::from_str(&rows[1].payload).unwrap();
        assert_eq!(doc["session"], id.to_string());
        assert!(cfg(&["call.ended"]).rows(&answered).is_empty());
    }

    #[test]
    fn a_profiles_rows_carry_it_as_their_target() {
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        let e = p.publish(CallEvent::Answered);
        assert_eq!(cfg(&[]).rows(&e)[0].target, None, "global");
        let own = WebhookConfig {
            profile: Some("sales".into()),
            ..cfg(&[])
        };
        let rows = own.rows(&e);
        assert!(rows.iter().all(|r| r.target.as_deref() == Some("sales")));
    }

    #[test]
    fn an_oversized_event_is_sent_truncated() {
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        let e = p.publish(CallEvent::SummaryReady {
            summary: "x".repeat(MAX_OUTBOX_PAYLOAD + 1),
        });
        let rows = cfg(&[]).rows(&e);
        assert!(rows[0].payload.len() < 1024);
        assert!(rows[0].payload.contains("\"truncated\":true"));
    }

    #[test]
    fn validation_names_every_bad_url_and_event() {
        let mut c = cfg(&["call.ended", "call.exploded"]);
        c.urls.push("ftp://x".into());
        let errs = c.validate().unwrap_err();
        assert_eq!(
            errs,
            vec![
                WebhookConfigError::BadUrl("ftp://x".into()),
                WebhookConfigError::UnknownEvent("call.exploded".into())
            ]
        );
        assert!(cfg(&[]).validate().is_ok());
    }
}
