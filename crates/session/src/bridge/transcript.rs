//! Transcript assembly, without IO: the model's transcript pieces (deltas
//! of the caller's speech and of its own) become the call's turns, in the
//! order they were spoken, each with its start and end on the call's
//! clock.
//!
//! What a reader of the CRM transcript expects is a conversation: caller,
//! agent, caller, agent, each utterance its own turn. Pieces are deltas
//! (each provider spaces its own words), so the pieces of one open turn
//! are joined as they are. A turn closes when its speaker is done:
//!
//! | turn | closes on |
//! |---|---|
//! | caller | a `finished` piece; the model's end of the caller's turn (`CallerTurnEnded`); the agent's reply starting (its first audio or transcript piece); the model's turn complete |
//! | agent | a `finished` piece; the model's turn complete; a barge-in (the model's `Interrupted` or ours) |
//!
//! So a caller who barges in on a reply gets a turn of their own after the
//! interrupted reply instead of being glued to their previous utterance
//! ("caller turn 1caller turn 2"). A piece that arrives after its turn
//! closed (a late transcript) opens a new turn.
//!
//! Times are milliseconds from the call's start, from the `now` passed in:
//! a turn starts at its first piece (for the agent, its first audio; for
//! the caller, the onset of the speech heard on the line just before it,
//! [`Transcript::caller_speech`]: a transcript of the caller's words
//! arrives only once they are said) and ends at its last piece or at the
//! event that closed it, whichever is later.

use std::time::{Duration, Instant};

use callbridge_crm_store::{NewTurn, Speaker};
use callbridge_llm_bridge::summary::TranscriptLine;

/// One speaker's turn while it is open.
#[derive(Debug, Default)]
struct OpenTurn {
    text: String,
    start: Option<Instant>,
    last: Option<Instant>,
}

impl OpenTurn {
    fn push(&mut self, now: Instant, piece: &str) {
        self.start.get_or_insert(now);
        self.last = Some(now);
        self.text.push_str(piece);
    }

    fn has_text(&self) -> bool {
        !self.text.trim().is_empty()
    }
}

/// A silence this long between two reports of caller speech starts a new
/// utterance.
const SPEECH_GAP: Duration = Duration::from_millis(1500);
/// A caller transcript piece this long after the last caller speech heard
/// is not that speech's transcript (its turn starts at the piece).
const TRANSCRIPT_LAG: Duration = Duration::from_secs(5);

/// Caller speech heard on the line: its onset and its last report.
#[derive(Debug, Clone, Copy)]
struct Heard {
    first: Instant,
    last: Instant,
}

/// The transcript of one call (see the module docs).
#[derive(Debug)]
pub(crate) struct Transcript {
    started: Instant,
    /// The caller's utterance heard but not yet transcribed.
    heard: Option<Heard>,
    caller: OpenTurn,
    agent: OpenTurn,
    seq: u32,
    /// Closed turns not yet handed to the store.
    pending: Vec<NewTurn>,
    /// Every closed turn, for the post-call summary.
    lines: Vec<TranscriptLine>,
    /// Turns closed since the last [`Transcript::take_fresh`] (the live
    /// event stream's; drained by the call after each step).
    fresh: Vec<NewTurn>,
}

impl Transcript {
    /// An empty transcript of a call that started at `started`.
    pub(crate) fn new(started: Instant) -> Transcript {
        Transcript {
            started,
            heard: None,
            caller: OpenTurn::default(),
            agent: OpenTurn::default(),
            seq: 0,
            pending: Vec::new(),
            lines: Vec::new(),
            fresh: Vec::new(),
        }
    }

    /// Caller speech heard on the line (the call's own detector): where
    /// the next caller turn starts when its transcript follows.
    pub(crate) fn caller_speech(&mut self, now: Instant) {
        match &mut self.heard {
            Some(h) if now.saturating_duration_since(h.last) <= SPEECH_GAP => h.last = now,
            _ => {
                self.heard = Some(Heard {
                    first: now,
                    last: now,
                })
            }
        }
    }

    /// A piece of the caller's speech.
    pub(crate) fn caller_piece(&mut self, now: Instant, text: &str, finished: bool) {
        if self.caller.start.is_none()
            && let Some(h) = self.heard.take()
            && now.saturating_duration_since(h.last) <= TRANSCRIPT_LAG
        {
            self.caller.start = Some(h.first.min(now));
        }
        self.caller.push(now, text);
        if finished {
            self.close(now, Speaker::Caller);
        }
    }

