//! A small bounded pool of read connections to the CRM store for the HTTP
//! handlers. rusqlite is synchronous, so every use runs on tokio's
//! blocking pool (`spawn_blocking`), never on the async runtime; at most
//! [`ReadPool::size`] run at once, the rest wait (bounded) for a slot.
//! Connections are opened lazily where the store is (`StoreAt`: a SQLite
//! file in WAL mode, whose readers do not block the store writer thread,
//! or a PostgreSQL database).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_crm_store::{Error as StoreError, Store, StoreAt};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// How long a request may wait for a free connection before it gets 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The pool; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ReadPool {
    store: StoreAt,
    size: usize,
    idle: Mutex<Vec<Store>>,
    slots: Arc<Semaphore>,
}

impl ReadPool {
    /// A pool of at most `size` connections to `store`.
    pub fn new(store: StoreAt, size: usize) -> ReadPool {
        let size = size.max(1);
        ReadPool {
            store,
            size,
            idle: Mutex::new(Vec::with_capacity(size)),
            slots: Arc::new(Semaphore::new(size)),
        }
    }

    /// The most connections open at once.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` with a connection on the blocking pool. Store errors are
    /// mapped by [`store_error`] unless `f` maps them itself.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| ApiError::Unavailable {
                message: "the store is busy".into(),
                retry_after: Some(1),
            })?
            .map_err(ApiError::internal)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let store = match pool.take() {
                Some(s) => s,
                None => pool.store.open().map_err(store_error)?,
            };
            let r = f(&store);
            pool.put(store);
            r
        })
        .await
        .map_err(ApiError::internal)?
    }

    fn take(&self) -> Option<Store> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put(&self, store: Store) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.size {
            idle.push(store);
        }
    }
}

/// The HTTP meaning of a store error: not found is 404, invalid input 400,
/// a busy database 503 (retry), anything else 500 (logged).
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { entity, id } => {
            ApiError::NotFound(format!("{entity} {id} does not exist"))
        }
        StoreError::InvalidInput { field, reason } => {
            ApiError::BadRequest(format!("invalid {field}: {reason}"))
        }
        StoreError::Busy => ApiError::Unavailable {
            message: "the store is busy".into(),
            retry_after: Some(1),
        },
        other => ApiError::internal(other),
    }
}
