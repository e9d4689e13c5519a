//! The crate's one error type, [`Error`], and the mapping from SQLite's errors.
//!
//! Every variant is something a caller can act on: retry later ([`Error::Busy`]),
//! show a 404 ([`Error::NotFound`]), a 409 ([`Error::Conflict`],
//! [`Error::InvalidTransition`], [`Error::ClaimNotHeld`]), a 400 ([`Error::InvalidInput`],
//! [`Error::ImportRejected`]), or stop and upgrade ([`Error::SchemaTooNew`]).
//! The engines' own error types (SQLite's, PostgreSQL's) never appear in the
//! public API: they are wrapped in the opaque [`DbError`] and only reachable
//! through `source()`.

use std::path::PathBuf;

use crate::db::{DbErr, Optional};
use crate::model::{LeadId, SessionState};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entity {
    /// A user.
    User,
    /// A campaign.
    Campaign,
    /// A lead.
    Lead,
    /// A call session.
    Session,
    /// A transcript turn.
    Turn,
    /// A do-not-call entry.
    Dnc,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::Campaign => "campaign",
            Entity::Lead => "lead",
            Entity::Session => "session",
            Entity::Turn => "transcript turn",
            Entity::Dnc => "do-not-call entry",
        })
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist. `id` is the record's identifier (never a
    /// phone number or a name).
    #[error("{entity} {id} not found")]
    NotFound {
        /// What was looked up.
        entity: Entity,
        /// Its identifier.
        id: String,
    },
    /// The write conflicts with what is stored (a duplicate unique value, a
    /// lead that is not in progress, a campaign that is not active, ...).
    #[error("{entity} conflict: {reason}")]
    Conflict {
        /// What the write was about.
        entity: Entity,
        /// Why it conflicts.
        reason: &'static str,
    },
    /// A session for a lead's claim was refused: the lead is no longer
    /// claimed under the token presented (the claim was released, recorded
    /// or claimed again). Nothing was written; a 409 for the agent's API.
    #[error("lead {lead}: the claim is no longer held")]
    ClaimNotHeld {
        /// The lead.
        lead: LeadId,
    },
    /// A session state change that its state machine forbids (for example
    /// anything after `ended`).
    #[error("session cannot go from {from} to {to}")]
    InvalidTransition {
        /// The stored state.
        from: SessionState,
        /// The requested state.
        to: SessionState,
    },
    /// A value given by the caller is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A CSV import was refused because some rows are invalid; nothing was
    /// written. Every bad row is listed (up to
    /// [`MAX_REPORTED_ROWS`](crate::import::MAX_REPORTED_ROWS)).
    #[error("import rejected: {total} invalid row(s)")]
    ImportRejected {
        /// The bad rows, with line numbers and reasons.
        rows: Vec<RowError>,
        /// How many rows were bad in total (may exceed `rows.len()`).
        total: usize,
    },
    /// The API token is unknown or wrong.
    #[error("invalid API token")]
    Unauthorized,
    /// Another process held the database lock for longer than the busy
    /// timeout. Retrying later is safe: nothing was written.
    #[error("database busy: another writer held the lock past the busy timeout")]
    Busy,
    /// The database file was written by a newer version of this crate.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}): \
         run the newer callbridge that wrote it, or restore a backup taken before the upgrade"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored value could not be decoded (the file was edited by hand or
    /// is damaged).
    #[error("corrupt stored value in {what}")]
    Corrupt {
        /// Which column or record.
        what: &'static str,
    },
    /// The operating system's random source failed (token generation).
    #[error("the OS random source failed")]
    Entropy,
    /// A filesystem operation failed.
    #[error("I/O error on {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database file cannot be used where it is, for a reason the
    /// operator must fix (see [`FileFault`]). [`Store::open`](crate::Store::open)
    /// reports its failures this way; [`Error::fault`] classifies any error.
    #[error("{fault}")]
    Unusable {
        /// What is wrong.
        fault: FileFault,
    },
    /// Any other database failure (an I/O error inside SQLite, a lost
    /// PostgreSQL connection, ...); the message is the engine's, which
    /// never holds bound values.
    #[error("database error: {0}")]
    Database(#[source] DbError),
    /// The operation exists for one backend only (a SQLite file's backup
    /// or integrity check on a PostgreSQL store: PostgreSQL has its own
    /// tools, `pg_dump` and `amcheck`).
    #[error("{what} is not available on a {backend} store")]
    Unsupported {
        /// The operation.
        what: &'static str,
        /// The backend it was asked of (`postgresql`, `sqlite`).
        backend: &'static str,
    },
    /// The store URL could not be used (not `sqlite:`, a path or
    /// `postgres://`, or a malformed PostgreSQL URL). The URL itself is not
    /// repeated: it may hold a password.
    #[error("invalid store URL: {reason}")]
    InvalidUrl {
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    /// Whether the same write may succeed later unchanged: the file could
    /// not be written (disk full, read-only, I/O error, locked past the
    /// busy timeout) rather than the write being refused for what it says.
    /// The agent's store writer retries and journals transient failures
    /// and drops (loudly) the others.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Busy | Error::Database(_) | Error::Io { .. } | Error::Entropy
        )
    }
}

