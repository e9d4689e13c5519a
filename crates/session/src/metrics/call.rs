//! The per-call recorder: what one call adds to the shared [`Metrics`], and
//! its latency figures for the store. The bridge makes a few calls into it
//! (the answer, each media tick, the machine's metrics, media stats once a
//! second and at the end, model openings and resumptions); the logic lives
//! here. Nothing allocates per tick.
//!
//! The end of the caller's speech ([`TurnTimer`]) is found by an energy
//! detector on the caller's decoded audio as it leaves the jitter buffer:
//! a frame is speech when it was played from a packet (not concealment or
//! buffering) and its RMS is above [`SPEECH_RMS`]. A caller turn is at
//! least [`MIN_SPEECH_FRAMES`] speech frames, with pauses shorter than
//! [`HANGOVER_FRAMES`] inside it; its end is the tick of the first silent
//! frame after speech. The reply is the first later tick that sent agent
//! audio of a reply that started after that end (the call counts replies:
//! the tail of a reply that was still playing when the caller stopped is
//! not the answer to the caller, the next reply is); speech of
//! [`MIN_SPEECH_FRAMES`] before it voids the measurement (a new turn).
//! The agent's first audio after the answer (the greeting) is measured
//! only as answer-to-first-audio: a caller turn that ended before it, or
//! was still going on when it started, is not measured at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_rtp::stream::{Frame, MediaStats};
use serde_json::json;

use super::{Metrics, RtpCounts};
use crate::lifecycle::Metric;

/// Caller energy (RMS of the 8 kHz frame) above which a frame is speech.
pub(crate) const SPEECH_RMS: f64 = 400.0;
/// Speech frames (20 ms) a caller turn needs: 100 ms.
pub(crate) const MIN_SPEECH_FRAMES: u32 = 5;
/// Silent frames that end a turn's speech run: 300 ms (shorter pauses stay
/// inside the turn).
pub(crate) const HANGOVER_FRAMES: u32 = 15;

impl RtpCounts {
    fn of(s: &MediaStats) -> RtpCounts {
        RtpCounts {
            packets_in: s.packets_in,
            packets_out: s.packets_out,
            lost: s.jitter.lost,
            late: s.jitter.late,
            rejected: s.rejected,
        }
    }

    fn since(self, before: RtpCounts) -> RtpCounts {
        RtpCounts {
            packets_in: self.packets_in.saturating_sub(before.packets_in),
            packets_out: self.packets_out.saturating_sub(before.packets_out),
            lost: self.lost.saturating_sub(before.lost),
            late: self.late.saturating_sub(before.late),
            rejected: self.rejected.since(&before.rejected),
        }
    }
}

/// A latency figure for the store (an `EventKind::Note` on the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LatencyNote {
    /// `answer_to_first_audio_ms` or `caller_stop_to_agent_audio_ms`.
    pub metric: &'static str,
    /// Milliseconds.
    pub ms: u64,
}

