//! Dialling: the atomic due-lead claim, recording an attempt's outcome
//! through the campaign's retry policy, and releasing an undialled claim.
//!
//! The claim runs in one `BEGIN IMMEDIATE` transaction: it reads the due
//! leads and marks them `in-progress` (with this process's writer id) before
//! any other process can write, so two dialers never claim the same lead.
//! A lead is due when its status is `pending` or `retry`, its next attempt
//! time has passed, it has attempts left, its number is not on the DNC
//! list, and `now` is inside the campaign's calling window in the lead's
//! time zone (or the campaign's). The open zones are worked out first from
//! the campaign's distinct lead zones (an index range), so a campaign whose
//! windows are all closed answers at once without reading its queue.
//!
//! Every claim gets a fresh [`ClaimToken`]; recording or releasing the
//! attempt clears it, and a release is refused once the attempt's call
//! started. The `claims` module docs say why (no lead dialled twice for one
//! attempt).

use jiff::Timestamp;
use rusqlite::params;

use crate::campaigns::{CAMPAIGN_COLS, campaign_from_row};
use crate::claim_token::ClaimToken;
use crate::claims::HAS_ATTEMPT_SESSION;
use crate::db::{Begin, Dialect, Optional};
use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::leads::{AttemptResult, ClaimedLead, MAX_CLAIM, get_lead_in};
use crate::model::{CampaignId, CampaignStatus, LeadId, LeadStatus, Outcome, SessionId};
use crate::policy::zone;
use crate::store::Store;
use crate::stored::ms;

