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

pub mod provider;
pub mod select;
pub mod template;
pub mod trunks;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::UserId;
use serde::{Deserialize, Serialize};

use crate::dial_targets::DialTargets;
use select::{MatchRules, NumberRule, Specificity};
use template::{Template, TemplateContext};

/// Most profiles in a set.
pub const MAX_PROFILES: usize = 256;
/// Most match rules (numbers and sources together) in one profile.
pub const MAX_RULES: usize = 1024;
/// The built-in tools a profile may name.
pub const BUILTIN_TOOLS: &[&str] = &["end_call", "transfer_call", "collect_digits"];
/// The name of the implicit default profile.
pub const IMPLICIT: &str = "default";

/// One profile as written: a `[[profiles]]` table of agent.toml, or an
/// entry of `PUT /api/profiles`' JSON array. Every field but `name` is
/// optional and falls back to the agent's own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Unique, 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
    pub name: String,
    /// The system prompt, a template (default: `model.system_prompt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The prompt that makes the model greet, a template (default:
    /// `model.greeting`; outbound calls without it let the callee speak
    /// first, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// The model provider (default: `model.provider`); another one must
    /// be configured, with its key ([`ProfileDefaults::providers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model id (default: `model.model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The voice (default: `model.voice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// The conversation's language tag (`en`, `es-MX`), told to the
    /// model with its instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The tools offered to the model, by name (`end_call`,
    /// `transfer_call`); default: the built-ins when `model.tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Where `transfer_call` may go: names of `[transfer] targets`
    /// entries, or `name=target` entries of its own (the same rules);
    /// default: the agent's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_targets: Option<Vec<String>>,
    /// Record the call (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Answering-machine detection on its outbound calls (default false;
    /// a request's `amd` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd: Option<bool>,
    /// The longest call, e.g. `"10m"` (default: `calls.max_duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// The user id inbound calls of this profile belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<i64>,
    /// `inbound`, `outbound` or `both` (the default): which calls it may
    /// take, and so which template variables exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Which inbound calls it takes.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<MatchSpec>,
    /// Its calls' event receivers, in place of the global `[webhooks]`
    /// (see [`crate::webhooks`]); default: the global ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<crate::webhooks::WebhookSpec>,
}

/// A whole profile set as a document: the body of `GET` and `PUT
/// /api/profiles`, and the profiles file that keeps a `PUT` across
/// restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesDoc {
    /// The default profile's name (`None`: the implicit one, or a
    /// profile named `default`).
    #[serde(default)]
    pub default_profile: Option<String>,
    /// The profiles, in order.
    #[serde(default)]
    pub profiles: Vec<ProfileSpec>,
}

/// Longest SIP header name kept or set, in bytes.
pub const MAX_HEADER_NAME: usize = 64;
/// Longest SIP header value set on an outbound INVITE, in bytes.
pub const MAX_HEADER_VALUE: usize = 256;

/// Whether `name` is an `X-` extension header name: `X-` then 1 to 62
/// token characters (RFC 3261 section 25.1).
///
/// # Examples
/// ```
/// use callbridge_session::profile::is_x_header;
/// assert!(is_x_header("X-Customer-Id"));
/// assert!(!is_x_header("Contact"));
/// assert!(!is_x_header("X-Bad Name"));
/// ```
pub fn is_x_header(name: &str) -> bool {
    name.len() <= MAX_HEADER_NAME && callbridge_sip::ua::is_extension_header(name.as_bytes())
}

/// Whether `value` may go into an outbound INVITE's header: at most
/// [`MAX_HEADER_VALUE`] bytes, no control characters (no CR or LF).
pub fn is_header_value(value: &str) -> bool {
    value.len() <= MAX_HEADER_VALUE && !value.chars().any(char::is_control)
}

/// The inbound match rules of a [`ProfileSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Called numbers taken exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact: Vec<String>,
    /// Called-number prefixes (the longest match wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix: Vec<String>,
    /// Regular expressions of the whole called number, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pattern: Vec<String>,
    /// Source addresses or networks the INVITE must come from (empty:
    /// any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    /// The named trunk (`[[trunks]]`) the INVITE must come from (none:
    /// any); with `source` too, both must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_trunk: Option<String>,
}

/// Which calls a profile takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Inbound only.
    Inbound,
    /// Outbound only.
    Outbound,
    /// Both.
    Both,
}

