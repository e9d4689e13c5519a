//! Leads: create, read, update, delete; the atomic due-lead claim; and
//! recording an attempt's outcome through the campaign's retry policy.
//!
//! The claim runs in one `BEGIN IMMEDIATE` transaction: it reads the due
//! leads and marks them `in-progress` (with this process's writer id) before
//! any other process can write, so two dialers never claim the same lead.
//! A lead is due when its status is `pending` or `retry`, its next attempt
//! time has passed, it has attempts left, its number is not on the DNC
//! list, and `now` is inside the campaign's calling window in the lead's
//! time zone (or the campaign's).

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::campaigns::{CAMPAIGN_COLS, campaign_from_row};
use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::model::{
    CampaignId, CampaignStatus, LeadId, LeadStatus, Outcome, PersonName, PhoneNumber, SessionId,
};
use crate::policy::zone;
use crate::store::{Store, ms, ts};

/// Most leads one claim hands out.
pub const MAX_CLAIM: u32 = 1_000;
/// Longest JSON of a lead's extra fields, in bytes.
pub const MAX_FIELDS_JSON: usize = 64 * 1024;

/// A lead to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLead {
    /// The number to dial.
    pub phone: PhoneNumber,
    /// The person's name.
    pub name: Option<PersonName>,
    /// IANA time zone; overrides the campaign's.
    pub time_zone: Option<String>,
    /// Extra fields for the prompt.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl NewLead {
    /// A lead with only a phone number.
    pub fn new(phone: PhoneNumber) -> Self {
        NewLead {
            phone,
            name: None,
            time_zone: None,
            fields: serde_json::Map::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<String> {
        if let Some(tz) = &self.time_zone {
            zone(tz)?;
        }
        fields_json(&self.fields)
    }
}

/// Fields to change on a lead; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct LeadUpdate {
    /// New name.
    pub name: Option<PersonName>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// Replacement extra fields.
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A stored lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// Its id.
    pub id: LeadId,
    /// Its campaign.
    pub campaign: CampaignId,
    /// The number.
    pub phone: PhoneNumber,
    /// The name.
    pub name: Option<PersonName>,
    /// Its own time zone.
    pub time_zone: Option<String>,
    /// Extra fields for the prompt.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Status.
    pub status: LeadStatus,
    /// Dials so far (counted when claimed).
    pub attempts: u32,
    /// Not due before this.
    pub next_attempt_at: Timestamp,
    /// The last attempt's outcome.
    pub last_outcome: Option<Outcome>,
    /// The last attempt's session.
    pub last_session: Option<SessionId>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A lead handed to a dialer by [`Store::claim_due_leads`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedLead {
    /// The lead, now `in-progress`.
    pub lead: Lead,
    /// The time zone its window was checked in.
    pub time_zone: String,
}

/// The result of [`Store::record_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptResult {
    /// The lead's new status.
    pub status: LeadStatus,
    /// When it is due again (meaningful for `retry`).
    pub next_attempt_at: Timestamp,
    /// Attempts made.
    pub attempts: u32,
}

/// Which leads to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeadFilter {
    /// Only this status.
    pub status: Option<LeadStatus>,
}

/// Serializes a lead's extra fields, refusing more than [`MAX_FIELDS_JSON`].
pub(crate) fn fields_json(fields: &serde_json::Map<String, serde_json::Value>) -> Result<String> {
    let s = serde_json::to_string(fields).map_err(|_| Error::InvalidInput {
        field: "fields",
        reason: "not serializable",
    })?;
    if s.len() > MAX_FIELDS_JSON {
        return Err(Error::InvalidInput {
            field: "fields",
            reason: "longer than 64 KiB as JSON",
        });
    }
    Ok(s)
}

const LEAD_COLS: &str = "id, campaign_id, phone, name, time_zone, fields, status, attempts, \
    next_attempt_at, last_outcome, last_session, created_at, updated_at";

