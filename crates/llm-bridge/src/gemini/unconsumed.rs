//! The client messages a Gemini Live server has not yet taken into its
//! session state (sans-IO): what transparent resumption replays.
//!
//! Owns: [`Unconsumed`], a bounded buffer of the messages sent on the
//! current connection, numbered, dropped once a `sessionResumptionUpdate`
//! says the state of its handle includes them
//! (`lastConsumedClientMessageIndex`, sent because the setup asks for
//! `sessionResumption.transparent`). On a resume the rest is replayed on
//! the new connection, before the input held during the reconnect, so a
//! caller's utterance cut by a dropped connection reaches the model whole.
//!
//! Numbering: the docs say only "index of last message sent by client";
//! this client counts every message of one connection from 0, `setup`
//! included (so the first message after it is 1), and starts again on
//! each new connection. Should the server not count `setup`, its index
//! reads one lower here: one message already consumed is replayed (at
//! worst one audio chunk heard twice), never one lost.
//!
//! Without an index in an update (a server that ignores `transparent`)
//! the buffer falls back to what the docs describe: a new handle
//! includes the messages sent before it, so they are dropped.
//!
//! Bounds: at most `max_messages` messages and `max_bytes` bytes of wire
//! text. Beyond either, the oldest messages are dropped and the loss is
//! remembered: [`Unconsumed::take_replay`] reports it, and the caller
//! tells the application (`ErrorKind::InputDropped`); what is left is
//! still replayed.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What a resume replays.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The messages, oldest first, as they were sent.
    pub(crate) messages: Vec<Utf8Bytes>,
    /// Whether unconsumed messages were dropped over the bounds.
    pub(crate) lost: bool,
}

/// The unconsumed client messages of one connection.
#[derive(Debug)]
pub(crate) struct Unconsumed {
    /// Index of the next message sent on this connection.
    next: u64,
    /// (index, message), oldest first.
    entries: VecDeque<(u64, Utf8Bytes)>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// Index of the newest message dropped over the bounds and not yet
    /// known to be consumed: a replay now would miss it.
    dropped_through: Option<u64>,
}