impl Store {
    /// Claims up to `limit` due leads of an active campaign (see the module
    /// docs), oldest due first, marking them `in-progress` and counting the
    /// attempt. Never exceeds the campaign's `max_concurrent` leads in
    /// progress. Each claim gets a fresh [`ClaimToken`]
    /// ([`ClaimedLead::claim`]) for the call placed for it. Returns an empty
    /// list when nothing is due; a campaign that is not `active` is an
    /// [`Error::Conflict`].
    pub fn claim_due_leads(
        &mut self,
        campaign: CampaignId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedLead>> {
        let writer = self.writer.as_str().to_owned();
        let node = self.node.as_str().to_owned();
        let rng = self.rng.get()?;
        let tx = self.conn.begin(Begin::Write)?;
        let dialect = tx.dialect();
        // On PostgreSQL the campaign row is locked for the claim: claims of
        // one campaign run one at a time whichever process makes them, so
        // the in-progress count below, and with it `max_concurrent`, holds
        // across dialers on several machines (SQLite's write lock does the
        // same for one machine).
        let c = tx
            .query_row(
                &format!(
                    "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1{}",
                    dialect.for_update()
                ),
                params![campaign.0],
                campaign_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound {
                entity: Entity::Campaign,
                id: campaign.to_string(),
            })?;
        if c.status != CampaignStatus::Active {
            return Err(Error::Conflict {
                entity: Entity::Campaign,
                reason: "campaign is not active",
            });
        }
        let busy: i64 = tx.query_row(
            "SELECT COUNT(*) FROM leads WHERE campaign_id = ?1 AND status = 'in-progress'",
            params![campaign.0],
            |r| r.get(0),
        )?;
        let room = i64::from(c.settings.max_concurrent)
            .saturating_sub(busy)
            .max(0);
        let want = room.min(i64::from(limit.min(MAX_CLAIM)));
        if want <= 0 {
            return Ok(Vec::new());
        }
        // Which of the campaign's zones are inside the window now: the
        // default zone (leads without their own) and each distinct lead
        // zone (an index range, not a scan of the queue). If none is open
        // the claim ends here, before touching the due queue.
        let window = c.settings.window;
        let default_open = window.is_open(now, &zone(&c.settings.time_zone)?);
        let mut open_zones: Vec<String> = Vec::new();
        tx.query_each(
            "SELECT DISTINCT time_zone FROM leads \
             WHERE campaign_id = ?1 AND time_zone IS NOT NULL",
            params![campaign.0],
            |r| {
                let name: String = r.get(0)?;
                // A zone that no longer resolves falls back to the default.
                let open = zone(&name).map_or(default_open, |tz| window.is_open(now, &tz));
                if open {
                    open_zones.push(name);
                }
                Ok::<_, Error>(())
            },
        )?;
        if !default_open && open_zones.is_empty() {
            return Ok(Vec::new());
        }
        let open_json =
            serde_json::to_string(&open_zones).map_err(|_| Error::Corrupt { what: "time zone" })?;
        // The due leads, oldest due first. On PostgreSQL the picked rows
        // are locked (`FOR UPDATE SKIP LOCKED`): a lead another transaction
        // holds (a claim by another dialer, an outcome being recorded) is
        // passed over rather than waited for or claimed twice.
        let (zones_in, lock) = match dialect {
            Dialect::Sqlite => ("SELECT value FROM json_each(?5)", ""),
            Dialect::Postgres => (
                "SELECT json_array_elements_text(CAST(?5 AS json))",
                " FOR UPDATE SKIP LOCKED",
            ),
        };
        let picked: Vec<(LeadId, String)> = tx.query_map(
            &format!(
                "SELECT id, time_zone FROM leads WHERE campaign_id = ?1 \
                 AND status IN ('pending', 'retry') AND next_attempt_at <= ?2 AND attempts < ?3 \
                 AND ((time_zone IS NULL AND ?4) OR time_zone IN ({zones_in})) \
                 AND NOT EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = leads.phone) \
                 ORDER BY next_attempt_at, id LIMIT ?6{lock}"
            ),
            params![
                campaign.0,
                ms(now),
                c.settings.retry.max_attempts,
                default_open,
                open_json,
                want
            ],
            |r| {
                let tz: Option<String> = r.get(1)?;
                let tz = tz.unwrap_or_else(|| c.settings.time_zone.clone());
                Ok::<_, Error>((LeadId(r.get(0)?), tz))
            },
        )?;
        let mut out = Vec::with_capacity(picked.len());
        for (id, time_zone) in picked {
            let claim = ClaimToken::generate_with(rng);
            tx.execute(
                "UPDATE leads SET status = 'in-progress', attempts = attempts + 1, \
                 claimed_by = ?2, claim_token = ?3, updated_at = ?4, claimed_node = ?5 \
                 WHERE id = ?1",
                params![id.0, writer, claim.as_str(), ms(now), node],
            )?;
            out.push(ClaimedLead {
                lead: get_lead_in(&tx, id)?,
                time_zone,
                claim,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records the outcome of a claimed lead's attempt and moves it on
    /// through the campaign's retry policy ([`RetryPolicy::next`]). A
    /// `do-not-call` outcome also puts the number on the global DNC list.
    /// The lead must be `in-progress` ([`Error::Conflict`] otherwise, so an
    /// outcome is never recorded twice).
    ///
    /// [`RetryPolicy::next`]: crate::RetryPolicy::next
    pub fn record_attempt(
        &mut self,
        lead: LeadId,
        outcome: Outcome,
        session: Option<SessionId>,
        now: Timestamp,
    ) -> Result<AttemptResult> {
        let tx = self.write_tx()?;
        lock_lead(&tx, lead)?;
        let l = get_lead_in(&tx, lead)?;
        if l.status != LeadStatus::InProgress {
            return Err(Error::Conflict {
                entity: Entity::Lead,
                reason: "lead is not in progress",
            });
        }
        let c = tx
            .query_row(
                &format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1"),
                params![l.campaign.0],
                campaign_from_row,
            )
            .optional()?
            .ok_or(Error::Corrupt {
                what: "lead campaign",
            })?;
        let (status, next) = c.settings.retry.next(l.attempts, outcome, now);
        tx.execute(
            "UPDATE leads SET status = ?2, next_attempt_at = ?3, last_outcome = ?4, \
             last_session = COALESCE(?5, last_session), claimed_by = NULL, claimed_node = NULL, claim_token = NULL, \
             updated_at = ?6 \
             WHERE id = ?1",
            params![
                lead.0,
                status.as_str(),
                ms(next),
                outcome.as_str(),
                session.map(|s| s.to_string()),
                ms(now)
            ],
        )
        .map_err(conflict_on_constraint(
            Entity::Lead,
            "session does not exist",
        ))?;
        if outcome == Outcome::DoNotCall {
            tx.execute(
                "INSERT INTO dnc (phone, reason, added_at) VALUES (?1, 'asked during call', ?2) \
                 ON CONFLICT (phone) DO NOTHING",
                params![l.phone.as_str(), ms(now)],
            )?;
        }
        tx.commit()?;
        Ok(AttemptResult {
            status,
            next_attempt_at: next,
            attempts: l.attempts,
        })
    }

    /// Gives back a claimed lead that was never dialled (the dialer stopped
    /// first): the claim's attempt is uncounted, its token cleared (a call
    /// request still carrying it is refused from now on) and the lead is due
    /// again. Refused with [`Error::Conflict`] when the lead is not in
    /// progress, or when a session exists for this attempt (its call
    /// started: record its outcome instead), checked in the same
    /// transaction (see the `claims` module docs).
    pub fn release_lead(&mut self, lead: LeadId, now: Timestamp) -> Result<()> {
        let tx = self.write_tx()?;
        lock_lead(&tx, lead)?;
        let n = tx.execute(
            &format!(
                "UPDATE leads AS l SET attempts = {}(attempts - 1, 0), \
                 status = CASE WHEN attempts <= 1 THEN 'pending' ELSE 'retry' END, \
                 claimed_by = NULL, claimed_node = NULL, claim_token = NULL, updated_at = ?2 \
                 WHERE l.id = ?1 AND l.status = 'in-progress' AND NOT {HAS_ATTEMPT_SESSION}",
                tx.dialect().greatest()
            ),
            params![lead.0, ms(now)],
        )?;
        if n == 0 {
            let l = get_lead_in(&tx, lead)?;
            return Err(Error::Conflict {
                entity: Entity::Lead,
                reason: if l.status == LeadStatus::InProgress {
                    "the attempt's call started; record its outcome instead"
                } else {
                    "lead is not in progress"
                },
            });
        }
        tx.commit()?;
        Ok(())
    }
}

/// On PostgreSQL, locks lead `id`'s row for the rest of the transaction
/// (waiting for a session insert that checks its claim, see `claims`), so
/// what the transaction reads next, in a new statement, includes what that
/// insert committed. SQLite's write lock already orders them.
fn lock_lead(tx: &crate::db::Tx<'_>, id: LeadId) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        tx.query_map(
            "SELECT id FROM leads WHERE id = ?1 FOR UPDATE",
            params![id.0],
            |r| r.get::<i64>(0),
        )?;
    }
    Ok(())
}
