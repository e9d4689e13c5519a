//! [`Store`]: one connection to the CRM store, a SQLite file (opened with
//! migrations, WAL, a busy timeout and foreign keys on) or a PostgreSQL
//! database ([`Store::open_url`], the `url` module).
//!
//! The store is synchronous (SQLite is; the PostgreSQL client blocks too). Async callers own it on a
//! dedicated thread or call it through `tokio::task::spawn_blocking`; never
//! from an async worker thread directly. One `Store` per thread; several
//! processes (the agent and the campaign dialer) may open the same file at
//! once: every write runs in a `BEGIN IMMEDIATE` transaction, so writers
//! queue on SQLite's lock (waiting up to the busy timeout) instead of
//! failing with `database is locked` on a read-to-write upgrade.
//!
//! A database file created by [`Store::open_with`] is private from the
//! start ([`OpenOptions::file_access`], `0600` by default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::db::{Begin, Conn, Tx};
use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::random::StoreRng;
use crate::schema;

/// How to open a [`Store`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long a write waits for another process's lock before
    /// [`Error::Busy`]. Default 10 s.
    pub busy_timeout: Duration,
    /// Open at this schema version instead of the newest (tests of
    /// migrations only). `None` = newest.
    pub schema_version: Option<i64>,
    /// `synchronous = FULL` (fsync the WAL on every commit) instead of the
    /// default `NORMAL`. Both keep every committed transaction when a
    /// process dies; only `FULL` also keeps the last ones through a power
    /// loss or OS crash, at the price of one fsync per write.
    pub sync_full: bool,
    /// Who may read a database file created by this open (`0600` by
    /// default; SQLite gives its `-wal` and `-shm` files the same mode).
    /// An existing file keeps its mode.
    pub file_access: callbridge_files::Access,
    /// The node (agent or dialer machine) this store writes for: recorded
    /// on every session it creates and every lead it claims, and the only
    /// node whose rows [`Store::recover`] touches. `None`: the host name
    /// ([`NodeId::from_host`]).
    pub node: Option<NodeId>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            busy_timeout: Duration::from_secs(10),
            schema_version: None,
            sync_full: false,
            file_access: callbridge_files::Access::Owner,
            node: None,
        }
    }
}

/// Identifies the process that wrote a live session or claimed a lead, so
/// that [`Store::recover`] touches only rows whose process is dead. On Linux
/// it is `pid:starttime` (start time from `/proc/self/stat`, so a reused pid
/// does not look alive); elsewhere `pid:0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriterId(String);

impl WriterId {
    /// The id of the current process.
    pub fn current() -> Self {
        let pid = std::process::id();
        WriterId(format!("{pid}:{}", process_start_time(pid).unwrap_or(0)))
    }

    /// Wraps a stored writer string.
    pub fn from_string(s: String) -> Self {
        WriterId(s)
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the process this id names still runs. On Linux this reads
    /// `/proc/<pid>/stat` and compares the start time; on other systems it
    /// cannot tell and answers `true` for any well-formed id (so recovery
    /// there must be given a liveness check, see
    /// [`Store::recover_with`]).
    pub fn is_alive(&self) -> bool {
        let Some((pid, start)) = self.0.split_once(':') else {
            return false;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            return false;
        };
        if !cfg!(target_os = "linux") {
            return true;
        }
        process_start_time(pid) == Some(start)
    }
}

/// Field 22 of `/proc/<pid>/stat`: the process start time in clock ticks
/// since boot.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A connection to the CRM store. See the module docs for threading.
pub struct Store {
    pub(crate) conn: Conn,
    pub(crate) writer: WriterId,
    /// The node recorded on sessions and claims (see [`OpenOptions::node`]).
    pub(crate) node: NodeId,
    /// The SQLite file; empty for PostgreSQL.
    pub(crate) path: PathBuf,
    /// Where claim tokens come from (see the crate's randomness section).
    pub(crate) rng: StoreRng,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("writer", &self.writer)
            .field("node", &self.node)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options,
    /// applying any missing migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens the store with explicit options.
    ///
    /// # Errors
    /// [`Error::Unusable`] when the file or its place is at fault
    /// (permission denied, read-only filesystem, disk full, not a
    /// database, damaged, locked by another process, missing directory),
    /// [`Error::SchemaTooNew`] when a newer build wrote it.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        Self::open_unclassified(path, opts).map_err(|e| crate::diagnose::classify_open(path, e))
    }

