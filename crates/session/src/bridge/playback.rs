//! Playback of the model's replies, without IO: the downlink queue
//! ([`Downlink`]) plus where the current reply stands, which is what a
//! barge-in needs (how much the caller heard, for the model's truncation)
//! and what stops an interrupted reply from coming back.
//!
//! The position of a reply is counted from its first frame: by the frames
//! the far end confirmed played where the transport knows it (carrier
//! marks), else by the frames our pacing sent (RTP).
//!
//! After a barge-in decided here (the caller's sustained speech, before
//! the model said anything) the rest of the interrupted reply may still
//! arrive from the model: it is dropped until the model's reply is over
//! (its `Interrupted`, `TurnComplete` or `GenerationComplete`, or the
//! connection being resumed, which loses the reply), so the caller does
//! not hear it resume. Only a reply still being generated is muted so: one
//! whose generation was complete when the caller barged in sends nothing
//! more.

use std::time::Duration;

use super::audio::Downlink;
use callbridge_rtp::stream::{Frame, PTIME};

/// The playback of one call (see the module docs).
#[derive(Debug)]
pub(crate) struct Playback {
    downlink: Downlink,
    /// Frames the transport had sent when the current reply began.
    reply_base: u64,
    /// The reply's position the transport confirmed at the last clear.
    played_at_clear: Option<u64>,
    /// The position last reported to the model.
    last_progress: Option<Duration>,
    /// The model is generating a reply (audio since its last turn end).
    generating: bool,
    /// Model audio is dropped until the interrupted reply is over.
    muted: bool,
}

impl Playback {
    /// Playback through `downlink`.
    pub(crate) fn new(downlink: Downlink) -> Playback {
        Playback {
            downlink,
            reply_base: 0,
            played_at_clear: None,
            last_progress: None,
            generating: false,
            muted: false,
        }
    }

    /// Whether anything is queued or in the transport.
    pub(crate) fn is_busy(&self) -> bool {
        self.downlink.is_busy()
    }

    /// Frames still to be sent before anything queued now.
    pub(crate) fn frames_ahead(&self) -> u64 {
        self.downlink.frames_ahead()
    }

    /// A chunk of model audio arrived: queued (decoded with `decode`, as
    /// [`Downlink::push_model_audio`]), continuing the reply playing now
    /// or starting a new one; or dropped, the rest of a reply the caller
    /// barged in on (false). `frames_sent`: what the transport has sent so
    /// far, where it counts (carriers).
    pub(crate) fn push_model_audio(
        &mut self,
        frames_sent: Option<u64>,
        decode: impl FnOnce(&mut Vec<i16>),
    ) -> bool {
        if self.muted {
            return false;
        }
        self.generating = true;
        if !self.downlink.is_busy() {
            self.downlink.new_reply();
            self.last_progress = None;
            self.played_at_clear = None;
            self.reply_base = frames_sent.unwrap_or(0);
        }
        self.downlink.push_model_audio(decode);
        true
    }

    /// The model's reply is over (turn complete, interrupted, generation
    /// complete, or lost with a dropped connection): its next audio is a
    /// new reply.
    pub(crate) fn on_reply_over(&mut self) {
        self.generating = false;
        self.muted = false;
    }

    /// Barge-in: the queue is emptied; `confirmed`: the frames the far end
    /// confirmed played when the transport cleared its own queue (carrier
    /// marks).
    pub(crate) fn clear(&mut self, confirmed: Option<u64>) {
        self.played_at_clear = confirmed.map(|c| c.saturating_sub(self.reply_base));
        self.downlink.clear();
    }

    /// The call decided the barge-in (the model did not say it was
    /// interrupted): the rest of a reply still being generated is dropped
    /// when it arrives.
    pub(crate) fn mute_rest(&mut self) {
        if self.generating {
            self.muted = true;
        }
    }

    /// Whether model audio is being dropped after a barge-in (its
    /// transcript too: the caller never heard it).
    pub(crate) fn is_muted(&self) -> bool {
        self.muted
    }

    /// How much of the interrupted reply the caller heard: what the
    /// transport confirmed at the clear, else what our pacing sent.
    pub(crate) fn played_at_barge_in(&self) -> Duration {
        match self.played_at_clear {
            Some(frames) => frames_to_duration(frames),
            None => self.downlink.played(),
        }
    }

