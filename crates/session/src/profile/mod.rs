//! Routing profiles (issue 23): what a call is, decided when it starts.
//!
//! A profile bundles the system prompt and greeting (templates,
//! [`template`]), the model and voice, the language, the tools, the
//! transfer targets (a subset of the agent's `[transfer] targets`, or a
//! list of its own under the same rules), recording, answering-machine
//! detection for outbound calls, the longest call and the owner.
//!
//! ```text
//!   ProfileSpec (agent.toml [[profiles]], PUT /api/profiles)
//!        │  Profiles::load: every spec checked, every error named
//!        ▼
//!   Profiles ── inbound(called, source) ──┐  exact > longest prefix >
//!            ── named(name) ──────────────┤  pattern (in order) > default
//!                                         ▼
//!                                 Arc<Profile> ── call(ctx) ── CallProfile
//! ```
//!
//! Inbound calls pick by called number and, optionally, the INVITE's
//! source address or named source trunk ([`select`], [`trunks`]); outbound calls by name (`POST /api/calls`
//! `profile`, a campaign's profile). The default profile takes every call
//! nothing else takes. Without any `[[profiles]]` the agent's single
//! prompt configuration is the one, implicit, default profile
//! ([`ProfileDefaults::implicit`]), rendered literally as before.
//!
//! A call keeps the `Arc<Profile>` it started with: replacing the set
//! ([`crate::Manager::set_profiles`]) changes new calls only.

mod build;
pub mod provider;
pub mod select;
mod spec;
pub mod template;
pub mod trunks;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::UserId;

use crate::dial_targets::DialTargets;
use select::{MatchRules, NumberRule, Specificity};
use template::{Template, TemplateContext};

pub use spec::{
    MAX_HEADER_NAME, MAX_HEADER_VALUE, MatchSpec, ProfileSpec, ProfilesDoc, Serves,
    is_header_value, is_x_header,
};

/// Most profiles in a set.
pub const MAX_PROFILES: usize = 256;
/// Most match rules (numbers and sources together) in one profile.
pub const MAX_RULES: usize = 1024;
/// The built-in tools a profile may name.
pub const BUILTIN_TOOLS: &[&str] = &["end_call", "transfer_call", "collect_digits"];
/// The name of the implicit default profile.
pub const IMPLICIT: &str = "default";

/// What a profile falls back to, from the agent's own settings.
#[derive(Debug, Clone)]
pub struct ProfileDefaults {
    /// `model.provider`.
    pub provider: String,
    /// `model.model`.
    pub model: String,
    /// `model.voice`.
    pub voice: Option<String>,
    /// `model.system_prompt` (literal text).
    pub system_prompt: String,
    /// `model.greeting` (literal text).
    pub greeting: String,
    /// `model.tools`: the built-ins on.
    pub tools: bool,
    /// `[transfer] targets` as written.
    pub transfer_targets: Vec<String>,
    /// `calls.max_duration`.
    pub max_duration: Duration,
    /// `sip.keep_headers`: the header names templates may use.
    pub keep_headers: Vec<String>,
    /// The declared HTTP tools (`[[tools]]`) profiles may name.
    pub http_tools: crate::http_tool::HttpTools,
    /// The other providers profiles may name, with their clients.
    pub providers: provider::ProviderChoices,
    /// The global `[webhooks]`: the time limit, retry schedule and
    /// retention a profile's own webhooks take.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// Where a profile's `webhooks.secret_env` is read.
    pub env: Env,
    /// The named trunks (`[[trunks]]`) `match.source_trunk` may name.
    pub trunks: trunks::Trunks,
}

/// Reads an environment variable: the process's own
/// ([`Env::process`]), or a fixed table in tests.
#[derive(Clone)]
pub struct Env(Arc<dyn Lookup>);

/// What [`Env`] wraps: a variable's value by its name.
trait Lookup: Fn(&str) -> Option<String> + Send + Sync {}