fn lead_from_row(r: &Row<'_>) -> Result<Lead> {
    let fields: String = r.get(5)?;
    let fields = match serde_json::from_str(&fields) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => {
            return Err(Error::Corrupt {
                what: "lead fields",
            });
        }
    };
    Ok(Lead {
        id: LeadId(r.get(0)?),
        campaign: CampaignId(r.get(1)?),
        phone: PhoneNumber::from_db(r.get(2)?),
        name: r.get::<_, Option<String>>(3)?.map(PersonName::from_db),
        time_zone: r.get(4)?,
        fields,
        status: LeadStatus::from_db(&r.get::<_, String>(6)?)?,
        attempts: u32::try_from(r.get::<_, i64>(7)?)
            .map_err(|_| Error::Corrupt { what: "attempts" })?,
        next_attempt_at: ts(r.get(8)?)?,
        last_outcome: r
            .get::<_, Option<String>>(9)?
            .map(|s| Outcome::from_db(&s))
            .transpose()?,
        last_session: r
            .get::<_, Option<String>>(10)?
            .map(|s| {
                s.parse().map_err(|_| Error::Corrupt {
                    what: "last_session",
                })
            })
            .transpose()?,
        created_at: ts(r.get(11)?)?,
        updated_at: ts(r.get(12)?)?,
    })
}

pub(crate) fn get_lead_in(conn: &rusqlite::Connection, id: LeadId) -> Result<Lead> {
    let mut st = conn.prepare_cached(&format!("SELECT {LEAD_COLS} FROM leads WHERE id = ?1"))?;
    let mut rows = st.query([id.0])?;
    match rows.next()? {
        Some(r) => lead_from_row(r),
        None => Err(Error::NotFound {
            entity: Entity::Lead,
            id: id.to_string(),
        }),
    }
}

