//! The one connection type the store runs its SQL on, SQLite or PostgreSQL,
//! and the small surface the rest of the crate uses: `execute`,
//! `query_row`, `query_each`/`query_map`, `execute_batch` and
//! transactions ([`Conn::begin`]).
//!
//! Why by hand: the store's SQL is plain and shared by both engines, and a
//! query builder or an ORM (sea-query, diesel) would rewrite every query of
//! the crate for the two differences that matter here (placeholders and a
//! handful of functions). So the SQL is written once, in SQLite's `?N`
//! placeholder form; on PostgreSQL the placeholders become `$N`
//! ([`pg::translate`]) and the few statements that must differ ask
//! [`Conn::dialect`]. Parameters are rusqlite's [`ToSql`] values (the
//! `params!` macro) on both; rows read through [`Row::get`] into rusqlite's
//! [`FromSql`] types on both, PostgreSQL's columns converted by type.
//!
//! Transactions are plain `BEGIN`/`COMMIT` on the connection (a [`Tx`]
//! rolls back when dropped uncommitted), so one `&Conn` serves both the
//! statements inside a transaction and those outside.

pub(crate) mod pg;

use std::cell::Cell;

use rusqlite::ToSql;
use rusqlite::types::FromSql;

/// Which SQL engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite (a file, or `:memory:`).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// The scalar "larger of two" function: SQLite's two-argument `MAX`,
    /// PostgreSQL's `GREATEST`.
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MAX",
            Dialect::Postgres => "GREATEST",
        }
    }

    /// Row lock for a read that a write in the same transaction depends
    /// on: nothing on SQLite (its write transactions are serial already),
    /// ` FOR UPDATE` on PostgreSQL (read committed: the row is locked until
    /// commit).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// An error of either engine, or a row that was not there.
#[derive(Debug)]
pub(crate) enum DbErr {
    /// From SQLite.
    Sqlite(rusqlite::Error),
    /// From PostgreSQL (the server or the connection).
    Postgres(postgres::Error),
    /// `query_row` found no row.
    NoRows,
    /// The PostgreSQL connection was lost while it held a campaign lock:
    /// the lock is gone with it, so this store does not reconnect.
    LostSession,
    /// The PostgreSQL connection's thread is gone (it could not be
    /// started, or it panicked).
    WorkerGone,
    /// A PostgreSQL column could not be read as the type asked for.
    Value {
        /// Column index.
        column: usize,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl std::fmt::Display for DbErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbErr::Sqlite(e) => std::fmt::Display::fmt(e, f),
            DbErr::Postgres(e) => std::fmt::Display::fmt(e, f),
            DbErr::NoRows => f.write_str("query returned no rows"),
            DbErr::WorkerGone => f.write_str("the PostgreSQL connection's thread is gone"),
            DbErr::LostSession => f.write_str(
                "the PostgreSQL connection holding a campaign lock was lost; open the store again",
            ),
            DbErr::Value { column, source } => write!(f, "column {column}: {source}"),
        }
    }
}

impl std::error::Error for DbErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbErr::Sqlite(e) => e.source(),
            DbErr::Postgres(e) => e.source(),
            DbErr::NoRows | DbErr::LostSession | DbErr::WorkerGone => None,
            DbErr::Value { source, .. } => Some(source.as_ref()),
        }
    }
}

