//! `--config agent.toml`: the store's location read from the agent's own
//! configuration file, so the dialer and the agent cannot point at two
//! different databases (issue 22).
//!
//! Only `[store]` is read (`url`, else `database`, the agent's default
//! `callbridge.db` when neither is set); every other section is left
//! alone, so a configuration whose model key lives only in the agent's
//! environment, or whose other sections this dialer does not know, still
//! gives the store. A relative SQLite path is relative to the file's
//! directory made absolute, as the agent resolves it. The agent's own
//! validation is not repeated: a value the agent would refuse fails here
//! only where the store needs it (an unparseable URL).
//!
//! The `toml` crate parses; the agent's full settings (with their
//! provenance and secrets) live in its binary, which a dialer cannot
//! depend on.

use std::path::{Path, PathBuf};

use callbridge_crm_store::StoreUrl;
use serde::Deserialize;

use crate::error::{CampaignError, Result};

/// The agent's default `store.database`.
const DEFAULT_DATABASE: &str = "callbridge.db";

#[derive(Deserialize)]
struct AgentFile {
    #[serde(default)]
    store: StoreSection,
}

#[derive(Deserialize, Default)]
struct StoreSection {
    database: Option<String>,
    url: Option<String>,
}

/// The store of the agent configuration at `path`.
pub fn store_url(path: &Path) -> Result<StoreUrl> {
    let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &base_of(path))
        .map_err(|why| CampaignError::Usage(format!("--config {}: {why}", path.display())))
}

/// The file's directory, absolute (the current directory for a bare
/// file name).
fn base_of(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The store named by the configuration text `text`, relative SQLite
/// paths joined to `base`.
fn parse(text: &str, base: &Path) -> std::result::Result<StoreUrl, String> {
    let file: AgentFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => format!(
            "not the agent's TOML (at byte {}): {}",
            span.start,
            e.message()
        ),
        None => format!("not the agent's TOML: {}", e.message()),
    })?;
    let nonempty = |v: Option<String>, key: &str| match v {
        Some(v) if v.trim().is_empty() => Err(format!("{key} is empty")),
        v => Ok(v.map(|v| v.trim().to_owned())),
    };
    let url = nonempty(file.store.url, "store.url")?;
    let database = nonempty(file.store.database, "store.database")?;
    match url {
        // Never echo the value: it may hold a password.
        Some(u) => match StoreUrl::parse(&u) {
            Ok(StoreUrl::Sqlite(p)) => Ok(StoreUrl::sqlite(base.join(p))),
            Ok(other) => Ok(other),
            Err(_) => Err("store.url is not a SQLite path or a postgres:// URL".into()),
        },
        None => Ok(StoreUrl::sqlite(
            base.join(database.as_deref().unwrap_or(DEFAULT_DATABASE)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/etc/callbridge";

    fn sqlite(text: &str) -> PathBuf {
        match parse(text, Path::new(BASE)) {
            Ok(StoreUrl::Sqlite(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_store_comes_from_store_url_else_database_else_the_default() {
        // The model's key is the agent's business: not needed here.
        let agent = r#"
[sip]
bind = "0.0.0.0:5060"
[model]
provider = "gemini"
[store]
database = "data/crm.db"
recordings_dir = "recordings"
[future_section]
anything = 1
"#;
        assert_eq!(sqlite(agent), Path::new("/etc/callbridge/data/crm.db"));
        assert_eq!(
            sqlite("[store]\ndatabase = \"/var/lib/cb/crm.db\"\n"),
            Path::new("/var/lib/cb/crm.db")
        );
        assert_eq!(sqlite(""), Path::new("/etc/callbridge/callbridge.db"));
        assert_eq!(
            sqlite("[store]\ndatabase = \"ignored.db\"\nurl = \"sqlite:other.db\"\n"),
            Path::new("/etc/callbridge/other.db")
        );
        match parse(
            "[store]\nurl = \"postgres://cb@db.internal:5432/callbridge\"\n",
            Path::new(BASE),
        ) {
            Ok(StoreUrl::Postgres(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_files_say_what_is_wrong_without_echoing_urls() {
        let e = parse("[store\n", Path::new(BASE)).unwrap_err();
        assert!(e.starts_with("not the agent's TOML"), "{e}");
        let e = parse("[store]\ndatabase = 3\n", Path::new(BASE)).unwrap_err();
        assert!(e.contains("not the agent's TOML"), "{e}");
        let e = parse("[store]\ndatabase = \" \"\n", Path::new(BASE)).unwrap_err();
        assert_eq!(e, "store.database is empty");
        let e = parse(
            "[store]\nurl = \"postgres://u:secret@h:notaport/db\"\n",
            Path::new(BASE),
        )
        .unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn a_bare_file_name_is_relative_to_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(base_of(Path::new("agent.toml")), cwd);
    }
}
