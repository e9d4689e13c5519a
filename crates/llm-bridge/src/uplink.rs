//! The caller's audio on its way to the model, in chunks (sans-IO).
//!
//! Owns: [`UplinkChunk`], the chunk length a session sends (20, 40 or 60 ms,
//! `SessionConfig::uplink`), and [`Uplink`], the value that converts caller
//! frames into the model's input format and collects them until a chunk is
//! full. Every chunk becomes one WebSocket message (one JSON text, one TCP
//! send), so a 60 ms chunk sends a third of the messages of 20 ms frames.
//!
//! When a chunk leaves:
//!
//! | trigger | what is sent |
//! |---|---|
//! | the chunk is full ([`Uplink::push`]) | the chunk |
//! | the next frame arrives once the pending audio is one chunk length old (frames came late, or stopped and resumed; [`Uplink::push`], also for a frame it refuses) | what is pending, alone, ahead of that frame |
//! | [`Uplink::flush`]: the session's `flush_audio`; any other message it sends (activity start/end, text, DTMF, a tool result, the greeting, an audio stream end, a local barge-in); a barge-in, tool call or end of the caller's turn reported by the model; close | what is pending |
//!
//! Nothing sends by itself: there is no timer. While frames keep coming,
//! pending audio leaves with the first frame at or after one chunk length;
//! when they stop, it waits for the next frame or the next flush. Pending audio is always on the wire
//! before any message the session sends after it (a commit or an activity
//! end never overtakes the audio it closes). The cost is latency: with
//! 60 ms chunks the first frame of a chunk reaches the model up to 40 ms
//! later than it would as its own 20 ms message.
//!
//! Provider limits: OpenAI Realtime takes up to 15 MiB of audio per
//! `input_audio_buffer.append` (smaller appends let its VAD react sooner);
//! Gemini Live sets no size for `realtimeInput.audio`; Google's streaming
//! guide for the Live API (ADK, "Best practices for sending audio input")
//! suggests 10-20 ms chunks for the lowest latency and 50-100 ms as the
//! balance of latency and overhead. 20-60 ms is inside both.
//!
//! Memory: the buffer holds one chunk and is reused. A full chunk is split
//! off it as `Bytes`; when the driver has encoded and dropped it (before
//! the next chunk fills, in the steady state) the same allocation is taken
//! back, so a session's uplink costs one chunk (1.9 KB at 60 ms of 16 kHz
//! PCM), not a fixed scratch area; with the caller's 8 kHz audio handed
//! along ([`Uplink::push_with_narrowband`]), half a chunk more.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::audio::{AudioFrame, InputConverter};
use crate::error::Error;
use crate::format::AudioFormat;

/// How much caller audio goes into one message to the model.
///
/// The default, 40 ms, halves the messages (and TCP sends, and wake-ups of
/// the session's driver task) of 20 ms frames for at most 20 ms of added
/// delay. Measured at 200 calls, in runs that predate the local barge-in
/// ([`ModelSession::interrupt`](crate::ModelSession::interrupt)), it left
/// the model's own barge-in detection as fast as 20 ms did, where 60 ms
/// made it ~20 ms slower for another third fewer messages; 60 ms is to be
/// re-measured with the local barge-in (docs/PERFORMANCE.md, "Issue 17:
/// uplink").
///
/// ```
/// use callbridge_llm_bridge::UplinkChunk;
/// assert_eq!(UplinkChunk::from_ms(60), Some(UplinkChunk::Ms60));
/// assert_eq!(UplinkChunk::from_ms(50), None);
/// assert_eq!(UplinkChunk::Ms40.ms(), 40);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UplinkChunk {
    /// One 20 ms telephone frame per message.
    Ms20,
    /// Two frames per message: half the messages, up to 20 ms later.
    #[default]
    Ms40,
    /// Three frames per message: a third of the messages, up to 40 ms later.
    Ms60,
}

impl UplinkChunk {
    /// Every chunk length, shortest first.
    #[cfg(test)]
    pub(crate) const ALL: [UplinkChunk; 3] =
        [UplinkChunk::Ms20, UplinkChunk::Ms40, UplinkChunk::Ms60];

    /// The chunk of `ms` milliseconds; `None` unless 20, 40 or 60.
    pub const fn from_ms(ms: u64) -> Option<UplinkChunk> {
        match ms {
            20 => Some(UplinkChunk::Ms20),
            40 => Some(UplinkChunk::Ms40),
            60 => Some(UplinkChunk::Ms60),
            _ => None,
        }
    }

    /// Its length in milliseconds.
    pub const fn ms(self) -> u32 {
        match self {
            UplinkChunk::Ms20 => 20,
            UplinkChunk::Ms40 => 40,
            UplinkChunk::Ms60 => 60,
        }
    }

    /// Its length.
    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.ms() as u64)
    }

    /// Bytes of `format` in one chunk.
    pub const fn bytes(self, format: AudioFormat) -> usize {
        format.rate().samples_in_ms(self.ms()) * format.bytes_per_sample()
    }
}

