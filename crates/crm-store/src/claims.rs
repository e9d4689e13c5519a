//! What a campaign dialer needs to reconcile its own claims after a crash:
//! the leads left `in-progress` (with the process that claimed them), the
//! session of a lead's attempt in progress, and taking over a claim; and
//! the claim token that ties a call to the claim it was placed for.
//!
//! The attempt in progress is the lead's newest session inserted after the
//! session of its last recorded attempt (`last_session`, which
//! [`Store::record_attempt`] keeps): the agent writes every outbound session
//! row with its lead id before it dials, so a session found here means the
//! call for this attempt started, and none means it never did (the claim
//! can be released without consuming the attempt).
//!
//! # Claim tokens: at most one call per claim, and never after a release
//!
//! "No session yet" is only final if no session can appear later. A dialer
//! killed after sending its `POST /api/calls` leaves a request the agent may
//! still act on after the next run has reconciled the claim (found no row,
//! released it) and claimed the lead again: two calls for one attempt. So
//! each claim carries a fresh random [`ClaimToken`] ([`ClaimedLead::claim`]),
//! the dialer sends it with the call, and two writes, each in one `BEGIN
//! IMMEDIATE` transaction, make "this attempt has a call" and "this attempt
//! was given back" exclude each other:
//!
//! - a session inserted with a token ([`NewSession::claim`]) is written only
//!   while the lead is `in-progress` under that same token, else
//!   [`Error::ClaimNotHeld`] and nothing is written (the agent dials only
//!   after the row is written);
//! - [`Store::release_lead`] gives a claim back only while no session exists
//!   for the attempt, and clears the token; recording the attempt
//!   ([`Store::record_attempt`]) and crash recovery clear it too.
//!
//! SQLite runs the two one after the other: a late insert finds the token
//! gone (or replaced by the next claim's), and a release finds the call. A
//! session inserted without a token (direct API users) is written as
//! before.
//!
//! [`ClaimedLead::claim`]: crate::ClaimedLead::claim
//! [`NewSession::claim`]: crate::NewSession::claim

use jiff::Timestamp;
use rusqlite::params;

use crate::claim_token::ClaimToken;
use crate::db::{Optional, Tx};
use crate::error::{Entity, Error, Result};
use crate::leads::{Lead, LeadFilter};
use crate::model::{CampaignId, LeadId, LeadStatus, SessionId};
use crate::session_types::Session;
use crate::store::{Store, WriterId};
use crate::stored::ms;

/// The SQL condition "lead `l` has a session for its attempt in progress"
/// (see the module docs).
pub(crate) const HAS_ATTEMPT_SESSION: &str = "EXISTS (SELECT 1 FROM call_sessions s \
     WHERE s.lead_id = l.id AND s.rowid > COALESCE((SELECT p.rowid FROM call_sessions p \
     WHERE p.id = l.last_session), 0))";

/// Inside a session insert: [`Error::ClaimNotHeld`] unless `lead` is
/// `in-progress` under `token`.
pub(crate) fn check_claim_held(tx: &Tx<'_>, lead: LeadId, token: &ClaimToken) -> Result<()> {
    // On PostgreSQL the lead row stays locked until the session insert
    // commits, so a concurrent release waits and then sees the session.
    let held = tx
        .query_row(
            &format!(
                "SELECT 1 FROM leads WHERE id = ?1 AND status = 'in-progress' AND claim_token = ?2{}",
                tx.dialect().for_update()
            ),
            params![lead.0, token.as_str()],
            |_| Ok::<_, crate::db::DbErr>(()),
        )
        .optional()?
        .is_some();
    if held {
        Ok(())
    } else {
        Err(Error::ClaimNotHeld { lead })
    }
}

/// A lead left `in-progress`, and who claimed it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The lead (status `in-progress`).
    pub lead: Lead,
    /// The process that claimed it, if recorded.
    pub claimed_by: Option<WriterId>,
}

/// The session of a lead's attempt in progress, and the process writing it.
#[derive(Debug, Clone)]
pub struct AttemptSession {
    /// The session row.
    pub session: Session,
    /// The process that writes it (the agent), if recorded.
    pub writer: Option<WriterId>,
}

/// Most claims [`Store::claimed_leads`] returns (a campaign's
/// `max_concurrent` is far below it).
pub const MAX_CLAIMS_LISTED: u32 = 10_000;

impl Store {
    /// A campaign's leads in `in-progress`, with the writer that claimed
    /// each (at most [`MAX_CLAIMS_LISTED`]).
    pub fn claimed_leads(&self, campaign: CampaignId) -> Result<Vec<Claim>> {
        let leads = self.list_leads(
            campaign,
            LeadFilter {
                status: Some(LeadStatus::InProgress),
            },
            None,
            MAX_CLAIMS_LISTED,
        )?;
        leads
            .into_iter()
            .map(|lead| {
                let by: Option<String> = self.conn.query_row(
                    "SELECT claimed_by FROM leads WHERE id = ?1",
                    params![lead.id.0],
                    |r| r.get(0),
                )?;
                Ok(Claim {
                    lead,
                    claimed_by: by.map(WriterId::from_string),
                })
            })
            .collect()
    }

