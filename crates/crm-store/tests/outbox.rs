//! The webhook outbox on both backends: rows written with a session's
//! other writes (and replayed once), claimed under a lease, delivered,
//! retried and failed, released at a node's restart, never claimed by two
//! connections at once, bounded, and pruned by age; each row keeps its
//! target (the routing profile whose receiver it is).
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use callbridge_crm_store::*;
use common::{fresh, fresh_url, t};

const LEASE: Duration = Duration::from_secs(30);

fn session(store: &mut Store) -> SessionId {
    let id = SessionId::new_v4();
    store
        .create_session(&NewSession::inbound(id, t(0)))
        .unwrap();
    id
}

fn row(id: SessionId, seq: u32, url: &str) -> NewOutbox {
    NewOutbox::new(
        format!("{id}:{seq}"),
        "call.started",
        url,
        format!("{{\"seq\":{seq}}}"),
        t(i64::from(seq)),
    )
}

fn rows_are_claimed_once_under_a_lease_and_delivered() {
    let (_d, mut s) = fresh();
    let id = session(&mut s);
    s.enqueue_outbox(id, &[row(id, 1, "http://a/h"), row(id, 2, "http://a/h")])
        .unwrap();
    // Not due before its event.
    assert!(s.claim_outbox(t(0), 10, LEASE, "n1").unwrap().is_empty());
    let got = s.claim_outbox(t(5), 10, LEASE, "n1").unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].key, format!("{id}:1"));
    assert_eq!(got[0].status, DeliveryStatus::Pending);
    // Under the lease nobody claims them again.
    assert!(s.claim_outbox(t(6), 10, LEASE, "n2").unwrap().is_empty());
    s.outbox_delivered(got[0].id, t(7), 204).unwrap();
    // The other one's lease runs out: it is claimed again (the node died).
    let again = s.claim_outbox(t(40), 10, LEASE, "n2").unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, got[1].id);
    let listed = s.outbox_for_session(id).unwrap();
    assert_eq!(listed[0].status, DeliveryStatus::Delivered);
    assert_eq!(listed[0].attempts, 1);
    assert_eq!(listed[0].last_status, Some(204));
    assert_eq!(listed[0].delivered_at, Some(t(7)));
    assert_eq!(s.outbox_pending().unwrap(), 1);
}

fn a_failed_attempt_waits_for_its_retry_and_a_last_one_fails_the_row() {
    let (_d, mut s) = fresh();
    let id = session(&mut s);
    s.enqueue_outbox(id, &[row(id, 1, "http://a/h")]).unwrap();
    let got = s.claim_outbox(t(1), 10, LEASE, "n1").unwrap();
    s.outbox_retry(got[0].id, t(100), &"e".repeat(5000), Some(503))
        .unwrap();
    assert!(s.claim_outbox(t(99), 10, LEASE, "n1").unwrap().is_empty());
    let r = s.claim_outbox(t(100), 10, LEASE, "n1").unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].attempts, 1);
    assert_eq!(r[0].last_status, Some(503));
    assert_eq!(r[0].last_error.as_ref().unwrap().len(), MAX_OUTBOX_ERROR);
    s.outbox_failed(r[0].id, "could not connect", None).unwrap();
    assert!(
        s.claim_outbox(t(10_000), 10, LEASE, "n1")
            .unwrap()
            .is_empty()
    );
    let listed = s.outbox_for_session(id).unwrap();
    assert_eq!(listed[0].status, DeliveryStatus::Failed);
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[0].last_error.as_deref(), Some("could not connect"));
}

fn a_restarted_node_takes_up_its_own_claims_at_once() {
    let (_d, mut s) = fresh();
    let id = session(&mut s);
    s.enqueue_outbox(id, &[row(id, 1, "http://a/h"), row(id, 2, "http://b/h")])
        .unwrap();
    let mine = s.claim_outbox(t(5), 1, LEASE, "n1").unwrap();
    let theirs = s.claim_outbox(t(5), 1, LEASE, "n2").unwrap();
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(s.release_outbox_claims("n1").unwrap(), 1);
    let again = s.claim_outbox(t(6), 10, LEASE, "n1").unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, mine[0].id, "n2's lease is left alone");
}

fn a_replayed_write_adds_no_second_row_and_the_sizes_are_bounded() {
    let (_d, mut s) = fresh();
    let id = session(&mut s);
    let w = SessionWrite::Outbox(vec![row(id, 1, "http://a/h"), row(id, 1, "http://b/h")]);
    assert_eq!(s.apply_write(id, 1, &w).unwrap(), Applied::Applied);
    assert_eq!(s.apply_write(id, 1, &w).unwrap(), Applied::AlreadyApplied);
    // The same event for the same receiver again (another write number):
    // still one row.
    s.enqueue_outbox(id, &[row(id, 1, "http://a/h")]).unwrap();
    assert_eq!(s.outbox_for_session(id).unwrap().len(), 2);
    let mut big = row(id, 2, "http://a/h");
    big.payload = "x".repeat(MAX_OUTBOX_PAYLOAD + 1);
    assert!(matches!(
        s.enqueue_outbox(id, &[big]),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.enqueue_outbox(id, &[row(id, 3, "")]),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.enqueue_outbox(SessionId::new_v4(), &[row(id, 4, "http://a/h")]),
        Err(Error::NotFound { .. })
    ));
    assert!(s.claim_outbox(t(10), 1000, LEASE, "n").unwrap().len() <= MAX_OUTBOX_CLAIM as usize);
}

