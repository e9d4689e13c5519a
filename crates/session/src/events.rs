//! The call event bus: every state change, transcript delta and turn, tool
//! call, answering-machine verdict, summary and end of a call, published
//! once, in order, by the call's own task (and, for the summary, by its
//! supervisor). It is the one source of the agent's live event stream
//! (`GET /api/calls/{id}/events`) and of the webhooks' outbox.
//!
//! Each call has a bounded [`tokio::sync::broadcast`] channel of its own
//! ([`CALL_CAPACITY`] events), and the manager one for every call
//! ([`ALL_CAPACITY`]). Publishing never waits: a subscriber that falls
//! behind by more than the capacity loses the oldest events and is told
//! how many on its next receive (`RecvError::Lagged`), while the call goes
//! on. Durable delivery (webhooks) does not depend on a subscriber keeping
//! up: the call task writes the outbox rows of its events through the
//! store writer as it publishes them.
//!
//! Each call also keeps its [`REPLAY`] most recent events ([`CallFeed`]),
//! so a live-view client that connects late, or reconnects with the last
//! event it saw, gets the call's earlier events before the live ones
//! ([`CallFeed::replay`]): publishing appends to that ring and sends on
//! the channel under one lock, and a replay copies the ring and
//! subscribes under the same lock, so what it hands back and what its
//! receiver then gets neither overlap nor leave a gap.
//!
//! | event | data |
//! |---|---|
//! | `call.started` | `direction`, `transport` |
//! | `call.state` | `state` (the lifecycle phase: `ringing`, `active`, `on-hold`...) |
//! | `call.answered` | (none) |
//! | `transcript.delta` | `speaker` (`caller`/`agent`), `text` (a piece as the model sent it) |
//! | `transcript.turn` | `speaker`, `text`, `turn` (its number), `start_ms`, `end_ms` (from the call's start) |
//! | `tool.called` | `tool` and what the call recorded about it |
//! | `amd.verdict` | `amd` (the verdict) and its evidence |
//! | `call.ended` | `reason`, `outcome` (`ended`/`failed`), `sip_status`, `duration_ms`, `talk_ms` |
//! | `summary.ready` | `summary` |
//!
//! ```
//! use callbridge_session::events::{CallEvent, EventBus};
//! let bus = EventBus::default();
//! let mut all = bus.subscribe_all();
//! let id = callbridge_crm_store::SessionId::new_v4();
//! let mut publisher = bus.publisher(id);
//! let mut one = publisher.subscribe();
//! publisher.publish(CallEvent::Answered);
//! let e = one.try_recv().unwrap();
//! assert_eq!((e.name(), e.seq, e.key()), ("call.answered", 1, format!("{id}:1")));
//! assert_eq!(all.try_recv().unwrap().seq, 1);
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use callbridge_crm_store::SessionId;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Events a call's channel keeps for a subscriber that has not read them.
pub const CALL_CAPACITY: usize = 256;
/// A call's most recent events kept for replay ([`CallFeed::replay`]).
pub const REPLAY: usize = 256;
/// Events the manager-wide channel keeps for a slow subscriber.
pub const ALL_CAPACITY: usize = 4096;

/// The names of the events a webhook may ask for (the rest, `call.state`
/// and `transcript.delta`, are live-view only).
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "call.started",
    "call.answered",
    "call.ended",
    "transcript.turn",
    "summary.ready",
    "amd.verdict",
    "tool.called",
];

/// What happened (see the module docs for each one's data).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallEvent {
    /// The call task started.
    Started {
        /// `inbound` or `outbound`.
        direction: &'static str,
        /// `sip`, `twilio` or `vonage`.
        transport: &'static str,
    },
    /// The lifecycle phase changed.
    State {
        /// The phase's name.
        state: &'static str,
    },
    /// The call was answered (the dialog is up).
    Answered,
    /// A piece of transcript, as the model sent it.
    TranscriptDelta {
        /// The caller (`true`) or the agent.
        caller: bool,
        /// The piece.
        text: String,
    },
    /// A closed transcript turn (as stored).
    TranscriptTurn {
        /// The caller (`true`) or the agent.
        caller: bool,
        /// What was said.
        text: String,
        /// The turn's number in the call, from 0.
        turn: u32,
        /// Its start, ms from the call's start.
        start_ms: u64,
        /// Its end, ms from the call's start.
        end_ms: Option<u64>,
    },
    /// The model called a tool (what the call recorded about it).
    ToolCalled(Value),
    /// Answering-machine detection decided (the verdict and its evidence).
    AmdVerdict(Value),
    /// The call ended.
    Ended {
        /// The end reason's name.
        reason: &'static str,
        /// Whether the call ended or failed.
        failed: bool,
        /// The final SIP status, when there was one.
        sip_status: Option<u16>,
        /// From the call task's start to the end.
        duration_ms: u64,
        /// From the answer to the end, when answered.
        talk_ms: Option<u64>,
    },
    /// The post-call summary was made.
    SummaryReady {
        /// The summary's text.
        summary: String,
    },
}

