//! The store writer: crm-store is synchronous (rusqlite), so one dedicated
//! thread owns the [`Store`] and executes [`StoreOp`]s from a bounded
//! channel, in order. Calls never touch SQLite on the async runtime.
//!
//! Every call writes its row before it is answered or dialled
//! (ARCHITECTURE.md, "calls handled but missing from the CRM"): a
//! [`StoreOp::Create`] is tried at once, whatever state the store is in,
//! and its answer decides whether the call goes on. Everything a call
//! writes after that (state changes, transcript turns, events, updates and
//! its end) is never dropped for want of a writable store:
//!
//! - Each write gets a sequence number (one counter for the process, so
//!   one session's writes increase in the order they were made) and is
//!   applied with [`Store::apply_write`], which records the number in the
//!   same transaction: applying it twice is a no-op.
//! - Writes queued together share one transaction ([`Store::apply_group`],
//!   group commit), gathered for up to [`WriterConfig::commit_window`]
//!   after the first; a call's row, a flush or a drain is not kept
//!   waiting. A group that fails is rolled back whole and its operations
//!   applied one by one, so each meets the fate the rules below give it.
//! - A write that fails because the file cannot be written
//!   ([`callbridge_crm_store::Error::is_transient`]: disk full, read-only,
//!   I/O error, locked) goes, with every write after it, to the
//!   [`journal`] in the spool directory (JSON lines, fsync'd once per
//!   batch of queued operations), and the store is retried with
//!   exponential backoff ([`WriterConfig::retry_initial`] doubling up to
//!   [`WriterConfig::retry_max`]). When the journal cannot be written
//!   either, writes wait in memory, at most
//!   [`WriterConfig::memory_limit`] of them; beyond that they are lost,
//!   counted and logged as errors.
//! - The journal is replayed in order on the next successful write (a
//!   retry, a probe or a new call's row) and when the writer starts (a
//!   journal left by a killed process; the agent also replays it before
//!   its crash recovery, see [`replay_journal`]), then removed.
//! - A write the store refuses for what it says (a state change after the
//!   end, a session that does not exist) is logged and counted, never
//!   retried.
//! - While idle and healthy the writer probes the store with a one-row
//!   write every [`WriterConfig::probe_every`], so a disk that filled up
//!   is noticed before the next call: [`StoreWriter::healthy`] feeds
//!   admission and readiness.
//!
//! Ordering: one session's writes reach the store in the order they were
//! made, because once anything is in the backlog every later write joins
//! it behind. A [`StoreOp::Create`] never waits behind the backlog: it is
//! for a new session, which has nothing in it.

mod health;
pub mod journal;
#[cfg(test)]
mod tests;
mod thread;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use callbridge_crm_store::{
    Finish, NewEvent, NewSession, NewTurn, SessionId, SessionState, SessionUpdate, Store,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

pub use health::{OPS, StoreHealth, StoreStats};
use journal::{Journal, Next};
use thread::Writer;

/// Operations queued at most before senders wait (backpressure).
pub const STORE_QUEUE: usize = 1024;

/// Operations taken from the queue at once: one journal fsync covers them.
const BATCH: usize = 256;

/// Why [`StoreWriter::create`] did not write a session row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateRefused {
    /// The row names a lead claim ([`NewSession::claim`]) that is no
    /// longer held: the lead's claim was released, recorded or claimed
    /// again. Nothing was written.
    #[error("the lead's claim is no longer held")]
    ClaimNotHeld,
    /// The write failed, or was not confirmed within 5 s.
    #[error("the session row could not be written")]
    Failed,
}

