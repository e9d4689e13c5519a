//! One dialer per campaign across machines: a PostgreSQL session-level
//! advisory lock per campaign ([`Store::try_lock_campaign`]).
//!
//! The lock belongs to the store's connection: it is held until
//! [`Store::unlock_campaign`], until the store is dropped, or until the
//! connection is lost (the server releases it then; this store then
//! refuses to reconnect behind the holder's back, see
//! [`Error::is_transient`]). On SQLite the dialer keeps its OS file lock
//! beside the database file (one machine shares a file), and these
//! methods answer [`Error::Unsupported`].
//!
//! The key is PostgreSQL's two-`int4` form, `(CAMPAIGN_LOCK_CLASS,
//! campaign id)`, which never collides with the one-`bigint` key the
//! migrations lock ([`schema::MIGRATION_LOCK`](crate::schema::MIGRATION_LOCK)).

use rusqlite::params;

use crate::db::Conn;
use crate::error::{Error, Result};
use crate::model::CampaignId;
use crate::store::Store;

/// The first half of a campaign lock's key (`"call"` in ASCII).
pub const CAMPAIGN_LOCK_CLASS: i32 = 0x6361_6c6c;

fn key(id: CampaignId) -> Result<i32> {
    i32::try_from(id.0).map_err(|_| Error::InvalidInput {
        field: "campaign id",
        reason: "too large for a campaign lock",
    })
}

impl Store {
    /// Takes campaign `id`'s lock without waiting (`pg_try_advisory_lock`):
    /// `true` when this store now holds it (or held it already), `false`
    /// when another connection (another dialer, on any machine) does.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on SQLite; database errors.
    pub fn try_lock_campaign(&mut self, id: CampaignId) -> Result<bool> {
        let Conn::Postgres(pg) = &self.conn else {
            return Err(unsupported());
        };
        if pg.holds_lock(id.0)? {
            return Ok(true);
        }
        let got: bool = self.conn.query_row(
            "SELECT pg_try_advisory_lock(?1, ?2)",
            params![CAMPAIGN_LOCK_CLASS, key(id)?],
            |r| r.get(0),
        )?;
        if got {
            pg.lock_taken(id.0)?;
        }
        Ok(got)
    }

    /// Gives campaign `id`'s lock back (nothing when not held).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on SQLite; database errors.
    pub fn unlock_campaign(&mut self, id: CampaignId) -> Result<()> {
        let Conn::Postgres(pg) = &self.conn else {
            return Err(unsupported());
        };
        if !pg.holds_lock(id.0)? {
            return Ok(());
        }
        let _: bool = self.conn.query_row(
            "SELECT pg_advisory_unlock(?1, ?2)",
            params![CAMPAIGN_LOCK_CLASS, key(id)?],
            |r| r.get(0),
        )?;
        pg.lock_released(id.0)?;
        Ok(())
    }
}

fn unsupported() -> Error {
    Error::Unsupported {
        what: "campaign advisory lock",
        backend: "sqlite",
    }
}
