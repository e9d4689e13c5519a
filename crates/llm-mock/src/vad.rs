//! A simple energy voice activity detector for the mock servers (sans-IO).
//!
//! Owns: [`EnergyVad`]. Audio is cut into 20 ms frames; a frame is speech
//! when its RMS exceeds a threshold; speech starts after `start_frames`
//! speech frames in a row and ends after `end_frames` non-speech frames in a
//! row. Time is the input's own sample clock, never the wall clock, so tests
//! can feed audio faster than real time and still get the same turns.

/// A turn boundary found by the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech started at this input sample index.
    SpeechStart(u64),
    /// Speech ended at this input sample index.
    SpeechEnd(u64),
}

/// Energy VAD over 20 ms frames of mono PCM.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    frame_len: u32,
    threshold_sq: u64,
    start_frames: u32,
    end_frames: u32,
    // Current frame accumulation.
    in_frame: u32,
    sum_sq: u64,
    // State.
    speaking: bool,
    run: u32,
    position: u64,
}

impl EnergyVad {
    /// A detector for `rate` Hz audio: RMS above `threshold` (in sample
    /// units; 500 is about -36 dBFS) counts as speech; speech starts after
    /// 60 ms and ends after `silence_ms` of silence.
    pub fn new(rate: u32, threshold: u16, silence_ms: u32) -> Self {
        EnergyVad {
            frame_len: (rate / 50).max(1),
            threshold_sq: u64::from(threshold) * u64::from(threshold),
            start_frames: 3,
            end_frames: (silence_ms / 20).max(1),
            in_frame: 0,
            sum_sq: 0,
            speaking: false,
            run: 0,
            position: 0,
        }
    }

    /// Whether speech is in progress.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Samples consumed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Feeds samples, appending any boundaries to `out`.
    pub fn push(&mut self, samples: impl IntoIterator<Item = i16>, out: &mut Vec<VadEvent>) {
        for s in samples {
            let v = i64::from(s);
            self.sum_sq += (v * v) as u64;
            self.in_frame += 1;
            self.position += 1;
            if self.in_frame == self.frame_len {
                let speech = self.sum_sq / u64::from(self.frame_len) > self.threshold_sq;
                self.in_frame = 0;
                self.sum_sq = 0;
                self.on_frame(speech, out);
            }
        }
    }

    /// Ends any speech in progress (the stream paused).
    pub fn flush(&mut self, out: &mut Vec<VadEvent>) {
        if self.speaking {
            self.speaking = false;
            self.run = 0;
            out.push(VadEvent::SpeechEnd(self.position));
        }
    }

    fn on_frame(&mut self, speech: bool, out: &mut Vec<VadEvent>) {
        if speech != self.speaking {
            self.run += 1;
        } else {
            self.run = 0;
        }
        if !self.speaking && self.run >= self.start_frames {
            self.speaking = true;
            self.run = 0;
            out.push(VadEvent::SpeechStart(self.position));
        } else if self.speaking && self.run >= self.end_frames {
            self.speaking = false;
            self.run = 0;
            out.push(VadEvent::SpeechEnd(self.position));
        }
    }
}

/// Test audio: `ms` milliseconds of a 440 Hz tone at about -12 dBFS (loud
/// enough to be speech for [`EnergyVad`]) at `rate`.
pub fn tone(rate: u32, ms: u32) -> Vec<i16> {
    let n = (rate as usize * ms as usize) / 1000;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 8000.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_then_silence_is_one_turn() {
        let mut vad = EnergyVad::new(16000, 500, 400);
        let mut ev = Vec::new();
        vad.push(tone(16000, 500), &mut ev);
        vad.push(vec![0i16; 16000 / 2], &mut ev);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(ev[0], VadEvent::SpeechStart(p) if p == 960));
        assert!(matches!(ev[1], VadEvent::SpeechEnd(_)));
    }

    #[test]
    fn short_click_is_not_speech() {
        let mut vad = EnergyVad::new(16000, 500, 400);
        let mut ev = Vec::new();
        vad.push(tone(16000, 40), &mut ev);
        vad.push(vec![0i16; 16000], &mut ev);
        assert!(ev.is_empty());
    }

    #[test]
    fn silence_is_not_speech() {
        let mut vad = EnergyVad::new(16000, 500, 400);
        let mut ev = Vec::new();
        vad.push(vec![100i16; 32000], &mut ev);
        assert!(ev.is_empty());
        assert_eq!(vad.position(), 32000);
    }
}
