//! Live resource gauges of the session manager: call tasks, media sockets
//! (open `MediaStream`s) and model connections. Each is counted by an RAII
//! guard, so every exit path (including an aborted task) gives it back;
//! the failure table's "after N calls the server needs a restart" is
//! caught by tests asserting that they return to zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The counters (shared by the manager and its calls).
#[derive(Debug, Default)]
pub struct Gauges {
    call_tasks: AtomicUsize,
    media_sockets: AtomicUsize,
    model_sessions: AtomicUsize,
}

/// Which gauge a [`GaugeGuard`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// A call's supervisor task is alive.
    CallTask,
    /// A media stream (RTP socket) is open.
    MediaSocket,
    /// A model session is open (or opening).
    ModelSession,
}

impl Gauges {
    fn cell(&self, g: Gauge) -> &AtomicUsize {
        match g {
            Gauge::CallTask => &self.call_tasks,
            Gauge::MediaSocket => &self.media_sockets,
            Gauge::ModelSession => &self.model_sessions,
        }
    }

    /// The current value of one gauge.
    pub fn get(&self, g: Gauge) -> usize {
        self.cell(g).load(Ordering::Relaxed)
    }

    /// Counts one resource until the guard is dropped.
    pub fn hold(self: &Arc<Self>, g: Gauge) -> GaugeGuard {
        self.cell(g).fetch_add(1, Ordering::Relaxed);
        GaugeGuard {
            gauges: Arc::clone(self),
            gauge: g,
        }
    }
}

/// Holds one unit of a gauge; dropping it gives the unit back.
#[derive(Debug)]
pub struct GaugeGuard {
    gauges: Arc<Gauges>,
    gauge: Gauge,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauges.cell(self.gauge).fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_return_gauges_to_zero() {
        let g = Arc::new(Gauges::default());
        let a = g.hold(Gauge::MediaSocket);
        let b = g.hold(Gauge::MediaSocket);
        assert_eq!(g.get(Gauge::MediaSocket), 2);
        drop((a, b));
        assert_eq!(g.get(Gauge::MediaSocket), 0);
        assert_eq!(g.get(Gauge::CallTask), 0);
    }
}
