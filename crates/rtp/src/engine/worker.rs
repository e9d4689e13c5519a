//! One engine thread: it owns the sockets and the [`MediaCore`] of each of
//! its calls and runs one loop (the sans-IO driver loop of the module
//! docs of [`media`](crate::media)):
//!
//! 1. take the calls that opened since the last pass;
//! 2. for each call that is due (or closing): apply its commands, top up
//!    the core's playback from the call's queue, read its socket
//!    (`recvmmsg`, kernel-stamped), run `handle_tick` until it is
//!    drained (the RTP packets of the pass in one `sendmmsg`), and hand
//!    the events to the call's queue, waking its task once;
//! 3. let go of closed calls (sockets closed, port back in the pool);
//! 4. publish the load once per window, and wait on the clock until the
//!    earliest deadline (taken while serving, in the same scan).
//!
//! Nothing in the loop allocates once a call's queues have their working
//! size or takes a lock; the only tokio it touches is the call task's
//! waker (an `AtomicWaker`), woken once per pass that had events for it.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::io::{BATCH, Batch};
use super::link::{Control, Link};
use super::load::{EngineCounters, EngineLoad, LoadMeter};
use super::priority::{self, RealtimePriority};
use crate::clock::{MediaClock, StampBase};
use crate::media::{MAX_CATCH_UP, MediaCore, MediaEvent, Socket, WAKE_TOLERANCE};
use crate::ports::PortLease;

/// Calls that may wait for their engine thread to take them.
pub(crate) const INBOX: usize = 256;

/// The RTCP socket is read every this many ticks (a BYE is rare and only
/// reported; a read per tick would double the syscalls).
const RTCP_READ_EVERY: u32 = 25;

/// A call's counters are handed to its task every this many passes (and
/// when the engine lets go of it); the task reads them every 50 ticks.
const STATS_EVERY: u32 = 25;

/// A call's sockets and its port.
#[derive(Debug)]
pub(crate) struct CallIo {
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: Option<UdpSocket>,
    pub(crate) _lease: PortLease,
}

/// One call as its engine thread holds it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) core: MediaCore,
    /// `None` once released.
    pub(crate) io: Option<CallIo>,
    pub(crate) link: Arc<Link>,
    pub(crate) rtcp_countdown: u32,
    /// Passes until the counters are handed to the call again.
    pub(crate) stats_countdown: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Sockets and port first, then the final counters, then tell the
        // call: on `released` the port is back in the pool.
        drop(self.io.take());
        let _ = self.link.stats.force_push(self.core.stats());
        self.link.release();
    }
}

/// What a worker shares with the engine handle.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) inbox: ArrayQueue<Box<Slot>>,
    pub(crate) stop: AtomicBool,
    pub(crate) calls: AtomicUsize,
    /// Calls handed to the thread since it last published a window
    /// (admission counts them on top of the window's load).
    pub(crate) added: AtomicUsize,
    /// Calls served when the last window was published.
    window_calls: AtomicUsize,
    /// Windows published (and each time the thread becomes idle: its
    /// calls may all have been shorter than a window): admission takes
    /// each new one into account.
    windows: AtomicU64,
    late_p99_us: AtomicU64,
    /// [`EngineLoad::stalled`]'s bits.
    stalled: AtomicU64,
    busy_permille: AtomicU64,
    backlog_p99: AtomicU64,
    ticks: AtomicU64,
    late: AtomicU64,
    skipped: AtomicU64,
}