impl<F: Fn(&str) -> Option<String> + Send + Sync> Lookup for F {}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env(Arc::new(|var| std::env::var(var).ok()))
    }

    /// Variables from `f`.
    pub fn from_fn(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Env {
        Env(Arc::new(f))
    }

    /// The value of `var`, if set.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::process()
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl ProfileDefaults {
    /// The implicit default profile: the single-prompt configuration,
    /// literal, for both directions, matching nothing by number.
    pub fn implicit(&self) -> Profile {
        let targets = if self.tools {
            DialTargets::parse(&self.transfer_targets).unwrap_or_else(|_| DialTargets::none())
        } else {
            DialTargets::none()
        };
        Profile {
            spec: ProfileSpec {
                name: IMPLICIT.into(),
                ..ProfileSpec::default()
            },
            serves: Serves::Both,
            system_prompt: Template::literal(self.system_prompt.clone()),
            greeting: Template::literal(self.greeting.clone()),
            explicit_greeting: false,
            model: self.model.clone(),
            client: None,
            voice: self.voice.clone(),
            language: None,
            end_call: self.tools,
            collect_digits: false,
            http_tools: self.http_tools.iter().cloned().collect(),
            transfer_targets: targets,
            record: true,
            amd: false,
            max_duration: self.max_duration,
            owner: None,
            rules: MatchRules::default(),
            webhooks: None,
        }
    }

    fn sample(&self, direction: &'static str, name: &str) -> TemplateContext {
        TemplateContext {
            caller: "+15550100001".into(),
            called: "+15550100002".into(),
            direction,
            profile: name.into(),
            lead: (direction == "outbound").then(|| {
                [("name".to_owned(), "Ann".to_owned())]
                    .into_iter()
                    .collect()
            }),
            sip: self
                .keep_headers
                .iter()
                .map(|h| (h.clone(), "x".to_owned()))
                .collect(),
        }
    }
}

/// One problem with a profile set, named: which profile, which field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profiles[{index}] {name:?}: {field}: {message}")]
pub struct ProfileError {
    /// The profile's position (0-based) in the list as given.
    pub index: usize,
    /// Its name as given.
    pub name: String,
    /// The field (`system_prompt`, `match.pattern[2]`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// As written (for `GET /api/profiles`).
    pub spec: ProfileSpec,
    /// Which calls it takes.
    pub serves: Serves,
    /// The system prompt.
    pub system_prompt: Template,
    /// The greeting prompt.
    pub greeting: Template,
    /// Whether the greeting was set on the profile (outbound calls greet
    /// only then).
    pub explicit_greeting: bool,
    /// The model id.
    pub model: String,
    /// The provider's client when it is not the agent's own
    /// (`model.provider`).
    pub client: Option<Arc<provider::ModelClient>>,
    /// The voice.
    pub voice: Option<String>,
    /// The language tag.
    pub language: Option<String>,
    /// `end_call` offered.
    pub end_call: bool,
    /// `collect_digits` offered.
    pub collect_digits: bool,
    /// The HTTP tools offered.
    pub http_tools: Vec<Arc<crate::http_tool::HttpTool>>,
    /// Where `transfer_call` may go (empty: not offered).
    pub transfer_targets: DialTargets,
    /// Record the call.
    pub record: bool,
    /// AMD on outbound calls by default.
    pub amd: bool,
    /// The longest call.
    pub max_duration: Duration,
    /// Inbound calls' owner.
    pub owner: Option<UserId>,
    /// Inbound match rules.
    pub rules: MatchRules,
    /// Its own event receivers (`None`: the global `[webhooks]`).
    pub webhooks: Option<Arc<crate::webhooks::WebhookConfig>>,
}

impl Profile {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The receivers of its calls' events: its own webhooks when it has
    /// them, else the global ones (`None`: neither, no outbox rows).
    pub fn event_receivers<'a>(
        &'a self,
        global: Option<&'a Arc<crate::webhooks::WebhookConfig>>,
    ) -> Option<&'a Arc<crate::webhooks::WebhookConfig>> {
        self.webhooks.as_ref().or(global)
    }

    /// The instructions and greeting prompt for one call (see
    /// [`Template::render`] for failures: the instructions fall back to
    /// `model.system_prompt`'s text as configured, the greeting to the
    /// built-in greeting prompt).
    pub fn render(&self, ctx: &TemplateContext, defaults_prompt: &str) -> (String, String) {
        let mut instructions = self
            .system_prompt
            .render(ctx, "system_prompt", defaults_prompt);
        if let Some(l) = &self.language {
            instructions.push_str(&format!(
                "\n\nSpeak in the language with the tag {l} unless the caller asks otherwise."
            ));
        }
        let greeting = self.greeting.render(
            ctx,
            "greeting",
            callbridge_llm_bridge::Greeting::DEFAULT_PROMPT,
        );
        (instructions, greeting)
    }
}

/// A validated set of profiles and its default.
#[derive(Debug, Clone)]
pub struct Profiles {
    list: Vec<Arc<Profile>>,
    default: Arc<Profile>,
    default_named: Option<String>,
    trunks: trunks::Trunks,
}

