//! The file and the environment as one tree of values that remembers
//! where each value came from ([figment](https://docs.rs/figment)).
//!
//! Two layers, the later winning: the TOML file, then the
//! `CALLBRIDGE_<SECTION>_<KEY>` variables of [`super::keys::KEYS`]. A
//! variable's text is typed by its key (integers, `true`/`false`/`1`/`0`/
//! `yes`/`no`, comma-separated lists); text that does not fit is kept as
//! text so the key's check names it. Every value carries its layer, so an
//! error can say which file or which variable a bad value came from
//! ([`Sources::value`]).
//!
//! [`Sources::new`] also checks the tree against the keys, collecting
//! every problem: unknown keys in the file, `CALLBRIDGE_` variables in a
//! section's namespace that name no key (a typo), values of the wrong
//! TOML type, and a secret written into the file.

use std::collections::BTreeMap;
use std::path::Path;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::error::{ConfigError, Origin};
use super::keys::{self, Kind};

/// The `[[profiles]]` array of tables (issue 23), read by
/// [`Sources::profiles`], not by the key table.
pub const PROFILES: &str = "profiles";

/// The `[[tools]]` array of tables (issue 23), read by
/// [`Sources::tools`].
pub const TOOLS: &str = "tools";

// --- issue 23 (prof2): [[trunks]] ---
/// The `[[trunks]]` array of tables (named source trunks), read by
/// [`Sources::trunks`].
pub const TRUNKS: &str = "trunks";
// --- end issue 23 (prof2) ---

/// The name of the environment layer's metadata.
const ENV_LAYER: &str = "environment variable";