impl LatencyNote {
    fn new(metric: &'static str, d: Duration) -> LatencyNote {
        LatencyNote {
            metric,
            ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The event detail: `{"metric": ..., "value": ms}`.
    pub(crate) fn detail(&self) -> serde_json::Value {
        json!({"metric": self.metric, "value": self.ms})
    }
}

/// End of caller speech to the first agent audio (see the module docs).
/// Sans-IO: fed one tick at a time with its instant.
#[derive(Debug, Default)]
pub(crate) struct TurnTimer {
    in_turn: bool,
    speech: u32,
    silence: u32,
    /// The end of the last caller turn and the reply count then, while
    /// its reply (a later one) is awaited.
    armed: Option<(Instant, u64)>,
    /// The turn in progress began before the greeting: its end awaits no
    /// reply (the greeting is not one).
    void: bool,
}

impl TurnTimer {
    /// One tick: whether the caller's frame was speech, whether agent
    /// audio was sent, and how many replies have started so far (the
    /// audio sent belongs to the last one). Returns the latency when this
    /// tick starts the reply to the caller's last turn.
    pub(crate) fn on_tick(
        &mut self,
        now: Instant,
        caller_speech: bool,
        agent_audible: bool,
        reply: u64,
    ) -> Option<Duration> {
        let mut measured = None;
        if agent_audible
            && let Some((end, before)) = self.armed
            && reply > before
        {
            self.armed = None;
            measured = Some(now.saturating_duration_since(end));
        }
        if caller_speech {
            if !self.in_turn {
                self.in_turn = true;
                self.void = false;
                self.speech = 0;
            }
            self.silence = 0;
            self.speech += 1;
            if self.speech >= MIN_SPEECH_FRAMES {
                // The caller is talking again: an earlier end is void.
                self.armed = None;
            }
        } else if self.in_turn {
            self.silence += 1;
            if self.silence == 1 && self.speech >= MIN_SPEECH_FRAMES && !self.void {
                self.armed = Some((now, reply));
            }
            if self.silence >= HANGOVER_FRAMES {
                self.in_turn = false;
                self.speech = 0;
            }
        }
        measured
    }

    /// The agent's first audio (the greeting) starts: caller speech before
    /// it, ended or still going on, gets no reply measurement.
    pub(crate) fn greeting_started(&mut self) {
        self.armed = None;
        self.void = self.in_turn;
    }
}

/// Which reply the frames sent belong to (the greeting is reply 1): the
/// latency recorder tells a new reply from the tail of one still playing
/// by it. A reply starts with a model turn's first audio (or the fallback
/// announcement); its first frame goes out after the frames queued ahead
/// of it, so the count moves when the ticks reach it.
#[derive(Debug, Default)]
pub(crate) struct ReplyCounter {
    started: u64,
    /// Ticks until the next reply's first frame is sent.
    next_in: Option<u64>,
    turn_open: bool,
}

impl ReplyCounter {
    /// Model audio arrived with `ahead` frames of earlier audio still to
    /// send; the first audio of a model turn starts a reply.
    pub(crate) fn on_model_audio(&mut self, ahead: u64) {
        if !self.turn_open {
            self.turn_open = true;
            self.start(ahead);
        }
    }

    /// Our own announcement (the fallback) is queued behind `ahead` frames.
    pub(crate) fn on_announcement(&mut self, ahead: u64) {
        self.start(ahead);
    }

    fn start(&mut self, ahead: u64) {
        if ahead == 0 {
            self.started += 1;
            self.next_in = None;
        } else {
            self.next_in = Some(ahead);
        }
    }

    /// The model's turn is over (complete or interrupted): its next audio
    /// is a new reply.
    pub(crate) fn on_turn_end(&mut self) {
        self.turn_open = false;
    }

    /// Barge-in: everything queued is dropped, a reply waiting behind it
    /// too.
    pub(crate) fn on_clear(&mut self) {
        self.turn_open = false;
        self.next_in = None;
    }

    /// One tick sent one frame; returns the reply it belongs to.
    pub(crate) fn on_tick(&mut self) -> u64 {
        match self.next_in {
            Some(0) => {
                self.started += 1;
                self.next_in = None;
            }
            Some(n) => self.next_in = Some(n - 1),
            None => {}
        }
        self.started
    }
}

/// One call's recorder (see the module docs). Dropping it takes the call's
/// depth out of the gauge, whatever way the call ended.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    shared: Arc<Metrics>,
    answered_at: Option<Instant>,
    first_audio_done: bool,
    turns: TurnTimer,
    reported: RtpCounts,
    depth_ms: Option<u64>,
    media_done: bool,
}

impl CallMetrics {
    pub(crate) fn new(shared: Arc<Metrics>) -> CallMetrics {
        CallMetrics {
            shared,
            answered_at: None,
            first_audio_done: false,
            turns: TurnTimer::default(),
            reported: RtpCounts::default(),
            depth_ms: None,
            media_done: false,
        }
    }

    /// The 200 OK was sent (inbound) or received (outbound).
    pub(crate) fn answered(&mut self, now: Instant) {
        if self.answered_at.is_none() {
            self.answered_at = Some(now);
        }
    }