impl WorkerShared {
    pub(crate) fn new() -> WorkerShared {
        WorkerShared {
            inbox: ArrayQueue::new(INBOX),
            stop: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            added: AtomicUsize::new(0),
            window_calls: AtomicUsize::new(0),
            windows: AtomicU64::new(0),
            late_p99_us: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            busy_permille: AtomicU64::new(0),
            backlog_p99: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            late: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Publishes a window measured with `calls` calls; `new` counts it
    /// (an idle thread publishes an empty window on every pass, counted
    /// once).
    fn publish(&self, l: &EngineLoad, calls: usize, c: &EngineCounters, new: bool) {
        self.window_calls.store(calls, Ordering::Relaxed);
        self.added.store(0, Ordering::Relaxed);
        let us = u64::try_from(l.late_p99.as_micros()).unwrap_or(u64::MAX);
        self.late_p99_us.store(us, Ordering::Relaxed);
        self.stalled.store(l.stalled.to_bits(), Ordering::Relaxed);
        self.busy_permille
            .store((l.busy * 1000.0) as u64, Ordering::Relaxed);
        self.backlog_p99
            .store(u64::from(l.backlog_p99), Ordering::Relaxed);
        self.publish_counters(c);
        if new {
            // Last: a reader that sees the new count sees the window.
            self.windows.fetch_add(1, Ordering::Release);
        }
    }

    /// Windows published so far.
    pub(crate) fn windows(&self) -> u64 {
        self.windows.load(Ordering::Acquire)
    }

    fn publish_counters(&self, c: &EngineCounters) {
        self.ticks.store(c.ticks, Ordering::Relaxed);
        self.late.store(c.late, Ordering::Relaxed);
        self.skipped.store(c.skipped, Ordering::Relaxed);
    }

    /// The last window's load, with the calls added since counted in
    /// ([`EngineLoad::with_added`]).
    pub(crate) fn load(&self) -> EngineLoad {
        let window = self.window();
        let mut l = window.with_added(self.added.load(Ordering::Relaxed));
        l.calls = self.calls.load(Ordering::Relaxed);
        l
    }

    /// The last window's load as measured, with the calls it was
    /// measured with.
    pub(crate) fn window(&self) -> EngineLoad {
        EngineLoad {
            late_p99: std::time::Duration::from_micros(self.late_p99_us.load(Ordering::Relaxed)),
            stalled: f64::from_bits(self.stalled.load(Ordering::Relaxed)),
            busy: self.busy_permille.load(Ordering::Relaxed) as f64 / 1000.0,
            backlog_p99: u32::try_from(self.backlog_p99.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX),
            calls: self.window_calls.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn counters(&self) -> EngineCounters {
        EngineCounters {
            ticks: self.ticks.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

/// The engine thread. See the module docs.
pub(crate) fn run(shared: &WorkerShared, clock: &dyn MediaClock, want: RealtimePriority) {
    clock.watch(std::thread::current());
    let applied = priority::apply(want);
    if want != RealtimePriority::Off {
        tracing::info!(?want, ?applied, "media engine thread scheduling");
    }
    let mut calls: Vec<Box<Slot>> = Vec::new();
    let mut batch = Batch::new();
    let mut meter = LoadMeter::new(clock.now());
    // Whether the thread served calls since it was last idle.
    let mut busy = false;
    loop {
        while let Some(slot) = shared.inbox.pop() {
            calls.push(slot);
        }
        busy |= !calls.is_empty();
        let stop = shared.stop.load(Ordering::Acquire);
        let now = clock.now();
        let stamps = clock.stamp_base();
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while i < calls.len() {
            let slot = &mut calls[i];
            if stop || slot.link.is_closing() {
                slot.core.close();
            }
            let due = slot
                .core
                .poll_timeout()
                .is_some_and(|d| d <= now + WAKE_TOLERANCE);
            if due || slot.core.is_closed() || slot.link.is_closing() {
                serve(slot, now, clock, stamps.as_ref(), &mut batch, &mut meter);
            }
            if slot.core.is_closed() {
                drop(calls.swap_remove(i));
                continue;
            }
            if let Some(d) = slot.core.poll_timeout() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
            i += 1;
        }
        shared.calls.store(calls.len(), Ordering::Relaxed);
        if calls.is_empty() {
            // Nothing to serve: no load, and no stale window kept while
            // the thread waits without a deadline.
            meter.restart(clock.now());
            shared.publish(&EngineLoad::default(), 0, &meter.counters(), busy);
            busy = false;
        } else if let Some(load) = meter.pass(now, clock.now()) {
            shared.publish(&load, calls.len(), &meter.counters(), true);
        } else {
            shared.publish_counters(&meter.counters());
        }
        if stop && calls.is_empty() && shared.inbox.is_empty() {
            return;
        }
        // Only a clock that runs ahead of its consumers asks whether they
        // caught up (a scan of queues the call tasks write); a consumer
        // that does not read at all (a full queue) does not hold it back.
        let idle = clock.wakes_on_consume()
            && calls
                .iter()
                .all(|c| c.link.events.is_empty() || c.link.events.is_full());
        clock.wait(next, idle);
    }
}

/// One call's work at `now`. See the module docs.
fn serve(
    slot: &mut Slot,
    now: Instant,
    clock: &dyn MediaClock,
    stamps: Option<&StampBase>,
    batch: &mut Batch,
    meter: &mut LoadMeter,
) {
    let Slot {
        core,
        io,
        link,
        rtcp_countdown,
        stats_countdown,
    } = slot;
    let Some(io) = io.as_ref() else {
        core.close();
        return;
    };
    while let Some(c) = link.control.pop() {
        match c {
            Control::Clear => core.clear_playback(),
            Control::Dtmf { event, duration } => core.start_dtmf(event, duration),
            Control::SetRemote(r) => core.set_remote(r),
            Control::Answered(at) => core.answered(at),
            Control::SetSignallingIp(ip) => core.set_signalling_ip(ip),
            Control::SetSrtp(keys) => core.set_srtp(&keys),
        }
    }
    let was_full = link.play.is_full();
    while core.queued() < MAX_CATCH_UP as usize {
        let Some(f) = link.play.pop() else { break };
        core.play(f);
    }
    if was_full && !link.play.is_full() {
        link.space_waker.wake();
    }
    // What arrived since the last tick, stamped by the kernel.
    loop {
        let n = batch
            .recv(&io.rtp, |data, src, stamp| {
                let at = stamp
                    .and_then(|w| stamps.and_then(|b| b.arrival(w)))
                    .map_or(now, |t| t.min(now));
                core.handle_datagram(at, data, src);
            })
            .unwrap_or(0);
        if n < BATCH {
            break;
        }
    }
    if let Some(rtcp) = io.rtcp.as_ref() {
        *rtcp_countdown = rtcp_countdown.saturating_sub(1);
        if *rtcp_countdown == 0 {
            *rtcp_countdown = RTCP_READ_EVERY;
            let _ = batch.recv(rtcp, |data, src, _| core.handle_rtcp(now, data, src));
        }
    }
    // The tick's deadline; its lateness is taken once its packet is with
    // the kernel: the socket calls before it (the kernel's receive work for
    // other sockets may run inside them) count.
    let deadline = core
        .poll_timeout()
        .filter(|d| *d <= now + WAKE_TOLERANCE && !core.is_closed());
    let skipped_before = core.skipped_ticks();
    loop {
        if batch.is_full() {
            flush(batch, io, core);
        }
        let Some(buf) = batch.send_buffer() else {
            break;
        };
        let Some(t) = core.handle_tick(now, buf) else {
            break;
        };
        match t.socket {
            Socket::Rtp => batch.queue(t.len, t.destination),
            Socket::Rtcp => {
                if let Some(rtcp) = io.rtcp.as_ref() {
                    let _ = rtcp.send_to(&buf[..t.len], t.destination);
                }
            }
        }
    }
    flush(batch, io, core);
    if let Some(d) = deadline {
        meter.tick(clock.now().saturating_duration_since(d));
    }
    meter.skipped(core.skipped_ticks() - skipped_before);
    let mut pushed = false;
    let mut dropped = 0;
    while let Some(ev) = core.poll_event() {
        if matches!(ev, MediaEvent::Audio { .. }) {
            meter.backlog(link.events.len());
        }
        if link.events.push(ev).is_ok() {
            pushed = true;
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        core.handle_events_dropped(dropped);
    }
    *stats_countdown = stats_countdown.saturating_sub(1);
    let wanted = link.stats_wanted.load(Ordering::Relaxed)
        && link.stats_wanted.swap(false, Ordering::Relaxed);
    if *stats_countdown == 0 || wanted {
        *stats_countdown = STATS_EVERY;
        let _ = link.stats.force_push(core.stats());
    }
    if pushed {
        link.event_waker.wake();
    }
}

fn flush(batch: &mut Batch, io: &CallIo, core: &mut MediaCore) {
    let (_, failed) = batch.flush(&io.rtp);
    for _ in 0..failed {
        core.handle_send_error(Socket::Rtp);
    }
}