impl Unconsumed {
    /// An empty buffer for a connection whose `setup` was message 0.
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Unconsumed {
            next: 1,
            entries: VecDeque::new(),
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
            dropped_through: None,
        }
    }

    /// Messages kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// One message was sent on the connection.
    pub(crate) fn on_sent(&mut self, msg: &Utf8Bytes) {
        let index = self.next;
        self.next += 1;
        self.bytes += msg.len();
        self.entries.push_back((index, msg.clone()));
        while self.entries.len() > self.max_messages || self.bytes > self.max_bytes {
            let Some((i, old)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            self.dropped_through = Some(i);
        }
    }

    /// A `sessionResumptionUpdate` with a new handle: the messages it
    /// includes are no longer needed (all sent so far without an index).
    pub(crate) fn on_update(&mut self, last_consumed: Option<u64>) {
        let last = last_consumed.unwrap_or(self.next.saturating_sub(1));
        while let Some((i, _)) = self.entries.front() {
            if *i > last {
                break;
            }
            if let Some((_, old)) = self.entries.pop_front() {
                self.bytes -= old.len();
            }
        }
        // What was dropped up to `last` is in the server's state now.
        if self.dropped_through.is_some_and(|d| d <= last) {
            self.dropped_through = None;
        }
    }

    /// Takes what the new connection must replay, and starts the numbering
    /// of that connection (its `setup` is message 0).
    pub(crate) fn take_replay(&mut self) -> Replay {
        let messages = self.entries.drain(..).map(|(_, m)| m).collect();
        let lost = self.dropped_through.take().is_some();
        self.bytes = 0;
        self.next = 1;
        Replay { messages, lost }
    }

    /// A new session with no state to resume: nothing to replay.
    pub(crate) fn reset(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.next = 1;
        self.dropped_through = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn msg(i: u32) -> Utf8Bytes {
        Utf8Bytes::from(format!("{{\"chunk\":{i}}}"))
    }

    #[test]
    fn a_message_dropped_alone_stays_lost_until_an_update_covers_it() {
        // One message larger than the byte bound: kept and dropped at once,
        // so the buffer is empty but the message was never consumed.
        let mut u = Unconsumed::new(100, 8);
        u.on_sent(&msg(1)); // index 1, 11 bytes > 8
        assert_eq!(u.len(), 0);
        u.on_update(Some(0)); // the server has only the setup
        let r = u.take_replay();
        assert!(r.messages.is_empty());
        assert!(r.lost, "the dropped message was not consumed");
        // Covered by an update: not lost.
        u.on_sent(&msg(2)); // index 1 of the new connection
        u.on_update(Some(1));
        assert!(!u.take_replay().lost);
    }

    #[test]
    fn an_update_drops_what_it_includes_and_keeps_the_rest() {
        let mut u = Unconsumed::new(100, 1 << 20);
        for i in 0..5 {
            u.on_sent(&msg(i));
        }
        // Messages 1..=5 on the wire; the state includes up to 3.
        u.on_update(Some(3));
        let r = u.take_replay();
        assert_eq!(r.messages, [msg(3), msg(4)]);
        assert!(!r.lost);
    }

    #[test]
    fn an_update_without_an_index_includes_everything_sent() {
        let mut u = Unconsumed::new(100, 1 << 20);
        u.on_sent(&msg(0));
        u.on_sent(&msg(1));
        u.on_update(None);
        u.on_sent(&msg(2));
        assert_eq!(u.take_replay().messages, [msg(2)]);
    }

    #[test]
    fn over_its_bounds_it_drops_the_oldest_and_says_so() {
        let mut u = Unconsumed::new(3, 1 << 20);
        for i in 0..5 {
            u.on_sent(&msg(i));
        }
        assert_eq!(u.len(), 3);
        let r = u.take_replay();
        assert_eq!(r.messages, [msg(2), msg(3), msg(4)]);
        assert!(r.lost);
        // Bytes bound too.
        let mut u = Unconsumed::new(100, msg(0).len() * 2);
        for i in 0..3 {
            u.on_sent(&msg(i));
        }
        assert!(u.take_replay().lost);
        // A later update past the loss clears it.
        let mut u = Unconsumed::new(2, 1 << 20);
        for i in 0..4 {
            u.on_sent(&msg(i));
        }
        u.on_update(Some(4));
        assert!(!u.take_replay().lost);
    }

    #[test]
    fn numbering_starts_again_on_the_new_connection() {
        let mut u = Unconsumed::new(100, 1 << 20);
        u.on_sent(&msg(0));
        u.on_sent(&msg(1));
        let r = u.take_replay();
        assert_eq!(r.messages.len(), 2);
        // The replay is sent again on the new connection: messages 1, 2.
        for m in &r.messages {
            u.on_sent(m);
        }
        u.on_sent(&msg(2));
        u.on_update(Some(2));
        assert_eq!(u.take_replay().messages, [msg(2)]);
    }

    /// The case on simulated time: a caller speaks for 2 s in 40 ms
    /// chunks; the server takes chunks into its state 200 ms behind and
    /// reports it every 120 ms; the connection drops 1.3 s in. What the
    /// old connection's state held plus what the new one is sent is the
    /// whole utterance, each chunk once.
    #[test]
    fn a_drop_mid_utterance_loses_nothing_and_repeats_nothing() {
        const CHUNK: Duration = Duration::from_millis(40);
        const LAG: Duration = Duration::from_millis(200);
        const REPORT: Duration = Duration::from_millis(120);
        const DROP_AT: Duration = Duration::from_millis(1300);
        let chunks: u32 = 50;
        let mut u = Unconsumed::new(1000, 1 << 20);
        // The server's view: (index, chunk) received, and what it consumed.
        let mut received: Vec<(u64, u32)> = Vec::new();
        let mut reported: u64 = 0;
        let mut next_index = 1u64;
        let mut next_report = REPORT;
        let mut now = Duration::ZERO;
        let mut sent = 0u32;
        while now < DROP_AT {
            if now >= CHUNK * sent && sent < chunks {
                u.on_sent(&msg(sent));
                received.push((next_index, sent));
                next_index += 1;
                sent += 1;
            }
            if now >= next_report {
                // Consumed: what arrived at least LAG ago.
                let consumed = received
                    .iter()
                    .filter(|(i, _)| CHUNK * (*i as u32 - 1) + LAG <= now)
                    .map(|(i, _)| *i)
                    .max();
                if let Some(last) = consumed {
                    reported = last;
                    u.on_update(Some(last));
                }
                next_report += REPORT;
            }
            now += Duration::from_millis(10);
        }
        // The state of the last handle: chunks up to the reported index.
        let mut model: Vec<u32> = received
            .iter()
            .filter(|(i, _)| *i <= reported)
            .map(|(_, c)| *c)
            .collect();
        assert!(model.len() < sent as usize, "the drop cut the utterance");
        let replay = u.take_replay();
        assert!(!replay.lost);
        for m in replay.messages {
            let text = m.as_str();
            let n: u32 = text
                .trim_start_matches("{\"chunk\":")
                .trim_end_matches('}')
                .parse()
                .unwrap();
            model.push(n);
        }
        // The rest of the utterance follows on the new connection.
        model.extend(sent..chunks);
        assert_eq!(model, (0..chunks).collect::<Vec<_>>());
    }
}
