//! The store thread itself: applies writes in order, keeps the backlog
//! (journal, then bounded memory) behind the first failure, retries with
//! backoff, probes an idle store, and replays the backlog on the next
//! success (see the parent module for the rules).

use std::collections::VecDeque;
use std::sync::Arc;

use callbridge_crm_store::{
    Applied, EndReason, Finish, GroupOp, NewSession, SessionId, SessionWrite, Store,
};
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
            self.gather(&mut rx, &mut batch).await;
            let mut acks = Vec::new();
            self.handle_batch(&mut batch, &mut acks);
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

    /// Waits up to [`WriterConfig::commit_window`] for more writes to join
    /// the batch, so one transaction carries them: not when the window is
    /// zero, when the store is failing, or when something in the batch is
    /// waited on (a call's row, a flush, a drain), which ends the wait too.
    pub(super) async fn gather(&self, rx: &mut mpsc::Receiver<StoreOp>, batch: &mut Vec<StoreOp>) {
        let urgent = |ops: &[StoreOp]| {
            ops.iter().any(|op| {
                matches!(
                    op,
                    StoreOp::Create(..) | StoreOp::Flush(_) | StoreOp::Drained(_)
                )
            })
        };
        let window = self.cfg.commit_window;
        if window.is_zero() || self.failing || self.has_backlog() || urgent(batch) {
            return;
        }
        let until = Instant::now() + window;
        while batch.len() < BATCH {
            let from = batch.len();
            tokio::select! {
                biased;
                n = rx.recv_many(batch, BATCH - from) => if n == 0 { return },
                () = tokio::time::sleep_until(until) => return,
            }
            if urgent(&batch[from..]) {
                return;
            }
        }
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

    /// Applies a batch: in one transaction ([`Store::apply_group`]) when
    /// the store is taking writes and the batch holds more than one;
    /// otherwise, or when the group fails, one by one (each operation's
    /// own fate: refused, journaled, retried).
    pub(super) fn handle_batch(
        &mut self,
        batch: &mut Vec<StoreOp>,
        acks: &mut Vec<oneshot::Sender<()>>,
    ) {
        let writes = batch
            .iter()
            .filter(|op| !matches!(op, StoreOp::Flush(_) | StoreOp::Drained(_)))
            .count();
        if writes < 2 || self.failing || self.has_backlog() {
            for op in batch.drain(..) {
                self.handle(op, acks);
            }
            return;
        }
        let mut items = Vec::with_capacity(writes);
        let mut waiters = Vec::new();
        for op in batch.drain(..) {
            match op {
                StoreOp::Create(s, ack) => {
                    if ack.as_ref().is_some_and(oneshot::Sender::is_closed) {
                        debug!(session = %s.id, "session row not written: the call gave up waiting");
                    } else {
                        items.push(Item::Create(s, ack));
                    }
                }
                StoreOp::Flush(ack) => acks.push(ack),
                StoreOp::Drained(ack) => waiters.push(ack),
                op => {
                    if let Some((id, write)) = Self::session_write(op) {
                        items.push(Item::Write(self.sequenced(id, write)));
                    }
                }
            }
        }
        let ops: Vec<GroupOp<'_>> = items.iter().map(Item::op).collect();
        match self.store.apply_group(&ops) {
            Ok(_) => {
                self.ok();
                self.health.committed(items.len() as u64);
                for item in items {
                    match item {
                        Item::Create(s, ack) => self.answer_create(s.id, ack, Ok(())),
                        Item::Write(e) => Self::applied(&self.outbox, &e.write),
                    }
                }
            }
            Err(e) => {
                debug!(error = %e, ops = items.len(), "group commit failed; applying its operations one by one");
                for item in items {
                    match item {
                        Item::Create(s, ack) => self.create(*s, ack),
                        Item::Write(e) => self.write(e),
                    }
                }
            }
        }
        // Answered with the flushes, after the figures are published.
        for w in waiters {
            if self.has_backlog() {
                self.drain_waiters.push(w);
            } else {
                acks.push(w);
            }
        }
    }

    /// The session write an operation carries (`None` for a create, a
    /// flush or a drain).
    fn session_write(op: StoreOp) -> Option<(SessionId, SessionWrite)> {
        Some(match op {
            StoreOp::State(id, to, at) => (id, SessionWrite::State { to, at }),
            StoreOp::Turns(id, t) => (id, SessionWrite::Turns(t)),
            StoreOp::Events(id, e) => (id, SessionWrite::Events(e)),
            StoreOp::Update(id, u) => (id, SessionWrite::Update(u)),
            StoreOp::Finish(id, f) => (id, SessionWrite::Finish(f)),
            StoreOp::Outbox(id, rows) => (id, SessionWrite::Outbox(rows)),
            StoreOp::Create(..) | StoreOp::Flush(_) | StoreOp::Drained(_) => return None,
        })
    }

    /// Gives a write the next sequence number.
    fn sequenced(&mut self, session: SessionId, write: SessionWrite) -> Entry {
        self.seq += 1;
        Entry {
            session,
            seq: self.seq,
            write,
        }
    }

    fn handle(&mut self, op: StoreOp, acks: &mut Vec<oneshot::Sender<()>>) {
        match op {
            StoreOp::Create(s, ack) => self.create(*s, ack),
            StoreOp::Flush(ack) => acks.push(ack),
            StoreOp::Drained(ack) => {
                if self.has_backlog() {
                    self.drain_waiters.push(ack);
                } else {
                    self.publish();
                    let _ = ack.send(());
                }
            }
            op => {
                if let Some((id, write)) = Self::session_write(op) {
                    let e = self.sequenced(id, write);
                    self.write(e);
                }
            }
        }
    }

    /// Applies a write now, or queues it behind the backlog.
    fn write(&mut self, e: Entry) {
        if self.has_backlog() {
            return self.enqueue(e);
        }
        match self.store.apply_write(e.session, e.seq, &e.write) {
            Ok(a) => {
                self.ok();
                if a == Applied::Applied {
                    self.health.committed(1);
                }
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
                self.health.committed(1);
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
        self.answer_create(s.id, ack, reply);
        if r.is_ok() && self.has_backlog() {
            self.drain();
        }
    }

    /// Answers the call waiting on its session row. A row written after
    /// the call gave up (and was refused) must not stay live with no call
    /// behind it: it is ended at once as failed.
    fn answer_create(
        &mut self,
        id: SessionId,
        ack: Option<oneshot::Sender<Result<(), CreateRefused>>>,
        reply: Result<(), CreateRefused>,
    ) {
        if let Some(ack) = ack
            && ack.send(reply).is_err()
            && reply.is_ok()
        {
            warn!(session = %id, "session row written too late for its call; ended as failed");
            let f = Finish::failed(EndReason::Error, jiff::Timestamp::now());
            let e = self.sequenced(id, SessionWrite::Finish(f));
            self.write(e);
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
    pub(super) fn journal_batch(&mut self) {
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
    pub(super) fn drain(&mut self) {
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

    pub(super) fn publish(&self) {
        let mem = self.mem.len() as u64;
        let file = self.journal.as_ref().map_or(0, Journal::pending);
        self.health
            .set_backlog(file + mem + self.to_journal.len() as u64, mem);
    }
}

/// One operation of a group: a session row with the call waiting on it,
/// or a sequenced write.
enum Item {
    Create(
        Box<NewSession>,
        Option<oneshot::Sender<Result<(), CreateRefused>>>,
    ),
    Write(Entry),
}

impl Item {
    fn op(&self) -> GroupOp<'_> {
        match self {
            Item::Create(s, _) => GroupOp::Create(s),
            Item::Write(e) => GroupOp::Write {
                session: e.session,
                seq: e.seq,
                write: &e.write,
            },
        }
    }
}