/// One bad row of a CSV lead import ([`Error::ImportRejected`],
/// [`ImportReport::rejected`](crate::ImportReport::rejected)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// The offending column.
    pub field: &'static str,
    /// Why it was refused.
    pub reason: &'static str,
}

/// Why a database file cannot be used: each names the cause and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFault {
    /// The OS refused access (`EACCES`/`EPERM`, `SQLITE_PERM`).
    PermissionDenied,
    /// The file's filesystem is mounted read-only (`EROFS`).
    ReadOnlyFilesystem,
    /// SQLite could open the file for reading only (`SQLITE_READONLY`) and
    /// the OS gave no other reason.
    ReadOnly,
    /// No space left (`SQLITE_FULL`, `ENOSPC`).
    DiskFull,
    /// The file is not an SQLite database (`SQLITE_NOTADB`).
    NotADatabase,
    /// The file is an SQLite database whose pages are damaged
    /// (`SQLITE_CORRUPT`).
    Damaged,
    /// Another process holds the database lock (`SQLITE_BUSY` past the busy
    /// timeout); its pid when the OS says which (Linux `/proc/locks`).
    Locked {
        /// The process holding a lock on the file, if known.
        holder: Option<u32>,
    },
    /// The directory the file should be in does not exist.
    MissingDirectory,
    /// SQLite could not open the file and the OS gave no reason.
    CannotOpen,
}

impl std::fmt::Display for FileFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileFault::PermissionDenied => f.write_str(
                "permission denied: this process's user cannot read and write the file, or cannot \
                 create files in its directory (SQLite keeps <file>-wal and <file>-shm beside it); \
                 fix the owner or mode of both",
            ),
            FileFault::ReadOnlyFilesystem => f.write_str(
                "read-only filesystem: the file's filesystem is mounted read-only; \
                 remount it read-write or move the database",
            ),
            FileFault::ReadOnly => f.write_str(
                "read-only: SQLite could open the file only for reading; check its mode, \
                 its directory's and the mount",
            ),
            FileFault::DiskFull => f.write_str(
                "disk full: no space left for the database or its write-ahead log; free space \
                 and start again",
            ),
            FileFault::NotADatabase => f.write_str(
                "not a database: the file is not an SQLite database (damaged, truncated or \
                 another file); restore it from a backup (`agent store backup` makes one)",
            ),
            FileFault::Damaged => f.write_str(
                "database disk image is malformed: restore it from a backup \
                 (`agent store check` shows what is damaged)",
            ),
            FileFault::Locked { holder: Some(pid) } => write!(
                f,
                "locked by another process (pid {pid}): it held the database lock past the busy \
                 timeout; stop it or wait for it to finish"
            ),
            FileFault::Locked { holder: None } => f.write_str(
                "locked by another process: it held the database lock past the busy timeout; \
                 stop it or wait for it to finish",
            ),
            FileFault::MissingDirectory => {
                f.write_str("its directory does not exist; create it or fix store.database")
            }
            FileFault::CannotOpen => f.write_str("cannot open the file"),
        }
    }
}

