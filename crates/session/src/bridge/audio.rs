//! The audio paths of one call, without IO: the uplink (caller frames at
//! 8 kHz resampled to the model's input rate), the downlink (model audio
//! chunks at the model's output rate resampled to 8 kHz 20 ms frames), and
//! the playback queue that feeds the media stream a few frames ahead and
//! knows when it has drained and how much of a reply was played.
//!
//! Buffers are allocated once per call, except the playback queue: it
//! starts small ([`QUEUE_START`] frames, enough for a model that streams in
//! real time), grows while a model sends faster than real time (up to
//! [`MAX_QUEUED_FRAMES`]) and gives the memory back when the reply has
//! drained or is cut. The 20 ms path allocates nothing.

use std::collections::VecDeque;
use std::time::Duration;

use callbridge_rtp::resample::StreamResampler;
use callbridge_rtp::stream::Frame;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_8K: usize = 160;
/// Frames kept in the media stream's own queue (the rest wait here, so a
/// barge-in can drop them at once); the stream is opened with room for
/// this many.
pub const STREAM_DEPTH: usize = 3;
/// The playback queue's first capacity, and what it shrinks back to
/// (320 ms). Measured (heaptrack, 200 calls): a queue allocated for 256
/// frames was 82 KB of every call's resident memory, the largest single
/// share, though a model streaming in real time keeps a few frames queued.
pub const QUEUE_START: usize = 16;
/// The longest model audio queued for playback (30 s); beyond it frames
/// are dropped (the model is far ahead of real time).
pub const MAX_QUEUED_FRAMES: usize = 1500;

/// Caller audio (8 kHz frames) to the model's input rate.
pub struct Uplink {
    resampler: Option<StreamResampler>,
    out: Vec<i16>,
    rate: u32,
}

impl std::fmt::Debug for Uplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uplink").field("rate", &self.rate).finish()
    }
}

impl Uplink {
    /// An uplink to `rate` Hz (8000 passes frames through).
    ///
    /// # Errors
    /// The rate is not one the resampler supports.
    pub fn new(rate: u32) -> Result<Uplink, callbridge_rtp::Error> {
        let resampler = if rate == 8000 {
            None
        } else {
            Some(StreamResampler::new(8000, rate)?)
        };
        let len = resampler
            .as_ref()
            .map_or(FRAME_8K, |r| r.output_frame_len());
        Ok(Uplink {
            resampler,
            out: vec![0; len],
            rate,
        })
    }

    /// The output rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Converts one caller frame; the result borrows the uplink's buffer.
    pub fn process<'a>(&'a mut self, frame: &'a Frame) -> &'a [i16] {
        match &mut self.resampler {
            None => &frame[..],
            Some(r) => match r.process(&frame[..], &mut self.out) {
                Ok(()) => &self.out,
                Err(e) => {
                    tracing::warn!(error = %e, "uplink resampler failed");
                    &[]
                }
            },
        }
    }
}

/// Model audio to 8 kHz frames, plus the playback queue.
pub struct Downlink {
    resampler: Option<StreamResampler>,
    frame_in: usize,
    pending: Vec<i16>,
    decoded: Vec<i16>,
    queue: VecDeque<Frame>,
    in_stream: usize,
    busy: bool,
    reply_frames: u64,
    dropped: u64,
}

impl std::fmt::Debug for Downlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downlink")
            .field("queued", &self.queue.len())
            .field("in_stream", &self.in_stream)
            .finish()
    }
}

impl Downlink {
    /// A downlink from `rate` Hz (8000 needs no resampler).
    ///
    /// # Errors
    /// The rate is not one the resampler supports.
    pub fn new(rate: u32) -> Result<Downlink, callbridge_rtp::Error> {
        let resampler = if rate == 8000 {
            None
        } else {
            Some(StreamResampler::new(rate, 8000)?)
        };
        let frame_in = resampler.as_ref().map_or(FRAME_8K, |r| r.input_frame_len());
        Ok(Downlink {
            resampler,
            frame_in,
            pending: Vec::with_capacity(frame_in * 4),
            // Grows to the model's largest audio message on the first ones.
            decoded: Vec::new(),
            queue: VecDeque::with_capacity(QUEUE_START),
            in_stream: 0,
            busy: false,
            reply_frames: 0,
            dropped: 0,
        })
    }

    /// Adds model audio (decoded with `decode`, which appends samples at the
    /// downlink's input rate to the buffer it is given).
    pub fn push_model_audio(&mut self, decode: impl FnOnce(&mut Vec<i16>)) {
        self.decoded.clear();
        decode(&mut self.decoded);
        let mut at = 0;
        while at < self.decoded.len() {
            let take = (self.frame_in - self.pending.len()).min(self.decoded.len() - at);
            self.pending.extend_from_slice(&self.decoded[at..at + take]);
            at += take;
            if self.pending.len() == self.frame_in {
                let mut frame = [0i16; FRAME_8K];
                match &mut self.resampler {
                    None => frame.copy_from_slice(&self.pending),
                    Some(r) => {
                        if let Err(e) = r.process(&self.pending, &mut frame) {
                            tracing::warn!(error = %e, "downlink resampler failed");
                        }
                    }
                }
                self.pending.clear();
                if self.queue.len() < MAX_QUEUED_FRAMES {
                    self.queue.push_back(frame);
                    self.busy = true;
                } else {
                    self.dropped += 1;
                }
            }
        }
    }