impl Serves {
    /// Whether it takes inbound calls.
    pub fn inbound(self) -> bool {
        matches!(self, Serves::Inbound | Serves::Both)
    }
    /// Whether it takes outbound calls.
    pub fn outbound(self) -> bool {
        matches!(self, Serves::Outbound | Serves::Both)
    }
}

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
            match one(i, s, defaults) {
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

/// Checks one spec; every problem of it.
fn one(i: usize, s: &ProfileSpec, d: &ProfileDefaults) -> Result<Profile, Vec<ProfileError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(ProfileError {
            index: i,
            name: s.name.clone(),
            field: field.into(),
            message,
        });
    };
    if !valid_name(&s.name) {
        err(
            "name",
            "1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'".into(),
        );
    }
    let serves = match s.direction.as_deref() {
        None | Some("both") => Serves::Both,
        Some("inbound") => Serves::Inbound,
        Some("outbound") => Serves::Outbound,
        Some(o) => {
            err(
                "direction",
                format!("{o:?}: one of \"inbound\", \"outbound\", \"both\""),
            );
            Serves::Both
        }
    };
    let mut samples = Vec::new();
    if serves.inbound() {
        samples.push(d.sample("inbound", &s.name));
    }
    if serves.outbound() {
        samples.push(d.sample("outbound", &s.name));
    }
    let mut template = |field: &str, src: &Option<String>, fallback: &str| match src {
        None => Template::literal(fallback),
        Some(src) => Template::parse(src, &samples).unwrap_or_else(|e| {
            err(field, e.to_string());
            Template::literal(fallback)
        }),
    };
    let system_prompt = template("system_prompt", &s.system_prompt, &d.system_prompt);
    let greeting = template("greeting", &s.greeting, &d.greeting);
    let client = match &s.provider {
        Some(p) if *p != d.provider => match d.providers.get(p) {
            Some(Ok(c)) => Some(Arc::clone(c)),
            Some(Err(why)) => {
                err("provider", format!("{p:?}: {why}"));
                None
            }
            None => {
                let known: Vec<&str> = std::iter::once(d.provider.as_str())
                    .chain(d.providers.keys().map(String::as_str))
                    .collect();
                err(
                    "provider",
                    format!("{p:?}: not a provider of this agent ({})", known.join(", ")),
                );
                None
            }
        },
        _ => None,
    };
    let text = |v: &Option<String>| v.as_ref().map(|t| t.trim().to_owned());
    for (field, v) in [("model", &s.model), ("voice", &s.voice)] {
        if let Some(t) = text(v)
            && (t.is_empty() || t.len() > 128 || t.chars().any(char::is_control))
        {
            err(field, "1 to 128 characters, no control characters".into());
        }
    }
    if let Some(l) = &s.language
        && (l.is_empty()
            || l.len() > 35
            || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        err(
            "language",
            format!("{l:?}: a language tag like \"en\" or \"es-MX\""),
        );
    }
    let (end_call, transfer_tool, collect_digits, http_tools) = match &s.tools {
        None => (
            d.tools,
            d.tools,
            false,
            d.http_tools.iter().cloned().collect(),
        ),
        Some(names) => {
            let mut http = Vec::new();
            for n in names {
                if BUILTIN_TOOLS.contains(&n.as_str()) {
                    continue;
                }
                match d.http_tools.get(n) {
                    Some(t) => http.push(Arc::clone(t)),
                    None => err(
                        "tools",
                        format!(
                            "{n:?}: no such tool (the built-ins are {}; others are declared in [[tools]])",
                            BUILTIN_TOOLS.join(", ")
                        ),
                    ),
                }
            }
            let has = |t: &str| names.iter().any(|n| n == t);
            (
                has("end_call"),
                has("transfer_call"),
                has("collect_digits"),
                http,
            )
        }
    };
    let transfer_targets = if transfer_tool {
        match targets(s.transfer_targets.as_deref(), &d.transfer_targets) {
            Ok(t) => t,
            Err(m) => {
                err("transfer_targets", m);
                DialTargets::none()
            }
        }
    } else {
        DialTargets::none()
    };
    let max_duration = match &s.max_duration {
        None => d.max_duration,
        Some(v) => match humantime::parse_duration(v.trim()) {
            Ok(t) if !t.is_zero() && t <= Duration::from_secs(24 * 3600) => t,
            _ => {
                err(
                    "max_duration",
                    format!("{v:?}: a duration above zero and at most 24h, like \"10m\""),
                );
                d.max_duration
            }
        },
    };
    let owner = match s.owner {
        Some(o) if o <= 0 => {
            err("owner", format!("{o}: a user id (positive)"));
            None
        }
        o => o.map(UserId),
    };
    let rules = match &s.matches {
        None => MatchRules::default(),
        Some(m) => rules(m, &d.trunks, &mut err),
    };
    let webhooks = match &s.webhooks {
        None => None,
        Some(w) => match w.resolve(&s.name, &d.webhooks, &|v| d.env.get(v)) {
            Ok(cfg) => Some(Arc::new(cfg)),
            Err(es) => {
                for (field, message) in es {
                    err(field, message);
                }
                None
            }
        },
    };
    if !rules.numbers.is_empty() && !serves.inbound() {
        err(
            "match",
            "an outbound-only profile takes no inbound calls".into(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Profile {
        spec: s.clone(),
        serves,
        system_prompt,
        greeting,
        explicit_greeting: s.greeting.is_some(),
        // Another provider's calls default to its own model.
        model: text(&s.model).unwrap_or_else(|| match &client {
            Some(c) => c.model.clone(),
            None => d.model.clone(),
        }),
        client,
        voice: text(&s.voice).or_else(|| d.voice.clone()),
        language: s.language.clone(),
        end_call,
        collect_digits,
        http_tools,
        transfer_targets,
        record: s.record.unwrap_or(true),
        amd: s.amd.unwrap_or(false),
        max_duration,
        owner,
        rules,
        webhooks,
    })
}

/// A profile's transfer list: each entry names an agent target or is a
/// `name=target` of its own.
fn targets(own: Option<&[String]>, agent: &[String]) -> Result<DialTargets, String> {
    let Some(own) = own else {
        return DialTargets::parse(agent).map_err(|(i, e)| format!("agent entry {}: {e}", i + 1));
    };
    let mut entries = Vec::new();
    for e in own {
        if e.contains('=') {
            entries.push(e.clone());
        } else {
            let found = agent
                .iter()
                .find(|a| a.split_once('=').is_some_and(|(n, _)| n.trim() == e.trim()));
            match found {
                Some(a) => entries.push(a.clone()),
                None => {
                    return Err(format!(
                        "{e:?}: not a name of [transfer] targets, nor name=target"
                    ));
                }
            }
        }
    }
    DialTargets::parse(&entries).map_err(|(i, e)| {
        let name = entries
            .get(i)
            .and_then(|s| s.split_once('=').map(|(n, _)| n.trim().to_owned()))
            .unwrap_or_default();
        format!("entry {} ({name:?}): {e}", i + 1)
    })
}

fn rules(m: &MatchSpec, trunks: &trunks::Trunks, err: &mut impl FnMut(&str, String)) -> MatchRules {
    let mut r = MatchRules::default();
    if m.exact.len() + m.prefix.len() + m.pattern.len() + m.source.len() > MAX_RULES {
        err("match", format!("more than {MAX_RULES} rules"));
        return r;
    }
    let number_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '-' | '.' | '_')
            })
    };
    for (k, n) in m.exact.iter().enumerate() {
        if number_ok(n) {
            r.numbers.push(NumberRule::Exact(n.clone()));
        } else {
            err(&format!("match.exact[{k}]"), format!("{n:?}: not a number"));
        }
    }
    for (k, n) in m.prefix.iter().enumerate() {
        if number_ok(n) {
            r.numbers.push(NumberRule::Prefix(n.clone()));
        } else {
            err(
                &format!("match.prefix[{k}]"),
                format!("{n:?}: not a number prefix"),
            );
        }
    }
    for (k, p) in m.pattern.iter().enumerate() {
        match NumberRule::pattern(p) {
            Ok(rule) => r.numbers.push(rule),
            Err(e) => err(&format!("match.pattern[{k}]"), e),
        }
    }
    for (k, s) in m.source.iter().enumerate() {
        match parse_net(s) {
            Some(n) => r.sources.push(n),
            None => err(
                &format!("match.source[{k}]"),
                format!("{s:?}: an address or network (\"192.0.2.10\", \"198.51.100.0/24\")"),
            ),
        }
    }
    if let Some(t) = &m.source_trunk {
        if trunks.has(t) {
            r.trunk = Some(t.clone());
        } else {
            err(
                "match.source_trunk",
                format!(
                    "{t:?}: names no [[trunks]] entry (known: {})",
                    trunks.names().join(", ")
                ),
            );
        }
    }
    if r.numbers.is_empty() && (!r.sources.is_empty() || r.trunk.is_some()) {
        // A source alone matches every number from there, least specific.
        r.numbers.push(NumberRule::Prefix(String::new()));
    }
    r
}
