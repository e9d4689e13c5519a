//! The operator's own tools over HTTP (issue 23): declared once
//! (`[[tools]]` in agent.toml), offered to the model by the profiles
//! that name them, called by the agent on the model's behalf.
//!
//! ```text
//!   model: tool call (name, args)
//!      │ args checked against the tool's JSON Schema ── invalid ──> the
//!      │                                                 model is told
//!      ▼
//!   POST url  {call: {session_id, direction, caller, called, profile,
//!              headers}, tool, arguments}
//!   X-Callbridge-Signature: t=<unix>,v1=<hex>   (crate::signing, when
//!                                                the tool has a secret)
//!      │ slower than filler_after ──> the caller hears the filler
//!      ▼
//!   2xx: the JSON (or text) body, at most MAX_RESULT bytes, to the model;
//!   4xx/5xx, timeout, refused connection: told to the model as such
//! ```
//!
//! Nothing here ends the call: a failed tool is an answer the model gets.
//! The request itself is [`request`]; the filler tone is [`filler`].

pub mod filler;
pub mod request;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callbridge_redact::Secret;
use serde::{Deserialize, Serialize};

/// Longest tool result given to the model, in bytes (longer bodies are
/// cut and marked).
pub const MAX_RESULT: usize = 16 * 1024;
/// Longest result kept in the session's events, in bytes.
pub const MAX_STORED_RESULT: usize = 1024;
/// Most tools declared.
pub const MAX_TOOLS: usize = 64;
/// The default `filler_after_ms`.
pub const DEFAULT_FILLER_AFTER: Duration = Duration::from_millis(700);
/// The default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// One `[[tools]]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToolSpec {
    /// The function name the model calls (`[a-zA-Z0-9_]`, 1 to 64).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON Schema of its arguments (an `object` schema).
    pub parameters: serde_json::Value,
    /// Where the agent POSTs (http or https).
    pub url: String,
    /// How long the request may take, e.g. `"3s"` (default 5 s, at most
    /// 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The environment variable holding the signing secret (never the
    /// secret itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// How long the caller may hear nothing before the filler starts
    /// (default 700).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_after_ms: Option<u64>,
    /// The filler: a prompt the model is given to say something short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_prompt: Option<String>,
    /// The filler: a short WAV file (mono 16-bit PCM 8 kHz, at most 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_file: Option<String>,
}

/// What the caller hears while a slow tool runs.
#[derive(Debug, Clone)]
pub enum Filler {
    /// A soft comfort tone ([`filler::comfort_tone`]), the default.
    Tone,
    /// The model is asked to say something short (this text).
    Prompt(String),
    /// This audio (a WAV file checked as the fallback announcement is:
    /// mono 16-bit PCM at 8 kHz, at most 30 s).
    Audio(crate::bridge::fallback::FallbackClip),
}

/// A declared tool, checked.
pub struct HttpTool {
    /// As written.
    pub spec: HttpToolSpec,
    /// The compiled argument schema.
    validator: jsonschema::Validator,
    /// The POST target.
    pub url: reqwest::Url,
    /// The request's bound.
    pub timeout: Duration,
    /// The signing secret.
    pub secret: Option<Secret<Vec<u8>>>,
    /// When the filler starts.
    pub filler_after: Duration,
    /// The filler.
    pub filler: Filler,
}

