//! The store from async code: one [`Store`] behind a mutex, used only from
//! `spawn_blocking` so SQLite never blocks a runtime worker.

use std::sync::{Arc, Mutex};

use callbridge_crm_store::Store;

use crate::error::{CampaignError, Result};

/// A shared handle to the store.
#[derive(Clone)]
pub struct Db(Arc<Mutex<Store>>);

impl Db {
    /// Wraps an open store.
    pub fn new(store: Store) -> Self {
        Db(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` with the store on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> callbridge_crm_store::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the store itself
            // is transactional, so its state is still consistent.
            let mut store = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut store)
        })
        .await
        .map_err(|e| CampaignError::Failed(format!("store task failed: {e}")))?
        .map_err(CampaignError::from)
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}
