//! `agent config show`: the effective configuration, every key of
//! [`keys::KEYS`] with its value and where the value came from (the file,
//! a `CALLBRIDGE_*` variable, or the default), then every secret variable
//! as set or not set, never its value. A `store.url` password is masked;
//! long texts (prompts) are cut.
//!
//! The listing is printed even when the configuration is not valid (that
//! is when an operator needs it most); the problems follow it and the
//! command then exits 2, as `check-config` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use figment::value::Value;

use super::error::{ConfigError, Origin};
use super::keys::{self, Preset};
use super::secrets::SECRET_ENV;
use super::source::{Sources, show};

/// Longest text shown whole; longer ones are cut with their length.
const SHOWN_CHARS: usize = 72;

/// Keys whose value may carry a password in a URL's user information.
const URL_KEYS: &[&str] = &["store.url"];

/// The listing for the file at `path` under `env`, or the error that
/// stopped reading it (unreadable file, TOML syntax).
pub fn listing(
    path: &Path,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let sources = Sources::new(path, text, env)?;
    let mut out = String::new();
    let mut section = "";
    for key in keys::KEYS {
        let (sec, name) = key.path.rsplit_once('.').unwrap_or(("", key.path));
        if sec != section {
            let _ = writeln!(out, "\n[{sec}]");
            section = sec;
        }
        let (value, from) = match sources.value(key.path) {
            Some((v, origin)) => (shown(key.path, &v), origin_word(&origin)),
            None => (preset(key.default), "default".to_owned()),
        };
        let _ = writeln!(out, "{name} = {value}    # {from}");
    }
    let _ = writeln!(out, "\n# secrets (environment only; values never shown)");
    for (var, what) in SECRET_ENV {
        let state = match env.get(*var) {
            Some(v) if !v.is_empty() => "set",
            Some(_) => "set but empty",
            None => "not set",
        };
        let _ = writeln!(out, "# {var}: {state} ({what})");
    }
    Ok(out.trim_start().to_owned())
}

fn origin_word(o: &Origin) -> String {
    match o {
        Origin::Default => "default".into(),
        Origin::File(p) => format!("file {}", p.display()),
        Origin::Env(var) => format!("env {var}"),
    }
}

fn preset(p: Preset) -> String {
    match p {
        Preset::Unset => "(not set)".into(),
        Preset::Text(s) => cut(&format!("{s:?}")),
        Preset::Int(i) => i.to_string(),
        Preset::Float(x) => x.to_string(),
        Preset::Flag(b) => b.to_string(),
    }
}

fn shown(key: &str, v: &Value) -> String {
    if URL_KEYS.contains(&key)
        && let Value::String(_, s) = v
    {
        return format!("{:?}", callbridge_crm_store::mask_password(s));
    }
    cut(&show(v))
}

fn cut(s: &str) -> String {
    let n = s.chars().count();
    if n <= SHOWN_CHARS {
        return s.to_owned();
    }
    let head: String = s.chars().take(SHOWN_CHARS).collect();
    format!("{head}... ({n} characters)")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::listing;

    #[test]
    fn each_key_shows_its_value_and_where_it_came_from_and_secrets_only_their_state() {
        let env = BTreeMap::from([
            ("CALLBRIDGE_HTTP_BIND".to_owned(), "0.0.0.0:9000".to_owned()),
            ("GEMINI_API_KEY".to_owned(), "AIzaSECRETSECRET".to_owned()),
        ]);
        let text =
            "[sip]\nbind = \"0.0.0.0:5070\"\n[store]\nurl = \"postgres://cb:hunter2@db:5432/cb\"\n";
        let out = listing(Path::new("/etc/cb/agent.toml"), text, &env).unwrap();
        assert!(
            out.contains("bind = \"0.0.0.0:5070\"    # file /etc/cb/agent.toml"),
            "{out}"
        );
        assert!(
            out.contains("bind = \"0.0.0.0:9000\"    # env CALLBRIDGE_HTTP_BIND"),
            "{out}"
        );
        assert!(out.contains("level = \"info\"    # default"), "{out}");
        assert!(out.contains("[retention]"), "{out}");
        assert!(out.contains("# GEMINI_API_KEY: set"), "{out}");
        assert!(out.contains("# OPENAI_API_KEY: not set"), "{out}");
        assert!(!out.contains("AIzaSECRET"), "a secret leaked: {out}");
        assert!(!out.contains("hunter2"), "a password leaked: {out}");
        assert!(out.contains("postgres://cb:***@db:5432/cb"), "{out}");
    }
}
