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
//!
//! Releasing on "no session" is safe against the dead run's POST still on
//! its way to the agent (killed after sending it, before the agent wrote
//! the row): the release clears the claim's token in the same transaction
//! that checks there is no session, and the agent writes a row for that
//! POST only while the lead is claimed under the token it carries. So the
//! late POST dials nothing (409), also after this run claimed the lead
//! again (a new token). If the row lands between the read and the release,
//! the release is refused and the row decides. (crm-store `claims` module
//! docs.)

use callbridge_crm_store::outcome_of;
use callbridge_crm_store::{CampaignId, Error as StoreError, Lead, Outcome, SessionId, Store};
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
        let attempt = match store.attempt_session(lead.id)? {
            None => match store.release_lead(lead.id, now) {
                Ok(()) => {
                    out.released.push(lead);
                    continue;
                }
                // The attempt's row landed after the read (the dead run's
                // POST reached the agent just now): it decides below.
                Err(StoreError::Conflict { .. }) => store.attempt_session(lead.id)?,
                Err(e) => return Err(e.into()),
            },
            some => some,
        };
        match attempt {
            // No longer in progress: settled by someone else meanwhile.
            None => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_crm_store::{
        CampaignSettings, CampaignStatus, EndReason, Finish, LeadStatus, NewLead, NewSession,
        PhoneNumber,
    };

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_763_380_800 + s).unwrap()
    }

    #[test]
    fn each_leftover_claim_is_released_recorded_or_adopted_by_its_session() {
        let mut store = Store::open(":memory:").unwrap();
        let mut s = CampaignSettings::new("c", "gemini");
        s.max_concurrent = 10;
        let c = store.create_campaign(&s, t(0)).unwrap();
        store
            .set_campaign_status(c, CampaignStatus::Active, t(0))
            .unwrap();
        let leads: Vec<NewLead> = (0..4)
            .map(|i| NewLead::new(PhoneNumber::parse(&format!("+1555000000{i}")).unwrap()))
            .collect();
        let ids = store.add_leads(c, &leads, t(0)).unwrap();
        assert_eq!(store.claim_due_leads(c, t(1), 10).unwrap().len(), 4);
        let call = |store: &mut Store, lead| {
            let id = SessionId::new_v4();
            let mut n = NewSession::outbound(id, t(2));
            n.campaign = Some(c);
            n.lead = Some(lead);
            store.create_session(&n).unwrap();
            id
        };
        // ids[0]: killed before the POST (no session).
        // ids[1]: its call ended (answered, hung up).
        let ended = call(&mut store, ids[1]);
        store
            .finish_session(ended, &Finish::ended(EndReason::CallerHangup, t(3)))
            .unwrap();
        // ids[2]: its call is still live in a running agent (this process).
        let live = call(&mut store, ids[2]);
        // ids[3]: its call failed busy.
        let busy = call(&mut store, ids[3]);
        let mut f = Finish::failed(EndReason::Busy, t(3));
        f.sip_status = Some(486);
        store.finish_session(busy, &f).unwrap();

        let r = reconcile(&mut store, c, t(4)).unwrap();
        assert_eq!(
            r.released.iter().map(|l| l.id).collect::<Vec<_>>(),
            [ids[0]]
        );
        let mut recorded: Vec<_> = r.recorded.iter().map(|(l, s, o)| (l.id, *s, *o)).collect();
        recorded.sort_by_key(|r| r.0);
        assert_eq!(
            recorded,
            [
                (ids[1], ended, Outcome::Completed),
                (ids[3], busy, Outcome::Busy)
            ]
        );
        assert_eq!(
            r.adopted
                .iter()
                .map(|(l, s)| (l.id, *s))
                .collect::<Vec<_>>(),
            [(ids[2], live)]
        );
        let get = |i: usize| store.get_lead(ids[i]).unwrap();
        // Released: the attempt is given back.
        assert_eq!((get(0).status, get(0).attempts), (LeadStatus::Pending, 0));
        assert_eq!((get(1).status, get(1).attempts), (LeadStatus::Done, 1));
        assert_eq!(get(1).last_session, Some(ended));
        assert_eq!(
            (get(2).status, get(2).attempts),
            (LeadStatus::InProgress, 1)
        );
        assert_eq!((get(3).status, get(3).attempts), (LeadStatus::Retry, 1));
        // A second reconcile finds only the adopted live call, which it
        // adopts again (this process claims it); nothing is recorded twice.
        let again = reconcile(&mut store, c, t(5)).unwrap();
        assert!(again.released.is_empty() && again.recorded.is_empty());
        assert_eq!(again.adopted.len(), 1);
    }
}
