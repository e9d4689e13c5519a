//! The global do-not-call list: numbers that are never dialled, whatever
//! the campaign. Adding a number also marks that number's `pending` and
//! `retry` leads `do-not-call` in the same transaction; the due-lead claim
//! additionally excludes every DNC number, so a number added while a
//! dialer runs is never claimed again.

use jiff::Timestamp;
use rusqlite::params;

use crate::db::Optional;

use crate::error::{Entity, Error, Result};
use crate::leads::is_dnc_in;
use crate::model::PhoneNumber;
use crate::store::Store;
use crate::stored::{ms, ts};

/// A DNC entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DncEntry {
    /// The number.
    pub phone: PhoneNumber,
    /// Why (free text, at most 1,000 bytes; keep personal data out).
    pub reason: String,
    /// When it was added.
    pub added_at: Timestamp,
}

impl Store {
    /// Puts a number on the DNC list (keeping the first reason if it is
    /// already there). Returns how many leads were marked `do-not-call`.
    pub fn add_dnc(&mut self, phone: &PhoneNumber, reason: &str, now: Timestamp) -> Result<u64> {
        if reason.len() > 1000 {
            return Err(Error::InvalidInput {
                field: "reason",
                reason: "longer than 1000 bytes",
            });
        }
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO dnc (phone, reason, added_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (phone) DO NOTHING",
            params![phone.as_str(), reason, ms(now)],
        )?;
        let n = tx.execute(
            "UPDATE leads SET status = 'do-not-call', updated_at = ?2 \
             WHERE phone = ?1 AND status IN ('pending', 'retry')",
            params![phone.as_str(), ms(now)],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Takes a number off the DNC list. Its leads stay `do-not-call` until
    /// an operator changes them. [`Error::NotFound`] if it was not listed.
    pub fn remove_dnc(&mut self, phone: &PhoneNumber) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute("DELETE FROM dnc WHERE phone = ?1", params![phone.as_str()])? == 0 {
            return Err(Error::NotFound {
                entity: Entity::Dnc,
                id: phone.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether a number is on the DNC list.
    pub fn is_dnc(&self, phone: &PhoneNumber) -> Result<bool> {
        is_dnc_in(&self.conn, phone)
    }

    /// One DNC entry, if listed.
    pub fn get_dnc(&self, phone: &PhoneNumber) -> Result<Option<DncEntry>> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT reason, added_at FROM dnc WHERE phone = ?1",
                params![phone.as_str()],
                |r| Ok::<_, crate::db::DbErr>((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(reason, at)| {
            Ok(DncEntry {
                phone: phone.clone(),
                reason,
                added_at: ts(at)?,
            })
        })
        .transpose()
    }

    /// DNC entries in number order, after `after`, at most `limit` (capped
    /// at 10,000).
    pub fn list_dnc(&self, after: Option<&PhoneNumber>, limit: u32) -> Result<Vec<DncEntry>> {
        self.conn.query_map(
            "SELECT phone, reason, added_at FROM dnc WHERE phone > ?1 ORDER BY phone LIMIT ?2",
            params![after.map_or("", PhoneNumber::as_str), limit.min(10_000)],
            |r| {
                Ok::<_, Error>(DncEntry {
                    phone: PhoneNumber::from_db(r.get(0)?),
                    reason: r.get(1)?,
                    added_at: ts(r.get(2)?)?,
                })
            },
        )
    }
}