    /// One media tick: the RMS of the caller's decoded frame (computed
    /// once per tick by the call), where it came from, the frame sent to
    /// the caller and the replies started so far (the downlink's count).
    /// Returns a latency figure to store.
    pub(crate) fn on_tick(
        &mut self,
        now: Instant,
        caller_level: f64,
        from_packet: bool,
        sent: &Frame,
        reply: u64,
    ) -> Option<LatencyNote> {
        let audible = sent.iter().any(|&s| s != 0);
        let speech = from_packet && caller_level > SPEECH_RMS;
        if audible
            && !self.first_audio_done
            && let Some(at) = self.answered_at
        {
            // The greeting counts only as answer-to-first-audio, never
            // as the reply to speech that came before it.
            self.first_audio_done = true;
            self.turns.greeting_started();
            self.turns.on_tick(now, speech, audible, reply);
            let d = now.saturating_duration_since(at);
            self.shared.answer_to_first_audio(d);
            return Some(LatencyNote::new("answer_to_first_audio_ms", d));
        }
        self.turns.on_tick(now, speech, audible, reply).map(|d| {
            self.shared.caller_stop_to_agent_audio(d);
            LatencyNote::new("caller_stop_to_agent_audio_ms", d)
        })
    }

    /// The machine's metrics that the registry counts.
    pub(crate) fn on_metric(&self, m: Metric) {
        match m {
            Metric::BargeIn { .. } => self.shared.barge_in(),
            Metric::CallDuration(d) => self.shared.call_duration(d),
            Metric::ModelReplyTimeout(_) => self.shared.model_reply_timeout(),
            _ => {}
        }
    }

    /// A model session opening finished.
    pub(crate) fn model_opened(&self, ok: bool) {
        self.shared.model_opened(ok);
    }

    /// A model usage report of `provider` for `purpose` (token usage,
    /// issue 22).
    pub(crate) fn model_tokens(
        &self,
        provider: &'static str,
        purpose: super::TokenPurpose,
        input: u64,
        output: u64,
    ) {
        self.shared.model_tokens(provider, purpose, input, output);
    }

    /// The model session resumed on a new connection.
    pub(crate) fn model_resumed(&self) {
        self.shared.model_reconnected();
    }

    /// Adds the stream's new RTP counts and sets the call's jitter buffer
    /// depth (the stream's `jitter_depth`: the audio buffered after the
    /// last playout), once a second while the media runs.
    pub(crate) fn media_stats(&mut self, s: &MediaStats) {
        if self.media_done {
            return;
        }
        let now = RtpCounts::of(s);
        self.shared.rtp(now.since(self.reported));
        self.reported = now;
        if s.jitter.received == 0 {
            return;
        }
        let ms = Some(u64::try_from(s.jitter_depth.as_millis()).unwrap_or(u64::MAX));
        self.shared.depth(self.depth_ms, ms);
        self.depth_ms = ms;
    }

