//! Where a store lives: [`StoreUrl`] (the agent's and the dialer's
//! `store.url`) and [`Store::open_url`].
//!
//! - a path, or `sqlite:<path>` (also `sqlite://<path>`): a SQLite file;
//! - `postgres://user@host:port/database` (or `postgresql://`, with the
//!   query parameters libpq's URLs take, e.g. `?connect_timeout=5`): a
//!   PostgreSQL database. The password is best left out of the URL (it
//!   would sit in a config file and in process listings): it is taken from
//!   `CALLBRIDGE_STORE_PASSWORD`, else `PGPASSWORD`, when the URL has none.
//!   The URL is never logged with its password ([`StoreUrl`]'s `Display`
//!   masks it).

use std::path::{Path, PathBuf};

use crate::db::{Conn, pg};
use crate::error::{Error, Result};
use crate::random::StoreRng;
use crate::schema;
use crate::store::{OpenOptions, Store, WriterId, node_of};

/// The environment variable a PostgreSQL store's password is read from
/// (before `PGPASSWORD`).
pub const PASSWORD_ENV: &str = "CALLBRIDGE_STORE_PASSWORD";

/// A parsed store location.
///
/// ```
/// use callbridge_crm_store::StoreUrl;
/// assert!(matches!(StoreUrl::parse("/var/lib/callbridge/crm.sqlite").unwrap(), StoreUrl::Sqlite(_)));
/// assert!(matches!(StoreUrl::parse("sqlite:crm.sqlite").unwrap(), StoreUrl::Sqlite(_)));
/// let pg = StoreUrl::parse("postgres://cb:secret@db.internal/crm").unwrap();
/// assert_eq!(pg.to_string(), "postgres://cb:***@db.internal/crm");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum StoreUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL as given, password included if it
    /// had one).
    Postgres(String),
}

impl StoreUrl {
    /// Parses `url` (see the module docs).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an empty one, or a PostgreSQL URL the
    /// client cannot read.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::InvalidUrl { reason: "empty" });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<postgres::Config>()
                .map_err(|_| Error::InvalidUrl {
                    reason: "not a valid postgres:// URL",
                })?;
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(Error::InvalidUrl {
                reason: "sqlite: needs a path",
            });
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    }

    /// A SQLite file at `path`.
    pub fn sqlite(path: impl AsRef<Path>) -> Self {
        StoreUrl::Sqlite(path.as_ref().to_path_buf())
    }

    /// Opens the store here, applying missing migrations.
    pub fn open(&self, opts: &OpenOptions) -> Result<Store> {
        match self {
            StoreUrl::Sqlite(path) => Store::open_with(path, opts),
            StoreUrl::Postgres(url) => open_postgres(url, opts),
        }
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreUrl::Postgres(url) => f.write_str(&mask_password(url)),
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// `url` with the password of its user-info part replaced by `***` (the
/// user-info ends at the authority's last `@`; an `@` in the path or
/// query is not taken for it), for logs and `agent config show`.
///
/// ```
/// use callbridge_crm_store::mask_password;
/// assert_eq!(mask_password("postgres://u:pw@h/d"), "postgres://u:***@h/d");
/// assert_eq!(mask_password("postgres://h/d?x=a:b@c"), "postgres://h/d?x=a:b@c");
/// ```
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Where and how to open a store, for a process that opens several
/// connections over its life (the agent's HTTP read pool, its token-use
/// writer, its start-up recovery).
#[derive(Debug, Clone)]
pub struct StoreAt {
    /// Where.
    pub url: StoreUrl,
    /// How (the node, timeouts, file mode).
    pub options: OpenOptions,
}

impl StoreAt {
    /// A SQLite file with default options.
    pub fn sqlite(path: impl AsRef<Path>) -> Self {
        StoreAt {
            url: StoreUrl::sqlite(path),
            options: OpenOptions::default(),
        }
    }

    /// Opens one connection.
    pub fn open(&self) -> Result<Store> {
        self.url.open(&self.options)
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.url {
            StoreUrl::Sqlite(p) => Some(p),
            StoreUrl::Postgres(_) => None,
        }
    }
}

impl Store {
    /// Opens the store `url` names ([`StoreUrl::parse`]): a SQLite file or
    /// a PostgreSQL database.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], and those of [`Store::open_with`] (SQLite) or
    /// [`Error::Database`] when PostgreSQL cannot be reached or refuses.
    pub fn open_url(url: &str, opts: &OpenOptions) -> Result<Self> {
        StoreUrl::parse(url)?.open(opts)
    }
}

fn open_postgres(url: &str, opts: &OpenOptions) -> Result<Store> {
    let mut config: postgres::Config = url.parse().map_err(|_| Error::InvalidUrl {
        reason: "not a valid postgres:// URL",
    })?;
    if config.get_password().is_none() {
        let pw = std::env::var(PASSWORD_ENV)
            .ok()
            .or_else(|| std::env::var("PGPASSWORD").ok());
        if let Some(pw) = pw {
            config.password(pw);
        }
    }
    // A lock wait is bounded like SQLite's busy timeout, on every
    // connection (reconnections too).
    if config.get_options().is_none() {
        config.options(&format!(
            "-c lock_timeout={}",
            opts.busy_timeout.as_millis().max(1)
        ));
    }
    let conn = Conn::Postgres(pg::connect(config)?);
    schema::pg_migrate_to(&conn, opts.schema_version.unwrap_or(schema::SCHEMA_VERSION))?;
    Ok(Store {
        conn,
        writer: WriterId::current(),
        node: node_of(opts),
        path: PathBuf::new(),
        rng: StoreRng::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_and_never_show_the_password() {
        assert!(
            matches!(StoreUrl::parse("crm.sqlite").unwrap(), StoreUrl::Sqlite(p) if p == Path::new("crm.sqlite"))
        );
        assert!(
            matches!(StoreUrl::parse("sqlite:///var/crm.db").unwrap(), StoreUrl::Sqlite(p) if p == Path::new("/var/crm.db"))
        );
        assert!(matches!(
            StoreUrl::parse("postgresql://h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        assert!(StoreUrl::parse("").is_err());
        assert!(StoreUrl::parse("sqlite:").is_err());
        let u = StoreUrl::parse("postgres://cb:s3cr3t@db:5432/crm?sslmode=disable").unwrap();
        assert!(!format!("{u} {u:?}").contains("s3cr3t"));
        assert_eq!(
            u.to_string(),
            "postgres://cb:***@db:5432/crm?sslmode=disable"
        );
        assert_eq!(
            mask_password("postgres://cb@db/crm"),
            "postgres://cb@db/crm"
        );
    }
}
