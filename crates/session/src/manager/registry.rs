//! The one registry of live calls, keyed by session id, SIP Call-ID, the
//! SIP core's `CallRef` and (for campaign calls) the lead. Admission is one
//! locked insert that checks every key, so a duplicate INVITE or a second
//! originate for a live lead never makes a second session; removal happens
//! in one place ([`Registry::remove`], called by the call's supervisor).

use std::collections::{HashMap, VecDeque};

use callbridge_crm_store::{LeadId, SessionId};
use callbridge_sip::ua::{CallRef, Event as SipEvent};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::bridge::msg::CallMsg;
use crate::lifecycle::{Direction, EndReason, Phase};

/// SIP events kept for a `CallRef` not bound yet (an outbound call whose
/// first response raced its binding).
const MAX_ORPHANS: usize = 64;

#[derive(Debug)]
pub(crate) struct Entry {
    pub mailbox: mpsc::Sender<CallMsg>,
    pub direction: Direction,
    pub phase: Phase,
    pub call_id: Option<String>,
    pub call_ref: Option<CallRef>,
    pub lead: Option<LeadId>,
    /// The call's event channel, for subscribers (`crate::events`).
    pub events: crate::events::CallFeed,
}

/// Why admission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Duplicate,
    LeadBusy,
    Full,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_id: HashMap<SessionId, Entry>,
    by_call_id: HashMap<String, SessionId>,
    by_ref: HashMap<CallRef, SessionId>,
    by_lead: HashMap<LeadId, SessionId>,
    orphans: VecDeque<(CallRef, SipEvent)>,
    ended: HashMap<EndReason, u64>,
    pub admitting: bool,
}

