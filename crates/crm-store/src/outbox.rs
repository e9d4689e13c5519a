//! The webhook outbox (schema v10): one row per call event and receiver
//! URL, written in the same transaction as the call's other writes (the
//! agent's [`SessionWrite::Outbox`](crate::SessionWrite::Outbox)), then
//! delivered by the agent's webhook worker.
//!
//! A row is `pending` until delivered (`delivered`) or given up
//! (`failed`). The worker claims due rows with a lease
//! ([`Store::claim_outbox`]): a claimed row is passed over by every other
//! claim until its lease ends, so on a shared PostgreSQL store one node
//! delivers it (the claim locks the rows it picks, `FOR UPDATE SKIP
//! LOCKED`, as the lead claims do), and a node that dies mid-delivery
//! leaves it to be claimed again when the lease runs out. Delivery is
//! therefore at least once: receivers drop repeats by the event's key
//! ([`OutboxRow::key`], unique per event).
//!
//! Bounds: a payload is at most [`MAX_OUTBOX_PAYLOAD`] bytes, an error
//! text at most [`MAX_OUTBOX_ERROR`], a claim at most [`MAX_OUTBOX_CLAIM`]
//! rows; delivered and failed rows are pruned by age
//! ([`Store::prune_outbox`]).
//!
//! ```
//! use callbridge_crm_store::*;
//! let mut store = Store::open(":memory:").unwrap();
//! let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
//! let id = SessionId::new_v4();
//! store.create_session(&NewSession::inbound(id, now)).unwrap();
//! let row = NewOutbox::new(format!("{id}:1"), "call.started", "http://127.0.0.1:9/hook", "{}", now);
//! store.enqueue_outbox(id, &[row]).unwrap();
//! let claimed = store.claim_outbox(now, 10, std::time::Duration::from_secs(30), "node-a").unwrap();
//! assert_eq!(claimed.len(), 1);
//! store.outbox_delivered(claimed[0].id, now, 200).unwrap();
//! assert_eq!(store.outbox_for_session(id).unwrap()[0].status, DeliveryStatus::Delivered);
//! ```

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::params;

use crate::db::{Dialect, Row, Tx};
use crate::error::{Error, Result};
use crate::model::SessionId;
use crate::sessions::state_of;
use crate::store::Store;
use crate::stored::{ms, to_u64, ts, ts_opt};

/// Largest payload of one outbox row, bytes.
pub const MAX_OUTBOX_PAYLOAD: usize = 64 * 1024;
/// Longest stored delivery error, bytes (longer ones are cut).
pub const MAX_OUTBOX_ERROR: usize = 512;
/// Most rows one claim takes.
pub const MAX_OUTBOX_CLAIM: u32 = 100;
/// Longest event key, name or URL, bytes.
pub const MAX_OUTBOX_FIELD: usize = 2048;

/// The id of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxId(pub i64);

impl std::fmt::Display for OutboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a row's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Not delivered yet (maybe being delivered, maybe waiting to retry).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: out of time or attempts, or refused for good.
    Failed,
}

impl DeliveryStatus {
    /// `pending`, `delivered` or `failed` (the stored name).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => {
                return Err(Error::Corrupt {
                    what: "outbox status",
                });
            }
        })
    }
}

/// One event for one receiver, to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbox {
    /// The event's unique key (the same for every receiver and delivery).
    pub key: String,
    /// The event's name (`call.started`...).
    pub event: String,
    /// The receiver's URL.
    pub url: String,
    /// The JSON body to POST (at most [`MAX_OUTBOX_PAYLOAD`] bytes).
    pub payload: String,
    /// When the event happened (the first attempt is due then).
    pub at: Timestamp,
    /// Whose receiver it is (schema v13): the routing profile whose own
    /// webhooks it goes to, `None` for the agent's global `[webhooks]`.
    /// The worker signs and schedules the row by that configuration.
    pub target: Option<String>,
}

impl NewOutbox {
    /// A row from its parts, for the global receivers (see
    /// [`NewOutbox::for_target`]).
    pub fn new(
        key: impl Into<String>,
        event: impl Into<String>,
        url: impl Into<String>,
        payload: impl Into<String>,
        at: Timestamp,
    ) -> NewOutbox {
        NewOutbox {
            key: key.into(),
            event: event.into(),
            url: url.into(),
            payload: payload.into(),
            at,
            target: None,
        }
    }

