//! Leads: create, read, update, delete, and the lead types the dialer
//! uses (the claim and attempt recording live in `dialing`).

use jiff::Timestamp;
use rusqlite::params;

use crate::db::{Conn, Optional, Row, Tx};

use crate::claim_token::ClaimToken;
use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::model::{CampaignId, LeadId, LeadStatus, Outcome, PersonName, PhoneNumber, SessionId};
use crate::policy::zone;
use crate::store::Store;
use crate::stored::{ms, ts};

/// Most leads one claim hands out.
pub const MAX_CLAIM: u32 = 1_000;
/// Longest JSON of a lead's extra fields, in bytes.
pub const MAX_FIELDS_JSON: usize = 64 * 1024;

/// A lead to add. `Debug` shows the field names, never their values.
#[derive(Clone, PartialEq)]
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

/// Field names of a lead's extra fields, for `Debug` (values may be
/// personal data).
struct FieldNames<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl std::fmt::Debug for FieldNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl std::fmt::Debug for NewLead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLead")
            .field("phone", &self.phone)
            .field("name", &self.name)
            .field("time_zone", &self.time_zone)
            .field("fields", &FieldNames(&self.fields))
            .finish()
    }
}

impl std::fmt::Debug for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lead")
            .field("id", &self.id)
            .field("campaign", &self.campaign)
            .field("phone", &self.phone)
            .field("name", &self.name)
            .field("time_zone", &self.time_zone)
            .field("fields", &FieldNames(&self.fields))
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("last_outcome", &self.last_outcome)
            .field("last_session", &self.last_session)
            .finish_non_exhaustive()
    }
}

/// Fields to change on a lead; `None` leaves a field unchanged. `Debug`
/// shows only the names of replacement fields.
#[derive(Clone, Default)]
pub struct LeadUpdate {
    /// New name.
    pub name: Option<PersonName>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// Replacement extra fields.
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

impl std::fmt::Debug for LeadUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadUpdate")
            .field("name", &self.name)
            .field("time_zone", &self.time_zone)
            .field("fields", &self.fields.as_ref().map(FieldNames))
            .finish()
    }
}

/// A stored lead. `Debug` redacts the phone and name and shows only the
/// names of the extra fields.
#[derive(Clone, PartialEq)]
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
    /// This claim's token: the call placed for it carries it, and the
    /// session row is written only while the claim is still held.
    pub claim: ClaimToken,
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

pub(crate) const LEAD_COLS: &str = "id, campaign_id, phone, name, time_zone, fields, status, attempts, \
    next_attempt_at, last_outcome, last_session, created_at, updated_at";

pub(crate) fn lead_from_row(r: &Row<'_>) -> Result<Lead> {
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
        name: r.get::<Option<String>>(3)?.map(PersonName::from_db),
        time_zone: r.get(4)?,
        fields,
        status: LeadStatus::from_db(&r.get::<String>(6)?)?,
        attempts: u32::try_from(r.get::<i64>(7)?)
            .map_err(|_| Error::Corrupt { what: "attempts" })?,
        next_attempt_at: ts(r.get(8)?)?,
        last_outcome: r
            .get::<Option<String>>(9)?
            .map(|s| Outcome::from_db(&s))
            .transpose()?,
        last_session: r
            .get::<Option<String>>(10)?
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

pub(crate) fn get_lead_in(conn: &Conn, id: LeadId) -> Result<Lead> {
    conn.query_row(
        &format!("SELECT {LEAD_COLS} FROM leads WHERE id = ?1"),
        params![id.0],
        lead_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound {
        entity: Entity::Lead,
        id: id.to_string(),
    })
}

pub(crate) fn is_dnc_in(conn: &Conn, phone: &PhoneNumber) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM dnc WHERE phone = ?1",
            params![phone.as_str()],
            |_| Ok::<_, crate::db::DbErr>(()),
        )
        .optional()?
        .is_some())
}

/// Inserts a lead inside a transaction; `do-not-call` if its number is on
/// the DNC list. A duplicate phone in the campaign is a conflict.
pub(crate) fn insert_lead(
    tx: &Tx<'_>,
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
    let id = tx
        .query_row(
            "INSERT INTO leads (campaign_id, phone, name, time_zone, fields, status, attempts, \
             next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, ?7) RETURNING id",
            params![
                campaign.0,
                l.phone.as_str(),
                l.name.as_ref().map(PersonName::as_str),
                l.time_zone,
                fields_json,
                status.as_str(),
                ms(now)
            ],
            |r| r.get(0),
        )
        .map_err(conflict_on_constraint(
            Entity::Lead,
            "phone already in this campaign, or campaign does not exist",
        ))?;
    Ok((LeadId(id), dnc))
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
        self.conn.query_map(
            &format!(
                "SELECT {LEAD_COLS} FROM leads WHERE campaign_id = ?1 AND id > ?2 \
                 AND (CAST(?3 AS TEXT) IS NULL OR status = ?3) ORDER BY id LIMIT ?4"
            ),
            params![
                campaign.0,
                after.map_or(0, |l| l.0),
                filter.status.map(LeadStatus::as_str),
                limit.min(10_000)
            ],
            lead_from_row,
        )
    }

    /// How many leads of a campaign are in each status.
    pub fn lead_counts(&self, campaign: CampaignId) -> Result<Vec<(LeadStatus, u64)>> {
        self.conn.query_map(
            "SELECT status, COUNT(*) FROM leads WHERE campaign_id = ?1 GROUP BY status ORDER BY status",
            params![campaign.0],
            |r| {
                let n: i64 = r.get(1)?;
                Ok((
                    LeadStatus::from_db(&r.get::<String>(0)?)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            },
        )
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
        if tx.execute("DELETE FROM leads WHERE id = ?1", params![id.0])? == 0 {
            return Err(Error::NotFound {
                entity: Entity::Lead,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }
}