impl std::fmt::Debug for HttpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTool")
            .field("name", &self.spec.name)
            .field("timeout", &self.timeout)
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpTool {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Checks `args` against the schema: every problem, by path
    /// (`/count: "x" is not of type "integer"`), at most 10.
    ///
    /// # Errors
    /// The problems, for the model.
    pub fn check_args(&self, args: &serde_json::Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(args)
            .take(10)
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The declaration the model sees.
    pub fn declaration(&self) -> callbridge_llm_bridge::ToolSpec {
        callbridge_llm_bridge::ToolSpec {
            name: self.spec.name.clone(),
            description: self.spec.description.clone(),
            parameters: self.spec.parameters.clone(),
        }
    }
}

/// A problem with a `[[tools]]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tools[{index}] {name:?}: {field}: {message}")]
pub struct HttpToolError {
    /// Its position in the list.
    pub index: usize,
    /// Its name as given.
    pub name: String,
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Every declared tool, by name.
#[derive(Debug, Clone, Default)]
pub struct HttpTools {
    by_name: BTreeMap<String, Arc<HttpTool>>,
}

/// Names the model may not use for a tool of ours (the built-ins).
const RESERVED: &[&str] = &["end_call", "transfer_call", "collect_digits"];

impl HttpTools {
    /// Checks every spec; `secret` reads an environment variable and
    /// `base` is where relative filler files are. On any problem, every
    /// problem.
    ///
    /// # Errors
    /// Each [`HttpToolError`].
    pub fn load(
        specs: &[HttpToolSpec],
        secret: &dyn Fn(&str) -> Option<String>,
        base: &std::path::Path,
    ) -> Result<HttpTools, Vec<HttpToolError>> {
        let mut errors = Vec::new();
        let mut by_name = BTreeMap::new();
        if specs.len() > MAX_TOOLS {
            errors.push(HttpToolError {
                index: MAX_TOOLS,
                name: String::new(),
                field: "tools",
                message: format!("more than {MAX_TOOLS} tools"),
            });
        }
        for (i, s) in specs.iter().enumerate() {
            let mut err = |field: &'static str, message: String| {
                errors.push(HttpToolError {
                    index: i,
                    name: s.name.clone(),
                    field,
                    message,
                });
            };
            if s.name.is_empty()
                || s.name.len() > 64
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                err("name", "1 to 64 characters of A-Z, a-z, 0-9 or '_'".into());
            } else if RESERVED.contains(&s.name.as_str()) {
                err("name", "a built-in tool's name".into());
            } else if by_name.contains_key(&s.name) {
                err("name", "a second tool of this name".into());
            }
            if s.description.trim().is_empty() || s.description.len() > 1024 {
                err("description", "1 to 1024 bytes".into());
            }
            let validator = if !s.parameters.is_object()
                || s.parameters.get("type").and_then(|t| t.as_str()) != Some("object")
            {
                err("parameters", "a JSON Schema of type \"object\"".into());
                None
            } else if let Err(e) = jsonschema::meta::validate(&s.parameters) {
                err("parameters", format!("not a valid JSON Schema: {e}"));
                None
            } else {
                match jsonschema::validator_for(&s.parameters) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        err("parameters", format!("not a usable JSON Schema: {e}"));
                        None
                    }
                }
            };
            let url = match reqwest::Url::parse(&s.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
                _ => {
                    err("url", format!("{:?}: an http:// or https:// URL", s.url));
                    None
                }
            };
            let timeout = match &s.timeout {
                None => DEFAULT_TIMEOUT,
                Some(t) => match humantime::parse_duration(t.trim()) {
                    Ok(d) if !d.is_zero() && d <= MAX_TIMEOUT => d,
                    _ => {
                        err(
                            "timeout",
                            format!("{t:?}: a duration above zero, at most 60s"),
                        );
                        DEFAULT_TIMEOUT
                    }
                },
            };
            let secret = match &s.secret_env {
                None => None,
                Some(var) => match secret(var) {
                    Some(v) if !v.is_empty() => Some(Secret::new(v.into_bytes())),
                    _ => {
                        err(
                            "secret_env",
                            format!(
                                "{var}: the variable is not set (the secret is read from the environment only)"
                            ),
                        );
                        None
                    }
                },
            };
            let filler_after = match s.filler_after_ms {
                None => DEFAULT_FILLER_AFTER,
                Some(ms) if (100..=10_000).contains(&ms) => Duration::from_millis(ms),
                Some(ms) => {
                    err("filler_after_ms", format!("{ms}: 100 to 10000"));
                    DEFAULT_FILLER_AFTER
                }
            };
            let filler = match (&s.filler_prompt, &s.filler_file) {
                (None, None) => Filler::Tone,
                (Some(p), None) if !p.trim().is_empty() && p.len() <= 1024 => {
                    Filler::Prompt(p.clone())
                }
                (Some(_), None) => {
                    err("filler_prompt", "1 to 1024 bytes".into());
                    Filler::Tone
                }
                (None, Some(f)) => {
                    let path: PathBuf = base.join(f.trim());
                    match crate::bridge::fallback::FallbackClip::load(&path) {
                        Ok(clip) => Filler::Audio(clip),
                        Err(e) => {
                            err("filler_file", format!("{f:?}: {e}"));
                            Filler::Tone
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    err(
                        "filler_file",
                        "not both filler_prompt and filler_file".into(),
                    );
                    Filler::Tone
                }
            };
            if let (Some(validator), Some(url)) = (validator, url) {
                by_name.insert(
                    s.name.clone(),
                    Arc::new(HttpTool {
                        spec: s.clone(),
                        validator,
                        url,
                        timeout,
                        secret,
                        filler_after,
                        filler,
                    }),
                );
            }
        }
        if errors.is_empty() {
            Ok(HttpTools { by_name })
        } else {
            Err(errors)
        }
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<HttpTool>> {
        self.by_name.get(name)
    }

    /// Every tool, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<HttpTool>> {
        self.by_name.values()
    }

    /// Whether none is declared.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked
/// when cut.
pub fn truncated(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (format!("{}…[truncated]", &text[..cut]), true)
}