    /// The position of the reply playing now to report to the model, when
    /// it changed since the last report (`None`: nothing plays, or no
    /// change). `confirmed`: the frames the far end confirmed played,
    /// where the transport knows it.
    pub(crate) fn progress(&mut self, confirmed: Option<u64>) -> Option<Duration> {
        if !self.downlink.is_busy() {
            return None;
        }
        let played = match confirmed {
            Some(f) => frames_to_duration(f.saturating_sub(self.reply_base)),
            None => self.downlink.played(),
        };
        if self.last_progress == Some(played) {
            return None;
        }
        self.last_progress = Some(played);
        Some(played)
    }

    /// Queues an announcement (8 kHz audio as it is) as a reply of its own.
    pub(crate) fn announce(&mut self, samples: &[i16]) {
        self.downlink.new_reply();
        self.downlink.push_pcm_8k(samples);
    }

    /// The model's reply is complete: its last partial frame plays too.
    pub(crate) fn flush_partial(&mut self) {
        self.downlink.flush_partial();
    }

    /// One media tick: tops the transport's queue up with `play`; true
    /// exactly when the playback has just drained.
    pub(crate) fn on_tick(&mut self, play: impl FnMut(Frame) -> bool) -> bool {
        self.downlink.on_tick(play)
    }
}

fn frames_to_duration(frames: u64) -> Duration {
    PTIME.saturating_mul(u32::try_from(frames).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playback() -> Playback {
        Playback::new(Downlink::new(8000).unwrap())
    }

    /// Pushes `frames` of model audio; false: dropped.
    fn push(p: &mut Playback, frames: usize, sent: Option<u64>) -> bool {
        p.push_model_audio(sent, |v| {
            v.extend(std::iter::repeat_n(100i16, 160 * frames))
        })
    }

    fn tick(p: &mut Playback, n: usize) {
        for _ in 0..n {
            p.on_tick(|_| true);
        }
    }

    #[test]
    fn a_reply_counts_its_position_from_its_first_frame() {
        let mut p = playback();
        assert!(push(&mut p, 20, None));
        tick(&mut p, 3);
        assert!(push(&mut p, 5, None), "continues the reply: no new count");
        tick(&mut p, 3);
        assert_eq!(p.progress(None), Some(Duration::from_millis(100)));
        assert_eq!(p.progress(None), None, "unchanged: not reported again");
        tick(&mut p, 1);
        assert_eq!(p.progress(None), Some(Duration::from_millis(120)));
    }

    #[test]
    fn carrier_confirmed_frames_count_from_the_reply_base() {
        let mut p = playback();
        assert!(push(&mut p, 50, Some(400)));
        assert_eq!(p.progress(Some(410)), Some(Duration::from_millis(200)));
        p.clear(Some(415));
        assert_eq!(p.played_at_barge_in(), Duration::from_millis(300));
        assert!(!p.is_busy());
    }

    #[test]
    fn rtp_barge_in_reports_what_our_pacing_sent() {
        let mut p = playback();
        push(&mut p, 50, None);
        tick(&mut p, 11);
        p.clear(None);
        assert_eq!(p.played_at_barge_in(), Duration::from_millis(200));
        assert_eq!(p.progress(None), None, "nothing plays after a clear");
    }

    #[test]
    fn a_local_barge_in_drops_the_rest_of_the_reply_until_it_is_over() {
        let mut p = playback();
        push(&mut p, 10, None);
        tick(&mut p, 3);
        p.clear(None);
        p.mute_rest();
        assert!(p.is_muted());
        assert!(!push(&mut p, 10, None), "dropped");
        assert!(!p.is_busy(), "dropped audio is not queued");
        p.on_reply_over();
        assert!(push(&mut p, 10, None));
        assert!(p.is_busy());
    }

    #[test]
    fn a_barge_in_on_a_fully_generated_reply_does_not_mute_the_next() {
        let mut p = playback();
        push(&mut p, 10, None);
        p.on_reply_over();
        p.clear(None);
        p.mute_rest();
        assert!(!p.is_muted());
        assert!(push(&mut p, 1, None));
    }

    #[test]
    fn the_models_own_barge_in_does_not_mute() {
        let mut p = playback();
        push(&mut p, 10, None);
        p.clear(None);
        assert!(!p.is_muted());
        assert!(push(&mut p, 1, None));
    }
}