impl CallEvent {
    /// The event's name (`call.started`, `transcript.turn`...).
    pub fn name(&self) -> &'static str {
        match self {
            CallEvent::Started { .. } => "call.started",
            CallEvent::State { .. } => "call.state",
            CallEvent::Answered => "call.answered",
            CallEvent::TranscriptDelta { .. } => "transcript.delta",
            CallEvent::TranscriptTurn { .. } => "transcript.turn",
            CallEvent::ToolCalled(_) => "tool.called",
            CallEvent::AmdVerdict(_) => "amd.verdict",
            CallEvent::Ended { .. } => "call.ended",
            CallEvent::SummaryReady { .. } => "summary.ready",
        }
    }

    /// The event's data as JSON.
    pub fn data(&self) -> Value {
        let speaker = |caller: bool| if caller { "caller" } else { "agent" };
        match self {
            CallEvent::Started {
                direction,
                transport,
            } => json!({"direction": direction, "transport": transport}),
            CallEvent::State { state } => json!({ "state": state }),
            CallEvent::Answered => json!({}),
            CallEvent::TranscriptDelta { caller, text } => {
                json!({"speaker": speaker(*caller), "text": text})
            }
            CallEvent::TranscriptTurn {
                caller,
                text,
                turn,
                start_ms,
                end_ms,
            } => json!({
                "speaker": speaker(*caller),
                "text": text,
                "turn": turn,
                "start_ms": start_ms,
                "end_ms": end_ms,
            }),
            CallEvent::ToolCalled(v) | CallEvent::AmdVerdict(v) => v.clone(),
            CallEvent::Ended {
                reason,
                failed,
                sip_status,
                duration_ms,
                talk_ms,
            } => json!({
                "reason": reason,
                "outcome": if *failed { "failed" } else { "ended" },
                "sip_status": sip_status,
                "duration_ms": duration_ms,
                "talk_ms": talk_ms,
            }),
            CallEvent::SummaryReady { summary } => json!({ "summary": summary }),
        }
    }

    /// Whether this is the call's last event on its live stream.
    pub fn is_end(&self) -> bool {
        matches!(self, CallEvent::Ended { .. })
    }
}

/// One published event: the call, its number in the call, when, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The call's session id.
    pub session: SessionId,
    /// The event's number in the call, from 1, in publishing order.
    pub seq: u64,
    /// When it was published.
    pub at: jiff::Timestamp,
    /// What happened.
    pub event: CallEvent,
}

impl Envelope {
    /// The event's name.
    pub fn name(&self) -> &'static str {
        self.event.name()
    }

    /// The event's unique id, `<session>:<seq>`: the same for every
    /// delivery of it (webhook receivers use it to drop repeats).
    pub fn key(&self) -> String {
        format!("{}:{}", self.session, self.seq)
    }

    /// The JSON document a subscriber or a webhook receives:
    /// `{"id", "event", "session", "seq", "at", "data"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.key(),
            "event": self.name(),
            "session": self.session.to_string(),
            "seq": self.seq,
            "at": self.at.to_string(),
            "data": self.event.data(),
        })
    }
}

/// A published event, shared by every subscriber.
pub type Published = Arc<Envelope>;

/// The manager-wide channel; makes each call's [`Publisher`].
#[derive(Debug, Clone)]
pub struct EventBus {
    all: broadcast::Sender<Published>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            all: broadcast::Sender::new(ALL_CAPACITY),
        }
    }
}

impl EventBus {
    /// Every call's events from now on.
    pub fn subscribe_all(&self) -> broadcast::Receiver<Published> {
        self.all.subscribe()
    }

