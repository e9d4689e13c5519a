//! Places the calls: `total` calls with at most `concurrent` live, the
//! first ones spread over the ramp, each new one as soon as a slot frees;
//! meanwhile samples the agent process every half second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::call::{self, CallResult, Kind, Shared};
use crate::procstat::{self, Sample};

/// Which caller fault call `i` gets (about 5% each of vanish, duplicate
/// BYE and CANCEL, 10% lossy relay) when faults are on.
pub fn kind_of(i: u64, faults: bool) -> Kind {
    if !faults {
        return Kind::Normal;
    }
    match i % 20 {
        1 => Kind::Vanish,
        4 => Kind::DupBye,
        8 => Kind::Cancel,
        12 | 13 => Kind::Lossy,
        _ => Kind::Normal,
    }
}

/// What the sampler saw of the agent during the calls.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// The last reading.
    pub last: Option<Sample>,
    /// Largest RSS.
    pub peak_rss: u64,
    /// Most calls live at once (caller side).
    pub peak_live: usize,
    /// RSS when the mark's number of answered calls (100 by default) had
    /// finished (refused calls hold nothing: counting them, a burst offered
    /// at once took this reading before its admitted calls were set up).
    pub rss_after_100: Option<u64>,
}

/// Runs the calls; returns their results (in completion order), the
/// sampler's view and the wall time.
pub async fn drive(
    shared: Arc<Shared>,
    total: u64,
    concurrent: usize,
    ramp: Duration,
    faults: bool,
    agent_pid: Option<u32>,
    rss_mark_calls: usize,
) -> (Vec<CallResult>, Watch, Duration) {
    let live = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let watch = Arc::new(std::sync::Mutex::new(Watch::default()));
    let t0 = Instant::now();
    let sampler = agent_pid.map(|pid| {
        let (live, done, watch) = (live.clone(), done.clone(), watch.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let s = procstat::sample(pid);
                let Ok(mut w) = watch.lock() else { return };
                if let Some(s) = s {
                    w.last = Some(s);
                    w.peak_rss = w.peak_rss.max(s.rss);
                    if w.rss_after_100.is_none() && done.load(Ordering::Relaxed) >= rss_mark_calls {
                        w.rss_after_100 = Some(s.rss);
                    }
                }
                w.peak_live = w.peak_live.max(live.load(Ordering::Relaxed));
            }
        })
    });
    let slots = Arc::new(Semaphore::new(concurrent.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        if (i as usize) < concurrent {
            let at = t0 + ramp.mul_f64(i as f64 / concurrent.max(1) as f64);
            tokio::time::sleep_until(at).await;
        }
        let (shared, live, done, results) =
            (shared.clone(), live.clone(), done.clone(), results.clone());
        tasks.spawn(async move {
            live.fetch_add(1, Ordering::Relaxed);
            let r = call::run(shared, i + 1, kind_of(i, faults)).await;
            live.fetch_sub(1, Ordering::Relaxed);
            if r.setup.is_some() {
                done.fetch_add(1, Ordering::Relaxed);
            }
            results.lock().await.push(r);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let wall = t0.elapsed();
    if let Some(s) = sampler {
        s.abort();
    }
    let mut w = watch.lock().map(|w| w.clone()).unwrap_or_default();
    if let Some(pid) = agent_pid
        && let Some(s) = procstat::sample(pid)
    {
        w.last = Some(s);
    }
    let results = std::mem::take(&mut *results.lock().await);
    (results, w, wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_shares_are_five_percent_each_and_ten_for_the_relay() {
        let count = |k: Kind| (0..1000).filter(|&i| kind_of(i, true) == k).count();
        assert_eq!(count(Kind::Vanish), 50);
        assert_eq!(count(Kind::DupBye), 50);
        assert_eq!(count(Kind::Cancel), 50);
        assert_eq!(count(Kind::Lossy), 100);
        assert!((0..1000).all(|i| kind_of(i, false) == Kind::Normal));
    }
}