/// An address (`192.0.2.10`) or a network (`198.51.100.0/24`).
fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .ok()
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Profiles {
    /// A set of one profile, the default, matching nothing by number.
    pub fn single(default: Profile) -> Profiles {
        Profiles {
            list: Vec::new(),
            default: Arc::new(default),
            default_named: None,
            trunks: trunks::Trunks::default(),
        }
    }

    /// Checks every spec and the default's name; on any problem, every
    /// problem found (the set is taken whole or not at all).
    ///
    /// # Errors
    /// Each [`ProfileError`], in the order of the list.
    pub fn load(
        specs: &[ProfileSpec],
        default: Option<&str>,
        defaults: &ProfileDefaults,
    ) -> Result<Profiles, Vec<ProfileError>> {
        let mut errors = Vec::new();
        if specs.len() > MAX_PROFILES {
            errors.push(ProfileError {
                index: MAX_PROFILES,
                name: String::new(),
                field: "profiles".into(),
                message: format!("more than {MAX_PROFILES} profiles"),
            });
        }
        let mut names = BTreeSet::new();
        let mut list = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if !names.insert(s.name.as_str()) {
                errors.push(ProfileError {
                    index: i,
                    name: s.name.clone(),
                    field: "name".into(),
                    message: "a second profile of this name".into(),
                });
            }
            match build::one(i, s, defaults) {
                Ok(p) => list.push(Arc::new(p)),
                Err(mut e) => errors.append(&mut e),
            }
        }
        let default_profile = match default {
            None => specs
                .iter()
                .position(|s| s.name == IMPLICIT)
                .and_then(|i| list.get(i).cloned())
                .unwrap_or_else(|| Arc::new(defaults.implicit())),
            Some(d) => match list.iter().find(|p| p.name() == d) {
                Some(p) if p.serves.inbound() => Arc::clone(p),
                Some(_) => {
                    errors.push(ProfileError {
                        index: 0,
                        name: d.into(),
                        field: "default_profile".into(),
                        message: "the default profile must take inbound calls".into(),
                    });
                    Arc::new(defaults.implicit())
                }
                None => {
                    if !names.contains(d) {
                        errors.push(ProfileError {
                            index: 0,
                            name: d.into(),
                            field: "default_profile".into(),
                            message: "names no profile".into(),
                        });
                    }
                    Arc::new(defaults.implicit())
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Profiles {
            list,
            default: default_profile,
            default_named: default.map(str::to_owned),
            trunks: defaults.trunks.clone(),
        })
    }

    /// The profiles as written, in order.
    pub fn specs(&self) -> Vec<ProfileSpec> {
        self.list.iter().map(|p| p.spec.clone()).collect()
    }

    /// The configured default's name (`None`: the implicit default).
    pub fn default_name(&self) -> Option<&str> {
        self.default_named.as_deref()
    }

    /// The default profile.
    pub fn default_profile(&self) -> &Arc<Profile> {
        &self.default
    }

    /// The profile for an inbound call to `called` from `source` (and so
    /// from the named trunk that holds it, if any): the most specific
    /// match (exact > longest prefix > the first pattern), the first
    /// listed among equals; else the default.
    ///
    /// # Examples
    /// ```
    /// use callbridge_session::profile::{MatchSpec, ProfileDefaults, ProfileSpec, Profiles};
    /// # let defaults = ProfileDefaults {
    /// #     provider: "mock".into(), model: "m".into(), voice: None,
    /// #     system_prompt: "Be brief.".into(), greeting: "Greet.".into(), tools: true,
    /// #     transfer_targets: vec![], max_duration: std::time::Duration::from_secs(600),
    /// #     keep_headers: vec![], http_tools: Default::default(),
    /// #     providers: Default::default(),
    /// #     webhooks: Default::default(), env: Default::default(),
    /// #     trunks: Default::default(),
    /// # };
    /// let sales = ProfileSpec {
    ///     name: "sales".into(),
    ///     matches: Some(MatchSpec { prefix: vec!["+4930".into()], ..Default::default() }),
    ///     ..Default::default()
    /// };
    /// let set = Profiles::load(&[sales], None, &defaults).unwrap();
    /// assert_eq!(set.inbound("+4930123", None).name(), "sales");
    /// assert_eq!(set.inbound("+4940123", None).name(), "default");
    /// ```
    pub fn inbound(&self, called: &str, source: Option<IpAddr>) -> &Arc<Profile> {
        let trunk = self.trunks.of(source);
        let mut best: Option<(Specificity, &Arc<Profile>)> = None;
        for p in self.list.iter().filter(|p| p.serves.inbound()) {
            if let Some(s) = p.rules.score(called, source, trunk)
                && best.as_ref().is_none_or(|(b, _)| s > *b)
            {
                best = Some((s, p));
            }
        }
        best.map_or(&self.default, |(_, p)| p)
    }

    /// The profile called `name`, whatever calls it takes (the default
    /// answers to its own name when no listed profile has it).
    pub fn by_name(&self, name: &str) -> Option<&Arc<Profile>> {
        self.list
            .iter()
            .find(|p| p.name() == name)
            .or_else(|| (self.default.name() == name).then_some(&self.default))
    }

    /// The profile called `name` that takes outbound calls (the implicit
    /// default answers to [`IMPLICIT`] when no profile takes that name).
    pub fn outbound(&self, name: &str) -> Option<&Arc<Profile>> {
        match self.list.iter().find(|p| p.name() == name) {
            Some(p) => p.serves.outbound().then_some(p),
            None => (name == self.default.name() && self.default.serves.outbound())
                .then_some(&self.default),
        }
    }
}
