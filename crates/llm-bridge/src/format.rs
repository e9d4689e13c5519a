//! Audio formats on the model legs: [`SampleRate`] and [`AudioFormat`] (an
//! encoding with its rate), named by the errors, the configuration and the
//! audio conversions alike. A leaf module: it uses nothing else of the
//! crate.

/// A sample rate in Hz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleRate(u32);

impl SampleRate {
    /// 8 kHz: G.711 telephony.
    pub const HZ_8000: SampleRate = SampleRate(8000);
    /// 16 kHz: Gemini Live input, wideband telephony.
    pub const HZ_16000: SampleRate = SampleRate(16000);
    /// 24 kHz: Gemini Live output, OpenAI Realtime PCM.
    pub const HZ_24000: SampleRate = SampleRate(24000);

    /// A rate in Hz.
    pub const fn new(hz: u32) -> Self {
        SampleRate(hz)
    }

    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        self.0
    }

    /// Number of samples in `ms` milliseconds at this rate.
    pub const fn samples_in_ms(self, ms: u32) -> usize {
        (self.0 as usize * ms as usize) / 1000
    }
}

impl std::fmt::Display for SampleRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

/// An audio encoding with its rate, as carried on a model leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// Signed 16-bit little-endian mono PCM at `rate`.
    Pcm16 {
        /// The sample rate.
        rate: SampleRate,
    },
    /// G.711 µ-law, 8 kHz, one byte per sample.
    Pcmu,
    /// G.711 A-law, 8 kHz, one byte per sample.
    Pcma,
}

impl AudioFormat {
    /// PCM 16 kHz (Gemini Live input).
    pub const PCM_16K: AudioFormat = AudioFormat::Pcm16 {
        rate: SampleRate::HZ_16000,
    };
    /// PCM 24 kHz (Gemini Live output, OpenAI `audio/pcm`).
    pub const PCM_24K: AudioFormat = AudioFormat::Pcm16 {
        rate: SampleRate::HZ_24000,
    };
    /// PCM 8 kHz (decoded G.711).
    pub const PCM_8K: AudioFormat = AudioFormat::Pcm16 {
        rate: SampleRate::HZ_8000,
    };

    /// The sample rate.
    pub const fn rate(self) -> SampleRate {
        match self {
            AudioFormat::Pcm16 { rate } => rate,
            AudioFormat::Pcmu | AudioFormat::Pcma => SampleRate::HZ_8000,
        }
    }

    /// Bytes per sample on the wire.
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::Pcm16 { .. } => 2,
            AudioFormat::Pcmu | AudioFormat::Pcma => 1,
        }
    }

    /// Playing time of `bytes` bytes of this format.
    pub fn duration_of(self, bytes: usize) -> std::time::Duration {
        let samples = (bytes / self.bytes_per_sample()) as u64;
        std::time::Duration::from_micros(samples * 1_000_000 / u64::from(self.rate().hz()))
    }
}
