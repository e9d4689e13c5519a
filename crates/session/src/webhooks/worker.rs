//! The webhook worker: claims due outbox rows from the store, POSTs each
//! one to its receiver and records the outcome (see the module above for
//! the guarantees). The store is synchronous: every store call runs on
//! the blocking pool, on a connection of the worker's own.
//!
//! One request: `POST <url>` with the event's JSON, `Content-Type:
//! application/json`, `Idempotency-Key: <session>:<seq>`,
//! `X-Callbridge-Event: <name>`, `X-Callbridge-Delivery-Attempt: <n>` and,
//! with a secret, `X-Callbridge-Signature: t=<unix>,v1=<hex>`. A 2xx
//! answer is a delivery; anything else (another status, a timeout, a
//! refused connection) is retried on the [`Backoff`](super::Backoff)
//! schedule until its horizon, then the row is failed.
//!
//! A row is sent by its target's configuration (its secret, time limit
//! and schedule): the global `[webhooks]` for rows without a target, the
//! named profile's own webhooks ([`Targets`]) for the others. A row whose
//! profile has no webhooks any more is failed at once (`target profile
//! has no webhooks`), never signed with another target's secret.
//!
//! The worker does not poll an idle outbox. It looks (one read: when is
//! the next row due, [`Store::outbox_next_due`]) when woken (the store
//! writer wakes it as this agent's outbox rows reach the store, the
//! manager when the routing profiles change), when the next row it knows
//! of falls due (a retry's time, another node's lease running out), and
//! otherwise every [`FALLBACK_POLL`], for rows other agents sharing a
//! PostgreSQL store wrote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callbridge_crm_store::{OutboxRow, Store};
use callbridge_llm_bridge::TlsRoots;
use rand::RngExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Targets, WebhookConfig};
use crate::signing::{SIGNATURE_HEADER, sign};

/// Rows claimed at once.
const BATCH: u32 = 32;
/// The longest wait between two looks at the outbox: rows written by
/// another agent sharing the store wake nobody here.
pub const FALLBACK_POLL: Duration = Duration::from_secs(30);
/// The shortest wait after a look that found a row due but claimed none
/// (a clock step between the look and the claim): no busy loop.
const MIN_WAIT: Duration = Duration::from_millis(50);
/// The wait after a store call failed.
const ERROR_WAIT: Duration = Duration::from_secs(1);
/// How often delivered and failed rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The HTTP client could not be built (TLS roots).
    #[error("webhook HTTP client: {0}")]
    Client(String),
    /// The store refused to release this node's old claims.
    #[error("webhook outbox: {0}")]
    Store(#[from] callbridge_crm_store::Error),
}

/// The outcome of one attempt.
#[derive(Debug)]
enum Attempt {
    Delivered(u16),
    Failed { error: String, status: Option<u16> },
}

/// Starts the worker for the global `cfg` and the profiles' `targets` on
/// `store` (a connection of its own) as node `node`, until `stop` is
/// cancelled; `wake` says new rows are in the store (the manager's
/// [`crate::Manager::webhook_wake`]). `cfg` without receivers still sets
/// the retention of every row. This node's leases left by an earlier
/// process are freed first, so what it was delivering when it stopped
/// goes out again at once.
///
/// # Errors
/// [`WorkerError`] when the client cannot be built or the store refuses.
pub async fn start(
    store: Store,
    cfg: WebhookConfig,
    targets: Arc<dyn Targets>,
    roots: TlsRoots,
    node: String,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, WorkerError> {
    start_counted(store, cfg, targets, roots, node, wake, stop)
        .await
        .map(|(task, _)| task)
}

/// [`start`], also giving the count of the worker's looks at the outbox.
async fn start_counted(
    mut store: Store,
    cfg: WebhookConfig,
    targets: Arc<dyn Targets>,
    roots: TlsRoots,
    node: String,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, Arc<AtomicU64>), WorkerError> {
    let tls = roots
        .client_config()
        .map_err(|e| WorkerError::Client(e.to_string()))?;
    // Each request carries its target's time limit.
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| WorkerError::Client(e.to_string()))?;
    let (store, freed) = tokio::task::spawn_blocking(move || {
        let r = store.release_outbox_claims(&node);
        (store, r.map(|n| (n, node)))
    })
    .await
    .map_err(|e| WorkerError::Client(e.to_string()))?;
    let (freed, node) = freed?;
    if freed > 0 {
        info!(
            rows = freed,
            "webhook deliveries of the last run taken up again"
        );
    }
    let looks = Arc::new(AtomicU64::new(0));
    let w = Worker {
        store: Arc::new(Mutex::new(store)),
        cfg: Arc::new(cfg),
        targets,
        client,
        node,
        wake,
        looks: Arc::clone(&looks),
    };
    Ok((tokio::spawn(w.run(stop)), looks))
}

struct Worker {
    store: Arc<Mutex<Store>>,
    cfg: Arc<WebhookConfig>,
    targets: Arc<dyn Targets>,
    client: reqwest::Client,
    node: String,
    /// New rows are in the store (or the profiles changed).
    wake: Arc<Notify>,
    /// Looks at the outbox so far.
    looks: Arc<AtomicU64>,
}

