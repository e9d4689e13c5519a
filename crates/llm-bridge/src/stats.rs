//! Process-wide gauges of what the model clients have running, so tests and
//! the agent's metrics can prove that nothing outlives its session.
//!
//! Owns: the live task and live connection gauges and the RAII guards that
//! move them. A guard is created inside the counted thing (the task's future,
//! the connection value) so the count drops when it is dropped, whether it
//! ended normally, was aborted or was cancelled.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);
static LIVE_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
static SESSIONS_OPENED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_OPENED: AtomicU64 = AtomicU64::new(0);

/// Tasks spawned by model sessions that have not ended yet.
pub fn live_tasks() -> usize {
    LIVE_TASKS.load(Ordering::SeqCst)
}

/// Client WebSocket connections to model servers that are still open.
pub fn live_connections() -> usize {
    LIVE_CONNECTIONS.load(Ordering::SeqCst)
}

/// Sessions opened since the process started.
pub fn sessions_opened() -> u64 {
    SESSIONS_OPENED.load(Ordering::SeqCst)
}

/// Client connections opened since the process started (includes resumption
/// reconnects and failed setups).
pub fn connections_opened() -> u64 {
    CONNECTIONS_OPENED.load(Ordering::SeqCst)
}

/// Counts one live task for its lifetime.
#[derive(Debug)]
pub(crate) struct TaskGuard(());

impl TaskGuard {
    pub(crate) fn new() -> Self {
        LIVE_TASKS.fetch_add(1, Ordering::SeqCst);
        TaskGuard(())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        LIVE_TASKS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts one live connection for its lifetime.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(());

impl ConnectionGuard {
    pub(crate) fn new() -> Self {
        LIVE_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
        CONNECTIONS_OPENED.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        LIVE_CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) fn note_session_opened() {
    SESSIONS_OPENED.fetch_add(1, Ordering::SeqCst);
}
