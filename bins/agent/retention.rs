//! `[retention]`: a side task that applies the configured limits at start
//! and then hourly ([`PERIOD`]). Each pass asks the store what is past its
//! limit (`Store::expire`: ended calls only, a bounded batch per kind),
//! then removes the recording files the store handed back, logs one line
//! with the counts and adds them to `callbridge_retention_deleted_total`
//! (label `kind`: `sessions`, `transcripts`, `recordings`). A failed pass
//! is logged and retried at the next period; it never stops the agent.

use std::sync::LazyLock;
use std::time::Duration;

use callbridge_crm_store::{Expired, Retention, StoreAt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::erase::remove_recording;

/// How often the limits are applied.
pub const PERIOD: Duration = Duration::from_secs(3600);

/// The label set of [`deleted`]: `kind`.
pub type KindLabel = Vec<(&'static str, &'static str)>;

/// `callbridge_retention_deleted_total{kind}`: what retention removed
/// since start (registered on the metrics page).
pub fn deleted() -> &'static Family<KindLabel, Counter> {
    static DELETED: LazyLock<Family<KindLabel, Counter>> = LazyLock::new(|| {
        let f = Family::<KindLabel, Counter>::default();
        // Every kind from the start, so rates work from the first pass.
        for kind in ["sessions", "transcripts", "recordings"] {
            drop(f.get_or_create(&vec![("kind", kind)]));
        }
        f
    });
    &DELETED
}

/// Starts the task, unless every limit is off. It stops when `stop` is
/// cancelled.
pub fn spawn(store: StoreAt, policy: Retention, stop: CancellationToken) -> Option<JoinHandle<()>> {
    if policy == Retention::default() {
        return None;
    }
    info!(
        recordings = policy.recordings.map(|d| d.as_secs()),
        transcripts = policy.transcripts.map(|d| d.as_secs()),
        sessions = policy.sessions.map(|d| d.as_secs()),
        "retention on (limits in seconds)"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let store = store.clone();
            match tokio::task::spawn_blocking(move || pass(&store, &policy)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "retention pass failed; retried in an hour"),
                Err(e) => warn!(error = %e, "retention pass panicked; retried in an hour"),
            }
        }
    }))
}

/// One pass: expire in the store, remove the files, count and log.
pub fn pass(store: &StoreAt, policy: &Retention) -> Result<Expired, callbridge_crm_store::Error> {
    let mut s = store.open()?;
    let e = s.expire(policy, jiff::Timestamp::now())?;
    let files = e
        .sessions
        .iter()
        .filter_map(|d| d.recording.as_deref())
        .chain(e.recordings.iter().map(std::path::PathBuf::as_path))
        .filter(|p| remove_recording(p))
        .count();
    let add = |kind: &'static str, n: usize| {
        deleted()
            .get_or_create(&vec![("kind", kind)])
            .inc_by(n as u64);
    };
    add("sessions", e.sessions.len());
    add(
        "transcripts",
        usize::try_from(e.transcripts).unwrap_or(usize::MAX),
    );
    add("recordings", e.recordings.len());
    info!(
        sessions = e.sessions.len(),
        transcripts = e.transcripts,
        recordings = e.recordings.len(),
        files_removed = files,
        "retention applied"
    );
    Ok(e)
}