/// Caller frames in, chunks of the model's input format out (sans-IO: the
/// time is passed in, chunks are polled).
///
/// ```
/// use std::time::{Duration, Instant};
/// use callbridge_llm_bridge::{AudioFormat, AudioFrame, SampleRate, Uplink, UplinkChunk};
///
/// let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms40);
/// let t0 = Instant::now();
/// let frame = AudioFrame::Pcm16 { rate: SampleRate::HZ_16000, samples: &[0; 320] };
/// up.push(t0, frame)?;
/// assert!(up.poll_chunk().is_none()); // 20 ms pending
/// up.push(t0 + Duration::from_millis(20), frame)?;
/// assert_eq!(up.poll_chunk().map(|c| c.len()), Some(1280)); // 40 ms of s16le
/// # Ok::<(), callbridge_llm_bridge::Error>(())
/// ```
#[derive(Debug)]
pub struct Uplink {
    converter: InputConverter,
    chunk: UplinkChunk,
    chunk_bytes: usize,
    buf: BytesMut,
    /// When the first pending byte was pushed (`None`: nothing pending).
    since: Option<Instant>,
    /// The pending audio at 8 kHz (s16le) as its frames were given with
    /// [`Uplink::push_with_narrowband`].
    narrow: BytesMut,
    /// Whether every frame pending came with its 8 kHz audio.
    narrow_whole: bool,
    /// Chunks ready to send, oldest first (at most two between polls),
    /// each with its 8 kHz audio when every frame of it came with it.
    ready: VecDeque<(Bytes, Option<Bytes>)>,
}

impl Uplink {
    /// An uplink converting to `format` and sending `chunk`s.
    pub fn new(format: AudioFormat, chunk: UplinkChunk) -> Uplink {
        let chunk_bytes = chunk.bytes(format);
        Uplink {
            converter: InputConverter::new(format),
            chunk,
            chunk_bytes,
            buf: BytesMut::new(),
            since: None,
            narrow: BytesMut::new(),
            narrow_whole: true,
            ready: VecDeque::with_capacity(2),
        }
    }

    /// The format chunks are in.
    pub fn format(&self) -> AudioFormat {
        self.converter.target()
    }

    /// The chunk length.
    pub fn chunk(&self) -> UplinkChunk {
        self.chunk
    }

    /// Converts `frame` and adds it to the pending chunk; a chunk that is
    /// now full becomes ready. Pending audio that is one chunk length old at
    /// `now` becomes ready first, alone, whether or not the frame converts:
    /// a frame that cannot be converted is refused whole
    /// ([`Error::UnsupportedAudio`]) and adds nothing, but time has still
    /// moved on (the caller polls the ready chunks either way).
    pub fn push(&mut self, now: Instant, frame: AudioFrame<'_>) -> Result<(), Error> {
        self.push_inner(now, frame, None)
    }

    /// [`push`](Self::push) of a frame that was interpolated from 8 kHz
    /// telephone audio, with that audio (`narrow`, 8 kHz samples): a
    /// chunk all of whose frames came with it carries it along
    /// ([`poll_chunk_with_narrowband`](Self::poll_chunk_with_narrowband)),
    /// for a driver that keeps caller audio at 8 kHz (Gemini, for a
    /// resume) and need not decimate the chunk again.
    pub fn push_with_narrowband(
        &mut self,
        now: Instant,
        frame: AudioFrame<'_>,
        narrow: &[i16],
    ) -> Result<(), Error> {
        self.push_inner(now, frame, Some(narrow))
    }

    fn push_inner(
        &mut self,
        now: Instant,
        frame: AudioFrame<'_>,
        narrow: Option<&[i16]>,
    ) -> Result<(), Error> {
        if frame.is_empty() {
            return Ok(());
        }
        self.handle_timeout(now);
        if self.buf.is_empty() {
            // Takes the allocation of earlier chunks back once they were
            // sent and dropped, else allocates one chunk.
            self.buf.reserve(self.chunk_bytes);
        }
        self.converter.convert_into(frame, &mut self.buf)?;
        match narrow {
            Some(n) if self.narrow_whole => {
                self.narrow.reserve(self.chunk_bytes / 2);
                for x in n {
                    self.narrow.extend_from_slice(&x.to_le_bytes());
                }
            }
            _ => self.narrow_whole = false,
        }
        if self.since.is_none() && !self.buf.is_empty() {
            self.since = Some(now);
        }
        if self.buf.len() >= self.chunk_bytes {
            self.flush();
        }
        Ok(())
    }

    /// Makes what is pending ready now, whatever its length.
    pub fn flush(&mut self) {
        self.since = None;
        if !self.buf.is_empty() {
            // The 8 kHz audio goes along only when it is this chunk's own:
            // every frame came with it, half as many bytes (16 to 8 kHz).
            let narrow = (self.narrow_whole && self.narrow.len() * 2 == self.buf.len())
                .then(|| self.narrow.split().freeze());
            self.ready.push_back((self.buf.split().freeze(), narrow));
        }
        self.narrow.clear();
        self.narrow_whole = true;
    }

    /// When pending audio is due: the next push at or after it sends the
    /// pending audio alone first.
    fn poll_timeout(&self) -> Option<Instant> {
        self.since.map(|t| t + self.chunk.duration())
    }

    /// Makes pending audio ready if it is due at `now` (an early or extra
    /// call is harmless).
    fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|due| now >= due) {
            self.flush();
        }
    }

    /// The next chunk to send, oldest first.
    pub fn poll_chunk(&mut self) -> Option<Bytes> {
        self.ready.pop_front().map(|(pcm, _)| pcm)
    }

    /// The next chunk to send, oldest first, with its 8 kHz audio (s16le)
    /// when every frame of it was pushed with
    /// [`push_with_narrowband`](Self::push_with_narrowband).
    pub fn poll_chunk_with_narrowband(&mut self) -> Option<(Bytes, Option<Bytes>)> {
        self.ready.pop_front()
    }

    /// Playing time of the audio pending (not yet ready).
    #[cfg(test)]
    fn pending(&self) -> Duration {
        self.format().duration_of(self.buf.len())
    }
}

#[cfg(test)]
mod tests;
