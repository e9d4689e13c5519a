//! Campaigns: create, read, update, delete, and status changes. A
//! campaign's settings hold what the dialer and the agent need: the prompt
//! and greeting, the model provider and voice, the calling window and its
//! default time zone, the retry policy, and the concurrency and pacing
//! limits.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{ToSql, params};

use crate::db::{Optional, Row};

use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::model::{CampaignId, CampaignStatus, UserId};
use crate::policy::{CallingWindow, RetryPolicy, Weekdays, zone};
use crate::store::Store;
use crate::stored::{ms, ts};

/// Everything about a campaign that an operator sets.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSettings {
    /// Unique name (1 to 200 bytes).
    pub name: String,
    /// Owning user.
    pub owner: Option<UserId>,
    /// The model's system prompt.
    pub system_prompt: String,
    /// What the agent says first.
    pub greeting: String,
    /// Model provider (`gemini`, `openai`).
    pub model_provider: String,
    /// Model voice.
    pub voice: Option<String>,
    /// When leads may be dialled, in their local time.
    pub window: CallingWindow,
    /// IANA time zone for leads without their own.
    pub time_zone: String,
    /// Attempts and retry delays.
    pub retry: RetryPolicy,
    /// Most leads in progress at once.
    pub max_concurrent: u32,
    /// Dial pacing for the dialer (the store does not enforce it).
    pub calls_per_minute: u32,
    /// The agent's routing profile its calls take (issue 23; `None`:
    /// the agent's default). The agent checks the name when it dials.
    pub profile: Option<String>,
}

impl CampaignSettings {
    /// Settings with defaults: always-open window in UTC, default retry
    /// policy, 1 concurrent call, 10 calls per minute, empty prompt.
    pub fn new(name: impl Into<String>, model_provider: impl Into<String>) -> Self {
        CampaignSettings {
            name: name.into(),
            owner: None,
            system_prompt: String::new(),
            greeting: String::new(),
            model_provider: model_provider.into(),
            voice: None,
            window: CallingWindow::ALWAYS,
            time_zone: "UTC".into(),
            retry: RetryPolicy::default(),
            max_concurrent: 1,
            calls_per_minute: 10,
            profile: None,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |field, reason| Err(Error::InvalidInput { field, reason });
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return bad("name", "must be 1 to 200 bytes");
        }
        if self.system_prompt.len() > 64 * 1024 || self.greeting.len() > 64 * 1024 {
            return bad("system_prompt", "prompt and greeting are limited to 64 KiB");
        }
        if self.model_provider.is_empty() || self.model_provider.len() > 64 {
            return bad("model_provider", "must be 1 to 64 bytes");
        }
        if self.voice.as_ref().is_some_and(|v| v.len() > 64) {
            return bad("voice", "longer than 64 bytes");
        }
        zone(&self.time_zone)?;
        self.retry.validate()?;
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "must be at least 1");
        }
        if self.calls_per_minute == 0 {
            return bad("calls_per_minute", "must be at least 1");
        }
        if self.profile.as_ref().is_some_and(|p| {
            p.is_empty()
                || p.len() > 64
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }) {
            return bad(
                "profile",
                "1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
            );
        }
        Ok(())
    }
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// Its id.
    pub id: CampaignId,
    /// Its status.
    pub status: CampaignStatus,
    /// Its settings.
    pub settings: CampaignSettings,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

pub(crate) const CAMPAIGN_COLS: &str = "id, status, name, owner, system_prompt, greeting, \
    model_provider, voice, window_start_min, window_end_min, window_days, time_zone, \
    max_attempts, retry_busy_s, retry_no_answer_s, retry_failed_s, retry_voicemail_s, \
    max_concurrent, calls_per_minute, created_at, updated_at, profile";

fn secs(v: i64) -> Result<Duration> {
    Ok(Duration::from_secs(u64::try_from(v).map_err(|_| {
        Error::Corrupt {
            what: "retry delay",
        }
    })?))
}

fn u32_col(v: i64, what: &'static str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt { what })
}

pub(crate) fn campaign_from_row(r: &Row<'_>) -> Result<Campaign> {
    let corrupt = |what| move |_| Error::Corrupt { what };
    let window = CallingWindow::new(
        u16::try_from(r.get::<i64>(8)?).map_err(corrupt("window"))?,
        u16::try_from(r.get::<i64>(9)?).map_err(corrupt("window"))?,
        Weekdays::from_bits(u8::try_from(r.get::<i64>(10)?).map_err(corrupt("window"))?),
    )
    .map_err(|_| Error::Corrupt { what: "window" })?;
    Ok(Campaign {
        id: CampaignId(r.get(0)?),
        status: CampaignStatus::from_db(&r.get::<String>(1)?)?,
        settings: CampaignSettings {
            name: r.get(2)?,
            owner: r.get::<Option<i64>>(3)?.map(UserId),
            system_prompt: r.get(4)?,
            greeting: r.get(5)?,
            model_provider: r.get(6)?,
            voice: r.get(7)?,
            window,
            time_zone: r.get(11)?,
            retry: RetryPolicy {
                max_attempts: u32_col(r.get(12)?, "max_attempts")?,
                busy: secs(r.get(13)?)?,
                no_answer: secs(r.get(14)?)?,
                failed: secs(r.get(15)?)?,
                voicemail: secs(r.get(16)?)?,
            },
            max_concurrent: u32_col(r.get(17)?, "max_concurrent")?,
            calls_per_minute: u32_col(r.get(18)?, "calls_per_minute")?,
            profile: r.get(21)?,
        },
        created_at: ts(r.get(19)?)?,
        updated_at: ts(r.get(20)?)?,
    })
}