    /// A piece of the agent's speech: the caller's turn is over.
    pub(crate) fn agent_piece(&mut self, now: Instant, text: &str, finished: bool) {
        self.close_caller_before_reply();
        self.agent.push(now, text);
        if finished {
            self.close(now, Speaker::Agent);
        }
    }

    /// Agent audio arrived: the reply has started (it starts the agent's
    /// turn even before its transcript) and the caller's turn is over.
    pub(crate) fn agent_audio(&mut self, now: Instant) {
        self.close_caller_before_reply();
        self.agent.start.get_or_insert(now);
    }

    /// The model ended the caller's turn.
    pub(crate) fn caller_turn_ended(&mut self, now: Instant) {
        self.close(now, Speaker::Caller);
    }

    /// The model's turn is complete: both open turns close, the caller's
    /// first.
    pub(crate) fn turn_complete(&mut self, now: Instant) {
        self.close(now, Speaker::Caller);
        self.close(now, Speaker::Agent);
    }

    /// The agent's reply was cut off (barge-in).
    pub(crate) fn interrupted(&mut self, now: Instant) {
        self.close(now, Speaker::Agent);
    }

    /// The call is over: everything still open closes.
    pub(crate) fn finish(&mut self, now: Instant) {
        self.turn_complete(now);
    }

    /// Closed turns for the store (taken; give back what could not be
    /// queued with [`Transcript::give_back`]).
    pub(crate) fn take_pending(&mut self) -> Vec<NewTurn> {
        std::mem::take(&mut self.pending)
    }

    /// Turns the store queue refused, kept for the next flush (in order,
    /// before any closed since).
    pub(crate) fn give_back(&mut self, mut turns: Vec<NewTurn>) {
        turns.append(&mut self.pending);
        self.pending = turns;
    }