    fn open_unclassified(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let path = path.to_path_buf();
        create_private(&path, opts.file_access)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_timeout(opts.busy_timeout)?;
        // journal_mode returns a row; switching to WAL needs a brief lock,
        // covered by the busy timeout above.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "CRM store is not in WAL mode");
        }
        let sync = if opts.sync_full { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        schema::migrate_to(
            &mut conn,
            opts.schema_version.unwrap_or(schema::SCHEMA_VERSION),
        )?;
        Ok(Store {
            conn: Conn::Sqlite(conn),
            writer: WriterId::current(),
            node: node_of(opts),
            path,
            rng: StoreRng::default(),
        })
    }

    /// The file this store was opened from (empty for PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which database engine holds this store.
    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The node this store writes for (see [`OpenOptions::node`]).
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<i64> {
        match &self.conn {
            Conn::Sqlite(c) => schema::user_version(c),
            Conn::Postgres(_) => schema::pg_version(&self.conn),
        }
    }

    /// Draw claim tokens from `rng` instead of a generator seeded from the
    /// OS (tests pin them with a seeded one). It must be a cryptographically
    /// secure generator: a guessable claim token would let a stale request
    /// place a call for someone else's claim.
    pub fn set_rng(&mut self, rng: impl rand::CryptoRng + Send + 'static) {
        self.rng.set(Box::new(rng));
    }

    /// This process's writer id (recorded on sessions and lead claims).
    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    /// Runs `PRAGMA integrity_check` and returns true when it answers `ok`
    /// (SQLite; on PostgreSQL [`Error::Unsupported`]).
    pub fn integrity_ok(&self) -> Result<bool> {
        let Conn::Sqlite(c) = &self.conn else {
            return Err(Error::Unsupported {
                what: "integrity check",
                backend: "postgresql",
            });
        };
        let s: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }

    /// Starts a write transaction (see [`Begin::Write`]).
    pub(crate) fn write_tx(&mut self) -> Result<Tx<'_>> {
        Ok(self.conn.begin(Begin::Write)?)
    }
}

/// The database engine of a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// The node of `opts`, or the host's.
pub(crate) fn node_of(opts: &OpenOptions) -> NodeId {
    opts.node.clone().unwrap_or_else(NodeId::from_host)
}

/// Creates the database file with `access`'s mode before SQLite opens it
/// (SQLite would create it `0644` less the umask, and its `-wal` and
/// `-shm` files copy the database file's mode). In-memory databases and
/// `file:` URIs are left to SQLite.
fn create_private(path: &Path, access: callbridge_files::Access) -> Result<()> {
    let name = path.as_os_str();
    if name.is_empty() || name == ":memory:" || path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    callbridge_files::create_new_file(path, access)
        .map(drop)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_new_database_and_its_wal_and_shm_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.sqlite");
        let mut s = Store::open(&path).unwrap();
        s.write_tx().unwrap().commit().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.path().join(format!("crm.sqlite{suffix}"));
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let group = dir.path().join("group.sqlite");
        let opts = OpenOptions {
            file_access: callbridge_files::Access::Group,
            ..OpenOptions::default()
        };
        drop(Store::open_with(&group, &opts).unwrap());
        let mode = std::fs::metadata(&group).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn own_writer_is_alive_and_malformed_or_unknown_writers_are_dead() {
        assert!(WriterId::current().is_alive());
        assert!(!WriterId::from_string("garbage".into()).is_alive());
        if cfg!(target_os = "linux") {
            let me = WriterId::current();
            let (pid, _) = me.as_str().split_once(':').unwrap();
            // Same pid, different start time: a reused pid is not our process.
            assert!(!WriterId::from_string(format!("{pid}:1")).is_alive());
            assert!(!WriterId::from_string(format!("{}:0", u32::MAX)).is_alive());
        }
    }
}
