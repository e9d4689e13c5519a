//! The store thread itself: applies writes in order, keeps the backlog
//! (journal, then bounded memory) behind the first failure, retries with
//! backoff, probes an idle store, and replays the backlog on the next
//! success (see the parent module for the rules).

use std::collections::VecDeque;
use std::sync::Arc;

use callbridge_crm_store::{EndReason, Finish, NewSession, SessionWrite, Store};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::journal::{Entry, Journal, Next};
use super::{BATCH, CreateRefused, StoreHealth, StoreOp, WriterConfig};

/// The store thread's state.
pub(super) struct Writer {
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
    /// Wakes the webhook worker when outbox rows reach the store.
    outbox: Arc<tokio::sync::Notify>,
}

impl Writer {
    pub(super) fn new(
        store: Store,
        cfg: WriterConfig,
        health: Arc<StoreHealth>,
        outbox: Arc<tokio::sync::Notify>,
    ) -> Writer {
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
            outbox,
        }
    }

    /// A write reached the store: outbox rows wake the webhook worker.
    /// (A function of the `Notify`, not of `self`: the journal replay
    /// calls it while it borrows the journal.)
    fn applied(outbox: &tokio::sync::Notify, w: &SessionWrite) {
        if matches!(w, SessionWrite::Outbox(_)) {
            outbox.notify_one();
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<StoreOp>) -> Store {
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
            StoreOp::Outbox(id, rows) => (id, SessionWrite::Outbox(rows)),
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
            Ok(_) => {
                self.ok();
                Self::applied(&self.outbox, &e.write);
            }
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
                            Self::applied(&self.outbox, &e.write);
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
                Ok(_) => {
                    self.health.replayed();
                    Self::applied(&self.outbox, &e.write);
                }
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
