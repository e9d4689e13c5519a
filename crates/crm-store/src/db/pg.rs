//! The PostgreSQL side of [`Conn`](super::Conn): the connection (with its
//! statement cache and reconnection between transactions), the rewrite of
//! SQLite placeholders, and the conversion of values both ways.
//!
//! The client is the synchronous `postgres` crate: the store's API is
//! synchronous and each `Store` lives on one thread (the agent's store
//! writer thread, the dialer's loop), so a blocking client fits it exactly;
//! an async client (tokio-postgres, sqlx) would need a runtime handle
//! threaded into every call for no gain. It runs its own small runtime
//! internally.
//!
//! Values: the store binds rusqlite values (integers, reals, text, blobs,
//! NULL) and reads them back through rusqlite's `FromSql`. Here a bound
//! value is written as whatever type PostgreSQL inferred for its parameter
//! (an integer as `int8`, `int4`, `bool` or text, ...), and a column of any
//! type the schema uses is read into a rusqlite value first.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls, Statement};
use rusqlite::types::{FromSql as LiteFromSql, ToSqlOutput, Value, ValueRef};

use super::{DbErr, Params};

type BoxErr = Box<dyn StdError + Send + Sync>;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL connection, owned by its own thread.
///
/// The `postgres` client blocks on a small tokio runtime of its own, which
/// tokio forbids on a thread that already runs a runtime (the agent's store
/// writer drives its timers with one and calls the store from inside it),
/// and whose drop must not happen there either. So the client lives on a
/// dedicated thread and each statement is handed to it, with owned
/// parameters, over a channel; the caller blocks on the answer exactly as
/// it would on SQLite. The thread ends, closing the connection, when the
/// `PgConn` is dropped.
pub(crate) struct PgConn {
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What the connection's thread owns.
struct Worker {
    config: Config,
    client: Client,
    /// Prepared statements by their translated SQL (the store runs the
    /// same few dozen statements over and over).
    statements: HashMap<String, Statement>,
    /// Inside `BEGIN` .. `COMMIT`/`ROLLBACK`: a lost connection must then
    /// fail the transaction, never be replaced mid-way.
    in_tx: bool,
    /// Campaign locks this session holds: they die with the connection,
    /// so a lost connection is then an error, never silently replaced.
    locks: std::collections::BTreeSet<i64>,
}

/// Connects to `config` on a new connection thread.
pub(crate) fn connect(config: Config) -> Result<PgConn, DbErr> {
    let (jobs, rx) = std::sync::mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("callbridge-pg".into())
        .spawn(move || {
            let mut worker = match open(&config) {
                Ok(client) => {
                    let _ = ready_tx.send(Ok(()));
                    Worker {
                        config,
                        client,
                        statements: HashMap::new(),
                        in_tx: false,
                        locks: std::collections::BTreeSet::new(),
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(job) = rx.recv() {
                job(&mut worker);
            }
        })
        .map_err(|_| DbErr::WorkerGone)?;
    ready_rx.recv().map_err(|_| DbErr::WorkerGone)??;
    Ok(PgConn { jobs })
}

fn open(config: &Config) -> Result<Client, DbErr> {
    let mut config = config.clone();
    config.connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("callbridge");
    }
    // The trust boundary is the database's network: TLS to PostgreSQL is
    // not offered here (docs/SCALING.md says how to deploy it).
    Ok(config.connect(NoTls)?)
}

impl Worker {
    /// Reconnects when the connection was lost between transactions (a
    /// restarted server, a dropped TCP connection).
    fn ready(&mut self) -> Result<(), DbErr> {
        if !self.client.is_closed() {
            return Ok(());
        }
        if !self.locks.is_empty() {
            return Err(DbErr::LostSession);
        }
        if self.in_tx {
            // The transaction is gone with the connection: its next
            // statement fails, and the caller's rollback ends it.
            return Ok(());
        }
        tracing::warn!("PostgreSQL connection lost; reconnecting");
        self.client = open(&self.config)?;
        self.statements.clear();
        Ok(())
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbErr> {
        let sql = translate(sql);
        if let Some(st) = self.statements.get(&sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(&sql)?;
        self.statements.insert(sql, st.clone());
        Ok(st)
    }

    fn execute(&mut self, sql: &str, values: &[Bound]) -> Result<usize, DbErr> {
        self.ready()?;
        let st = self.statement(sql)?;
        let n = self.client.execute(&st, &refs(values))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn query(&mut self, sql: &str, values: &[Bound]) -> Result<Vec<postgres::Row>, DbErr> {
        self.ready()?;
        let st = self.statement(sql)?;
        Ok(self.client.query(&st, &refs(values))?)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbErr> {
        let first = sql.split_whitespace().next().unwrap_or("");
        self.ready()?;
        let r = self.client.batch_execute(sql);
        if first.eq_ignore_ascii_case("BEGIN") {
            self.in_tx = r.is_ok();
        } else if first.eq_ignore_ascii_case("COMMIT") || first.eq_ignore_ascii_case("ROLLBACK") {
            self.in_tx = false;
        }
        Ok(r?)
    }
}

impl PgConn {
    /// Runs `f` on the connection's thread and waits for its answer.
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> Result<R, DbErr> + Send + 'static,
    ) -> Result<R, DbErr> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Box::new(move |w: &mut Worker| {
                let _ = tx.send(f(w));
            }))
            .map_err(|_| DbErr::WorkerGone)?;
        rx.recv().map_err(|_| DbErr::WorkerGone)?
    }

    /// Whether this session holds campaign `id`'s lock.
    pub(crate) fn holds_lock(&self, id: i64) -> Result<bool, DbErr> {
        self.call(move |w| Ok(w.locks.contains(&id)))
    }

    /// Records that this session took campaign `id`'s lock.
    pub(crate) fn lock_taken(&self, id: i64) -> Result<(), DbErr> {
        self.call(move |w| {
            w.locks.insert(id);
            Ok(())
        })
    }

    /// Records that this session gave campaign `id`'s lock back.
    pub(crate) fn lock_released(&self, id: i64) -> Result<(), DbErr> {
        self.call(move |w| {
            w.locks.remove(&id);
            Ok(())
        })
    }

    pub(crate) fn execute(&self, sql: &str, params: Params<'_>) -> Result<usize, DbErr> {
        let (sql, values) = (sql.to_owned(), bind(params)?);
        self.call(move |w| w.execute(&sql, &values))
    }

    pub(crate) fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<postgres::Row>, DbErr> {
        let (sql, values) = (sql.to_owned(), bind(params)?);
        self.call(move |w| w.query(&sql, &values))
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<(), DbErr> {
        let sql = sql.to_owned();
        self.call(move |w| w.batch(&sql))
    }
}

/// SQLite's `?N` (and bare `?`) placeholders as PostgreSQL's `$N`, outside
/// string literals and quoted names.
pub(crate) fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut bare = 0usize;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    bare += 1;
                    out.push_str(&bare.to_string());
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// One bound value, written as the type PostgreSQL asks for.
#[derive(Debug)]
struct Bound(Value);

fn bind(params: Params<'_>) -> Result<Vec<Bound>, DbErr> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let value = match p.to_sql().map_err(DbErr::from)? {
                ToSqlOutput::Borrowed(v) => {
                    owned(v).map_err(|source| DbErr::Value { column: i, source })?
                }
                ToSqlOutput::Owned(v) => v,
                _ => {
                    return Err(DbErr::Value {
                        column: i,
                        source: "a parameter kind PostgreSQL does not take".into(),
                    });
                }
            };
            Ok(Bound(value))
        })
        .collect()
}

fn owned(v: ValueRef<'_>) -> Result<Value, BoxErr> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t)?.to_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

fn refs(values: &[Bound]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn is_text(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
    ]
    .contains(ty)
}

impl ToSql for Bound {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => {
                let i = *i;
                match *ty {
                    Type::INT8 => i.to_sql(ty, out),
                    Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                    Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                    Type::BOOL => (i != 0).to_sql(ty, out),
                    // Integers of the schema stay far below 2^53.
                    #[allow(clippy::cast_precision_loss)]
                    Type::FLOAT8 => (i as f64).to_sql(ty, out),
                    ref t if is_text(t) => i.to_string().as_str().to_sql(ty, out),
                    _ => Err(format!("integer parameter for a {ty} column").into()),
                }
            }
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                ref t if is_text(t) => f.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("real parameter for a {ty} column").into()),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                // Binary JSON is its text; JSONB's has a version byte first.
                Type::JSON => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                ref t if is_text(t) => s.as_str().to_sql(ty, out),
                _ => Err(format!("text parameter for a {ty} column").into()),
            },
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column of any type the store reads, as a rusqlite value.
struct Any(Value);

impl<'a> FromSql<'a> for Any {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxErr> {
        Ok(Any(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(Vec::<u8>::from_sql(ty, raw)?),
            Type::JSON => Value::Text(std::str::from_utf8(raw)?.to_owned()),
            ref t if is_text(t) => Value::Text(String::from_sql(ty, raw)?),
            _ => return Err(format!("column of type {ty}: cast it in the SQL").into()),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxErr> {
        Ok(Any(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Column `idx` of `row` as `T`, through a rusqlite value.
pub(crate) fn get<T: LiteFromSql>(row: &postgres::Row, idx: usize) -> Result<T, DbErr> {
    let Any(v) = row.try_get::<_, Any>(idx)?;
    T::column_result(ValueRef::from(&v)).map_err(|e| DbErr::Value {
        column: idx,
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            translate("SELECT a FROM t WHERE x = ?1 AND y = ?12 AND z = '?3' AND \"q?\" = ?"),
            "SELECT a FROM t WHERE x = $1 AND y = $12 AND z = '?3' AND \"q?\" = $1"
        );
        assert_eq!(translate("VALUES (?, ?)"), "VALUES ($1, $2)");
    }
}
