//! Several nodes (agents, dialers) on one store: concurrent claims from
//! two connections never hand out a lead twice and keep the campaign's
//! `max_concurrent`; one dialer per campaign through the PostgreSQL
//! advisory lock; every session records its node, recovery touches only
//! its own node's sessions and claims, listings show every node's.
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use callbridge_crm_store::*;
use common::{Db, active_campaign, backend, fresh_url, leads, t};

fn on_node(url: &str, node: &str) -> Store {
    let opts = OpenOptions {
        node: Some(NodeId::new(node).unwrap()),
        ..OpenOptions::default()
    };
    Store::open_url(url, &opts).unwrap()
}

fn two_dialers_claiming_at_once_never_claim_a_lead_twice() {
    const LEADS: u32 = 200;
    const MAX_CONCURRENT: u32 = 7;
    let (_d, url) = fresh_url();
    let mut setup = on_node(&url, "setup");
    let c = active_campaign(&mut setup, "c", MAX_CONCURRENT);
    setup.add_leads(c, &leads(LEADS), t(0)).unwrap();

    let claimed: Arc<Mutex<Vec<LeadId>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(2));
    let dialers: Vec<_> = ["dialer-a", "dialer-b"]
        .into_iter()
        .map(|node| {
            let (url, claimed, done, start) = (
                url.clone(),
                Arc::clone(&claimed),
                Arc::clone(&done),
                Arc::clone(&start),
            );
            std::thread::spawn(move || {
                let mut s = on_node(&url, node);
                start.wait();
                let mut rounds = 0;
                while done.load(Ordering::SeqCst) < LEADS as usize {
                    rounds += 1;
                    assert!(rounds < 10_000, "the claims never finished");
                    let got = s.claim_due_leads(c, t(1), 3).unwrap();
                    // Never more in progress than the campaign allows,
                    // whoever claimed them.
                    let busy = s
                        .lead_counts(c)
                        .unwrap()
                        .into_iter()
                        .find(|(st, _)| *st == LeadStatus::InProgress)
                        .map_or(0, |(_, n)| n);
                    assert!(busy <= u64::from(MAX_CONCURRENT), "{busy} in progress");
                    for l in got {
                        assert_eq!(l.lead.attempts, 1);
                        claimed.lock().unwrap().push(l.lead.id);
                        s.record_attempt(l.lead.id, Outcome::Completed, None, t(2))
                            .unwrap();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for d in dialers {
        d.join().unwrap();
    }
    let claimed = claimed.lock().unwrap();
    let distinct: HashSet<_> = claimed.iter().collect();
    assert_eq!(claimed.len(), LEADS as usize, "every lead claimed");
    assert_eq!(distinct.len(), claimed.len(), "no lead claimed twice");
    assert_eq!(
        setup.lead_counts(c).unwrap(),
        vec![(LeadStatus::Done, u64::from(LEADS))]
    );
}

fn one_dialer_per_campaign_holds_the_advisory_lock() {
    let (_d, url) = fresh_url();
    let mut a = on_node(&url, "dialer-a");
    let mut b = on_node(&url, "dialer-b");
    let c = active_campaign(&mut a, "c", 1);
    let other = active_campaign(&mut a, "other", 1);
    if backend() == Db::Sqlite {
        // SQLite keeps the dialer's OS file lock; the store says so.
        assert!(matches!(
            a.try_lock_campaign(c),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    assert!(a.try_lock_campaign(c).unwrap());
    assert!(a.try_lock_campaign(c).unwrap(), "held already: still ours");
    assert!(!b.try_lock_campaign(c).unwrap(), "another dialer holds it");
    assert!(b.try_lock_campaign(other).unwrap(), "one lock per campaign");
    a.unlock_campaign(c).unwrap();
    assert!(b.try_lock_campaign(c).unwrap());
    // A dialer that dies (its connection closes) gives its locks back.
    drop(b);
    let mut a2 = on_node(&url, "dialer-a");
    let mut tries = 0;
    // The server notices the closed connection asynchronously.
    while !a2.try_lock_campaign(c).unwrap() {
        tries += 1;
        assert!(tries < 500, "the dead dialer's lock was never released");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn live(s: &mut Store) -> SessionId {
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    s.set_state(id, SessionState::Active, t(1)).unwrap();
    id
}

fn every_session_records_its_node_and_recovery_touches_only_its_own() {
    let (_d, url) = fresh_url();
    let mut a = on_node(&url, "agent-a");
    let mut b = on_node(&url, "agent-b");
    let mine = live(&mut a);
    let theirs = live(&mut b);
    assert_eq!(a.node().as_str(), "agent-a");
    assert_eq!(
        a.get_session(mine).unwrap().node,
        Some(NodeId::new("agent-a").unwrap())
    );
    assert_eq!(
        a.get_session(theirs).unwrap().node,
        Some(NodeId::new("agent-b").unwrap())
    );

    // Node a restarts; every writer looks dead to it, yet b's call is
    // b's to recover.
    let r = a.recover_with(t(10), |_| false).unwrap();
    assert_eq!(r.interrupted, vec![mine]);
    assert_eq!(
        a.get_session(theirs).unwrap().state,
        SessionState::Active,
        "another node's live call is left alone"
    );
    // Listing from either node sees both nodes' sessions.
    for s in [&a, &b] {
        let page = s
            .list_sessions(&SessionFilter::default(), 10, None)
            .unwrap();
        let ids: HashSet<_> = page.items.iter().map(|x| x.id).collect();
        assert_eq!(ids, HashSet::from([mine, theirs]));
    }
    let r = b.recover_with(t(20), |_| false).unwrap();
    assert_eq!(r.interrupted, vec![theirs]);
}

fn recovery_releases_only_its_own_nodes_claims() {
    let (_d, url) = fresh_url();
    let mut a = on_node(&url, "dialer-a");
    let mut b = on_node(&url, "dialer-b");
    let c = active_campaign(&mut a, "c", 10);
    a.add_leads(c, &leads(4), t(0)).unwrap();
    assert_eq!(a.claim_due_leads(c, t(1), 2).unwrap().len(), 2);
    assert_eq!(b.claim_due_leads(c, t(1), 2).unwrap().len(), 2);
    let r = a.recover_with(t(5), |_| false).unwrap();
    assert_eq!((r.released_leads, r.failed_leads), (2, 0));
    let counts = a.lead_counts(c).unwrap();
    assert!(counts.contains(&(LeadStatus::InProgress, 2)), "{counts:?}");
    assert!(counts.contains(&(LeadStatus::Retry, 2)), "{counts:?}");
}

fn a_node_id_is_checked() {
    assert!(NodeId::new("").is_err());
    assert!(NodeId::new(&"x".repeat(MAX_NODE_ID + 1)).is_err());
    assert!(NodeId::new("agent 1").is_err());
    assert!(NodeId::new("agent-1.example_2").is_ok());
}

on_both_backends!(
    two_dialers_claiming_at_once_never_claim_a_lead_twice,
    one_dialer_per_campaign_holds_the_advisory_lock,
    every_session_records_its_node_and_recovery_touches_only_its_own,
    recovery_releases_only_its_own_nodes_claims,
    a_node_id_is_checked,
);