impl From<rusqlite::Error> for DbErr {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbErr::NoRows,
            e => DbErr::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for DbErr {
    fn from(e: postgres::Error) -> Self {
        DbErr::Postgres(e)
    }
}

/// `Ok(None)` for a `query_row` that found no row.
pub(crate) trait Optional<T, E> {
    /// See the trait.
    fn optional(self) -> Result<Option<T>, E>;
}

impl<T> Optional<T, DbErr> for Result<T, DbErr> {
    fn optional(self) -> Result<Option<T>, DbErr> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbErr::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Parameters of a statement: what rusqlite's `params!` makes.
pub(crate) type Params<'a> = &'a [&'a dyn ToSql];

/// One row of a result, from either engine.
pub(crate) enum Row<'a> {
    /// A SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `idx` as `T` (rusqlite's conversions on both engines).
    pub(crate) fn get<T: FromSql>(&self, idx: usize) -> Result<T, DbErr> {
        match self {
            Row::Sqlite(r) => Ok(r.get(idx)?),
            Row::Postgres(r) => pg::get(r, idx),
        }
    }
}

/// A connection to either engine. All methods take `&self`, so the
/// statements of a transaction run on the same `&Conn` as any other.
pub(crate) enum Conn {
    /// SQLite.
    Sqlite(rusqlite::Connection),
    /// PostgreSQL.
    Postgres(pg::PgConn),
}

/// How a transaction starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Begin {
    /// Will write: SQLite `BEGIN IMMEDIATE` (takes the write lock now, so a
    /// read-then-write never fails on upgrade); PostgreSQL `BEGIN` (read
    /// committed; the reads a write depends on lock their rows).
    Write,
    /// Only reads, from one snapshot: SQLite `BEGIN DEFERRED`; PostgreSQL
    /// `REPEATABLE READ, READ ONLY`.
    Read,
}

impl Conn {
    /// Which engine this is.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: Params<'_>) -> Result<usize, DbErr> {
        match self {
            Conn::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(params)?),
            Conn::Postgres(c) => c.execute(sql, params),
        }
    }

    /// Runs several statements with no parameters.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), DbErr> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// The first row mapped by `f`; [`DbErr::NoRows`] when there is none.
    pub(crate) fn query_row<T, E: From<DbErr>>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut f = Some(f);
        let mut out = None;
        self.query_each(sql, params, |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok::<_, E>(())
        })?;
        out.ok_or_else(|| E::from(DbErr::NoRows))
    }

    /// Calls `f` on every row, in order.
    pub(crate) fn query_each<E: From<DbErr>>(
        &self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(DbErr::from)?;
                let mut rows = st.query(params).map_err(DbErr::from)?;
                while let Some(r) = rows.next().map_err(DbErr::from)? {
                    f(&Row::Sqlite(r))?;
                }
                Ok(())
            }
            Conn::Postgres(c) => {
                for r in c.query(sql, params)? {
                    f(&Row::Postgres(&r))?;
                }
                Ok(())
            }
        }
    }

    /// Every row mapped by `f`.
    pub(crate) fn query_map<T, E: From<DbErr>>(
        &self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row<'_>) -> Result<T, E>,
    ) -> Result<Vec<T>, E> {
        let mut out = Vec::new();
        self.query_each(sql, params, |r| {
            out.push(f(r)?);
            Ok::<(), E>(())
        })?;
        Ok(out)
    }

    /// Starts a transaction; it rolls back unless [`Tx::commit`]ted.
    pub(crate) fn begin(&self, how: Begin) -> Result<Tx<'_>, DbErr> {
        let sql = match (self, how) {
            (Conn::Sqlite(_), Begin::Write) => "BEGIN IMMEDIATE",
            (Conn::Sqlite(_), Begin::Read) => "BEGIN DEFERRED",
            (Conn::Postgres(_), Begin::Write) => "BEGIN",
            (Conn::Postgres(_), Begin::Read) => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        };
        self.execute_batch(sql)?;
        Ok(Tx {
            conn: self,
            open: Cell::new(true),
        })
    }
}

/// An open transaction on a [`Conn`] (which it derefs to).
pub(crate) struct Tx<'a> {
    conn: &'a Conn,
    open: Cell<bool>,
}

impl Tx<'_> {
    /// Commits.
    pub(crate) fn commit(self) -> Result<(), DbErr> {
        // A failed COMMIT may leave SQLite inside the transaction (a full
        // disk): then the drop rolls it back.
        self.conn.execute_batch("COMMIT")?;
        self.open.set(false);
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        let inside = match self.conn {
            Conn::Sqlite(c) => !c.is_autocommit(),
            Conn::Postgres(_) => true,
        };
        if self.open.get() && inside {
            // Nothing to do with a failed rollback: the connection ends the
            // transaction itself when it closes.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
