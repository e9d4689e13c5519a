//! Routing profiles (issue 23): the `[[profiles]]` tables, `[routing]`
//! (`default_profile`, `profiles_file`), `sip.keep_headers` and the
//! operator's HTTP tools (`[[tools]]`), checked whole into
//! `callbridge_session::profile::Profiles`.
//!
//! A `PUT /api/profiles` is kept in `routing.profiles_file` (JSON, the
//! API's own body; default `profiles.json` beside this file). When that
//! file exists it is the profile set and `[[profiles]]` is not used: the
//! file is what the operator last put, and agent.toml stays the
//! operator's own text, never rewritten by the agent. It is checked here
//! like the tables, so `check-config` reports a bad one.

use std::path::{Path, PathBuf};

use callbridge_session::http_tool::HttpTools;
use callbridge_session::profile::{ProfileDefaults, ProfileError, Profiles, ProfilesDoc};

use super::check::Check;
use super::error::ConfigError;

/// Most `sip.keep_headers` entries.
pub const MAX_KEEP_HEADERS: usize = 32;

/// The validated routing settings.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The profiles in force at start.
    pub profiles: Profiles,
    /// What every profile falls back to (needed again by `PUT`).
    pub defaults: ProfileDefaults,
    /// Where a `PUT /api/profiles` is kept.
    pub profiles_file: PathBuf,
    /// Whether the set came from that file.
    pub from_file: bool,
}

/// `sip.keep_headers`: `X-` header names, at most 32.
pub fn keep_headers(c: &Check<'_>) -> Option<Vec<String>> {
    let list = c.list("sip.keep_headers")?;
    if list.len() > MAX_KEEP_HEADERS {
        return c.invalid(
            "sip.keep_headers",
            format!("{} names", list.len()),
            "at most 32 header names",
        );
    }
    let mut ok = true;
    for h in &list {
        if !callbridge_session::profile::is_x_header(h.trim()) {
            ok = false;
            c.invalid::<()>(
                "sip.keep_headers",
                format!("{h:?}"),
                "X- header names (\"X-Customer-Id\"), at most 64 bytes",
            );
        }
    }
    ok.then(|| list.iter().map(|h| h.trim().to_owned()).collect())
}

/// The `[[tools]]` tables, checked (schemas, URLs, secrets from the
/// process environment, filler files relative to `base`).
pub fn tools(c: &Check<'_>, base: &Path) -> Option<HttpTools> {
    let specs = match c.tools() {
        Ok(s) => s,
        Err(e) => {
            c.push(ConfigError::Invalid {
                key: "tools".into(),
                origin: c.origin("tools"),
                value: "[[tools]]".into(),
                expected: format!("tool tables ({e})"),
            });
            return None;
        }
    };
    let env = |var: &str| std::env::var(var).ok();
    match HttpTools::load(&specs, &env, base) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in errors {
                c.push(ConfigError::Invalid {
                    key: format!("tools[{}].{}", e.index, e.field),
                    origin: c.origin("tools"),
                    value: format!("{:?}", e.name),
                    expected: e.message,
                });
            }
            None
        }
    }
}

// --- issue 23 (prof2): [[trunks]] ---
/// The `[[trunks]]` tables, checked: the named source trunks profiles
/// may take calls from (`[profiles.match] source_trunk`).
pub fn trunks(c: &Check<'_>) -> Option<callbridge_session::profile::trunks::Trunks> {
    let specs = match c.trunks() {
        Ok(s) => s,
        Err(e) => {
            c.push(ConfigError::Invalid {
                key: "trunks".into(),
                origin: c.origin("trunks"),
                value: "[[trunks]]".into(),
                expected: format!("trunk tables ({e})"),
            });
            return None;
        }
    };
    match callbridge_session::profile::trunks::Trunks::load(&specs) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in errors {
                c.push(ConfigError::Invalid {
                    key: format!("trunks[{}].{}", e.index, e.field),
                    origin: c.origin("trunks"),
                    value: format!("{:?}", e.name),
                    expected: e.message,
                });
            }
            None
        }
    }
}
// --- end issue 23 (prof2) ---

/// Reads `[routing]` and the profiles; `defaults` is `None` when a key
/// it is made of failed (its error is already recorded): the keys are
/// still read so every error shows in one pass.
pub fn read(c: &Check<'_>, base: &Path, defaults: Option<ProfileDefaults>) -> Option<Routing> {
    let default_profile = c
        .optional("routing.default_profile")
        .map(|v| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()));
    let file = c.text("routing.profiles_file").and_then(|f| {
        if f.trim().is_empty() {
            c.invalid("routing.profiles_file", "\"\"", "the profiles file's path")
        } else {
            Some(base.join(f.trim()))
        }
    });
    let tables = c.profiles().map_err(|e| {
        c.push(ConfigError::Invalid {
            key: "profiles".into(),
            origin: c.origin("profiles"),
            value: "[[profiles]]".into(),
            expected: format!("profile tables ({e})"),
        });
    });
    let (defaults, file, default_profile, tables) =
        (defaults?, file?, default_profile?, tables.ok()?);
    let (doc, from_file) = match std::fs::read(&file) {
        Ok(bytes) => match serde_json::from_slice::<ProfilesDoc>(&bytes) {
            Ok(doc) => (doc, true),
            Err(e) => {
                return c.invalid(
                    "routing.profiles_file",
                    format!("{:?}", file.display().to_string()),
                    &format!("the JSON body of PUT /api/profiles ({e})"),
                );
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            ProfilesDoc {
                default_profile,
                profiles: tables,
            },
            false,
        ),
        Err(e) => {
            return c.invalid(
                "routing.profiles_file",
                format!("{:?}", file.display().to_string()),
                &format!("a readable file or none ({e})"),
            );
        }
    };
    match Profiles::load(&doc.profiles, doc.default_profile.as_deref(), &defaults) {
        Ok(profiles) => Some(Routing {
            profiles,
            defaults,
            profiles_file: file,
            from_file,
        }),
        Err(errors) => {
            for e in errors {
                push(c, &e, from_file.then_some(file.as_path()));
            }
            None
        }
    }
}

/// One profile error as a configuration error naming the profile.
fn push(c: &Check<'_>, e: &ProfileError, file: Option<&Path>) {
    let key = if e.field == "default_profile" {
        "routing.default_profile".to_owned()
    } else {
        format!("profiles[{}].{}", e.index, e.field)
    };
    let origin = match file {
        Some(f) => super::error::Origin::File(f.to_path_buf()),
        None if e.field == "default_profile" => c.origin("routing.default_profile"),
        None => c.origin("profiles"),
    };
    c.push(ConfigError::Invalid {
        key,
        origin,
        value: format!("{:?}", e.name),
        expected: e.message.clone(),
    });
}