impl Error {
    /// What this error says about the database file, if anything an
    /// operator must fix (disk full, read-only, damaged, ...). Errors of
    /// [`Store::open`](crate::Store::open) are already
    /// [`Error::Unusable`]; this classifies the others by SQLite's code
    /// without looking at the file.
    #[must_use]
    pub fn fault(&self) -> Option<FileFault> {
        match self {
            Error::Unusable { fault } => Some(*fault),
            Error::Database(DbError(DbErr::Sqlite(e))) => fault_of_code(e),
            Error::Io { source, .. } => fault_of_io(source),
            _ => None,
        }
    }
}

/// The fault SQLite's primary result code names, without asking the OS.
pub(crate) fn fault_of_code(e: &rusqlite::Error) -> Option<FileFault> {
    use rusqlite::ErrorCode as C;
    Some(match e.sqlite_error_code()? {
        C::PermissionDenied => FileFault::PermissionDenied,
        C::ReadOnly => FileFault::ReadOnly,
        C::DiskFull => FileFault::DiskFull,
        C::NotADatabase => FileFault::NotADatabase,
        C::DatabaseCorrupt => FileFault::Damaged,
        C::DatabaseBusy | C::DatabaseLocked => FileFault::Locked { holder: None },
        C::CannotOpen => FileFault::CannotOpen,
        _ => return None,
    })
}

/// The fault an OS error names.
pub(crate) fn fault_of_io(e: &std::io::Error) -> Option<FileFault> {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied => Some(FileFault::PermissionDenied),
        K::ReadOnlyFilesystem => Some(FileFault::ReadOnlyFilesystem),
        K::StorageFull | K::QuotaExceeded => Some(FileFault::DiskFull),
        _ => None,
    }
}

/// An opaque database error (SQLite's or PostgreSQL's), reachable only as
/// an error `source()`.
#[derive(Debug)]
pub struct DbError(pub(crate) DbErr);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// True when SQLite reports the database (or a table) locked.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// True for a UNIQUE / PRIMARY KEY / FOREIGN KEY / CHECK violation.
pub(crate) fn is_constraint(e: &DbErr) -> bool {
    match e {
        DbErr::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation),
        // Class 23: integrity constraint violation.
        DbErr::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
        _ => false,
    }
}

/// True when PostgreSQL refused for a lock or a concurrent transaction
/// (lock not available, deadlock, serialization failure): retrying later
/// is safe, as with SQLite's busy.
fn is_pg_busy(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        [
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ]
        .contains(c)
    })
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::from(DbErr::from(e))
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        match &e {
            DbErr::Sqlite(s) if is_busy(s) => Error::Busy,
            DbErr::Postgres(p) if is_pg_busy(p) => Error::Busy,
            _ => Error::Database(DbError(e)),
        }
    }
}

/// Maps a constraint violation to [`Error::Conflict`], anything else as usual.
pub(crate) fn conflict_on_constraint(
    entity: Entity,
    reason: &'static str,
) -> impl FnOnce(DbErr) -> Error {
    move |e| {
        if is_constraint(&e) {
            Error::Conflict { entity, reason }
        } else {
            Error::from(e)
        }
    }
}

/// `query_row` results whose closure returned this crate's errors: no row
/// is `Ok(None)` there too.
impl<T> Optional<T, Error> for Result<T, Error> {
    fn optional(self) -> Result<Option<T>, Error> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::Database(DbError(DbErr::NoRows))) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
