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
use rusqlite::{TransactionBehavior, params};

use crate::campaigns::{CAMPAIGN_COLS, campaign_from_row};
use crate::claim_token::ClaimToken;
use crate::claims::HAS_ATTEMPT_SESSION;
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
        let rng = self.rng.get()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let c = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1"
            ))?;
            let mut rows = st.query([campaign.0])?;
            match rows.next()? {
                Some(r) => campaign_from_row(r)?,
                None => {
                    return Err(Error::NotFound {
                        entity: Entity::Campaign,
                        id: campaign.to_string(),
                    });
                }
            }
        };
        if c.status != CampaignStatus::Active {
            return Err(Error::Conflict {
                entity: Entity::Campaign,
                reason: "campaign is not active",
            });
        }
        let busy: i64 = tx.query_row(
            "SELECT COUNT(*) FROM leads WHERE campaign_id = ?1 AND status = 'in-progress'",
            [campaign.0],
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
        {
            let mut st = tx.prepare_cached(
                "SELECT DISTINCT time_zone FROM leads \
                 WHERE campaign_id = ?1 AND time_zone IS NOT NULL",
            )?;
            let mut rows = st.query([campaign.0])?;
            while let Some(r) = rows.next()? {
                let name: String = r.get(0)?;
                // A zone that no longer resolves falls back to the default.
                let open = zone(&name).map_or(default_open, |tz| window.is_open(now, &tz));
                if open {
                    open_zones.push(name);
                }
            }
        }
        if !default_open && open_zones.is_empty() {
            return Ok(Vec::new());
        }
        let open_json =
            serde_json::to_string(&open_zones).map_err(|_| Error::Corrupt { what: "time zone" })?;
        let mut picked: Vec<(LeadId, String)> =
            Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        {
            let mut st = tx.prepare_cached(
                "SELECT id, time_zone FROM leads WHERE campaign_id = ?1 \
                 AND status IN ('pending', 'retry') AND next_attempt_at <= ?2 AND attempts < ?3 \
                 AND ((time_zone IS NULL AND ?4) \
                      OR time_zone IN (SELECT value FROM json_each(?5))) \
                 AND NOT EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = leads.phone) \
                 ORDER BY next_attempt_at, id LIMIT ?6",
            )?;
            let mut rows = st.query(params![
                campaign.0,
                ms(now),
                c.settings.retry.max_attempts,
                default_open,
                open_json,
                want
            ])?;
            while let Some(r) = rows.next()? {
                let tz: Option<String> = r.get(1)?;
                let tz = tz.unwrap_or_else(|| c.settings.time_zone.clone());
                picked.push((LeadId(r.get(0)?), tz));
            }
        }
        let mut out = Vec::with_capacity(picked.len());
        {
            let mut st = tx.prepare_cached(
                "UPDATE leads SET status = 'in-progress', attempts = attempts + 1, \
                 claimed_by = ?2, claim_token = ?3, updated_at = ?4 WHERE id = ?1",
            )?;
            for (id, time_zone) in picked {
                let claim = ClaimToken::generate_with(rng);
                st.execute(params![id.0, writer, claim.as_str(), ms(now)])?;
                out.push(ClaimedLead {
                    lead: get_lead_in(&tx, id)?,
                    time_zone,
                    claim,
                });
            }
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
        let l = get_lead_in(&tx, lead)?;
        if l.status != LeadStatus::InProgress {
            return Err(Error::Conflict {
                entity: Entity::Lead,
                reason: "lead is not in progress",
            });
        }
        let c = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1"
            ))?;
            let mut rows = st.query([l.campaign.0])?;
            match rows.next()? {
                Some(r) => campaign_from_row(r)?,
                None => {
                    return Err(Error::Corrupt {
                        what: "lead campaign",
                    });
                }
            }
        };
        let (status, next) = c.settings.retry.next(l.attempts, outcome, now);
        tx.execute(
            "UPDATE leads SET status = ?2, next_attempt_at = ?3, last_outcome = ?4, \
             last_session = COALESCE(?5, last_session), claimed_by = NULL, claim_token = NULL, \
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
        let n = tx.execute(
            &format!(
                "UPDATE leads AS l SET attempts = MAX(attempts - 1, 0), \
                 status = CASE WHEN attempts <= 1 THEN 'pending' ELSE 'retry' END, \
                 claimed_by = NULL, claim_token = NULL, updated_at = ?2 \
                 WHERE l.id = ?1 AND l.status = 'in-progress' AND NOT {HAS_ATTEMPT_SESSION}"
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