/// How the writer retries, journals and probes.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Where the journal goes (`store-journal.jsonl`, directory created
    /// 0700, file 0600); may be on another filesystem than the database.
    /// `None`: no journal, failed writes wait in memory only.
    pub spool_dir: Option<PathBuf>,
    /// Most writes held in memory when neither the store nor the journal
    /// takes them. Default 10 000.
    pub memory_limit: usize,
    /// The first retry's delay after a failure. Default 100 ms.
    pub retry_initial: Duration,
    /// The longest delay between retries. Default 5 s.
    pub retry_max: Duration,
    /// How often an idle, healthy writer checks the store takes writes.
    /// Default 10 s.
    pub probe_every: Duration,
    /// How long the writer waits, after a write arrives, for more to
    /// commit with it in one transaction (group commit: fewer transactions
    /// and WAL appends, one fsync a group with `synchronous = FULL`). A
    /// call's row, a flush or a drain ends the wait at once; zero never
    /// waits (writes queued meanwhile still share a transaction). Writes
    /// reach the store up to this much later. Default 10 ms.
    pub commit_window: Duration,
    /// Run crash recovery ([`Store::recover`]) once a journal found at
    /// start has been replayed (the agent sets it when its own replay
    /// before recovery could not finish, and it skipped recovery).
    pub recover_after_replay: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            spool_dir: None,
            memory_limit: 10_000,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            probe_every: Duration::from_secs(10),
            commit_window: Duration::from_millis(10),
            recover_after_replay: false,
        }
    }
}

/// One write for the store thread.
#[derive(Debug)]
pub enum StoreOp {
    /// Insert the session row (acknowledged when written or refused).
    /// Tried at once even while other writes wait; never journaled.
    Create(
        Box<NewSession>,
        Option<oneshot::Sender<Result<(), CreateRefused>>>,
    ),
    /// Move the session to a live state, reached at the given time (the
    /// caller's clock: the write may reach the store later).
    State(SessionId, SessionState, jiff::Timestamp),
    /// Append transcript turns.
    Turns(SessionId, Vec<NewTurn>),
    /// Append call events.
    Events(SessionId, Vec<NewEvent>),
    /// Update fields (recording, summary, usage, Call-ID).
    Update(SessionId, Box<SessionUpdate>),
    /// Write the session's end (idempotent).
    Finish(SessionId, Finish),
    /// Write webhook outbox rows of the session's events.
    Outbox(SessionId, Vec<callbridge_crm_store::NewOutbox>),
    /// Acknowledge once every earlier operation is in the store or
    /// fsync'd in the journal (or, when neither can be written, held in
    /// memory).
    Flush(oneshot::Sender<()>),
    /// Acknowledge once every earlier operation is in the store.
    Drained(oneshot::Sender<()>),
}

/// Sends operations to the store thread. Cheap to clone; the thread stops
/// when every clone is dropped.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<StoreOp>,
    health: Arc<StoreHealth>,
    /// Notified each time webhook outbox rows reach the store.
    outbox: Arc<tokio::sync::Notify>,
}

/// The store thread; [`StoreThread::join`] waits for it after every
/// [`StoreWriter`] is dropped.
#[derive(Debug)]
pub struct StoreThread {
    handle: Option<JoinHandle<Store>>,
}

impl StoreWriter {
    /// Starts the thread that owns `store`, with the default
    /// [`WriterConfig`] (no journal).
    ///
    /// # Errors
    /// The OS refused to spawn the thread.
    pub fn start(store: Store) -> std::io::Result<(StoreWriter, StoreThread)> {
        Self::start_with(store, WriterConfig::default())
    }

    /// Starts the thread that owns `store`. A journal left in
    /// `cfg.spool_dir` by an earlier process is replayed first.
    ///
    /// # Errors
    /// The OS refused to spawn the thread or to build its timer runtime.
    pub fn start_with(
        store: Store,
        cfg: WriterConfig,
    ) -> std::io::Result<(StoreWriter, StoreThread)> {
        let (tx, rx) = mpsc::channel(STORE_QUEUE);
        let health = Arc::new(StoreHealth::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let outbox = Arc::new(tokio::sync::Notify::new());
        let writer = Writer::new(store, cfg, Arc::clone(&health), Arc::clone(&outbox));
        let handle = std::thread::Builder::new()
            .name("callbridge-store".into())
            .spawn(move || rt.block_on(writer.run(rx)))?;
        Ok((
            StoreWriter { tx, health, outbox },
            StoreThread {
                handle: Some(handle),
            },
        ))
    }

    /// Whether the store took the last write or probe (for admission and
    /// readiness).
    pub fn healthy(&self) -> bool {
        self.health.healthy()
    }

    /// The shared health flag and counters.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// Notified (`notify_one`: a wake-up is kept until taken) each time
    /// webhook outbox rows are written to the store, live or replayed
    /// from the journal: the webhook worker waits on it instead of
    /// polling.
    pub fn outbox_written(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.outbox)
    }