    /// Queues 8 kHz audio as it is (no resampling), in 20 ms frames, the
    /// last one padded with silence: the fallback announcement. Frames
    /// beyond the queue's bound are dropped (counted).
    pub fn push_pcm_8k(&mut self, samples: &[i16]) {
        for chunk in samples.chunks(FRAME_8K) {
            let mut frame = [0i16; FRAME_8K];
            frame[..chunk.len()].copy_from_slice(chunk);
            if self.queue.len() < MAX_QUEUED_FRAMES {
                self.queue.push_back(frame);
                self.busy = true;
            } else {
                self.dropped += 1;
            }
        }
    }

    /// The model's reply is over: play its last partial frame (padded).
    pub fn flush_partial(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let missing = self.frame_in - self.pending.len();
        self.push_model_audio(|v| v.extend(std::iter::repeat_n(0i16, missing)));
    }

    /// One media tick passed (the stream sent one frame from its queue if it
    /// had one). Tops the stream's queue up with `play` (which returns
    /// false when the stream refuses). Returns true exactly when the
    /// playback has just drained.
    pub fn on_tick(&mut self, mut play: impl FnMut(Frame) -> bool) -> bool {
        if self.in_stream > 0 {
            self.in_stream -= 1;
            self.reply_frames += 1;
        }
        while self.in_stream < STREAM_DEPTH {
            let Some(frame) = self.queue.pop_front() else {
                break;
            };
            if play(frame) {
                self.in_stream += 1;
            } else {
                self.queue.push_front(frame);
                break;
            }
        }
        if self.busy && self.queue.is_empty() && self.in_stream == 0 && self.pending.is_empty() {
            self.busy = false;
            self.queue.shrink_to(QUEUE_START);
            return true;
        }
        false
    }

    /// Barge-in: drops everything queued here (the caller clears the
    /// stream's own queue) and returns how much of the reply was played.
    pub fn clear(&mut self) -> Duration {
        self.queue.clear();
        self.queue.shrink_to(QUEUE_START);
        self.pending.clear();
        self.in_stream = 0;
        self.busy = false;
        self.played()
    }

    /// How much of the current reply has been played.
    pub fn played(&self) -> Duration {
        Duration::from_millis(self.reply_frames * 20)
    }

    /// A new reply starts: its played time counts from zero.
    pub fn new_reply(&mut self) {
        self.reply_frames = 0;
    }

    /// Frames still to be sent before anything pushed now: queued here
    /// plus handed to the stream and not yet reported sent.
    pub fn frames_ahead(&self) -> u64 {
        (self.queue.len() + self.in_stream) as u64
    }

    /// Whether anything is queued or in the stream.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// Frames dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downlink_turns_24k_audio_into_8k_frames_and_reports_drain() {
        let mut d = Downlink::new(24_000).unwrap();
        d.push_model_audio(|v| v.extend(std::iter::repeat_n(1000i16, 480 * 3)));
        assert!(d.is_busy());
        let mut played = Vec::new();
        let mut drained = 0;
        for _ in 0..10 {
            if d.on_tick(|f| {
                played.push(f);
                true
            }) {
                drained += 1;
            }
        }
        assert_eq!(played.len(), 3);
        assert_eq!(drained, 1, "drain is reported exactly once");
        assert_eq!(d.played(), Duration::from_millis(60));
    }

    #[test]
    fn pcm_8k_is_queued_as_padded_frames_and_drains() {
        let mut d = Downlink::new(24_000).unwrap();
        d.push_pcm_8k(&[7; 400]);
        assert!(d.is_busy());
        let mut frames = Vec::new();
        let mut drained = false;
        for _ in 0..10 {
            drained |= d.on_tick(|f| {
                frames.push(f);
                true
            });
        }
        assert!(drained && !d.is_busy());
        assert_eq!(frames.len(), 3);
        assert!(frames[..2].iter().all(|f| f.iter().all(|&s| s == 7)));
        assert!(frames[2][..80].iter().all(|&s| s == 7));
        assert!(frames[2][80..].iter().all(|&s| s == 0));
    }

    #[test]
    fn clear_drops_queued_audio_and_keeps_played_time() {
        let mut d = Downlink::new(8000).unwrap();
        d.push_model_audio(|v| v.extend(std::iter::repeat_n(1i16, 160 * 10)));
        d.on_tick(|_| true);
        d.on_tick(|_| true);
        assert_eq!(d.clear(), Duration::from_millis(20));
        let mut n = 0;
        d.on_tick(|_| {
            n += 1;
            true
        });
        assert_eq!(n, 0, "nothing is played after a clear");
        assert!(!d.is_busy());
    }

    #[test]
    fn a_burst_grows_the_queue_and_its_memory_is_given_back_after_it() {
        let mut d = Downlink::new(8000).unwrap();
        assert!(d.queue.capacity() < 2 * QUEUE_START);
        // A model far ahead of real time: 10 s of audio at once.
        d.push_model_audio(|v| v.extend(std::iter::repeat_n(1i16, 160 * 500)));
        assert_eq!(d.frames_ahead(), 500, "nothing of a burst is dropped");
        let mut played = 0;
        let mut drained = false;
        while !drained {
            drained = d.on_tick(|_| {
                played += 1;
                true
            });
        }
        assert_eq!(played, 500);
        assert!(
            d.queue.capacity() < 2 * QUEUE_START,
            "shrunk after the drain"
        );
        d.push_model_audio(|v| v.extend(std::iter::repeat_n(1i16, 160 * 300)));
        d.clear();
        assert!(
            d.queue.capacity() < 2 * QUEUE_START,
            "shrunk after a barge-in"
        );
    }

    #[test]
    fn uplink_resamples_to_16k() {
        let mut u = Uplink::new(16_000).unwrap();
        assert_eq!(u.process(&[0i16; 160]).len(), 320);
        let mut p = Uplink::new(8000).unwrap();
        assert_eq!(p.process(&[0i16; 160]).len(), 160);
    }
}
