//! The operator's tools: a read-only look at a store that may be in use
//! ([`Store::open_read_only`], [`Store::integrity_problems`]) and an online
//! backup ([`Store::backup_to`]).
//!
//! The backup uses SQLite's online backup API in one step: the copy is
//! read inside one read transaction, so in WAL mode it is a consistent
//! snapshot taken while the agent and the dialer keep writing (writers do
//! not wait for it, and it does not restart when they commit). It is
//! written to a private temporary file beside the destination, checked
//! (`PRAGMA quick_check`), switched to a self-contained rollback journal,
//! synced and only then renamed into place: an interrupted backup never
//! leaves a half-written file under the destination's name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::db::Conn;
use crate::error::{Error, Result};
use crate::random::StoreRng;
use crate::schema;
use crate::store::{Store, WriterId};

/// Most integrity problems [`Store::integrity_problems`] lists.
pub const MAX_PROBLEMS: usize = 20;

/// What [`Store::backup_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its schema version.
    pub schema_version: i64,
    /// Call sessions in it.
    pub sessions: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens an existing store for reading only: no migration, no file
    /// created, safe beside a running agent. The schema version is not
    /// checked ([`Store::schema_version`] tells).
    ///
    /// # Errors
    /// As [`Store::open_with`]; a missing file is
    /// [`FileFault::CannotOpen`](crate::FileFault::CannotOpen).
    pub fn open_read_only(path: impl AsRef<Path>, busy_timeout: Duration) -> Result<Self> {
        let path = path.as_ref();
        let open = || -> Result<Store> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )?;
            conn.busy_timeout(busy_timeout)?;
            // Reading the schema catches "not a database" here, not later.
            schema::user_version(&conn)?;
            Ok(Store {
                conn: Conn::Sqlite(conn),
                writer: WriterId::current(),
                node: crate::store::node_of(&crate::store::OpenOptions::default()),
                path: path.to_path_buf(),
                rng: StoreRng::default(),
            })
        };
        open().map_err(|e| crate::diagnose::classify_open(path, e))
    }

    /// Runs `PRAGMA integrity_check` and returns what it found wrong (at
    /// most [`MAX_PROBLEMS`] lines; empty when the file is sound).
    pub fn integrity_problems(&self) -> Result<Vec<String>> {
        let c = self.sqlite("integrity check")?;
        let mut st = c.prepare(&format!("PRAGMA integrity_check({MAX_PROBLEMS})"))?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let line: String = r.get(0)?;
            if line != "ok" {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// Call sessions in the store, and how many of them are live.
    pub fn session_counts(&self) -> Result<(u64, u64)> {
        let (all, live): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), \
             COUNT(CASE WHEN state IN ('created', 'ringing', 'answered', 'active') THEN 1 END) \
             FROM call_sessions",
            &[],
            |r| Ok::<_, crate::db::DbErr>((r.get(0)?, r.get(1)?)),
        )?;
        Ok((
            u64::try_from(all).unwrap_or(0),
            u64::try_from(live).unwrap_or(0),
        ))
    }

    /// Copies the store to `dest` with SQLite's online backup API (see the
    /// module docs): safe while other connections write. `dest` must not
    /// exist; the copy is mode 0600.
    ///
    /// # Errors
    /// [`Error::Io`] when `dest` exists or its directory cannot be
    /// written, [`Error::Unusable`] for a full disk and the like,
    /// [`Error::Corrupt`] when the copy fails its check.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport> {
        self.sqlite("backup")?;
        if dest.exists() {
            return Err(Error::Io {
                path: dest.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the backup file exists; choose a new name",
                ),
            });
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".into());
        let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
        let result = self.backup_into(&partial, dest);
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// The SQLite connection, or [`Error::Unsupported`] for `what` on
    /// PostgreSQL (which has `pg_dump` and `amcheck` for these).
    fn sqlite(&self, what: &'static str) -> Result<&Connection> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c),
            Conn::Postgres(_) => Err(Error::Unsupported {
                what,
                backend: "postgresql",
            }),
        }
    }

    fn backup_into(&self, partial: &Path, dest: &Path) -> Result<BackupReport> {
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(partial)
                .map_err(io(partial))?;
        }
        let mut copy = Connection::open(partial)?;
        {
            let backup = Backup::new(self.sqlite("backup")?, &mut copy)?;
            // One step: the whole copy inside one read transaction.
            let mut waits = 0u32;
            loop {
                match backup.step(-1)? {
                    StepResult::Done => break,
                    StepResult::Busy | StepResult::Locked if waits < 100 => {
                        waits += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    StepResult::Busy | StepResult::Locked => return Err(Error::Busy),
                    _ => {}
                }
            }
        }
        let check: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(Error::Corrupt {
                what: "backup copy",
            });
        }
        // A backup is one file: no -wal beside it.
        let _: String =
            copy.pragma_update_and_check(None, "journal_mode", "delete", |r| r.get(0))?;
        let schema_version = schema::user_version(&copy)?;
        let sessions: i64 =
            copy.query_row("SELECT COUNT(*) FROM call_sessions", [], |r| r.get(0))?;
        copy.close().map_err(|(_, e)| Error::from(e))?;
        std::fs::File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(io(partial))?;
        std::fs::rename(partial, dest).map_err(io(dest))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        let bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
        Ok(BackupReport {
            path: dest.to_path_buf(),
            bytes,
            schema_version,
            sessions: u64::try_from(sessions).unwrap_or(0),
        })
    }
}