    /// A new call's publisher (its own channel, numbered from 1).
    pub fn publisher(&self, session: SessionId) -> Publisher {
        Publisher {
            session,
            seq: 0,
            call: CallFeed::new(),
            all: self.all.clone(),
        }
    }
}

/// One call's channel and its ring of recent events: what its
/// subscribers are made from (kept in the registry). Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallFeed {
    inner: Arc<Mutex<FeedInner>>,
}

/// A feed's ring and channel; the lock also orders publishing against
/// replays.
#[derive(Debug)]
struct FeedInner {
    recent: VecDeque<Published>,
    /// Made by the first subscriber: most calls never have one, and a
    /// channel allocates all its [`CALL_CAPACITY`] slots at once (8.3 KB
    /// a call, heaptrack at 200 calls, 2026-12-07).
    sender: Option<broadcast::Sender<Published>>,
}

impl FeedInner {
    fn subscribe(&mut self) -> broadcast::Receiver<Published> {
        self.sender
            .get_or_insert_with(|| broadcast::Sender::new(CALL_CAPACITY))
            .subscribe()
    }
}

impl Default for CallFeed {
    fn default() -> Self {
        CallFeed::new()
    }
}

impl CallFeed {
    /// An empty feed.
    pub fn new() -> CallFeed {
        CallFeed {
            inner: Arc::new(Mutex::new(FeedInner {
                recent: VecDeque::with_capacity(16),
                sender: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The call's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.lock().subscribe()
    }

    /// The kept events numbered above `after` (0: all kept, at most
    /// [`REPLAY`], oldest first), and a receiver of every event after
    /// them: together each event once, in order. Events above `after`
    /// that the ring no longer holds are missing at the front (the first
    /// returned one's `seq` says how many).
    pub fn replay(&self, after: u64) -> (Vec<Published>, broadcast::Receiver<Published>) {
        let mut inner = self.lock();
        let kept = inner
            .recent
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        (kept, inner.subscribe())
    }

    fn publish(&self, e: &Published) {
        let mut inner = self.lock();
        if inner.recent.len() == REPLAY {
            inner.recent.pop_front();
        }
        inner.recent.push_back(Arc::clone(e));
        if let Some(sender) = &inner.sender {
            let _ = sender.send(Arc::clone(e));
        }
    }
}

/// Publishes one call's events, numbered in order; owned by the call's
/// task, then by its supervisor (the summary).
#[derive(Debug)]
pub struct Publisher {
    session: SessionId,
    seq: u64,
    call: CallFeed,
    all: broadcast::Sender<Published>,
}

impl Publisher {
    /// This call's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.call.subscribe()
    }

    /// The call's feed, subscribers and replays are made from (kept in
    /// the registry).
    pub fn feed(&self) -> CallFeed {
        self.call.clone()
    }

    /// Publishes `event` to the call's and the manager's subscribers,
    /// never waiting (no subscriber is not an error), and hands it back.
    pub fn publish(&mut self, event: CallEvent) -> Published {
        self.seq += 1;
        let e = Arc::new(Envelope {
            session: self.session,
            seq: self.seq,
            at: jiff::Timestamp::now(),
            event,
        });
        self.call.publish(&e);
        let _ = self.all.send(Arc::clone(&e));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::error::TryRecvError;

    #[test]
    fn events_are_numbered_in_order_for_every_subscriber() {
        let bus = EventBus::default();
        let id = SessionId::new_v4();
        let mut p = bus.publisher(id);
        let mut a = p.subscribe();
        let mut all = bus.subscribe_all();
        p.publish(CallEvent::State { state: "ringing" });
        p.publish(CallEvent::Answered);
        for rx in [&mut a, &mut all] {
            let one = rx.try_recv().unwrap();
            let two = rx.try_recv().unwrap();
            assert_eq!((one.seq, one.name()), (1, "call.state"));
            assert_eq!((two.seq, two.name()), (2, "call.answered"));
            assert_eq!(one.to_json()["data"]["state"], "ringing");
            assert_eq!(two.to_json()["id"], format!("{id}:2"));
        }
    }

    #[test]
    fn a_slow_subscriber_lags_and_is_told_how_far_while_publishing_goes_on() {
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        let mut slow = p.subscribe();
        let n = CALL_CAPACITY as u64 + 10;
        for i in 0..n {
            p.publish(CallEvent::TranscriptDelta {
                caller: true,
                text: i.to_string(),
            });
        }
        assert_eq!(slow.try_recv(), Err(TryRecvError::Lagged(10)));
        assert_eq!(slow.try_recv().unwrap().seq, 11);
    }

    #[test]
    fn a_replay_hands_back_the_kept_events_then_the_live_ones_each_once() {
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        let feed = p.feed();
        for _ in 0..5 {
            p.publish(CallEvent::Answered);
        }
        let (all, mut rx) = feed.replay(0);
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let (later, mut rx2) = feed.replay(3);
        assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "nothing twice");
        p.publish(CallEvent::Answered);
        assert_eq!(rx.try_recv().unwrap().seq, 6);
        assert_eq!(rx2.try_recv().unwrap().seq, 6);
        assert!(feed.replay(6).0.is_empty());
    }

    #[test]
    fn the_replay_ring_keeps_the_most_recent_events_only() {
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        let n = REPLAY as u64 + 7;
        for _ in 0..n {
            p.publish(CallEvent::Answered);
        }
        let (kept, _) = p.feed().replay(0);
        assert_eq!(kept.len(), REPLAY);
        assert_eq!(kept[0].seq, 8, "the oldest seven are gone");
        assert_eq!(kept[REPLAY - 1].seq, n);
    }

    #[test]
    fn replays_racing_a_publisher_never_miss_nor_repeat_an_event() {
        // A publisher on another thread; each replay's copy and its
        // receiver's events join without a gap or an overlap.
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        let feed = p.feed();
        let t = std::thread::spawn(move || {
            for _ in 0..2000 {
                p.publish(CallEvent::Answered);
            }
        });
        for _ in 0..200 {
            let (kept, mut rx) = feed.replay(0);
            let mut seqs: Vec<u64> = kept.iter().map(|e| e.seq).collect();
            while let Ok(e) = rx.try_recv() {
                seqs.push(e.seq);
            }
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        }
        t.join().unwrap();
    }

    #[test]
    fn publishing_with_no_subscriber_is_fine_and_still_numbers() {
        let bus = EventBus::default();
        let mut p = bus.publisher(SessionId::new_v4());
        assert_eq!(p.publish(CallEvent::Answered).seq, 1);
        assert_eq!(p.publish(CallEvent::Answered).seq, 2);
    }

    #[test]
    fn the_end_names_reason_outcome_and_durations() {
        let e = CallEvent::Ended {
            reason: "caller-hangup",
            failed: false,
            sip_status: None,
            duration_ms: 5000,
            talk_ms: Some(4000),
        };
        assert!(e.is_end());
        assert_eq!(
            e.data(),
            json!({"reason": "caller-hangup", "outcome": "ended", "sip_status": null,
                   "duration_ms": 5000, "talk_ms": 4000})
        );
    }

    #[test]
    fn every_webhook_event_name_is_an_events_name() {
        // One of each event; a webhook filter names what `name()` says.
        let all = [
            CallEvent::Started {
                direction: "inbound",
                transport: "sip",
            },
            CallEvent::State { state: "active" },
            CallEvent::Answered,
            CallEvent::TranscriptDelta {
                caller: true,
                text: String::new(),
            },
            CallEvent::TranscriptTurn {
                caller: true,
                text: String::new(),
                turn: 0,
                start_ms: 0,
                end_ms: None,
            },
            CallEvent::ToolCalled(json!({})),
            CallEvent::AmdVerdict(json!({})),
            CallEvent::Ended {
                reason: "caller-hangup",
                failed: false,
                sip_status: None,
                duration_ms: 0,
                talk_ms: None,
            },
            CallEvent::SummaryReady {
                summary: String::new(),
            },
        ];
        let names: Vec<&str> = all.iter().map(CallEvent::name).collect();
        for name in WEBHOOK_EVENTS {
            assert!(names.contains(&name), "{name} is no event's name");
        }
        let live_only: Vec<&&str> = names
            .iter()
            .filter(|n| !WEBHOOK_EVENTS.contains(n))
            .collect();
        assert_eq!(live_only, [&"call.state", &"transcript.delta"]);
    }
}
