//! The store writer's health flag and counters, shared lock-free with the
//! manager (admission, `/readyz`, `/metrics`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The kinds of store operation, for the failure counter's `op` label.
pub const OPS: [&str; 7] = [
    "create", "state", "turns", "events", "update", "finish", "outbox",
];

/// Shared between the store thread and its readers.
#[derive(Debug)]
pub struct StoreHealth {
    healthy: AtomicBool,
    failures: [AtomicU64; OPS.len()],
    journaled: AtomicU64,
    replayed: AtomicU64,
    rejected: AtomicU64,
    lost: AtomicU64,
    backlog: AtomicU64,
    in_memory: AtomicU64,
    refused_calls: AtomicU64,
    written: AtomicU64,
    commits: AtomicU64,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            healthy: AtomicBool::new(true),
            failures: Default::default(),
            journaled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            in_memory: AtomicU64::new(0),
            refused_calls: AtomicU64::new(0),
            written: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }
}

/// The store writer's figures as of one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Whether the last write (or write probe) reached the store.
    pub healthy: bool,
    /// Store writes that failed because the store could not be written,
    /// by operation (every kind of [`OPS`] listed), retries included.
    pub write_failures: Vec<(&'static str, u64)>,
    /// Writes accepted but not yet in the store (journal plus memory).
    pub backlog: u64,
    /// Of those, how many are held in memory only (neither the store nor
    /// the journal could take them).
    pub in_memory: u64,
    /// Writes appended to the journal since start.
    pub journaled: u64,
    /// Writes applied to the store from the journal or memory backlog.
    pub replayed: u64,
    /// Writes the store refused for what they say (not retried).
    pub rejected: u64,
    /// Writes lost: neither the store, the journal nor the bounded memory
    /// backlog could take them.
    pub lost: u64,
    /// Calls refused because their session row could not be written.
    pub refused_calls: u64,
    /// Session rows and writes committed to the store as they came (not
    /// from the backlog: see `replayed`).
    pub written: u64,
    /// The transactions that committed them: `written / commits` is how
    /// many writes a group commit carried on average.
    pub commits: u64,
}

impl StoreHealth {
    /// Whether the last write or probe reached the store.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Everything as of now.
    pub fn stats(&self) -> StoreStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            healthy: self.healthy(),
            write_failures: OPS
                .iter()
                .zip(&self.failures)
                .map(|(op, n)| (*op, l(n)))
                .collect(),
            backlog: l(&self.backlog),
            in_memory: l(&self.in_memory),
            journaled: l(&self.journaled),
            replayed: l(&self.replayed),
            rejected: l(&self.rejected),
            lost: l(&self.lost),
            refused_calls: l(&self.refused_calls),
            written: l(&self.written),
            commits: l(&self.commits),
        }
    }

    pub(crate) fn set_healthy(&self, h: bool) {
        self.healthy.store(h, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, op: &str) {
        if let Some(i) = OPS.iter().position(|o| *o == op) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn journaled(&self, n: u64) {
        self.journaled.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one transaction that committed `writes` writes.
    pub(crate) fn committed(&self, writes: u64) {
        self.written.fetch_add(writes, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_backlog(&self, total: u64, in_memory: u64) {
        self.backlog.store(total, Ordering::Relaxed);
        self.in_memory.store(in_memory, Ordering::Relaxed);
    }

    /// Counts a call refused because its row could not be written.
    pub(crate) fn refused_call(&self) {
        self.refused_calls.fetch_add(1, Ordering::Relaxed);
    }
}