    /// The same row for the receivers of routing profile `target`
    /// (`None`: the global ones).
    #[must_use]
    pub fn for_target(mut self, target: Option<String>) -> NewOutbox {
        self.target = target;
        self
    }
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The row's id.
    pub id: OutboxId,
    /// The call.
    pub session: SessionId,
    /// The event's unique key.
    pub key: String,
    /// The event's name.
    pub event: String,
    /// The receiver's URL.
    pub url: String,
    /// The JSON body.
    pub payload: String,
    /// When the event happened.
    pub created_at: Timestamp,
    /// Where its delivery stands.
    pub status: DeliveryStatus,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending rows).
    pub next_attempt_at: Timestamp,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// The HTTP status of the last attempt, when there was a response.
    pub last_status: Option<u16>,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
    /// The routing profile whose receiver it is (`None`: the global
    /// `[webhooks]`; every row written before schema v13).
    pub target: Option<String>,
}

const OUTBOX_COLS: &str = "id, session_id, event_key, event, url, payload, created_at, status, \
     attempts, next_attempt_at, last_error, last_status, delivered_at, target";

fn outbox_from_row(r: &Row<'_>) -> Result<OutboxRow> {
    let session: String = r.get(1)?;
    let status: String = r.get(7)?;
    let attempts: i64 = r.get(8)?;
    let last_status: Option<i64> = r.get(11)?;
    Ok(OutboxRow {
        id: OutboxId(r.get(0)?),
        session: session.parse().map_err(|_| Error::Corrupt {
            what: "outbox session id",
        })?,
        key: r.get(2)?,
        event: r.get(3)?,
        url: r.get(4)?,
        payload: r.get(5)?,
        created_at: ts(r.get(6)?)?,
        status: DeliveryStatus::parse(&status)?,
        attempts: u32::try_from(to_u64(attempts, "outbox attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: ts(r.get(9)?)?,
        last_error: r.get(10)?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        delivered_at: ts_opt(r.get(12)?)?,
        target: r.get(13)?,
    })
}

fn check(rows: &[NewOutbox]) -> Result<()> {
    if rows.len() > crate::sessions::MAX_BATCH {
        return Err(Error::InvalidInput {
            field: "outbox",
            reason: "more than 10000 in one batch",
        });
    }
    for r in rows {
        if r.payload.len() > MAX_OUTBOX_PAYLOAD {
            return Err(Error::InvalidInput {
                field: "outbox payload",
                reason: "longer than 64 KiB",
            });
        }
        for (field, v) in [
            ("outbox key", &r.key),
            ("outbox event", &r.event),
            ("outbox url", &r.url),
        ] {
            if v.is_empty() || v.len() > MAX_OUTBOX_FIELD {
                return Err(Error::InvalidInput {
                    field,
                    reason: "empty or longer than 2048 bytes",
                });
            }
        }
        if r.target
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > MAX_OUTBOX_FIELD)
        {
            return Err(Error::InvalidInput {
                field: "outbox target",
                reason: "empty or longer than 2048 bytes",
            });
        }
    }
    Ok(())
}

/// Inserts `rows` for session `id` inside a transaction; a row whose key
/// and URL are already there is kept as it is (a replayed write).
pub(crate) fn enqueue_outbox_in(tx: &Tx<'_>, id: SessionId, rows: &[NewOutbox]) -> Result<()> {
    check(rows)?;
    state_of(tx, id)?;
    let sid = id.to_string();
    for r in rows {
        tx.execute(
            "INSERT INTO webhook_outbox (session_id, event_key, event, url, payload, created_at, \
             status, attempts, next_attempt_at, target) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?6, ?7) \
             ON CONFLICT (event_key, url) DO NOTHING",
            params![sid, r.key, r.event, r.url, r.payload, ms(r.at), r.target],
        )?;
    }
    Ok(())
}

fn cut(error: &str) -> &str {
    if error.len() <= MAX_OUTBOX_ERROR {
        return error;
    }
    let mut end = MAX_OUTBOX_ERROR;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

impl Store {
    /// Writes outbox rows for session `id` (which must exist). The agent
    /// writes them through [`Store::apply_write`] with the call's other
    /// writes; this is the same insert on its own.
    ///
    /// # Errors
    /// [`Error::NotFound`] without the session; [`Error::InvalidInput`]
    /// for a payload over [`MAX_OUTBOX_PAYLOAD`] or an empty or overlong
    /// key, event or URL.
    pub fn enqueue_outbox(&mut self, id: SessionId, rows: &[NewOutbox]) -> Result<()> {
        let tx = self.write_tx()?;
        enqueue_outbox_in(&tx, id, rows)?;
        tx.commit()?;
        Ok(())
    }

    /// Claims up to `limit` (at most [`MAX_OUTBOX_CLAIM`]) pending rows due
    /// at `now` and not under another claim's lease, oldest due first, for
    /// `lease` on behalf of `node`. On PostgreSQL rows another transaction
    /// holds are passed over (`FOR UPDATE SKIP LOCKED`).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`] when the store cannot be
    /// written.
    pub fn claim_outbox(
        &mut self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        node: &str,
    ) -> Result<Vec<OutboxRow>> {
        let limit = i64::from(limit.min(MAX_OUTBOX_CLAIM));
        let until = ms(now).saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let tx = self.write_tx()?;
        let lock = match tx.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let picked: Vec<OutboxRow> = tx.query_map(
            &format!(
                "SELECT {OUTBOX_COLS} FROM webhook_outbox WHERE status = 'pending' \
                 AND next_attempt_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1) \
                 ORDER BY next_attempt_at, id LIMIT ?2{lock}"
            ),
            params![ms(now), limit],
            outbox_from_row,
        )?;
        for r in &picked {
            tx.execute(
                "UPDATE webhook_outbox SET claimed_until = ?2, claimed_node = ?3 WHERE id = ?1",
                params![r.id.0, until, node],
            )?;
        }
        tx.commit()?;
        Ok(picked)
    }

    /// Frees every lease `node` holds (at its start: a claim of a process
    /// that stopped mid-delivery is taken up again at once rather than
    /// when its lease runs out). Returns how many rows were freed.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn release_outbox_claims(&mut self, node: &str) -> Result<u64> {
        let n = self.conn.execute(
            "UPDATE webhook_outbox SET claimed_until = NULL \
             WHERE claimed_node = ?1 AND status = 'pending' AND claimed_until IS NOT NULL",
            params![node],
        )?;
        Ok(n as u64)
    }

    /// Marks a row delivered (the receiver answered `status`, a 2xx).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn outbox_delivered(&mut self, id: OutboxId, now: Timestamp, status: u16) -> Result<()> {
        self.conn.execute(
            "UPDATE webhook_outbox SET status = 'delivered', attempts = attempts + 1, \
             delivered_at = ?2, last_status = ?3, claimed_until = NULL \
             WHERE id = ?1 AND status = 'pending'",
            params![id.0, ms(now), i64::from(status)],
        )?;
        Ok(())
    }

    /// Records a failed attempt and when the next one is due; the row is
    /// free to be claimed again then.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn outbox_retry(
        &mut self,
        id: OutboxId,
        next_at: Timestamp,
        error: &str,
        status: Option<u16>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?2, \
             last_error = ?3, last_status = ?4, claimed_until = NULL \
             WHERE id = ?1 AND status = 'pending'",
            params![id.0, ms(next_at), cut(error), status.map(i64::from)],
        )?;
        Ok(())
    }

    /// Records a last failed attempt and gives the row up (`failed`).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn outbox_failed(&mut self, id: OutboxId, error: &str, status: Option<u16>) -> Result<()> {
        self.conn.execute(
            "UPDATE webhook_outbox SET status = 'failed', attempts = attempts + 1, \
             last_error = ?2, last_status = ?3, claimed_until = NULL \
             WHERE id = ?1 AND status = 'pending'",
            params![id.0, cut(error), status.map(i64::from)],
        )?;
        Ok(())
    }

    /// A session's outbox rows, in the order they were written.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn outbox_for_session(&self, id: SessionId) -> Result<Vec<OutboxRow>> {
        self.conn.query_map(
            &format!("SELECT {OUTBOX_COLS} FROM webhook_outbox WHERE session_id = ?1 ORDER BY id"),
            params![id.to_string()],
            outbox_from_row,
        )
    }

    /// How many rows are still pending.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn outbox_pending(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM webhook_outbox WHERE status = 'pending'",
            params![],
            |r| Ok::<_, Error>(r.get(0)?),
        )?;
        to_u64(n, "outbox count")
    }

    /// When the next pending row can be claimed: the earliest of each
    /// pending row's `next_attempt_at`, or the end of its lease when
    /// another claim holds it longer; `None` when nothing is pending. A
    /// read only (the webhook worker's look at an idle outbox).
    ///
    /// # Errors
    /// [`Error::Busy`], [`Error::Database`], or [`Error::Corrupt`] for a
    /// stored time out of range.
    pub fn outbox_next_due(&self) -> Result<Option<Timestamp>> {
        let at: Option<i64> = self.conn.query_row(
            "SELECT MIN(CASE WHEN claimed_until IS NOT NULL AND claimed_until > next_attempt_at \
             THEN claimed_until ELSE next_attempt_at END) \
             FROM webhook_outbox WHERE status = 'pending'",
            params![],
            |r| Ok::<_, Error>(r.get(0)?),
        )?;
        ts_opt(at)
    }

    /// Deletes delivered and failed rows created before `before`; pending
    /// rows are never pruned. Returns how many went.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`].
    pub fn prune_outbox(&mut self, before: Timestamp) -> Result<u64> {
        let n = self.conn.execute(
            "DELETE FROM webhook_outbox WHERE status IN ('delivered', 'failed') \
             AND created_at < ?1",
            params![ms(before)],
        )?;
        Ok(n as u64)
    }
}
