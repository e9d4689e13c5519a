//! The manager's routing profiles ([`crate::profile`]): the set in force,
//! replaced whole for new calls ([`Manager::set_profiles`]), and what one
//! call takes from its profile (the model session's settings).

use std::net::IpAddr;
use std::sync::Arc;

use callbridge_llm_bridge::{Greeting, SessionConfig};

use super::{Manager, ManagerError};
use crate::profile::template::TemplateContext;
use crate::profile::{Profile, Profiles};

impl Manager {
    /// The routing profiles in force.
    pub fn profiles(&self) -> Arc<Profiles> {
        self.shared.profiles.get()
    }

    /// Replaces the routing profiles for every call that starts from now
    /// on; calls in progress keep the profile they started with.
    pub fn set_profiles(&self, p: Profiles) {
        self.shared.profiles.set(p);
        // A profile may have gained (or changed) webhooks: rows waiting
        // for them go out now rather than at the worker's next look.
        self.shared.store.outbox_written().notify_one();
    }

    /// What wakes the webhook worker: outbox rows written by this
    /// agent's calls, and a change of the routing profiles (the worker
    /// polls only every [`crate::webhooks::worker::FALLBACK_POLL`] for
    /// rows of other agents sharing the store).
    pub fn webhook_wake(&self) -> Arc<tokio::sync::Notify> {
        self.shared.store.outbox_written()
    }

    /// The profile of an inbound call to `called` from `source`.
    pub(super) fn inbound_profile(&self, called: &str, source: Option<IpAddr>) -> Arc<Profile> {
        Arc::clone(self.profiles().inbound(called, source))
    }

    /// The profile an outbound call asked for, else the default (when it
    /// takes outbound calls; else the implicit one's settings).
    ///
    /// # Errors
    /// [`ManagerError::UnknownProfile`] for a name no outbound profile
    /// has.
    pub(super) fn outbound_profile(
        &self,
        name: Option<&str>,
    ) -> Result<Arc<Profile>, ManagerError> {
        let set = self.profiles();
        match name {
            Some(n) => set.outbound(n).cloned().ok_or(ManagerError::UnknownProfile),
            None => {
                let d = set.default_profile();
                if d.serves.outbound() {
                    Ok(Arc::clone(d))
                } else {
                    Ok(Arc::clone(&self.shared.implicit))
                }
            }
        }
    }
}

/// The webhook worker finds a profile's receivers in the set in force.
impl crate::webhooks::Targets for Manager {
    fn profile(&self, name: &str) -> Option<Arc<crate::webhooks::WebhookConfig>> {
        self.profiles().by_name(name)?.webhooks.clone()
    }
}

/// The model session of one call of `profile`: the agent's template with
/// the profile's model, voice, tools and transfer targets, and its
/// rendered instructions; the greeting prompt rendered too, given back
/// for the caller to place (inbound: greet on answer; outbound: only
/// when the profile sets one).
pub(crate) fn model_config(
    base: &SessionConfig,
    profile: &Profile,
    ctx: &TemplateContext,
) -> (SessionConfig, String) {
    let mut m = base.clone();
    let (instructions, greeting) = profile.render(ctx, &base.instructions);
    m.instructions = instructions;
    if let Some(c) = &profile.client {
        c.apply(&mut m);
    }
    m.model.clone_from(&profile.model);
    m.voice.clone_from(&profile.voice);
    m.builtin_tools.end_call = profile.end_call;
    m.builtin_tools.transfer_call = !profile.transfer_targets.is_empty();
    m.transfer_targets = profile.transfer_targets.choices();
    m.tools
        .extend(profile.http_tools.iter().map(|t| t.declaration()));
    if profile.collect_digits {
        m.tools.push(crate::bridge::tools::collect_digits_spec());
    }
    (m, greeting)
}

/// The headers of `offered` (an INVITE's `X-` headers) that `keep`
/// names, under their configured spelling: values read as UTF-8 (lossy),
/// control characters dropped, at most
/// [`callbridge_crm_store::MAX_SIP_HEADER_LEN`] bytes.
pub(crate) fn kept_headers(
    offered: &[(bytes::Bytes, bytes::Bytes)],
    keep: &[String],
) -> Vec<(String, String)> {
    let max = callbridge_crm_store::MAX_SIP_HEADER_LEN;
    keep.iter()
        .filter_map(|k| {
            let (_, v) = offered
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k.as_bytes()))?;
            let mut value: String = String::from_utf8_lossy(v)
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            if value.len() > max {
                let mut cut = max;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
            }
            Some((k.clone(), value))
        })
        .collect()
}

/// The greeting of an inbound call: greet on answer (pre-warmed while
/// it rings).
pub(crate) fn inbound_greeting(prompt: String) -> Greeting {
    Greeting::OnRequest { prompt }
}
