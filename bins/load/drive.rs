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
    /// The readings that bound the time every call of the run was talking
    /// at once (none when that never happened).
    pub steady: Option<SteadyWindow>,
}

/// The first and last readings while every call was talking (answered,
/// not yet hung up): the agent's cost per live call without call set-up
/// and tear-down in it.
#[derive(Debug, Clone, Copy)]
pub struct SteadyWindow {
    /// Calls talking in the window.
    pub calls: usize,
    /// First reading in the window.
    pub first: (Instant, Sample),
    /// Last reading in the window.
    pub last: (Instant, Sample),
    /// A reading found fewer calls talking: the window is over.
    pub closed: bool,
}

impl SteadyWindow {
    /// Shortest window worth reporting: a few readings, so the CPU clock's
    /// 10 ms resolution is a small part of it.
    const MIN: Duration = Duration::from_secs(2);

    /// Cores, CPU seconds per call-minute and the window's length; none
    /// when the window is shorter than [`Self::MIN`].
    pub fn figures(&self) -> Option<SteadyFigures> {
        let wall = self.last.0.duration_since(self.first.0);
        if wall < Self::MIN || self.calls == 0 {
            return None;
        }
        let cpu_s = self.last.1.cpu_s - self.first.1.cpu_s;
        let wall_s = wall.as_secs_f64();
        Some(SteadyFigures {
            calls: self.calls,
            window_s: wall_s,
            cores: cpu_s / wall_s,
            cpu_s_per_call_minute: cpu_s / (self.calls as f64 * wall_s / 60.0),
        })
    }

    /// Folds in one reading with `talking` calls talking out of the run's
    /// `concurrent`.
    fn observe(
        window: &mut Option<Self>,
        at: Instant,
        s: Sample,
        talking: usize,
        concurrent: usize,
    ) {
        match window {
            Some(w) if w.closed => {}
            Some(w) if talking < w.calls => w.closed = true,
            Some(w) => w.last = (at, s),
            None if concurrent > 0 && talking >= concurrent => {
                *window = Some(Self {
                    calls: concurrent,
                    first: (at, s),
                    last: (at, s),
                    closed: false,
                });
            }
            None => {}
        }
    }
}

/// The agent's figures over the steady window.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SteadyFigures {
    /// Calls talking throughout.
    pub calls: usize,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Cores the agent used.
    pub cores: f64,
    /// CPU seconds per minute of call time.
    pub cpu_s_per_call_minute: f64,
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
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let s = procstat::sample(pid);
                let Ok(mut w) = watch.lock() else { return };
                if let Some(s) = s {
                    let talking = shared.talking.load(Ordering::Relaxed);
                    SteadyWindow::observe(&mut w.steady, Instant::now(), s, talking, concurrent);
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

    fn at(t0: Instant, s: f64, cpu_s: f64) -> (Instant, Sample) {
        let sample = Sample {
            cpu_s,
            ..Sample::default()
        };
        (t0 + Duration::from_secs_f64(s), sample)
    }

    #[test]
    fn the_steady_window_spans_only_readings_with_every_call_talking() {
        let t0 = Instant::now();
        let mut w = None;
        // (seconds, agent CPU seconds, calls talking) of 100.
        let readings = [
            (0.0, 0.0, 10),
            (1.0, 0.5, 99),
            (2.0, 1.0, 100),
            (3.0, 1.6, 100),
            (4.0, 2.2, 100),
            (5.0, 2.8, 100),
            (6.0, 3.0, 99),
            (7.0, 3.1, 100),
        ];
        for (s, cpu, talking) in readings {
            let (now, sample) = at(t0, s, cpu);
            SteadyWindow::observe(&mut w, now, sample, talking, 100);
        }
        let f = w.and_then(|w| w.figures()).unwrap();
        assert_eq!(f.calls, 100);
        assert!((f.window_s - 3.0).abs() < 1e-9, "{f:?}");
        assert!((f.cores - 0.6).abs() < 1e-9, "{f:?}");
        // 1.8 CPU s over 100 calls x 3 s = 5 call-minutes.
        assert!((f.cpu_s_per_call_minute - 0.36).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn no_steady_figures_when_the_calls_never_all_talked_or_only_briefly() {
        let t0 = Instant::now();
        let mut never = None;
        for (s, cpu) in [(0.0, 0.0), (5.0, 1.0)] {
            let (now, sample) = at(t0, s, cpu);
            SteadyWindow::observe(&mut never, now, sample, 99, 100);
        }
        assert!(never.is_none());
        let mut brief = None;
        for (s, cpu) in [(0.0, 0.0), (1.5, 1.0)] {
            let (now, sample) = at(t0, s, cpu);
            SteadyWindow::observe(&mut brief, now, sample, 100, 100);
        }
        assert!(brief.and_then(|w| w.figures()).is_none());
    }
}