    /// Queues one operation, waiting while the queue is full.
    pub async fn send(&self, op: StoreOp) {
        if self.tx.send(op).await.is_err() {
            error!("store thread stopped; write dropped");
            self.health.lost();
        }
    }

    /// Queues one operation if there is room; gives it back otherwise.
    pub fn try_send(&self, op: StoreOp) -> Result<(), StoreOp> {
        self.tx.try_send(op).map_err(|e| match e {
            mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => op,
        })
    }

    /// Writes the session row and waits (bounded) until it is in the store.
    ///
    /// # Errors
    /// [`CreateRefused::ClaimNotHeld`] when the row's lead claim is no
    /// longer held (nothing written), [`CreateRefused::Failed`] when the
    /// write failed or was not confirmed within 5 s (a row written after
    /// that is ended at once as `failed`/`error`).
    pub async fn create(&self, s: NewSession) -> Result<(), CreateRefused> {
        let (ack, rx) = oneshot::channel();
        self.send(StoreOp::Create(Box::new(s), Some(ack))).await;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            _ => Err(CreateRefused::Failed),
        }
    }

    /// Waits until every operation queued before it is in the store or
    /// fsync'd in the journal.
    pub async fn flush(&self) {
        let (ack, rx) = oneshot::channel();
        self.send(StoreOp::Flush(ack)).await;
        let _ = rx.await;
    }

    /// Waits until every operation queued before it is in the store (for
    /// as long as the store stays unwritable).
    pub async fn drained(&self) {
        let (ack, rx) = oneshot::channel();
        self.send(StoreOp::Drained(ack)).await;
        let _ = rx.await;
    }
}

impl StoreThread {
    /// Waits for the thread (it ends when every writer is dropped) and
    /// returns the store.
    pub fn join(mut self) -> Option<Store> {
        self.handle.take().and_then(|h| h.join().ok())
    }
}

/// What [`replay_journal`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Writes applied.
    pub applied: u64,
    /// Writes that were in the store already.
    pub already: u64,
    /// Writes the store refused (logged).
    pub rejected: u64,
    /// Lines that could not be read (the file is kept as `.bad`).
    pub bad_lines: u64,
    /// Where a file with unreadable lines was kept.
    pub kept: Option<PathBuf>,
}

/// Why [`replay_journal`] stopped before the end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The store could not be written; the journal stays for later.
    #[error("the store cannot be written: {0}")]
    Store(#[source] callbridge_crm_store::Error),
    /// The journal could not be read, removed or renamed.
    #[error("journal {}: {source}", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Replays the journal in `spool_dir` (if any) into `store` and removes
/// it: for start-up, before crash recovery marks the dead process's live
/// sessions `interrupted`, so the ends it journaled win.
///
/// # Errors
/// [`ReplayError::Store`] when the store cannot be written (what was
/// replayed stays replayed; the rest waits in the journal),
/// [`ReplayError::Journal`] when the file cannot be read or removed.
pub fn replay_journal(store: &mut Store, spool_dir: &Path) -> Result<ReplayReport, ReplayError> {
    let mut j = Journal::open(spool_dir);
    let mut report = ReplayReport::default();
    if !j.has_backlog() && !j.path().exists() {
        return Ok(report);
    }
    let jerr = |path: &Path, source| ReplayError::Journal {
        path: path.to_path_buf(),
        source,
    };
    loop {
        match j.next_line().map_err(|e| jerr(j.path(), e))? {
            Next::End => break,
            Next::Bad(e, off) => {
                warn!(error = %e, "unreadable journal line skipped");
                report.bad_lines += 1;
                j.advance(off, true);
            }
            Next::Entry(e, off) => {
                match store.apply_write(e.session, e.seq, &e.write) {
                    Ok(callbridge_crm_store::Applied::Applied) => report.applied += 1,
                    Ok(callbridge_crm_store::Applied::AlreadyApplied) => report.already += 1,
                    Err(err) if err.is_transient() => return Err(ReplayError::Store(err)),
                    Err(err) => {
                        warn!(session = %e.session, op = e.write.kind(), error = %err,
                            "journaled write refused by the store");
                        report.rejected += 1;
                    }
                }
                j.advance(off, false);
            }
        }
    }
    report.kept = j.finish_replay().map_err(|e| jerr(j.path(), e))?;
    Ok(report)
}
