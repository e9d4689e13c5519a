//! A campaign's calls by outcome, for the console's funnel (leads by
//! status are [`Store::lead_counts`]).

use std::collections::BTreeMap;

use rusqlite::params;

use crate::error::Result;
use crate::model::{CampaignId, EndReason, Outcome, SessionState};
use crate::outcome::outcome_of;
use crate::store::Store;

impl Store {
    /// How many of a campaign's calls ended with each outcome
    /// ([`outcome_of`]), in [`Outcome::ALL`] order; calls still running
    /// are not counted, outcomes with no call are left out.
    ///
    /// ```
    /// # use callbridge_crm_store::*;
    /// # use jiff::Timestamp;
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut store = Store::open(dir.path().join("crm.db")).unwrap();
    /// let c = store
    ///     .create_campaign(&CampaignSettings::new("spring", "gemini"), Timestamp::now())
    ///     .unwrap();
    /// let id = SessionId::new_v4();
    /// let mut s = NewSession::outbound(id, Timestamp::now());
    /// s.campaign = Some(c);
    /// store.create_session(&s).unwrap();
    /// store.finish_session(id, &Finish::failed(EndReason::Busy, Timestamp::now())).unwrap();
    /// assert_eq!(store.campaign_outcomes(c).unwrap(), vec![(Outcome::Busy, 1)]);
    /// ```
    pub fn campaign_outcomes(&self, campaign: CampaignId) -> Result<Vec<(Outcome, u64)>> {
        let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
        self.conn.query_each(
            "SELECT state, end_reason, sip_status, COUNT(*) FROM call_sessions \
             WHERE campaign_id = ?1 GROUP BY state, end_reason, sip_status",
            params![campaign.0],
            |r| {
                let state = SessionState::from_db(&r.get::<String>(0)?)?;
                let reason = r
                    .get::<Option<String>>(1)?
                    .map(|s| EndReason::from_db(&s))
                    .transpose()?;
                let sip = r.get::<Option<u16>>(2)?;
                let n = u64::try_from(r.get::<i64>(3)?).unwrap_or(0);
                if let Some(o) = outcome_of(state, reason, sip)
                    && let Some(i) = Outcome::ALL.iter().position(|x| *x == o)
                {
                    *counts.entry(i).or_default() += n;
                }
                Ok::<(), crate::error::Error>(())
            },
        )?;
        Ok(counts
            .into_iter()
            .filter_map(|(i, n)| Outcome::ALL.get(i).map(|o| (*o, n)))
            .collect())
    }
}
