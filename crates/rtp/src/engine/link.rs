//! What one call's task and its engine thread share: preallocated
//! lock-free queues ([`crossbeam_queue::ArrayQueue`]) for the frames to
//! play, the events and the call's commands, two [`AtomicWaker`]s and a
//! few flags. A leaf module: the engine's worker and the stream's handle
//! both use it, neither waits for the other.
//!
//! The engine side never blocks and never allocates here: a full event
//! queue drops the audio event (counted), a full command queue is not
//! possible in practice (a call sends a handful of commands per second;
//! [`CONTROL_CAPACITY`] per tick).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Instant;

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use crate::clock::MediaClock;
use crate::media::{Frame, MediaEvent, MediaStats};

/// Commands a call may queue between two ticks.
pub(crate) const CONTROL_CAPACITY: usize = 32;

/// A call's command to its media, applied at the next tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// Barge-in: drop the frames the core holds (the call side has
    /// emptied the shared queue itself).
    Clear,
    /// Start an RFC 4733 event.
    Dtmf { event: u8, duration: u16 },
    /// A new SDP peer address.
    SetRemote(Option<SocketAddr>),
    /// The answer went out at this instant.
    Answered(Instant),
    /// The signalling peer's new IP (an outbound INVITE failed over).
    SetSignallingIp(Option<std::net::IpAddr>),
    /// The SRTP keys of the answer (boxed: commands stay small).
    SetSrtp(Box<crate::srtp::SrtpKeys>),
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Link {
    /// Frames to play, call to engine.
    pub(crate) play: ArrayQueue<Frame>,
    /// Events, engine to call.
    pub(crate) events: ArrayQueue<MediaEvent>,
    /// Commands, call to engine.
    pub(crate) control: ArrayQueue<Control>,
    /// The counters as last handed over (the engine replaces the one
    /// waiting): every few ticks, when `stats_wanted`, and on release.
    pub(crate) stats: ArrayQueue<MediaStats>,
    /// The call side read the counters: hand them over at the next tick.
    pub(crate) stats_wanted: AtomicBool,
    /// The counters last taken out of `stats` (read side only).
    pub(crate) last_stats: Mutex<MediaStats>,
    /// Woken when events arrive or the call is released.
    pub(crate) event_waker: AtomicWaker,
    /// Woken when the engine took a frame out of a full `play` queue.
    pub(crate) space_waker: AtomicWaker,
    /// The call asked to close (or dropped its handle).
    pub(crate) closing: AtomicBool,
    /// The engine let go of the call: its sockets are closed and its port
    /// is back in the pool.
    pub(crate) released: AtomicBool,
    /// The engine thread serving the call (unparked on close).
    pub(crate) worker: Thread,
    pub(crate) clock: Arc<dyn MediaClock>,
}

impl Link {
    pub(crate) fn new(
        playback_capacity: usize,
        event_capacity: usize,
        worker: Thread,
        clock: Arc<dyn MediaClock>,
    ) -> Link {
        Link {
            play: ArrayQueue::new(playback_capacity.max(1)),
            events: ArrayQueue::new(event_capacity.max(1)),
            control: ArrayQueue::new(CONTROL_CAPACITY),
            stats: ArrayQueue::new(1),
            stats_wanted: AtomicBool::new(false),
            last_stats: Mutex::new(MediaStats::default()),
            event_waker: AtomicWaker::new(),
            space_waker: AtomicWaker::new(),
            closing: AtomicBool::new(false),
            released: AtomicBool::new(false),
            worker,
            clock,
        }
    }

    /// The call side: queues a command; false when the queue is full.
    pub(crate) fn command(&self, c: Control) -> bool {
        self.control.push(c).is_ok()
    }

    /// The call side: asks the engine to let go of the call, at once.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.worker.unpark();
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// The engine side: the call's sockets are closed.
    pub(crate) fn release(&self) {
        self.released.store(true, Ordering::Release);
        self.event_waker.wake();
        self.space_waker.wake();
    }

    /// The call side: the counters as last handed over; asks for the
    /// next tick's.
    pub(crate) fn stats(&self) -> MediaStats {
        self.stats_wanted.store(true, Ordering::Relaxed);
        let mut last = self
            .last_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(s) = self.stats.pop() {
            *last = s;
        }
        *last
    }
}