pub(crate) fn is_dnc_in(conn: &rusqlite::Connection, phone: &PhoneNumber) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM dnc WHERE phone = ?1",
            [phone.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Inserts a lead inside a transaction; `do-not-call` if its number is on
/// the DNC list. A duplicate phone in the campaign is a conflict.
pub(crate) fn insert_lead(
    tx: &Transaction<'_>,
    campaign: CampaignId,
    l: &NewLead,
    fields_json: &str,
    now: Timestamp,
) -> Result<(LeadId, bool)> {
    let dnc = is_dnc_in(tx, &l.phone)?;
    let status = if dnc {
        LeadStatus::DoNotCall
    } else {
        LeadStatus::Pending
    };
    tx.prepare_cached(
        "INSERT INTO leads (campaign_id, phone, name, time_zone, fields, status, attempts, \
         next_attempt_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, ?7)",
    )?
    .execute(params![
        campaign.0,
        l.phone.as_str(),
        l.name.as_ref().map(PersonName::as_str),
        l.time_zone,
        fields_json,
        status.as_str(),
        ms(now)
    ])
    .map_err(conflict_on_constraint(
        Entity::Lead,
        "phone already in this campaign, or campaign does not exist",
    ))?;
    Ok((LeadId(tx.last_insert_rowid()), dnc))
}

impl Store {
    /// Adds leads to a campaign in one transaction (all or none). A number
    /// on the DNC list is stored as `do-not-call`; a phone already in the
    /// campaign is an [`Error::Conflict`] (CSV import merges instead).
    pub fn add_leads(
        &mut self,
        campaign: CampaignId,
        leads: &[NewLead],
        now: Timestamp,
    ) -> Result<Vec<LeadId>> {
        let json = leads
            .iter()
            .map(NewLead::validate)
            .collect::<Result<Vec<_>>>()?;
        let tx = self.write_tx()?;
        let mut ids = Vec::with_capacity(leads.len());
        for (l, j) in leads.iter().zip(&json) {
            ids.push(insert_lead(&tx, campaign, l, j, now)?.0);
        }
        tx.commit()?;
        Ok(ids)
    }

    /// One lead.
    pub fn get_lead(&self, id: LeadId) -> Result<Lead> {
        get_lead_in(&self.conn, id)
    }

    /// A campaign's leads by id, after `after`, at most `limit` (capped at
    /// 10,000).
    pub fn list_leads(
        &self,
        campaign: CampaignId,
        filter: LeadFilter,
        after: Option<LeadId>,
        limit: u32,
    ) -> Result<Vec<Lead>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {LEAD_COLS} FROM leads WHERE campaign_id = ?1 AND id > ?2 \
             AND (?3 IS NULL OR status = ?3) ORDER BY id LIMIT ?4"
        ))?;
        let mut rows = st.query(params![
            campaign.0,
            after.map_or(0, |l| l.0),
            filter.status.map(LeadStatus::as_str),
            limit.min(10_000)
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(lead_from_row(r)?);
        }
        Ok(out)
    }

    /// How many leads of a campaign are in each status.
    pub fn lead_counts(&self, campaign: CampaignId) -> Result<Vec<(LeadStatus, u64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT status, COUNT(*) FROM leads WHERE campaign_id = ?1 GROUP BY status ORDER BY status",
        )?;
        let mut rows = st.query([campaign.0])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let n: i64 = r.get(1)?;
            out.push((
                LeadStatus::from_db(&r.get::<_, String>(0)?)?,
                u64::try_from(n).unwrap_or(0),
            ));
        }
        Ok(out)
    }

    /// Changes a lead's name, time zone or fields.
    pub fn update_lead(&mut self, id: LeadId, u: &LeadUpdate, now: Timestamp) -> Result<()> {
        if let Some(tz) = &u.time_zone {
            zone(tz)?;
        }
        let fields = u.fields.as_ref().map(fields_json).transpose()?;
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE leads SET name = COALESCE(?2, name), time_zone = COALESCE(?3, time_zone), \
             fields = COALESCE(?4, fields), updated_at = ?5 WHERE id = ?1",
            params![
                id.0,
                u.name.as_ref().map(PersonName::as_str),
                u.time_zone,
                fields,
                ms(now)
            ],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                entity: Entity::Lead,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a lead.
    pub fn delete_lead(&mut self, id: LeadId) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute("DELETE FROM leads WHERE id = ?1", [id.0])? == 0 {
            return Err(Error::NotFound {
                entity: Entity::Lead,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Claims up to `limit` due leads of an active campaign (see the module
    /// docs), oldest due first, marking them `in-progress` and counting the
    /// attempt. Never exceeds the campaign's `max_concurrent` leads in
    /// progress. Returns an empty list when nothing is due; a campaign that
    /// is not `active` is an [`Error::Conflict`].
    pub fn claim_due_leads(
        &mut self,
        campaign: CampaignId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedLead>> {
        let writer = self.writer.as_str().to_owned();
        let tx = self.write_tx()?;
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
                 claimed_by = ?2, updated_at = ?3 WHERE id = ?1",
            )?;
            for (id, _) in &picked {
                st.execute(params![id.0, writer, ms(now)])?;
            }
        }
        for (id, time_zone) in picked {
            out.push(ClaimedLead {
                lead: get_lead_in(&tx, id)?,
                time_zone,
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
             last_session = COALESCE(?5, last_session), claimed_by = NULL, updated_at = ?6 \
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
    /// first): the claim's attempt is uncounted and the lead is due again.
    pub fn release_lead(&mut self, lead: LeadId, now: Timestamp) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE leads SET attempts = MAX(attempts - 1, 0), \
             status = CASE WHEN attempts <= 1 THEN 'pending' ELSE 'retry' END, \
             claimed_by = NULL, updated_at = ?2 WHERE id = ?1 AND status = 'in-progress'",
            params![lead.0, ms(now)],
        )?;
        if n == 0 {
            get_lead_in(&tx, lead)?;
            return Err(Error::Conflict {
                entity: Entity::Lead,
                reason: "lead is not in progress",
            });
        }
        tx.commit()?;
        Ok(())
    }
}