/// Seconds of a delay validated to be at most a year (fits `i64`).
/// The settings' columns, then `now`, as both [`Store::create_campaign`]
/// and [`Store::update_campaign`] bind them: `?1`..`?17`, then `?18`,
/// then the profile as `?19`.
fn setting_values(s: &CampaignSettings, now: Timestamp) -> [Box<dyn ToSql + '_>; 19] {
    [
        Box::new(&s.name),
        Box::new(s.owner.map(|u| u.0)),
        Box::new(&s.system_prompt),
        Box::new(&s.greeting),
        Box::new(&s.model_provider),
        Box::new(&s.voice),
        Box::new(s.window.start_minute()),
        Box::new(s.window.end_minute()),
        Box::new(s.window.days().bits()),
        Box::new(&s.time_zone),
        Box::new(s.retry.max_attempts),
        Box::new(delay_s(s.retry.busy)),
        Box::new(delay_s(s.retry.no_answer)),
        Box::new(delay_s(s.retry.failed)),
        Box::new(delay_s(s.retry.voicemail)),
        Box::new(s.max_concurrent),
        Box::new(s.calls_per_minute),
        Box::new(ms(now)),
        Box::new(&s.profile),
    ]
}

/// Borrows boxed parameters as a statement's parameter list.
fn refs<'a>(values: &'a [Box<dyn ToSql + 'a>]) -> Vec<&'a dyn ToSql> {
    values.iter().map(|b| b.as_ref() as &dyn ToSql).collect()
}

fn delay_s(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Store {
    /// Creates a campaign in `draft` status.
    pub fn create_campaign(&mut self, s: &CampaignSettings, now: Timestamp) -> Result<CampaignId> {
        s.validate()?;
        let tx = self.write_tx()?;
        let values = setting_values(s, now);
        let id = CampaignId(
            tx.query_row(
                "INSERT INTO campaigns (name, owner, status, system_prompt, greeting, model_provider, \
                 voice, window_start_min, window_end_min, window_days, time_zone, max_attempts, \
                 retry_busy_s, retry_no_answer_s, retry_failed_s, retry_voicemail_s, max_concurrent, \
                 calls_per_minute, created_at, updated_at, profile) VALUES \
                 (?1, ?2, 'draft', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18, ?19) \
                 RETURNING id",
                &refs(&values),
                |r| r.get(0),
            )
            .map_err(conflict_on_constraint(
                Entity::Campaign,
                "name already used, or owner does not exist",
            ))?,
        );
        tx.commit()?;
        Ok(id)
    }

    /// One campaign.
    pub fn get_campaign(&self, id: CampaignId) -> Result<Campaign> {
        self.conn
            .query_row(
                &format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1"),
                params![id.0],
                campaign_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound {
                entity: Entity::Campaign,
                id: id.to_string(),
            })
    }

    /// A campaign by its unique name.
    pub fn find_campaign(&self, name: &str) -> Result<Option<Campaign>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM campaigns WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| self.get_campaign(CampaignId(id))).transpose()
    }

    /// Every campaign, by id.
    pub fn list_campaigns(&self) -> Result<Vec<Campaign>> {
        self.conn.query_map(
            &format!("SELECT {CAMPAIGN_COLS} FROM campaigns ORDER BY id"),
            &[],
            campaign_from_row,
        )
    }

    /// Replaces a campaign's settings.
    pub fn update_campaign(
        &mut self,
        id: CampaignId,
        s: &CampaignSettings,
        now: Timestamp,
    ) -> Result<()> {
        s.validate()?;
        let tx = self.write_tx()?;
        let mut values = Vec::from(setting_values(s, now));
        values.push(Box::new(id.0));
        let n = tx
            .execute(
                "UPDATE campaigns SET name = ?1, owner = ?2, system_prompt = ?3, greeting = ?4, \
                 model_provider = ?5, voice = ?6, window_start_min = ?7, window_end_min = ?8, \
                 window_days = ?9, time_zone = ?10, max_attempts = ?11, retry_busy_s = ?12, \
                 retry_no_answer_s = ?13, retry_failed_s = ?14, retry_voicemail_s = ?15, \
                 max_concurrent = ?16, calls_per_minute = ?17, updated_at = ?18, profile = ?19 \
                 WHERE id = ?20",
                &refs(&values),
            )
            .map_err(conflict_on_constraint(
                Entity::Campaign,
                "name already used, or owner does not exist",
            ))?;
        if n == 0 {
            return Err(Error::NotFound {
                entity: Entity::Campaign,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets a campaign's status (only `active` campaigns hand out leads).
    pub fn set_campaign_status(
        &mut self,
        id: CampaignId,
        status: CampaignStatus,
        now: Timestamp,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE campaigns SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.0, status.as_str(), ms(now)],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                entity: Entity::Campaign,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a campaign and its leads; its sessions stay, detached.
    pub fn delete_campaign(&mut self, id: CampaignId) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute("DELETE FROM campaigns WHERE id = ?1", params![id.0])?;
        if n == 0 {
            return Err(Error::NotFound {
                entity: Entity::Campaign,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }
}
