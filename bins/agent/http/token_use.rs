//! When each API token was last used, recorded off the request path.
//!
//! A request that authenticates calls [`TokenUse::note`], which only looks
//! at an in-memory table and, at most once per [`RECORD_EVERY`] per token,
//! puts `(token, time)` on a bounded queue (never waiting: a full queue
//! drops the note, and the next request retries). One writer task drains
//! the queue in batches on tokio's blocking pool with its own store
//! connection. So a request never waits for a write, and a busy API
//! writes at most one row per token per minute; `user list` shows a last
//! use up to a minute old.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use callbridge_crm_store::{Error as StoreError, Store, StoreAt, TokenId};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The shortest time between two recorded uses of one token.
pub const RECORD_EVERY: Duration = Duration::from_secs(60);

/// Notes waiting for the writer at most.
const QUEUE: usize = 64;

/// Tokens remembered at most; beyond, the table starts over (the cost is
/// one extra write per token).
const MAX_TRACKED: usize = 10_000;

/// The throttle table and the queue to the writer.
#[derive(Debug)]
pub struct TokenUse {
    tx: Option<mpsc::Sender<(TokenId, Timestamp)>>,
    last: Mutex<HashMap<TokenId, Instant>>,
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "joined only by tests; the task ends by itself when the queue closes"
        )
    )]
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TokenUse {
    /// Starts the writer task for the store at `database`. Outside a tokio
    /// runtime nothing is recorded.
    pub fn start(database: StoreAt) -> TokenUse {
        let (tx, task) = match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (tx, rx) = mpsc::channel(QUEUE);
                (Some(tx), Some(rt.spawn(writer(database, rx))))
            }
            Err(_) => (None, None),
        };
        TokenUse {
            tx,
            last: Mutex::new(HashMap::new()),
            task,
        }
    }

    /// Closes the queue and waits until everything queued is written.
    #[cfg(test)]
    pub async fn close(mut self) {
        self.tx = None;
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    /// Notes that `token` authenticated a request at `now` (wall clock
    /// `at`). Queues a write unless one was queued for this token less
    /// than [`RECORD_EVERY`] ago; returns whether it queued one.
    pub fn note(&self, token: &TokenId, now: Instant, at: Timestamp) -> bool {
        let Some(tx) = &self.tx else { return false };
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last
            .get(token)
            .is_some_and(|t| now.saturating_duration_since(*t) < RECORD_EVERY)
        {
            return false;
        }
        if tx.try_send((token.clone(), at)).is_err() {
            return false;
        }
        if last.len() >= MAX_TRACKED {
            last.clear();
        }
        last.insert(token.clone(), now);
        true
    }
}

/// Writes queued notes in batches until every sender is gone.
async fn writer(database: StoreAt, mut rx: mpsc::Receiver<(TokenId, Timestamp)>) {
    let mut store: Option<Store> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < QUEUE {
            match rx.try_recv() {
                Ok(n) => batch.push(n),
                Err(_) => break,
            }
        }
        let db = database.clone();
        let open = store.take();
        let done = tokio::task::spawn_blocking(move || {
            let mut s = match open {
                Some(s) => s,
                None => match db.open() {
                    Ok(s) => s,
                    Err(e) => return (None, Err(e)),
                },
            };
            let r = batch
                .iter()
                .try_for_each(|(t, at)| s.record_token_use(t, *at).map(drop));
            (Some(s), r)
        })
        .await;
        match done {
            Ok((s, r)) => {
                store = s;
                if let Err(e) = r {
                    log_failure(&e);
                }
            }
            Err(e) => tracing::warn!(error = %e, "API token use writer failed"),
        }
    }
}

fn log_failure(e: &StoreError) {
    tracing::warn!(error = %e, "could not record when an API token was last used");
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_crm_store::{ApiToken, PersonName, Role};

    #[tokio::test]
    async fn a_token_use_is_written_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("crm.db");
        let token = ApiToken::generate().unwrap();
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let id = Store::open(&db)
            .unwrap()
            .create_user(&PersonName::new("ann").unwrap(), Role::Viewer, &token, t0)
            .unwrap();
        let uses = TokenUse::start(StoreAt::sqlite(&db));
        let start = Instant::now();
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        assert!(uses.note(&token.id(), start, at(1)));
        for s in 2..60 {
            let now = start + Duration::from_secs(s as u64);
            assert!(!uses.note(&token.id(), now, at(s)), "second {s}");
        }
        assert!(uses.note(&token.id(), start + RECORD_EVERY, at(61)));
        uses.close().await;
        let user = Store::open(&db).unwrap().get_user(id).unwrap();
        assert_eq!(user.token_last_used_at, Some(at(61)));
    }
}
