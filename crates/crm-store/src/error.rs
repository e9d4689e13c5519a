//! The crate's one error type, [`Error`], and the mapping from SQLite's errors.
//!
//! Every variant is something a caller can act on: retry later ([`Error::Busy`]),
//! show a 404 ([`Error::NotFound`]), a 409 ([`Error::Conflict`],
//! [`Error::InvalidTransition`], [`Error::ClaimNotHeld`]), a 400 ([`Error::InvalidInput`],
//! [`Error::ImportRejected`]), or stop and upgrade ([`Error::SchemaTooNew`]).
//! SQLite's own error type never appears in the public API: it is wrapped in
//! the opaque [`DbError`] and only reachable through `source()`.

use std::path::PathBuf;

use crate::import::RowError;
use crate::model::SessionState;

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
        lead: crate::model::LeadId,
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
    #[error("database schema version {found} is newer than this build supports ({supported})")]
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
    /// Any other SQLite failure (disk full, I/O error inside SQLite, ...).
    #[error("database error")]
    Database(#[source] DbError),
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

/// An opaque SQLite error, reachable only as an error `source()`.
#[derive(Debug)]
pub struct DbError(rusqlite::Error);

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
pub(crate) fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) {
            Error::Busy
        } else {
            Error::Database(DbError(e))
        }
    }
}

/// Maps a constraint violation to [`Error::Conflict`], anything else as usual.
pub(crate) fn conflict_on_constraint(
    entity: Entity,
    reason: &'static str,
) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| {
        if is_constraint(&e) {
            Error::Conflict { entity, reason }
        } else {
            Error::from(e)
        }
    }
}