impl Worker {
    /// Runs `f` on the worker's store connection on the blocking pool.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> callbridge_crm_store::Result<T> + Send + 'static,
    ) -> Option<T> {
        let store = Arc::clone(&self.store);
        let r = tokio::task::spawn_blocking(move || {
            let mut s = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut s)
        })
        .await;
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                warn!(error = %e, "webhook outbox: store call failed");
                None
            }
            Err(_) => None,
        }
    }

    /// The configuration a row is sent by (`None`: its profile has no
    /// webhooks any more).
    fn config_of(&self, row: &OutboxRow) -> Option<Arc<WebhookConfig>> {
        match &row.target {
            None => Some(Arc::clone(&self.cfg)),
            Some(name) => self.targets.profile(name),
        }
    }

    async fn run(self, stop: CancellationToken) {
        // Every target has the global time limit (a profile's webhooks
        // take it from `[webhooks]`).
        let lease = self.cfg.timeout * 2 + Duration::from_secs(5);
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            if stop.is_cancelled() {
                break;
            }
            if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(tokio::time::Instant::now());
                let keep = self.cfg.retention;
                if let Some(n) = self
                    .with_store(move |s| {
                        let before = jiff::Timestamp::now()
                            .checked_sub(keep)
                            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                        s.prune_outbox(before)
                    })
                    .await
                    && n > 0
                {
                    debug!(rows = n, "old webhook deliveries pruned");
                }
            }
            // A read first: the worker always runs (a profile may gain
            // webhooks at any time), and an empty outbox must not cost a
            // write transaction every look.
            self.looks.fetch_add(1, Ordering::Relaxed);
            let next = self.with_store(|s| s.outbox_next_due()).await;
            let now = jiff::Timestamp::now();
            let rows = match next {
                Some(Some(due)) if due <= now => {
                    let node = self.node.clone();
                    self.with_store(move |s| s.claim_outbox(now, BATCH, lease, &node))
                        .await
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            };
            if rows.is_empty() {
                let wait = match next {
                    Some(Some(due)) => Duration::try_from(due.duration_since(now))
                        .unwrap_or_default()
                        .clamp(MIN_WAIT, FALLBACK_POLL),
                    Some(None) => FALLBACK_POLL,
                    None => ERROR_WAIT,
                };
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = self.wake.notified() => continue,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
            let mut set = JoinSet::new();
            for row in rows {
                let Some(cfg) = self.config_of(&row) else {
                    let id = row.id;
                    warn!(event = %row.event, row = %id, "webhook row's target profile has no webhooks; failed");
                    self.with_store(move |s| {
                        s.outbox_failed(id, "target profile has no webhooks", None)
                    })
                    .await;
                    continue;
                };
                let client = self.client.clone();
                set.spawn(async move {
                    let a = attempt(&client, &cfg, &row).await;
                    (row, cfg, a)
                });
            }
            while let Some(done) = set.join_next().await {
                let Ok((row, cfg, a)) = done else { continue };
                self.record(row, &cfg, a).await;
            }
        }
        debug!(
            looks = self.looks.load(Ordering::Relaxed),
            "webhook worker stopped"
        );
    }

    async fn record(&self, row: OutboxRow, cfg: &WebhookConfig, a: Attempt) {
        let now = jiff::Timestamp::now();
        let id = row.id;
        match a {
            Attempt::Delivered(status) => {
                debug!(event = %row.event, row = %id, status, "webhook delivered");
                self.with_store(move |s| s.outbox_delivered(id, now, status))
                    .await;
            }
            Attempt::Failed { error, status } => {
                let jitter: f64 = rand::rng().random();
                let n = row.attempts.saturating_add(1);
                match cfg.backoff.next(n, row.created_at, now, jitter) {
                    Some(next) => {
                        debug!(event = %row.event, row = %id, attempt = n, %error, "webhook attempt failed; retrying");
                        self.with_store(move |s| s.outbox_retry(id, next, &error, status))
                            .await;
                    }
                    None => {
                        warn!(event = %row.event, row = %id, attempts = n, %error, "webhook given up");
                        self.with_store(move |s| s.outbox_failed(id, &error, status))
                            .await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// One POST of one row.
async fn attempt(client: &reqwest::Client, cfg: &WebhookConfig, row: &OutboxRow) -> Attempt {
    let mut req = client
        .post(&row.url)
        .timeout(cfg.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &row.key)
        .header("X-Callbridge-Event", &row.event)
        .header(
            "X-Callbridge-Delivery-Attempt",
            row.attempts.saturating_add(1).to_string(),
        );
    if let Some(secret) = &cfg.secret {
        let t = jiff::Timestamp::now().as_second();
        req = req.header(
            SIGNATURE_HEADER,
            sign(secret.expose(), t, row.payload.as_bytes()),
        );
    }
    match req.body(row.payload.clone()).send().await {
        Ok(res) if res.status().is_success() => Attempt::Delivered(res.status().as_u16()),
        Ok(res) => Attempt::Failed {
            error: format!("HTTP {}", res.status().as_u16()),
            status: Some(res.status().as_u16()),
        },
        Err(e) => Attempt::Failed {
            error: if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "request failed".to_owned()
            },
            status: None,
        },
    }
}
