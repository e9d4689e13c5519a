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
//!    earliest deadline.
//!
//! Nothing in the loop allocates once a call's queues have their working
//! size, takes a lock or touches tokio.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::io::{BATCH, Batch};
use super::link::{Control, Link};
use super::load::{EngineCounters, EngineLoad, LoadMeter};
use super::priority::{self, Applied, RealtimePriority};
use crate::clock::MediaClock;
use crate::media::{MAX_CATCH_UP, MediaCore, MediaEvent, Socket, WAKE_TOLERANCE};
use crate::ports::PortLease;

/// Calls that may wait for their engine thread to take them.
pub(crate) const INBOX: usize = 256;

/// The RTCP socket is read every this many ticks (a BYE is rare and only
/// reported; a read per tick would double the syscalls).
const RTCP_READ_EVERY: u32 = 25;

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
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Sockets and port first, then tell the call: on `released` the
        // port is back in the pool.
        drop(self.io.take());
        self.link.release();
    }
}

/// What a worker shares with the engine handle.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) inbox: ArrayQueue<Box<Slot>>,
    pub(crate) stop: AtomicBool,
    pub(crate) calls: AtomicUsize,
    late_p99_us: AtomicU64,
    busy_permille: AtomicU64,
    backlog_p99: AtomicU64,
    ticks: AtomicU64,
    late: AtomicU64,
    skipped: AtomicU64,
    applied: AtomicU8,
}

impl WorkerShared {
    pub(crate) fn new() -> WorkerShared {
        WorkerShared {
            inbox: ArrayQueue::new(INBOX),
            stop: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            late_p99_us: AtomicU64::new(0),
            busy_permille: AtomicU64::new(0),
            backlog_p99: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            late: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            applied: AtomicU8::new(0),
        }
    }

    fn publish(&self, l: &EngineLoad, c: &EngineCounters) {
        let us = u64::try_from(l.late_p99.as_micros()).unwrap_or(u64::MAX);
        self.late_p99_us.store(us, Ordering::Relaxed);
        self.busy_permille
            .store((l.busy * 1000.0) as u64, Ordering::Relaxed);
        self.backlog_p99
            .store(u64::from(l.backlog_p99), Ordering::Relaxed);
        self.publish_counters(c);
    }

    fn publish_counters(&self, c: &EngineCounters) {
        self.ticks.store(c.ticks, Ordering::Relaxed);
        self.late.store(c.late, Ordering::Relaxed);
        self.skipped.store(c.skipped, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> EngineLoad {
        EngineLoad {
            late_p99: std::time::Duration::from_micros(self.late_p99_us.load(Ordering::Relaxed)),
            busy: self.busy_permille.load(Ordering::Relaxed) as f64 / 1000.0,
            backlog_p99: u32::try_from(self.backlog_p99.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn counters(&self) -> EngineCounters {
        EngineCounters {
            ticks: self.ticks.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn applied(&self) -> Option<Applied> {
        match self.applied.load(Ordering::Relaxed) {
            1 => Some(Applied::Realtime),
            2 => Some(Applied::Nice),
            3 => Some(Applied::Normal),
            _ => None,
        }
    }
}

/// The engine thread. See the module docs.
pub(crate) fn run(shared: &WorkerShared, clock: &dyn MediaClock, want: RealtimePriority) {
    clock.watch(std::thread::current());
    let applied = priority::apply(want);
    shared.applied.store(
        match applied {
            Applied::Realtime => 1,
            Applied::Nice => 2,
            Applied::Normal => 3,
        },
        Ordering::Relaxed,
    );
    if want != RealtimePriority::Off {
        tracing::info!(?want, ?applied, "media engine thread scheduling");
    }
    let mut calls: Vec<Box<Slot>> = Vec::new();
    let mut batch = Batch::new();
    let mut meter = LoadMeter::new(clock.now());
    loop {
        while let Some(slot) = shared.inbox.pop() {
            calls.push(slot);
        }
        let stop = shared.stop.load(Ordering::Acquire);
        let now = clock.now();
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
                serve(slot, now, clock, &mut batch, &mut meter);
            }
            if slot.core.is_closed() {
                drop(calls.swap_remove(i));
                continue;
            }
            i += 1;
        }
        shared.calls.store(calls.len(), Ordering::Relaxed);
        if calls.is_empty() {
            // Nothing to serve: no load, and no stale window kept while
            // the thread waits without a deadline.
            meter.restart(clock.now());
            shared.publish(&EngineLoad::default(), &meter.counters());
        } else if let Some(load) = meter.pass(now, clock.now(), calls.len()) {
            shared.publish(&load, &meter.counters());
        } else {
            shared.publish_counters(&meter.counters());
        }
        if stop && calls.is_empty() && shared.inbox.is_empty() {
            return;
        }
        let next = calls.iter().filter_map(|c| c.core.poll_timeout()).min();
        // A consumer that does not read at all (a full queue) does not
        // hold a simulated clock back.
        let idle = calls
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
    batch: &mut Batch,
    meter: &mut LoadMeter,
) {
    let Slot {
        core,
        io,
        link,
        rtcp_countdown,
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
                    .and_then(|w| clock.arrival(w))
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
    if let Some(d) = core.poll_timeout()
        && d <= now + WAKE_TOLERANCE
        && !core.is_closed()
    {
        meter.tick(now.saturating_duration_since(d));
    }
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
    let _ = link.stats.force_push(core.stats());
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
