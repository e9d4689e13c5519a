//! The store writer: crm-store is synchronous (rusqlite), so one dedicated
//! thread owns the [`Store`] and executes [`StoreOp`]s from a bounded
//! channel, in order. Calls never touch SQLite on the async runtime.
//!
//! Every call writes its row when it starts (ARCHITECTURE.md, "calls handled
//! but missing from the CRM"), its state changes, transcript turns and
//! events as they happen, and its end on every exit path
//! (`finish_session` is idempotent, so a second end is harmless).
//! A write that fails is logged with the session id and never ends a call.

use std::thread::JoinHandle;
use std::time::Duration;

use callbridge_crm_store::{
    Finish, NewEvent, NewSession, NewTurn, SessionId, SessionState, SessionUpdate, Store,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Operations queued at most before senders wait (backpressure).
pub const STORE_QUEUE: usize = 1024;

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

/// One write for the store thread.
#[derive(Debug)]
pub enum StoreOp {
    /// Insert the session row (acknowledged when written or refused).
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
    /// Acknowledge once every earlier operation is done.
    Flush(oneshot::Sender<()>),
}

/// Sends operations to the store thread. Cheap to clone; the thread stops
/// when every clone is dropped.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<StoreOp>,
}

/// The store thread; [`StoreThread::join`] waits for it after every
/// [`StoreWriter`] is dropped.
#[derive(Debug)]
pub struct StoreThread {
    handle: Option<JoinHandle<Store>>,
}

impl StoreWriter {
    /// Starts the thread that owns `store`.
    ///
    /// # Errors
    /// The OS refused to spawn the thread.
    pub fn start(store: Store) -> std::io::Result<(StoreWriter, StoreThread)> {
        let (tx, rx) = mpsc::channel(STORE_QUEUE);
        let handle = std::thread::Builder::new()
            .name("callbridge-store".into())
            .spawn(move || run(store, rx))?;
        Ok((
            StoreWriter { tx },
            StoreThread {
                handle: Some(handle),
            },
        ))
    }

    /// Queues one operation, waiting while the queue is full.
    pub async fn send(&self, op: StoreOp) {
        if self.tx.send(op).await.is_err() {
            warn!("store thread stopped; write dropped");
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
    /// write failed or was not confirmed within 5 s.
    pub async fn create(&self, s: NewSession) -> Result<(), CreateRefused> {
        let (ack, rx) = oneshot::channel();
        self.send(StoreOp::Create(Box::new(s), Some(ack))).await;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            _ => Err(CreateRefused::Failed),
        }
    }

    /// Whether the store thread still takes operations (it has not ended
    /// or panicked).
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Waits until every operation queued before it is done.
    pub async fn flush(&self) {
        let (ack, rx) = oneshot::channel();
        self.send(StoreOp::Flush(ack)).await;
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

fn run(mut store: Store, mut rx: mpsc::Receiver<StoreOp>) -> Store {
    while let Some(op) = rx.blocking_recv() {
        apply(&mut store, op);
    }
    debug!("store thread stops");
    store
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn apply(store: &mut Store, op: StoreOp) {
    let (id, r) = match op {
        StoreOp::Create(s, ack) => {
            let r = store.create_session(&s);
            if let Some(ack) = ack {
                let _ = ack.send(match &r {
                    Ok(()) => Ok(()),
                    Err(callbridge_crm_store::Error::ClaimNotHeld { .. }) => {
                        Err(CreateRefused::ClaimNotHeld)
                    }
                    Err(_) => Err(CreateRefused::Failed),
                });
            }
            (s.id, r.map(drop))
        }
        StoreOp::State(id, st) => (id, store.set_state(id, st, now())),
        StoreOp::Turns(id, t) => (id, store.append_turns(id, &t)),
        StoreOp::Events(id, e) => (id, store.append_events(id, &e)),
        StoreOp::Update(id, u) => (id, store.update_session(id, &u)),
        StoreOp::Finish(id, f) => (id, store.finish_session(id, &f).map(drop)),
        StoreOp::Flush(ack) => {
            let _ = ack.send(());
            return;
        }
    };
    if let Err(e) = r {
        warn!(session = %id, error = %e, "store write failed");
    }
}