    /// Whether closed turns wait for the store.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The turns closed since the last call, for the live events.
    pub(crate) fn take_fresh(&mut self) -> Vec<NewTurn> {
        if self.fresh.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.fresh)
    }

    /// Every closed turn as the summarizer reads it (taken).
    pub(crate) fn take_lines(&mut self) -> Vec<TranscriptLine> {
        std::mem::take(&mut self.lines)
    }

    /// The caller's pieces so far belong to the utterance the agent is
    /// now answering; their turn ends at their last piece.
    fn close_caller_before_reply(&mut self) {
        if let Some(last) = self.caller.last.filter(|_| self.caller.has_text()) {
            self.close(last, Speaker::Caller);
        }
    }

    fn close(&mut self, now: Instant, speaker: Speaker) {
        let turn = match speaker {
            Speaker::Caller => std::mem::take(&mut self.caller),
            _ => std::mem::take(&mut self.agent),
        };
        let text = turn.text.trim();
        if text.is_empty() {
            return;
        }
        let start = turn.start.unwrap_or(now);
        let end = turn.last.map_or(now, |l| l.max(now));
        let mut row = NewTurn::new(self.seq, speaker, text, self.ms(start));
        row.end_ms = Some(self.ms(end));
        self.seq += 1;
        self.fresh.push(row.clone());
        self.pending.push(row);
        self.lines.push(TranscriptLine {
            caller: speaker == Speaker::Caller,
            text: text.to_owned(),
        });
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rows(t: &mut Transcript) -> Vec<(Speaker, String, u64, Option<u64>)> {
        t.take_pending()
            .into_iter()
            .map(|r| (r.speaker, r.text.into_inner(), r.start_ms, r.end_ms))
            .collect()
    }

    #[test]
    fn a_plain_exchange_gives_two_turns_with_start_and_end() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        t.caller_piece(t0 + ms(1000), "hello", false);
        t.caller_piece(t0 + ms(1400), " there", false);
        t.caller_turn_ended(t0 + ms(1600));
        t.agent_audio(t0 + ms(1900));
        t.agent_piece(t0 + ms(2000), "hi,", false);
        t.agent_piece(t0 + ms(2500), " how can I help?", false);
        t.turn_complete(t0 + ms(3000));
        assert_eq!(
            rows(&mut t),
            vec![
                (Speaker::Caller, "hello there".into(), 1000, Some(1600)),
                (
                    Speaker::Agent,
                    "hi, how can I help?".into(),
                    1900,
                    Some(3000)
                ),
            ]
        );
    }

    #[test]
    fn a_caller_turn_starts_where_its_speech_was_heard() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        // A noise long before: a new utterance after the gap.
        t.caller_speech(t0 + ms(100));
        for at in [3000, 3200, 3400, 4800, 5200] {
            t.caller_speech(t0 + ms(at));
        }
        // The transcript comes after the words were said.
        t.caller_piece(t0 + ms(6000), "when are you open?", false);
        t.caller_turn_ended(t0 + ms(6100));
        // A later turn with no speech heard starts at its piece; speech
        // heard too long before its transcript is not its onset.
        t.caller_speech(t0 + ms(7000));
        t.caller_piece(t0 + ms(13_000), "late", true);
        t.caller_piece(t0 + ms(14_000), "unheard", true);
        assert_eq!(
            rows(&mut t),
            vec![
                (
                    Speaker::Caller,
                    "when are you open?".into(),
                    3000,
                    Some(6100)
                ),
                (Speaker::Caller, "late".into(), 13_000, Some(13_000)),
                (Speaker::Caller, "unheard".into(), 14_000, Some(14_000)),
            ]
        );
    }

    #[test]
    fn a_caller_who_barges_in_gets_a_turn_of_their_own_in_order() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        // Caller turn 1 (no `finished`, no turn end from the model).
        t.caller_piece(t0 + ms(1000), "caller turn 1", false);
        // The reply starts; the caller talks over it.
        t.agent_audio(t0 + ms(2000));
        t.agent_piece(t0 + ms(2100), "a long reply", false);
        t.caller_piece(t0 + ms(2600), "caller turn 2", false);
        t.interrupted(t0 + ms(2700));
        // The answer to turn 2.
        t.agent_audio(t0 + ms(3500));
        t.agent_piece(t0 + ms(3600), "sure", true);
        let r = rows(&mut t);
        let texts: Vec<(Speaker, &str)> = r.iter().map(|r| (r.0, r.1.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (Speaker::Caller, "caller turn 1"),
                (Speaker::Agent, "a long reply"),
                (Speaker::Caller, "caller turn 2"),
                (Speaker::Agent, "sure"),
            ]
        );
        // Turn 1 ends at its last piece; the interrupted reply at the cut.
        assert_eq!((r[0].2, r[0].3), (1000, Some(1000)));
        assert_eq!((r[1].2, r[1].3), (2000, Some(2700)));
        assert_eq!((r[2].2, r[2].3), (2600, Some(2600)));
        assert_eq!((r[3].2, r[3].3), (3500, Some(3600)));
    }

    #[test]
    fn sequence_numbers_follow_the_order_turns_closed() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        t.caller_piece(t0, "a", true);
        t.agent_piece(t0, "b", true);
        t.caller_piece(t0, "c", true);
        let seqs: Vec<u32> = t.take_pending().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
    }

    #[test]
    fn empty_and_blank_turns_are_not_written() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        t.caller_piece(t0, "  ", true);
        t.agent_audio(t0);
        t.turn_complete(t0 + ms(10));
        t.finish(t0 + ms(20));
        assert!(!t.has_pending());
        assert!(t.take_lines().is_empty());
    }

    #[test]
    fn finish_closes_what_is_open_and_lines_follow_the_turns() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        t.caller_piece(t0 + ms(5), "bye", false);
        t.finish(t0 + ms(50));
        assert_eq!(
            rows(&mut t),
            vec![(Speaker::Caller, "bye".into(), 5, Some(50))]
        );
        let lines = t.take_lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].caller);
    }

    #[test]
    fn turns_given_back_stay_ahead_of_newer_ones() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        t.caller_piece(t0, "first", true);
        let refused = t.take_pending();
        t.agent_piece(t0, "second", true);
        t.give_back(refused);
        let texts: Vec<String> = t
            .take_pending()
            .into_iter()
            .map(|r| r.text.into_inner())
            .collect();
        assert_eq!(texts, vec!["first", "second"]);
    }

    #[test]
    fn a_late_caller_piece_after_the_reply_started_is_a_new_turn() {
        let t0 = Instant::now();
        let mut t = Transcript::new(t0);
        t.caller_piece(t0 + ms(100), "what time", false);
        t.agent_audio(t0 + ms(500));
        t.caller_piece(t0 + ms(600), " is it", false);
        t.agent_piece(t0 + ms(700), "noon", false);
        t.turn_complete(t0 + ms(900));
        let r = rows(&mut t);
        let texts: Vec<&str> = r.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(texts, vec!["what time", "is it", "noon"]);
    }
}
