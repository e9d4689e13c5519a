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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use callbridge_crm_store::{
    EndReason, Finish, NewEvent, NewSession, NewTurn, SessionId, SessionState, SessionUpdate,
    SessionWrite, Store,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

pub use health::{OPS, StoreHealth, StoreStats};
use journal::{Entry, Journal, Next};

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
    /// Move the session to a live state.
    State(SessionId, SessionState),
    /// Append transcript turns.
    Turns(SessionId, Vec<NewTurn>),
    /// Append call events.
    Events(SessionId, Vec<NewEvent>),
    /// Update fields (recording, summary, usage, Call-ID).
    Update(SessionId, Box<SessionUpdate>),
    /// Write the session's end (idempotent).
    Finish(SessionId, Finish),
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
        let writer = Writer::new(store, cfg, Arc::clone(&health));
        let handle = std::thread::Builder::new()
            .name("callbridge-store".into())
            .spawn(move || rt.block_on(writer.run(rx)))?;
        Ok((
            StoreWriter { tx, health },
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

/// The store thread's state.
struct Writer {
    store: Store,
    cfg: WriterConfig,
    health: Arc<StoreHealth>,
    journal: Option<Journal>,
    /// Writes of the current batch waiting for the journal's append.
    to_journal: Vec<Entry>,
    /// Writes neither the store nor the journal took (bounded).
    mem: VecDeque<Entry>,
    /// The last sequence number given.
    seq: u64,
    /// Whether the last attempt at the store failed.
    failing: bool,
    /// Failures in a row (for the backoff).
    attempt: u32,
    next_retry: Option<Instant>,
    /// Run crash recovery once the journal found at start is replayed.
    recover_pending: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
}

impl Writer {
    fn new(store: Store, cfg: WriterConfig, health: Arc<StoreHealth>) -> Writer {
        let journal = cfg.spool_dir.as_deref().map(Journal::open);
        let recover_pending = cfg.recover_after_replay;
        Writer {
            store,
            cfg,
            health,
            journal,
            to_journal: Vec::new(),
            mem: VecDeque::new(),
            seq: 0,
            failing: false,
            attempt: 0,
            next_retry: None,
            recover_pending,
            drain_waiters: Vec::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<StoreOp>) -> Store {
        if self.has_backlog() {
            info!("replaying the store journal left by an earlier run");
            self.drain();
        } else if self.recover_pending {
            self.recover();
        }
        self.publish();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, BATCH) => if n == 0 { break },
                () = tokio::time::sleep_until(wake) => {
                    self.on_timer();
                    self.publish();
                    continue;
                }
            }
            let mut acks = Vec::new();
            for op in batch.drain(..) {
                self.handle(op, &mut acks);
            }
            self.journal_batch();
            // Figures first: whoever waits on an ack may read them.
            self.publish();
            for a in acks {
                let _ = a.send(());
            }
        }
        // Every writer is gone: one last try, then whatever is left stays
        // in the journal for the next start.
        if self.has_backlog() {
            self.drain();
            self.journal_mem();
        }
        if !self.mem.is_empty() {
            error!(
                writes = self.mem.len(),
                "store and journal unwritable at exit: writes lost"
            );
        } else if self.has_backlog() {
            warn!("store unwritable at exit: writes left in the journal for the next start");
        }
        self.publish();
        debug!("store thread stops");
        self.store
    }

    fn has_backlog(&self) -> bool {
        !self.mem.is_empty()
            || !self.to_journal.is_empty()
            || self.journal.as_ref().is_some_and(Journal::has_backlog)
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        if self.has_backlog() || self.failing {
            self.next_retry.unwrap_or(now + self.cfg.retry_initial)
        } else {
            now + self.cfg.probe_every
        }
    }

    fn on_timer(&mut self) {
        if self.has_backlog() {
            self.drain();
            return;
        }
        match self.store.probe_write(jiff::Timestamp::now()) {
            Ok(()) => self.ok(),
            Err(e) if e.is_transient() => self.fail(None, &e),
            Err(e) => warn!(error = %e, "store write probe refused"),
        }
    }

    fn handle(&mut self, op: StoreOp, acks: &mut Vec<oneshot::Sender<()>>) {
        let (id, write) = match op {
            StoreOp::Create(s, ack) => return self.create(*s, ack),
            StoreOp::Flush(ack) => return acks.push(ack),
            StoreOp::Drained(ack) => {
                if self.has_backlog() {
                    self.drain_waiters.push(ack);
                } else {
                    self.publish();
                    let _ = ack.send(());
                }
                return;
            }
            StoreOp::State(id, to) => (
                id,
                SessionWrite::State {
                    to,
                    at: jiff::Timestamp::now(),
                },
            ),
            StoreOp::Turns(id, t) => (id, SessionWrite::Turns(t)),
            StoreOp::Events(id, e) => (id, SessionWrite::Events(e)),
            StoreOp::Update(id, u) => (id, SessionWrite::Update(u)),
            StoreOp::Finish(id, f) => (id, SessionWrite::Finish(f)),
        };
        self.seq += 1;
        let e = Entry {
            session: id,
            seq: self.seq,
            write,
        };
        self.write(e);
    }

    /// Applies a write now, or queues it behind the backlog.
    fn write(&mut self, e: Entry) {
        if self.has_backlog() {
            return self.enqueue(e);
        }
        match self.store.apply_write(e.session, e.seq, &e.write) {
            Ok(_) => self.ok(),
            Err(err) if err.is_transient() => {
                self.fail(Some(e.write.kind()), &err);
                self.enqueue(e);
            }
            Err(err) => self.rejected(&e, &err),
        }
    }

    fn create(&mut self, s: NewSession, ack: Option<oneshot::Sender<Result<(), CreateRefused>>>) {
        if ack.as_ref().is_some_and(oneshot::Sender::is_closed) {
            debug!(session = %s.id, "session row not written: the call gave up waiting");
            return;
        }
        let r = self.store.create_session(&s);
        let reply = match &r {
            Ok(()) => {
                self.ok();
                Ok(())
            }
            Err(callbridge_crm_store::Error::ClaimNotHeld { .. }) => {
                Err(CreateRefused::ClaimNotHeld)
            }
            Err(e) if e.is_transient() => {
                self.fail(Some("create"), e);
                Err(CreateRefused::Failed)
            }
            Err(e) => {
                warn!(session = %s.id, error = %e, "session row refused by the store");
                Err(CreateRefused::Failed)
            }
        };
        if let Some(ack) = ack
            && ack.send(reply).is_err()
            && r.is_ok()
        {
            // The call gave up (and was refused) after its row was written:
            // a row must not stay live with no call behind it.
            warn!(session = %s.id, "session row written too late for its call; ended as failed");
            self.seq += 1;
            let f = Finish::failed(EndReason::Error, jiff::Timestamp::now());
            self.write(Entry {
                session: s.id,
                seq: self.seq,
                write: SessionWrite::Finish(f),
            });
        }
        if r.is_ok() && self.has_backlog() {
            self.drain();
        }
    }

    /// Puts a write in the backlog, behind everything already there.
    fn enqueue(&mut self, e: Entry) {
        if self.journal.is_some() && self.mem.is_empty() {
            self.to_journal.push(e);
        } else {
            self.push_mem(e);
        }
    }

    fn push_mem(&mut self, e: Entry) {
        if self.mem.len() < self.cfg.memory_limit {
            self.mem.push_back(e);
        } else {
            error!(session = %e.session, op = e.write.kind(),
                "store, journal and memory backlog full: write lost");
            self.health.lost();
        }
    }

    /// Appends the batch's backlog to the journal (one fsync); what the
    /// journal does not take waits in memory.
    fn journal_batch(&mut self) {
        if self.to_journal.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.to_journal);
        let Some(j) = self.journal.as_mut() else {
            entries.into_iter().for_each(|e| self.push_mem(e));
            return;
        };
        match j.append(&entries) {
            Ok(()) => {
                self.health.journaled(entries.len() as u64);
                debug!(writes = entries.len(), "writes journaled");
            }
            Err(e) => {
                error!(error = %e, path = %j.path().display(),
                    "store journal cannot be written; writes wait in memory");
                entries.into_iter().for_each(|e| self.push_mem(e));
            }
        }
    }

    /// Moves the memory backlog to the journal when it can take it.
    fn journal_mem(&mut self) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        if self.mem.is_empty() {
            return;
        }
        let entries: Vec<Entry> = self.mem.drain(..).collect();
        match j.append(&entries) {
            Ok(()) => self.health.journaled(entries.len() as u64),
            Err(_) => self.mem = entries.into(),
        }
    }

    /// Replays the backlog in order: the journal, then memory. Stops at
    /// the first write the store cannot take and schedules a retry.
    fn drain(&mut self) {
        self.journal_batch();
        if self.failing {
            self.journal_mem();
        }
        if let Some(j) = self.journal.as_mut() {
            let found_file = j.has_backlog();
            loop {
                let next = match j.next_line() {
                    Ok(n) => n,
                    Err(e) => {
                        error!(error = %e, path = %j.path().display(), "store journal unreadable");
                        self.schedule_retry();
                        return;
                    }
                };
                match next {
                    Next::End => break,
                    Next::Bad(e, off) => {
                        error!(error = %e, "unreadable store journal line skipped");
                        self.health.rejected();
                        j.advance(off, true);
                    }
                    Next::Entry(e, off) => match self.store.apply_write(e.session, e.seq, &e.write)
                    {
                        Ok(_) => {
                            self.health.replayed();
                            j.advance(off, false);
                        }
                        Err(err) if err.is_transient() => {
                            self.fail(Some(e.write.kind()), &err);
                            return;
                        }
                        Err(err) => {
                            warn!(session = %e.session, op = e.write.kind(), error = %err,
                                "journaled write refused by the store");
                            self.health.rejected();
                            j.advance(off, false);
                        }
                    },
                }
            }
            if found_file {
                match j.finish_replay() {
                    Ok(Some(kept)) => {
                        error!(path = %kept.display(), "store journal replayed; unreadable lines kept")
                    }
                    Ok(None) => info!("store journal replayed into the store and removed"),
                    Err(e) => error!(error = %e, "replayed store journal could not be removed"),
                }
            }
        }
        while let Some(e) = self.mem.front() {
            match self.store.apply_write(e.session, e.seq, &e.write) {
                Ok(_) => self.health.replayed(),
                Err(err) if err.is_transient() => {
                    let kind = e.write.kind();
                    self.fail(Some(kind), &err);
                    return;
                }
                Err(err) => {
                    let e = e.clone();
                    self.rejected(&e, &err);
                }
            }
            self.mem.pop_front();
        }
        self.ok();
        if self.recover_pending {
            self.recover();
        }
        self.publish();
        for w in self.drain_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    fn recover(&mut self) {
        match self.store.recover(jiff::Timestamp::now()) {
            Ok(r) => {
                self.recover_pending = false;
                info!(
                    interrupted = r.interrupted.len(),
                    "postponed crash recovery done"
                );
            }
            Err(e) => warn!(error = %e, "postponed crash recovery failed; retried later"),
        }
    }

    fn ok(&mut self) {
        if self.failing {
            info!("the store takes writes again");
        }
        self.failing = false;
        self.attempt = 0;
        self.next_retry = None;
        self.health.set_healthy(true);
    }

    fn fail(&mut self, op: Option<&'static str>, e: &callbridge_crm_store::Error) {
        if let Some(op) = op {
            self.health.failed(op);
        }
        if !self.failing {
            error!(error = %e, op = op.unwrap_or("probe"),
                "the store cannot be written: new calls are refused, writes of live calls are journaled and retried");
        } else {
            debug!(error = %e, "store still unwritable");
        }
        self.failing = true;
        self.health.set_healthy(false);
        self.attempt = self.attempt.saturating_add(1);
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        let shift = self.attempt.saturating_sub(1).min(16);
        let delay = self
            .cfg
            .retry_initial
            .saturating_mul(1u32 << shift)
            .min(self.cfg.retry_max);
        self.next_retry = Some(Instant::now() + delay);
    }

    fn rejected(&mut self, e: &Entry, err: &callbridge_crm_store::Error) {
        warn!(session = %e.session, op = e.write.kind(), error = %err, "store write refused");
        self.health.rejected();
    }

    fn publish(&self) {
        let mem = self.mem.len() as u64;
        let file = self.journal.as_ref().map_or(0, Journal::pending);
        self.health
            .set_backlog(file + mem + self.to_journal.len() as u64, mem);
    }
}