/// One layer: a tree of values and where they came from.
struct Layer {
    meta: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.meta.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The layered file and environment.
#[derive(Debug)]
pub struct Sources {
    figment: Figment,
    problems: Vec<ConfigError>,
}

impl Sources {
    /// Parses `text` (read from `path`) and takes the overrides found in
    /// `env`. A syntax error stops here; every other problem is kept for
    /// [`Sources::take_problems`].
    pub fn new(
        path: &Path,
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Sources, ConfigError> {
        let file: Dict = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let mut problems = Vec::new();
        let file = Layer {
            meta: Metadata::from("TOML file", path),
            dict: file,
        };
        let env = Layer {
            meta: Metadata::named(ENV_LAYER)
                .interpolater(|_: &Profile, keys: &[&str]| keys::env_name(&keys.join("."))),
            dict: env_layer(env, &mut problems),
        };
        let mut sources = Sources {
            figment: Figment::from(file).merge(env),
            problems,
        };
        if let Ok(Value::Dict(_, tree)) = sources.figment.find_value("") {
            let mut found = Vec::new();
            sources.check_tree(&tree, "", &mut found);
            sources.problems.extend(found);
        }
        Ok(sources)
    }

    /// The problems found by [`Sources::new`].
    pub fn take_problems(&mut self) -> Vec<ConfigError> {
        std::mem::take(&mut self.problems)
    }

    /// The value at dotted `key`, if the file or the environment sets it,
    /// with where it came from.
    pub fn value(&self, key: &str) -> Option<(Value, Origin)> {
        let v = self.figment.find_value(key).ok()?;
        let origin = self.origin(&v, key);
        Some((v, origin))
    }

    /// The `[[profiles]]` tables as written (empty when there are none),
    /// or why they do not read (an unknown field, a wrong type).
    pub fn profiles(&self) -> Result<Vec<callbridge_session::profile::ProfileSpec>, String> {
        if !self.figment.contains(PROFILES) {
            return Ok(Vec::new());
        }
        self.figment
            .extract_inner(PROFILES)
            .map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// The `[[tools]]` tables as written (empty when there are none).
    pub fn tools(&self) -> Result<Vec<callbridge_session::http_tool::HttpToolSpec>, String> {
        if !self.figment.contains(TOOLS) {
            return Ok(Vec::new());
        }
        self.figment
            .extract_inner(TOOLS)
            .map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// The `[[trunks]]` tables as written (empty when there are none).
    pub fn trunks(&self) -> Result<Vec<callbridge_session::profile::trunks::TrunkSpec>, String> {
        if !self.figment.contains(TRUNKS) {
            return Ok(Vec::new());
        }
        self.figment
            .extract_inner(TRUNKS)
            .map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// Whether the file or the environment sets anything at `path` (a
    /// section such as `sip.trunk`).
    pub fn contains(&self, path: &str) -> bool {
        self.figment.contains(path)
    }

    fn origin(&self, v: &Value, key: &str) -> Origin {
        let Some(meta) = self.figment.get_metadata(v.tag()) else {
            return Origin::Default;
        };
        if let Some(path) = meta.source.as_ref().and_then(|s| s.file_path()) {
            return Origin::File(path.to_path_buf());
        }
        if meta.name == ENV_LAYER {
            let parts: Vec<&str> = key.split('.').collect();
            return Origin::Env(meta.interpolate(&Profile::Default, &parts));
        }
        Origin::Default
    }

    /// Every key of `tree` (at `prefix`) must be a key of its type or a
    /// section holding a table.
    fn check_tree(&self, tree: &Dict, prefix: &str, out: &mut Vec<ConfigError>) {
        for (k, v) in tree {
            if prefix.is_empty() && (k == PROFILES || k == TOOLS || k == TRUNKS) {
                // An array of tables, typed by its own reader
                // ([`Sources::profiles`]).
                continue;
            }
            let path = join(prefix, k);
            if let Some(key) = keys::key(&path) {
                if !fits(key.kind, v) {
                    out.push(ConfigError::Invalid {
                        origin: self.origin(v, &path),
                        key: path,
                        value: show(v),
                        expected: key.kind.expected().into(),
                    });
                }
            } else if keys::is_section(&path) {
                match v {
                    Value::Dict(_, inner) => self.check_tree(inner, &path, out),
                    v => out.push(ConfigError::Invalid {
                        origin: self.origin(v, &path),
                        key: path,
                        value: show(v),
                        expected: "a table".into(),
                    }),
                }
            } else {
                out.push(ConfigError::UnknownKey {
                    origin: self.origin(v, &path),
                    hint: hint(&path, prefix),
                    key: path,
                });
            }
        }
    }
}

/// What to do about an unknown key in the file.
fn hint(path: &str, prefix: &str) -> String {
    let names = || {
        keys::children(prefix)
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    };
    if path == "sip.trunk.password" {
        "the trunk password is a secret, read only from CALLBRIDGE_SIP_TRUNK_PASSWORD".into()
    } else if prefix.is_empty() {
        format!("sections are {}", names())
    } else {
        format!("[{prefix}] has {}", names())
    }
}

/// The environment layer: every variable of a key, typed by the key. A
/// variable inside a section's namespace that names no key is a problem.
fn env_layer(env: &BTreeMap<String, String>, problems: &mut Vec<ConfigError>) -> Dict {
    let mut dict = Dict::new();
    for key in keys::KEYS {
        let Some(raw) = env.get(&keys::env_name(key.path)) else {
            continue;
        };
        let text = || Value::from(raw.clone());
        let value = match key.kind {
            Kind::Text => text(),
            Kind::Int => raw
                .trim()
                .parse::<i64>()
                .map_or_else(|_| text(), Value::from),
            Kind::Flag => match raw.trim() {
                "true" | "1" | "yes" => Value::from(true),
                "false" | "0" | "no" => Value::from(false),
                _ => text(),
            },
            Kind::Float => raw
                .trim()
                .parse::<f64>()
                .map_or_else(|_| text(), Value::from),
            Kind::List => Value::from(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::from(s.to_owned()))
                    .collect::<Vec<_>>(),
            ),
        };
        insert(&mut dict, key.path, value);
    }
    let sections: Vec<String> = keys::children("")
        .into_iter()
        .map(|s| keys::env_name(s) + "_")
        .collect();
    for var in env.keys() {
        let ours = sections.iter().any(|s| var.starts_with(s.as_str()));
        let known = keys::KEYS.iter().any(|k| keys::env_name(k.path) == *var)
            || keys::SECRET_VARS.contains(&var.as_str());
        if ours && !known {
            problems.push(ConfigError::UnknownKey {
                key: var.clone(),
                origin: Origin::Env(var.clone()),
                hint: "no configuration key has this variable (`agent check-config --list-env` lists them)".into(),
            });
        }
    }
    dict
}

/// Sets dotted `path` in `dict`, making the tables on the way.
fn insert(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A TOML number as `f64`: a float, or an integer (`threshold = 1`).
pub fn number(n: &figment::value::Num) -> Option<f64> {
    #[allow(clippy::cast_precision_loss, reason = "a setting, not an exact count")]
    n.to_f64()
        .or_else(|| n.to_i128().map(|i| i as f64))
        .or_else(|| n.to_u128().map(|u| u as f64))
}

/// Whether `v` has the TOML type `kind` asks for.
pub fn fits(kind: Kind, v: &Value) -> bool {
    match (kind, v) {
        (Kind::Text, Value::String(..)) | (Kind::Flag, Value::Bool(..)) => true,
        (Kind::Int, Value::Num(_, n)) => n.to_i128().is_some() || n.to_u128().is_some(),
        (Kind::Float, Value::Num(_, n)) => number(n).is_some(),
        (Kind::List, Value::Array(_, items)) => {
            items.iter().all(|i| matches!(i, Value::String(..)))
        }
        _ => false,
    }
}

/// A value in TOML notation, for messages.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_i128()
            .map(|i| i.to_string())
            .or_else(|| n.to_u128().map(|u| u.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => "nothing".into(),
        Value::Array(_, items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Value::Dict(_, d) => format!(
            "{{ {} }}",
            d.iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
