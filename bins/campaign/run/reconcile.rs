//! Reconciling what a killed run left: every lead of the campaign still
//! `in-progress` whose claimer is dead (or is this process) is settled from
//! the sessions the agent recorded (see `Store::attempt_session`):
//!
//! - no session for the attempt: the call never started, the claim is
//!   released (the attempt is given back, the lead is due again);
//! - a session that ended: its outcome is recorded (the lead is not
//!   dialled again for this attempt);
//! - a session still live in a running agent: the claim is adopted and the
//!   call followed to its end like one this run placed;
//! - a live session whose agent died: recorded as a failed attempt.

use callbridge::api::outcome_of;
use callbridge_crm_store::{CampaignId, Lead, Outcome, SessionId, Store};
use jiff::Timestamp;

use crate::error::Result;

/// What reconciliation did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Claims released (calls that never started).
    pub released: Vec<Lead>,
    /// Outcomes recorded from ended sessions.
    pub recorded: Vec<(Lead, SessionId, Outcome)>,
    /// Live calls adopted, to follow.
    pub adopted: Vec<(Lead, SessionId)>,
    /// Claims of other running processes, left alone.
    pub foreign: usize,
}

/// Settles campaign `c`'s leftover claims (see the module docs).
pub fn reconcile(store: &mut Store, c: CampaignId, now: Timestamp) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    let me = store.writer().clone();
    for claim in store.claimed_leads(c)? {
        if claim
            .claimed_by
            .as_ref()
            .is_some_and(|w| *w != me && w.is_alive())
        {
            out.foreign += 1;
            continue;
        }
        let lead = claim.lead;
        match store.attempt_session(lead.id)? {
            None => {
                store.release_lead(lead.id, now)?;
                out.released.push(lead);
            }
            Some(a) => {
                let s = &a.session;
                let writer_alive = a.writer.as_ref().is_none_or(|w| w.is_alive());
                match outcome_of(s.state, s.end_reason, s.sip_status) {
                    Some(o) => {
                        store.record_attempt(lead.id, o, Some(s.id), now)?;
                        out.recorded.push((lead, s.id, o));
                    }
                    None if writer_alive => {
                        store.adopt_claim(lead.id, now)?;
                        out.adopted.push((lead, s.id));
                    }
                    None => {
                        store.record_attempt(lead.id, Outcome::Failed, Some(s.id), now)?;
                        out.recorded.push((lead, s.id, Outcome::Failed));
                    }
                }
            }
        }
    }
    Ok(out)
}
