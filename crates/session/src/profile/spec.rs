//! What a profile is as written: `[[profiles]]` tables and `PUT
//! /api/profiles` bodies ([`ProfileSpec`], [`ProfilesDoc`]), and the
//! rules for the SIP headers they name. Checked into a
//! [`super::Profile`] by [`super::Profiles::load`].

use serde::{Deserialize, Serialize};

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
    /// be configured, with its key ([`super::ProfileDefaults::providers`]).
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