/// A SIP event whose call's mailbox was full: the router sends it, waiting
/// for room, without holding the registry's lock.
#[derive(Debug)]
pub(crate) struct Pending {
    pub mailbox: mpsc::Sender<CallMsg>,
    pub msg: CallMsg,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            admitting: true,
            ..Default::default()
        }
    }

    pub fn admit(&mut self, id: SessionId, e: Entry, capacity: usize) -> Result<(), Refusal> {
        if let Some(cid) = &e.call_id
            && self.by_call_id.contains_key(cid)
        {
            return Err(Refusal::Duplicate);
        }
        if let Some(lead) = e.lead
            && self.by_lead.contains_key(&lead)
        {
            return Err(Refusal::LeadBusy);
        }
        if !self.admitting || self.by_id.len() >= capacity {
            return Err(Refusal::Full);
        }
        if let Some(cid) = &e.call_id {
            self.by_call_id.insert(cid.clone(), id);
        }
        if let Some(r) = e.call_ref {
            self.by_ref.insert(r, id);
        }
        if let Some(lead) = e.lead {
            self.by_lead.insert(lead, id);
        }
        self.by_id.insert(id, e);
        Ok(())
    }

    /// Indexes an outbound call by its Call-ID (our own, fresh from the
    /// UA, so it cannot collide with a live one; an existing index entry is
    /// left alone all the same).
    pub fn bind_call_id(&mut self, id: SessionId, call_id: String) {
        let Some(e) = self.by_id.get_mut(&id) else {
            return;
        };
        if e.call_id.is_some() || self.by_call_id.contains_key(&call_id) {
            return;
        }
        self.by_call_id.insert(call_id.clone(), id);
        e.call_id = Some(call_id);
    }

    /// Binds an outbound call's `CallRef` and hands it any events that
    /// arrived before.
    pub fn bind(&mut self, id: SessionId, call: CallRef) {
        let Some(e) = self.by_id.get_mut(&id) else {
            return;
        };
        e.call_ref = Some(call);
        self.by_ref.insert(call, id);
        let mailbox = e.mailbox.clone();
        let mut keep = VecDeque::with_capacity(self.orphans.len());
        for (r, ev) in self.orphans.drain(..) {
            if r == call {
                if mailbox.try_send(CallMsg::Sip(ev)).is_err() {
                    warn!(session = %id, "call mailbox full; SIP event dropped");
                }
            } else {
                keep.push_back((r, ev));
            }
        }
        self.orphans = keep;
    }

    /// Routes a SIP event to its call's mailbox. When the mailbox is full
    /// the event comes back with the mailbox, for the router to wait for
    /// room outside the lock: a live call's BYE, CANCEL, re-INVITE, ACK or
    /// transfer outcome is never dropped. Only a DTMF digit is shed when
    /// its call is that far behind (an INFO flood): a digit is an input
    /// the call can lose, like an RTP packet, and waiting for each would
    /// let one caller slow every other call's signalling.
    pub fn route(&mut self, call: CallRef, ev: SipEvent) -> Option<Pending> {
        match self.by_ref.get(&call).and_then(|id| self.by_id.get(id)) {
            Some(e) => match e.mailbox.try_send(CallMsg::Sip(ev)) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(CallMsg::Sip(SipEvent::Dtmf { .. }))) => {
                    debug!(?call, "call mailbox full; DTMF digit shed");
                    None
                }
                Err(mpsc::error::TrySendError::Full(msg)) => Some(Pending {
                    mailbox: e.mailbox.clone(),
                    msg,
                }),
                // The call task has ended: nothing is left to tell.
                Err(mpsc::error::TrySendError::Closed(_)) => None,
            },
            None => {
                if self.orphans.len() >= MAX_ORPHANS {
                    self.orphans.pop_front();
                }
                self.orphans.push_back((call, ev));
                None
            }
        }
    }

    pub fn set_phase(&mut self, id: SessionId, phase: Phase) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.phase = phase;
        }
    }

    pub fn mailbox(&self, id: SessionId) -> Option<mpsc::Sender<CallMsg>> {
        self.by_id.get(&id).map(|e| e.mailbox.clone())
    }

    /// A new subscriber to a live call's events.
    pub fn subscribe(
        &self,
        id: SessionId,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::events::Published>> {
        self.by_id.get(&id).map(|e| e.events.subscribe())
    }

    /// A live call's kept events above `after` and a subscriber to the
    /// rest ([`crate::events::CallFeed::replay`]).
    pub fn replay(
        &self,
        id: SessionId,
        after: u64,
    ) -> Option<(
        Vec<crate::events::Published>,
        tokio::sync::broadcast::Receiver<crate::events::Published>,
    )> {
        self.by_id.get(&id).map(|e| e.events.replay(after))
    }

    pub fn by_call_id(&self, call_id: &str) -> Option<(SessionId, mpsc::Sender<CallMsg>)> {
        let id = *self.by_call_id.get(call_id)?;
        self.by_id.get(&id).map(|e| (id, e.mailbox.clone()))
    }

    pub fn mailboxes(&self) -> Vec<mpsc::Sender<CallMsg>> {
        self.by_id.values().map(|e| e.mailbox.clone()).collect()
    }

    /// Removes a call (the one place a call leaves the registry) and counts
    /// its end reason.
    pub fn remove(&mut self, id: SessionId, reason: Option<EndReason>) {
        if self.unindex(id).is_some() {
            *self
                .ended
                .entry(reason.unwrap_or(EndReason::Error))
                .or_default() += 1;
        }
    }

    /// Takes back an admission whose call never started (its row could
    /// not be written): frees its keys, counts no end.
    pub fn withdraw(&mut self, id: SessionId) {
        self.unindex(id);
    }

    fn unindex(&mut self, id: SessionId) -> Option<Direction> {
        let e = self.by_id.remove(&id)?;
        if let Some(cid) = e.call_id {
            self.by_call_id.remove(&cid);
        }
        if let Some(r) = e.call_ref {
            self.by_ref.remove(&r);
            self.orphans.retain(|(o, _)| *o != r);
        }
        if let Some(l) = e.lead {
            self.by_lead.remove(&l);
        }
        Some(e.direction)
    }

    /// How many calls are live (without listing them).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn calls(&self) -> Vec<(SessionId, Direction, Phase)> {
        self.by_id
            .iter()
            .map(|(id, e)| (*id, e.direction, e.phase))
            .collect()
    }

    pub fn ended(&self) -> Vec<(EndReason, u64)> {
        self.ended.iter().map(|(r, n)| (*r, *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(call_id: Option<&str>, lead: Option<i64>) -> (Entry, mpsc::Receiver<CallMsg>) {
        let (tx, rx) = mpsc::channel(4);
        (
            Entry {
                mailbox: tx,
                direction: Direction::Inbound,
                phase: Phase::Created,
                call_id: call_id.map(str::to_owned),
                call_ref: None,
                lead: lead.map(LeadId),
                events: crate::events::CallFeed::new(),
            },
            rx,
        )
    }

    #[test]
    fn a_second_session_for_a_live_call_id_or_lead_is_refused() {
        let mut r = Registry::new();
        let (a, _ra) = entry(Some("c1"), None);
        let (b, _rb) = entry(Some("c1"), None);
        r.admit(SessionId::new_v4(), a, 10).unwrap();
        assert_eq!(r.admit(SessionId::new_v4(), b, 10), Err(Refusal::Duplicate));
        let (c, _rc) = entry(None, Some(5));
        let (d, _rd) = entry(None, Some(5));
        r.admit(SessionId::new_v4(), c, 10).unwrap();
        assert_eq!(r.admit(SessionId::new_v4(), d, 10), Err(Refusal::LeadBusy));
        assert_eq!(r.calls().len(), 2);
    }

    #[test]
    fn an_outbound_call_id_bound_later_is_indexed_and_refuses_a_duplicate() {
        let mut r = Registry::new();
        let out = SessionId::new_v4();
        let (a, _ra) = entry(None, Some(7));
        r.admit(out, a, 10).unwrap();
        r.bind_call_id(out, "our-cid".into());
        let (b, _rb) = entry(Some("our-cid"), None);
        assert_eq!(r.admit(SessionId::new_v4(), b, 10), Err(Refusal::Duplicate));
    }

    #[test]
    fn capacity_and_shutdown_refuse_admission() {
        let mut r = Registry::new();
        let (a, _ra) = entry(Some("a"), None);
        let (b, _rb) = entry(Some("b"), None);
        r.admit(SessionId::new_v4(), a, 1).unwrap();
        assert_eq!(r.admit(SessionId::new_v4(), b, 1), Err(Refusal::Full));
        r.admitting = false;
        let (c, _rc) = entry(Some("c"), None);
        assert_eq!(r.admit(SessionId::new_v4(), c, 10), Err(Refusal::Full));
    }

    #[test]
    fn removal_frees_every_key_once_and_counts_the_reason_once() {
        let mut r = Registry::new();
        let id = SessionId::new_v4();
        let (a, _ra) = entry(Some("c1"), Some(1));
        r.admit(id, a, 10).unwrap();
        r.bind(id, CallRef(9));
        r.remove(id, Some(EndReason::CallerHangup));
        r.remove(id, Some(EndReason::Error));
        assert!(r.calls().is_empty());
        assert_eq!(r.ended(), vec![(EndReason::CallerHangup, 1)]);
        let (again, _rb) = entry(Some("c1"), Some(1));
        r.admit(SessionId::new_v4(), again, 10).unwrap();
    }

    #[test]
    fn a_full_mailbox_hands_back_every_event_but_a_dtmf_digit() {
        use callbridge_sip::ua::EndReason as SipEnd;
        let mut r = Registry::new();
        let id = SessionId::new_v4();
        let (a, mut rx) = entry(None, None);
        r.admit(id, a, 10).unwrap();
        r.bind(id, CallRef(4));
        let dtmf = || SipEvent::Dtmf {
            call: CallRef(4),
            digit: '5',
            duration_ms: 100,
        };
        for _ in 0..4 {
            assert!(r.route(CallRef(4), dtmf()).is_none());
        }
        // Full: one more digit is shed, the BYE comes back to be sent.
        assert!(r.route(CallRef(4), dtmf()).is_none());
        let bye = SipEvent::Ended {
            call: CallRef(4),
            reason: SipEnd::RemoteBye,
        };
        let pending = r.route(CallRef(4), bye).expect("the BYE is kept");
        assert!(matches!(
            pending.msg,
            CallMsg::Sip(SipEvent::Ended {
                reason: SipEnd::RemoteBye,
                ..
            })
        ));
        // Once the call has ended nothing waits on its mailbox.
        rx.close();
        let again = SipEvent::Ended {
            call: CallRef(4),
            reason: SipEnd::RemoteBye,
        };
        assert!(r.route(CallRef(4), again).is_none());
    }

    #[test]
    fn events_before_binding_reach_the_call_when_it_binds() {
        let mut r = Registry::new();
        let id = SessionId::new_v4();
        let (a, mut rx) = entry(None, None);
        r.admit(id, a, 10).unwrap();
        r.route(CallRef(3), SipEvent::Confirmed { call: CallRef(3) });
        assert!(rx.try_recv().is_err());
        r.bind(id, CallRef(3));
        assert!(matches!(
            rx.try_recv(),
            Ok(CallMsg::Sip(SipEvent::Confirmed { .. }))
        ));
        r.route(CallRef(3), SipEvent::Confirmed { call: CallRef(3) });
        assert!(rx.try_recv().is_ok());
    }
}