    /// The session of `lead`'s attempt in progress: its newest session
    /// inserted after its `last_session` (see the module docs), or `None`
    /// when that attempt's call never started.
    pub fn attempt_session(&self, lead: LeadId) -> Result<Option<AttemptSession>> {
        let row: Option<(String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT s.id, s.writer FROM call_sessions s, leads l \
                 WHERE l.id = ?1 AND s.lead_id = l.id \
                 AND s.rowid > COALESCE((SELECT p.rowid FROM call_sessions p \
                                         WHERE p.id = l.last_session), 0) \
                 ORDER BY s.rowid DESC LIMIT 1",
                params![lead.0],
                |r| Ok::<_, crate::db::DbErr>((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, writer)) = row else {
            return Ok(None);
        };
        let id: SessionId = id
            .parse()
            .map_err(|_| Error::Corrupt { what: "session id" })?;
        Ok(Some(AttemptSession {
            session: self.get_session(id)?,
            writer: writer.map(WriterId::from_string),
        }))
    }

    /// Takes over the claim of an `in-progress` lead for this process (a
    /// dialer following a call its dead predecessor started), so that
    /// recovery sees a live claimer. [`Error::Conflict`] when the lead is
    /// not in progress.
    pub fn adopt_claim(&mut self, lead: LeadId, now: Timestamp) -> Result<()> {
        let writer = self.writer.as_str().to_owned();
        let node = self.node.as_str().to_owned();
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE leads SET claimed_by = ?2, claimed_node = ?4, updated_at = ?3 \
             WHERE id = ?1 AND status = 'in-progress'",
            params![lead.0, writer, ms(now), node],
        )?;
        if n == 0 {
            return Err(Error::Conflict {
                entity: Entity::Lead,
                reason: "lead is not in progress",
            });
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        CampaignSettings, CampaignStatus, EndReason, Finish, LeadStatus, NewLead, NewSession,
        Outcome, PhoneNumber,
    };

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_763_380_800 + s).unwrap()
    }

    fn setup() -> (Store, CampaignId, LeadId) {
        let mut store = Store::open(":memory:").unwrap();
        let mut s = CampaignSettings::new("c", "gemini");
        s.max_concurrent = 5;
        let c = store.create_campaign(&s, t(0)).unwrap();
        store
            .set_campaign_status(c, CampaignStatus::Active, t(0))
            .unwrap();
        let lead = NewLead::new(PhoneNumber::parse("+15550001234").unwrap());
        let id = store.add_leads(c, &[lead], t(0)).unwrap()[0];
        (store, c, id)
    }

    fn call(store: &mut Store, c: CampaignId, lead: LeadId, at: i64) -> SessionId {
        let id = SessionId::new_v4();
        let mut s = NewSession::outbound(id, t(at));
        s.campaign = Some(c);
        s.lead = Some(lead);
        store.create_session(&s).unwrap();
        id
    }

    #[test]
    fn claimed_leads_name_the_claiming_writer() {
        let (mut store, c, lead) = setup();
        assert!(store.claimed_leads(c).unwrap().is_empty());
        store.claim_due_leads(c, t(1), 10).unwrap();
        let claims = store.claimed_leads(c).unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].lead.id, lead);
        assert_eq!(claims[0].claimed_by.as_ref(), Some(store.writer()));
    }

    #[test]
    fn attempt_session_is_only_a_session_newer_than_the_last_recorded_attempt() {
        let (mut store, c, lead) = setup();
        // Attempt 1: claimed, never dialled.
        store.claim_due_leads(c, t(1), 1).unwrap();
        assert!(store.attempt_session(lead).unwrap().is_none());
        // The call starts: that session is the attempt's.
        let s1 = call(&mut store, c, lead, 2);
        let a = store.attempt_session(lead).unwrap().unwrap();
        assert_eq!(a.session.id, s1);
        assert_eq!(a.writer.as_ref(), Some(store.writer()));
        store
            .finish_session(s1, &Finish::failed(EndReason::Busy, t(3)))
            .unwrap();
        store
            .record_attempt(lead, Outcome::Busy, Some(s1), t(3))
            .unwrap();
        // Attempt 2 claimed: the recorded session 1 is not its session.
        store.claim_due_leads(c, t(10_000), 1).unwrap();
        assert!(store.attempt_session(lead).unwrap().is_none());
        let s2 = call(&mut store, c, lead, 10_001);
        assert_eq!(store.attempt_session(lead).unwrap().unwrap().session.id, s2);
    }

    /// A campaign call for `lead` carrying `claim`.
    fn claimed_call(c: CampaignId, lead: LeadId, claim: Option<&ClaimToken>) -> NewSession {
        let mut s = NewSession::outbound(SessionId::new_v4(), t(2));
        s.campaign = Some(c);
        s.lead = Some(lead);
        s.claim = claim.cloned();
        s
    }

    fn sessions_of(store: &Store, lead: LeadId) -> i64 {
        store
            .conn
            .query_row(
                "SELECT COUNT(*) FROM call_sessions WHERE lead_id = ?1",
                params![lead.0],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_session_with_the_current_claim_token_is_written() {
        let (mut store, c, lead) = setup();
        let claimed = store.claim_due_leads(c, t(1), 1).unwrap().remove(0);
        let s = claimed_call(c, lead, Some(&claimed.claim));
        store.create_session(&s).unwrap();
        assert_eq!(
            store.attempt_session(lead).unwrap().unwrap().session.id,
            s.id
        );
    }

    #[test]
    fn a_stale_claim_token_is_refused_after_a_release_and_nothing_is_written() {
        let (mut store, c, lead) = setup();
        let a = store.claim_due_leads(c, t(1), 1).unwrap().remove(0);
        store.release_lead(lead, t(2)).unwrap();
        let err = store
            .create_session(&claimed_call(c, lead, Some(&a.claim)))
            .unwrap_err();
        assert!(
            matches!(err, Error::ClaimNotHeld { lead: l } if l == lead),
            "{err}"
        );
        assert_eq!(sessions_of(&store, lead), 0);
    }

    #[test]
    fn a_stale_claim_token_is_refused_after_a_reclaim_of_the_same_attempt() {
        let (mut store, c, lead) = setup();
        let a = store.claim_due_leads(c, t(1), 1).unwrap().remove(0);
        store.release_lead(lead, t(2)).unwrap();
        // Claimed again by the same process, for the same attempt number.
        let b = store.claim_due_leads(c, t(3), 1).unwrap().remove(0);
        assert_eq!((a.lead.attempts, b.lead.attempts), (1, 1));
        assert_ne!(a.claim, b.claim);
        let stale = store.create_session(&claimed_call(c, lead, Some(&a.claim)));
        assert!(
            matches!(stale, Err(Error::ClaimNotHeld { .. })),
            "{stale:?}"
        );
        assert_eq!(sessions_of(&store, lead), 0);
        store
            .create_session(&claimed_call(c, lead, Some(&b.claim)))
            .unwrap();
        assert_eq!(sessions_of(&store, lead), 1);
    }

    #[test]
    fn a_claim_token_is_refused_once_the_attempt_is_recorded() {
        let (mut store, c, lead) = setup();
        let a = store.claim_due_leads(c, t(1), 1).unwrap().remove(0);
        let first = claimed_call(c, lead, Some(&a.claim));
        store.create_session(&first).unwrap();
        store
            .finish_session(first.id, &Finish::failed(EndReason::Busy, t(3)))
            .unwrap();
        store
            .record_attempt(lead, Outcome::Busy, Some(first.id), t(3))
            .unwrap();
        let late = store.create_session(&claimed_call(c, lead, Some(&a.claim)));
        assert!(matches!(late, Err(Error::ClaimNotHeld { .. })), "{late:?}");
        assert_eq!(sessions_of(&store, lead), 1);
    }

    #[test]
    fn a_session_without_a_claim_token_is_written_as_before() {
        let (mut store, c, lead) = setup();
        // Not claimed at all (a direct API call for the lead), then claimed.
        store.create_session(&claimed_call(c, lead, None)).unwrap();
        store.claim_due_leads(c, t(10), 1).unwrap();
        store.create_session(&claimed_call(c, lead, None)).unwrap();
        assert_eq!(sessions_of(&store, lead), 2);
        // A token without its lead is a caller error.
        let mut s = NewSession::outbound(SessionId::new_v4(), t(2));
        s.claim = Some(ClaimToken::generate().unwrap());
        assert!(matches!(
            store.create_session(&s),
            Err(Error::InvalidInput {
                field: "claim_token",
                ..
            })
        ));
    }

    #[test]
    fn a_release_is_refused_once_the_attempt_has_a_session() {
        let (mut store, c, lead) = setup();
        let a = store.claim_due_leads(c, t(1), 1).unwrap().remove(0);
        store
            .create_session(&claimed_call(c, lead, Some(&a.claim)))
            .unwrap();
        let e = store.release_lead(lead, t(3)).unwrap_err();
        assert!(
            matches!(e, Error::Conflict { reason, .. } if reason.contains("call started")),
            "{e}"
        );
        let l = store.get_lead(lead).unwrap();
        assert_eq!((l.status, l.attempts), (LeadStatus::InProgress, 1));
    }

    #[test]
    fn adopt_claim_moves_the_claim_and_refuses_a_lead_not_in_progress() {
        let (mut store, c, lead) = setup();
        assert!(matches!(
            store.adopt_claim(lead, t(1)),
            Err(Error::Conflict { .. })
        ));
        store.claim_due_leads(c, t(1), 1).unwrap();
        store
            .conn
            .execute("UPDATE leads SET claimed_by = 'dead:1'", &[])
            .unwrap();
        store.adopt_claim(lead, t(2)).unwrap();
        let claims = store.claimed_leads(c).unwrap();
        assert_eq!(claims[0].claimed_by.as_ref(), Some(store.writer()));
    }
}