fn old_delivered_and_failed_rows_are_pruned_and_pending_ones_kept() {
    let (_d, mut s) = fresh();
    let id = session(&mut s);
    s.enqueue_outbox(
        id,
        &[
            row(id, 1, "http://a/h"),
            row(id, 2, "http://a/h"),
            row(id, 3, "http://a/h"),
        ],
    )
    .unwrap();
    let got = s.claim_outbox(t(5), 10, LEASE, "n").unwrap();
    s.outbox_delivered(got[0].id, t(5), 200).unwrap();
    s.outbox_failed(got[1].id, "gone", Some(410)).unwrap();
    assert_eq!(s.prune_outbox(t(1)).unwrap(), 0, "nothing that old");
    assert_eq!(s.prune_outbox(t(1000)).unwrap(), 2);
    let left = s.outbox_for_session(id).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].status, DeliveryStatus::Pending);
}

fn two_nodes_claiming_at_once_never_take_one_row_twice() {
    const ROWS: u32 = 120;
    let (_d, url) = fresh_url();
    let mut setup = Store::open_url(&url, &OpenOptions::default()).unwrap();
    let id = session(&mut setup);
    let rows: Vec<_> = (1..=ROWS).map(|i| row(id, i, "http://a/h")).collect();
    setup.enqueue_outbox(id, &rows).unwrap();
    let seen: Arc<Mutex<Vec<OutboxId>>> = Arc::default();
    let start = Arc::new(Barrier::new(2));
    let nodes: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|node| {
            let (url, seen, start) = (url.clone(), Arc::clone(&seen), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut s = Store::open_url(&url, &OpenOptions::default()).unwrap();
                start.wait();
                loop {
                    let got = s.claim_outbox(t(10_000), 7, LEASE, node).unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for r in got {
                        s.outbox_delivered(r.id, t(10_000), 200).unwrap();
                        seen.lock().unwrap().push(r.id);
                    }
                }
            })
        })
        .collect();
    for n in nodes {
        n.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), ROWS as usize, "every row once");
    assert_eq!(unique.len(), ROWS as usize, "no row twice");
}

fn a_rows_target_is_kept_through_its_claim_and_bounded() {
    let (_d, mut s) = fresh();
    let id = session(&mut s);
    let own = row(id, 1, "http://a/h").for_target(Some("sales".into()));
    s.enqueue_outbox(id, &[own, row(id, 2, "http://b/h")])
        .unwrap();
    let got = s.claim_outbox(t(5), 10, LEASE, "n").unwrap();
    assert_eq!(got[0].target.as_deref(), Some("sales"));
    assert_eq!(got[1].target, None, "the global receivers");
    let listed = s.outbox_for_session(id).unwrap();
    assert_eq!(listed[0].target.as_deref(), Some("sales"));
    for bad in [String::new(), "x".repeat(MAX_OUTBOX_FIELD + 1)] {
        assert!(matches!(
            s.enqueue_outbox(id, &[row(id, 3, "http://a/h").for_target(Some(bad))]),
            Err(Error::InvalidInput { .. })
        ));
    }
}

fn the_next_due_time_is_when_a_row_can_next_be_claimed() {
    let (_d, mut s) = fresh();
    assert_eq!(s.outbox_next_due().unwrap(), None, "nothing pending");
    let id = session(&mut s);
    s.enqueue_outbox(id, &[row(id, 3, "http://a/h"), row(id, 5, "http://b/h")])
        .unwrap();
    assert_eq!(s.outbox_next_due().unwrap(), Some(t(3)));
    // Claimed by another node: not before its lease ends; the other row
    // is due first.
    let got = s.claim_outbox(t(3), 1, LEASE, "n2").unwrap();
    assert_eq!(got[0].key, format!("{id}:3"));
    assert_eq!(s.outbox_next_due().unwrap(), Some(t(5)));
    let other = s.claim_outbox(t(5), 1, LEASE, "n2").unwrap();
    assert_eq!(
        s.outbox_next_due().unwrap(),
        Some(t(33)),
        "the first lease's end"
    );
    // A retry is due at its time; a delivered row is no longer pending.
    s.outbox_retry(got[0].id, t(100), "HTTP 503", Some(503))
        .unwrap();
    s.outbox_delivered(other[0].id, t(6), 204).unwrap();
    assert_eq!(s.outbox_next_due().unwrap(), Some(t(100)));
    s.outbox_failed(got[0].id, "gave up", None).unwrap();
    assert_eq!(s.outbox_next_due().unwrap(), None);
}

on_both_backends!(
    the_next_due_time_is_when_a_row_can_next_be_claimed,
    a_rows_target_is_kept_through_its_claim_and_bounded,
    rows_are_claimed_once_under_a_lease_and_delivered,
    a_failed_attempt_waits_for_its_retry_and_a_last_one_fails_the_row,
    a_restarted_node_takes_up_its_own_claims_at_once,
    a_replayed_write_adds_no_second_row_and_the_sizes_are_bounded,
    old_delivered_and_failed_rows_are_pruned_and_pending_ones_kept,
    two_nodes_claiming_at_once_never_take_one_row_twice,
);
