//! The prompt and greeting templates of a routing profile
//! ([minijinja](https://docs.rs/minijinja)).
//!
//! A template sees one call's [`TemplateContext`]: `{{ caller }}`,
//! `{{ called }}`, `{{ direction }}`, `{{ profile }}`, `{{ lead.name }}`
//! and the lead's other fields (outbound calls: the request's `metadata`,
//! which the dialer fills from the lead), and the SIP headers the agent
//! keeps (`{{ sip["X-Customer-Id"] }}`, `sip.keep_headers`).
//!
//! Undefined is strict: a template is rendered when its profile loads
//! against every context its profile can serve ([`Template::parse`]), so
//! a name no call can have (`{{ calller }}`, `{{ lead.name }}` in an
//! inbound profile, a header that is not kept) is an error then, naming
//! the profile and the field. A value that may be missing on a given
//! call (a lead's custom field, a header the caller may not send) takes
//! an explicit `| default("...")`.
//!
//! At call time ([`Template::render`]) a value can still be missing (a
//! lead without a name): the failure is logged and the template is
//! rendered again with missing values empty; if that fails too, the
//! caller's `fallback` (documented where it is used) is taken. Nothing
//! of the template's own source (`{{ ... }}`) ever reaches the model.
//!
//! Text from the operator's single-prompt configuration (`model.
//! system_prompt`, `model.greeting`) is [`Template::literal`]: used as
//! written, braces and all, as before profiles existed.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// Longest template source, in bytes.
pub const MAX_SOURCE: usize = 64 * 1024;

/// What one call gives its profile's templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TemplateContext {
    /// The calling party's number or user part.
    pub caller: String,
    /// The called party's number or user part.
    pub called: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// The profile's name.
    pub profile: String,
    /// The lead's fields (`name` and its custom fields): outbound calls
    /// only, from the request's `metadata`. Absent on inbound calls, so
    /// `{{ lead.name }}` in an inbound profile fails when it loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead: Option<BTreeMap<String, String>>,
    /// The kept SIP headers (`sip.keep_headers`), by their configured
    /// spelling.
    pub sip: BTreeMap<String, String>,
}

/// A template that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Longer than [`MAX_SOURCE`].
    #[error("longer than 64 KiB")]
    TooLong,
    /// Not a valid template, or it uses what no call of its direction
    /// has (minijinja's message, which names the line).
    #[error("{direction} calls: {message}")]
    Invalid {
        /// The direction whose context it was rendered against.
        direction: &'static str,
        /// What minijinja said.
        message: String,
    },
}

/// A prompt or greeting: a template, or literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    literal: bool,
}

fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // Prompts are plain text: no HTML escaping whatever the name.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

static STRICT: LazyLock<Environment<'static>> =
    LazyLock::new(|| environment(UndefinedBehavior::Strict));
static LENIENT: LazyLock<Environment<'static>> =
    LazyLock::new(|| environment(UndefinedBehavior::Chainable));

impl Template {
    /// Literal text, used as written (the single-prompt configuration).
    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            source: text.into(),
            literal: true,
        }
    }

    /// Loads `source`, rendering it strictly against each of `samples`
    /// (one context per direction the profile serves, holding every
    /// variable a call of that direction can have).
    ///
    /// # Errors
    /// [`TemplateError`]: too long, bad syntax, or a variable some
    /// sample lacks.
    ///
    /// # Examples
    /// ```
    /// use callbridge_session::profile::template::{Template, TemplateContext};
    /// let inbound = TemplateContext { direction: "inbound", ..Default::default() };
    /// assert!(Template::parse("Caller {{ caller }}", &[inbound.clone()]).is_ok());
    /// assert!(Template::parse("Hi {{ lead.name }}", &[inbound]).is_err());
    /// ```
    pub fn parse(source: &str, samples: &[TemplateContext]) -> Result<Template, TemplateError> {
        if source.len() > MAX_SOURCE {
            return Err(TemplateError::TooLong);
        }
        for s in samples {
            STRICT
                .render_str(source, s)
                .map_err(|e| TemplateError::Invalid {
                    direction: s.direction,
                    message: describe(&e),
                })?;
        }
        Ok(Template {
            source: source.to_owned(),
            literal: false,
        })
    }

    /// The text for one call. A strict failure is logged (without
    /// values) and the template is rendered with missing values empty;
    /// if that fails too, `fallback` is returned.
    pub fn render(&self, ctx: &TemplateContext, what: &'static str, fallback: &str) -> String {
        if self.literal {
            return self.source.clone();
        }
        match STRICT.render_str(&self.source, ctx) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    profile = %ctx.profile,
                    template = what,
                    error = %describe(&e),
                    "template failed for this call: missing values rendered empty"
                );
                LENIENT.render_str(&self.source, ctx).unwrap_or_else(|e| {
                    tracing::warn!(
                        profile = %ctx.profile,
                        template = what,
                        error = %describe(&e),
                        "template failed for this call: its documented default is used"
                    );
                    fallback.to_owned()
                })
            }
        }
    }
}

/// minijinja's error on one line (its kind, its detail and the line).
fn describe(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(d) = e.detail() {
        s.push_str(": ");
        s.push_str(d);
    }
    if let Some(l) = e.line() {
        s.push_str(&format!(" (line {l})"));
    }
    s
}