    /// The media stopped: the last counts (if the stream could still be
    /// read) go in, the call leaves the depth gauge.
    pub(crate) fn media_stopped(&mut self, last: Option<&MediaStats>) {
        if let Some(s) = last {
            self.media_stats(s);
        }
        self.media_done = true;
        self.shared.depth(self.depth_ms.take(), None);
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        self.shared.depth(self.depth_ms.take(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_audio::level::rms;

    const TICK: Duration = Duration::from_millis(20);

    /// Feeds `n` ticks of (caller speech, agent audio of reply number
    /// `reply`: 0 before the first); returns the measurements.
    fn feed(
        t: &mut TurnTimer,
        at: &mut Instant,
        n: u32,
        speech: bool,
        audible: bool,
        reply: u64,
    ) -> Vec<Duration> {
        let mut out = Vec::new();
        for _ in 0..n {
            if let Some(d) = t.on_tick(*at, speech, audible, reply) {
                out.push(d);
            }
            *at += TICK;
        }
        out
    }

    #[test]
    fn reply_latency_runs_from_the_first_silent_frame_to_the_first_agent_audio() {
        let mut t = TurnTimer::default();
        let mut at = Instant::now();
        assert!(feed(&mut t, &mut at, 50, true, false, 0).is_empty());
        // 35 silent ticks (700 ms), then the reply.
        assert!(feed(&mut t, &mut at, 35, false, false, 0).is_empty());
        let got = feed(&mut t, &mut at, 10, false, true, 1);
        assert_eq!(
            got,
            vec![TICK * 35],
            "measured once, from the first silent frame"
        );
    }

    #[test]
    fn pauses_inside_a_turn_move_its_end_and_a_click_does_not() {
        let mut t = TurnTimer::default();
        let mut at = Instant::now();
        feed(&mut t, &mut at, 20, true, false, 0);
        feed(&mut t, &mut at, 5, false, false, 0); // a 100 ms pause
        feed(&mut t, &mut at, 20, true, false, 0); // the turn goes on
        // The turn ends; 400 ms later a click (40 ms) is not a new turn.
        feed(&mut t, &mut at, 20, false, false, 0);
        feed(&mut t, &mut at, 2, true, false, 0);
        feed(&mut t, &mut at, 8, false, false, 0);
        let got = feed(&mut t, &mut at, 1, false, true, 1);
        assert_eq!(
            got,
            vec![TICK * 30],
            "measured from the end before the click"
        );
    }

    #[test]
    fn no_measurement_without_a_turn_or_while_the_agent_talks_over_it() {
        let mut t = TurnTimer::default();
        let mut at = Instant::now();
        // Too short to be a turn.
        feed(&mut t, &mut at, 3, true, false, 0);
        feed(&mut t, &mut at, 20, false, false, 0);
        assert!(feed(&mut t, &mut at, 5, false, true, 1).is_empty());
        // The caller speaks while the agent keeps talking (no barge-in):
        // the agent's ongoing audio is not a reply.
        feed(&mut t, &mut at, 20, true, true, 1);
        assert!(feed(&mut t, &mut at, 20, false, true, 1).is_empty());
        // Speaking again before the reply voids the earlier end.
        feed(&mut t, &mut at, 20, true, false, 1);
        feed(&mut t, &mut at, 10, false, false, 1);
        feed(&mut t, &mut at, 20, true, false, 1);
        feed(&mut t, &mut at, 3, false, false, 1);
        assert_eq!(feed(&mut t, &mut at, 1, false, true, 2), vec![TICK * 3]);
    }

    #[test]
    fn a_turn_that_ends_while_a_reply_still_plays_is_answered_by_the_next_reply() {
        // The caller talks over the end of a reply without interrupting it
        // (the model had already finished it) and stops while it still
        // plays; that reply's tail is not the answer, the next reply is,
        // and it is measured from the caller's stop.
        let mut t = TurnTimer::default();
        let mut at = Instant::now();
        feed(&mut t, &mut at, 10, false, true, 1);
        feed(&mut t, &mut at, 40, true, true, 1);
        assert!(
            feed(&mut t, &mut at, 15, false, true, 1).is_empty(),
            "the tail of reply 1 is no answer"
        );
        assert!(feed(&mut t, &mut at, 25, false, false, 1).is_empty());
        assert_eq!(
            feed(&mut t, &mut at, 5, false, true, 2),
            vec![TICK * 40],
            "reply 2 measured from the caller's stop"
        );
    }

    #[test]
    fn a_reply_queued_behind_another_counts_when_its_first_frame_goes_out() {
        let mut r = ReplyCounter::default();
        r.on_model_audio(0);
        assert_eq!(r.on_tick(), 1, "the greeting, nothing ahead of it");
        r.on_model_audio(40);
        assert_eq!(r.on_tick(), 1, "a later chunk of the same turn");
        r.on_turn_end();
        // The next turn arrives while 3 frames of the last are unsent.
        r.on_model_audio(3);
        let seen: Vec<u64> = (0..5).map(|_| r.on_tick()).collect();
        assert_eq!(seen, vec![1, 1, 1, 2, 2]);
        // A turn queued behind audio that a barge-in drops never starts.
        r.on_turn_end();
        r.on_model_audio(10);
        r.on_clear();
        assert_eq!(r.on_tick(), 2);
        r.on_model_audio(0);
        assert_eq!(r.on_tick(), 3);
    }

    fn stats(received: u64, packets_out: u64, depth_ms: u64) -> MediaStats {
        let mut s = MediaStats {
            packets_in: received,
            packets_out,
            jitter_depth: Duration::from_millis(depth_ms),
            ..Default::default()
        };
        s.jitter.received = received;
        s
    }

    #[test]
    fn media_counts_are_added_as_deltas_and_depth_is_the_streams_and_leaves_at_the_end() {
        let shared = Arc::new(Metrics::default());
        let mut c = CallMetrics::new(Arc::clone(&shared));
        c.media_stats(&stats(13, 10, 60));
        let s = shared.snapshot();
        assert_eq!((s.rtp_packets_in, s.rtp_packets_out), (13, 10));
        assert_eq!(s.jitter_buffer_depth_ms, 60.0, "the stream's own figure");
        c.media_stats(&stats(20, 17, 180));
        let s = shared.snapshot();
        assert_eq!((s.rtp_packets_in, s.rtp_packets_out), (20, 17));
        assert_eq!(s.jitter_buffer_depth_ms, 180.0);
        c.media_stats(&stats(22, 19, 0));
        assert_eq!(shared.snapshot().jitter_buffer_depth_ms, 0.0);
        c.media_stopped(Some(&stats(25, 20, 40)));
        let s = shared.snapshot();
        assert_eq!((s.rtp_packets_in, s.rtp_packets_out), (25, 20));
        assert_eq!(s.jitter_buffer_streams, 0);
        c.media_stats(&stats(99, 99, 20));
        assert_eq!(
            shared.snapshot().rtp_packets_in,
            25,
            "nothing after the end"
        );
    }

    #[test]
    fn first_agent_audio_after_the_answer_is_measured_once() {
        let shared = Arc::new(Metrics::default());
        let mut c = CallMetrics::new(Arc::clone(&shared));
        let t0 = Instant::now();
        let loud = [1000i16; 160];
        let idle = false;
        assert_eq!(c.on_tick(t0, 0.0, idle, &loud, 0), None, "not answered");
        c.answered(t0);
        assert_eq!(c.on_tick(t0 + TICK, 0.0, idle, &[0; 160], 0), None);
        let note = c.on_tick(t0 + TICK * 9, 0.0, idle, &loud, 1);
        assert_eq!(
            note.map(|n| n.detail()),
            Some(json!({"metric": "answer_to_first_audio_ms", "value": 180}))
        );
        assert_eq!(c.on_tick(t0 + TICK * 10, 0.0, idle, &loud, 1), None);
        assert_eq!(shared.snapshot().answer_to_first_audio.count, 1);
    }

    #[test]
    fn a_greeting_after_early_caller_speech_is_only_answer_to_first_audio() {
        let shared = Arc::new(Metrics::default());
        let mut c = CallMetrics::new(Arc::clone(&shared));
        let t0 = Instant::now();
        let (loud, quiet) = ([1000i16; 160], [0i16; 160]);
        let mut at = t0;
        let mut notes = Vec::new();
        // `reply`: the replies started so far (the greeting is reply 1).
        let mut tick = |c: &mut CallMetrics, n: u32, caller: &Frame, agent: &Frame, reply: u64| {
            for _ in 0..n {
                notes.extend(
                    c.on_tick(at, rms(caller), true, agent, reply)
                        .map(|n| n.metric),
                );
                at += TICK;
            }
            notes.clone()
        };
        c.answered(t0);
        tick(&mut c, 10, &quiet, &quiet, 0);
        // "Hello? Hello?" before the greeting, still talking when it
        // starts, and stopping in a short gap inside the greeting.
        tick(&mut c, 20, &loud, &quiet, 0);
        tick(&mut c, 5, &loud, &loud, 1);
        tick(&mut c, 3, &quiet, &quiet, 1);
        tick(&mut c, 20, &quiet, &loud, 1);
        let notes = tick(&mut c, 20, &quiet, &quiet, 1);
        assert_eq!(notes, vec!["answer_to_first_audio_ms"]);
        let s = shared.snapshot();
        assert_eq!(s.answer_to_first_audio.count, 1);
        assert_eq!(
            s.caller_stop_to_agent_audio.count, 0,
            "the greeting is no reply"
        );
        // The next caller turn and its reply are measured as usual.
        tick(&mut c, 30, &loud, &quiet, 1);
        tick(&mut c, 10, &quiet, &quiet, 1);
        tick(&mut c, 5, &quiet, &loud, 2);
        assert_eq!(shared.snapshot().caller_stop_to_agent_audio.count, 1);
    }

    #[test]
    fn dropping_a_call_takes_its_depth_out() {
        let shared = Arc::new(Metrics::default());
        let mut c = CallMetrics::new(Arc::clone(&shared));
        c.media_stats(&stats(5, 0, 20));
        assert_eq!(shared.snapshot().jitter_buffer_streams, 1);
        drop(c);
        assert_eq!(shared.snapshot().jitter_buffer_streams, 0);
    }
}
