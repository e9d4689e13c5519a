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
//! Audio is kept at 8 kHz as 4-bit IMA ADPCM (4 kB a second), not as the
//! message's wire text (base64 of 16 kHz s16le, 42.7 kB a second): the
//! service may report what it consumed only once per turn (the mock does;
//! Google's docs name no cadence), so in a long call this buffer sits at
//! its bound, and at 1,000 calls the wire text was 227 KB per call of the
//! agent's heap (heaptrack, 2026-12-07).
//!
//! A chunk interpolated from 8 kHz telephone audio comes with that audio
//! ([`Unconsumed::on_sent_narrowband`]: nothing to do but code it); any
//! other is decimated to 8 kHz with the workspace's resampler (pass band
//! flat to 3.4 kHz, [`Unconsumed::on_sent_audio`]; a 16 kHz caller, such
//! as a Vonage WebSocket, is so replayed in telephone band). The coder is
//! `audio-codec-algorithms`' IMA ADPCM; each chunk keeps the coder's
//! state at its start, so any chunk decodes on its own. A replay decodes
//! and interpolates back to 16 kHz ([`Expander`], the filter the session
//! uses, so a telephone caller's replay lines up with what was sent; a
//! decimated chunk comes back 4 ms late, its first 4 ms the filters'
//! start). The cost is the coder's noise: 20.6 dB signal to noise on a
//! 1 kHz tone through decimator, coder and interpolator (the test below),
//! a line noisier than the live one, for the replayed stretch only: a
//! replay is the rare path (a dropped connection), and what the model hears
//! live is never touched. Other messages (text, tool responses, activity
//! signals) are rare and small and are kept as sent.
//!
//! Memory: the audio is one ring of ADPCM bytes, reserved at its bound on
//! the first chunk (pages become resident as the ring fills), so keeping
//! a chunk allocates nothing; a message costs one slot of 24 bytes.
//!
//! Bounds: at most `max_messages` messages, `max_audio` bytes of kept
//! audio ([`AUDIO_BYTES_PER_MS`]) and [`MAX_TEXT_BYTES`] of other
//! messages. Beyond any, the oldest messages are dropped and the loss is
//! remembered: [`Unconsumed::take_replay`] reports it, and the caller
//! tells the application (`ErrorKind::InputDropped`); what is left is
//! still replayed.

use std::collections::VecDeque;

use audio_codec_algorithms::{AdpcmImaState, decode_adpcm_ima, encode_adpcm_ima};
use callbridge_audio::resample::Resampler;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Bound on the wire text of kept messages other than audio.
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Room above the audio bound for the chunk kept before the oldest is
/// dropped (a 60 ms chunk is 240 bytes), so the ring does not reallocate
/// for the uplink's chunks (a longer one grows it once). The ring wraps
/// through all of its capacity, so the slack is resident in every call.
const AUDIO_SLACK: usize = 512;

/// Samples of 16 kHz audio decimated per step (on the stack).
const STEP: usize = 480;

/// Bytes of kept audio per millisecond (4-bit ADPCM at 8 kHz).
pub(crate) const AUDIO_BYTES_PER_MS: usize = 4;

/// One kept message, as a replay gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kept {
    /// A `realtimeInput.audio` chunk, decoded: its audio at 8 kHz
    /// ([`Expander`] makes 16 kHz s16le of it again).
    Audio(Box<[i16]>),
    /// Any other message, as sent.
    Message(Utf8Bytes),
}

/// What a resume replays.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The messages, oldest first.
    pub(crate) messages: Vec<Kept>,
    /// Whether unconsumed messages were dropped over the bounds.
    pub(crate) lost: bool,
}

/// Turns a replay's kept audio back into 16 kHz s16le, one stream: the
/// interpolator's state runs on from chunk to chunk of one replay.
pub(crate) struct Expander {
    up: Resampler,
}

impl Expander {
    /// A new stream (one per replay).
    pub(crate) fn new() -> Option<Expander> {
        Resampler::new(8000, 16_000).ok().map(|up| Expander { up })
    }

    /// Appends the 16 kHz s16le samples of 8 kHz `samples` to `out`.
    pub(crate) fn expand(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        out.reserve(samples.len() * 4);
        for step in samples.chunks(STEP / 2) {
            let mut wide = [0i16; STEP];
            // `wide` holds twice the step: never too small.
            let written = self.up.process(step, &mut wide).unwrap_or(0);
            for x in &wide[..written] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

/// A kept message's slot, in sending order.
#[derive(Debug, Clone)]
enum Slot {
    /// This many 8 kHz samples, `(n + 1) / 2` bytes at the front of the
    /// audio ring, coded from `start`.
    Audio { samples: u32, start: AdpcmImaState },
    /// The text at the front of the texts.
    Message,
}

impl Slot {
    fn audio_bytes(samples: u32) -> usize {
        (samples as usize).div_ceil(2)
    }
}

/// Reads the s16le samples of `bytes` into `out` (as many as both hold;
/// an odd trailing byte is no sample); their count.
fn read_le(bytes: &[u8], out: &mut [i16]) -> usize {
    let mut n = 0;
    for (x, s) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *x = i16::from_le_bytes([s[0], s[1]]);
        n += 1;
    }
    n
}

/// One chunk being coded into the ring.
struct ChunkCoding {
    /// The coder's state before its first sample.
    start: AdpcmImaState,
    samples: u32,
    /// A low nibble waiting for its high one.
    low: Option<u8>,
}

/// The unconsumed client messages of one connection.
pub(crate) struct Unconsumed {
    /// Index of the next message sent on this connection.
    next: u64,
    /// (index, slot), oldest first.
    entries: VecDeque<(u64, Slot)>,
    /// The audio of the `Audio` slots, in order (ADPCM, two samples a
    /// byte, low nibble first; a chunk of an odd count ends on a padding
    /// nibble).
    audio: VecDeque<u8>,
    /// The texts of the `Message` slots, in order.
    texts: VecDeque<Utf8Bytes>,
    text_bytes: usize,
    max_messages: usize,
    max_audio: usize,
    max_text: usize,
    /// 16 kHz to 8 kHz, one stream for the whole session (`None` only
    /// if the resampler refused the pair, which it supports: no audio
    /// is kept then, and a replay reports the loss).
    down: Option<Resampler>,
    /// The ADPCM coder's state after the last kept sample.
    coder: AdpcmImaState,
    /// Index of the newest message dropped over the bounds and not yet
    /// known to be consumed: a replay now would miss it.
    dropped_through: Option<u64>,
}

impl std::fmt::Debug for Unconsumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unconsumed")
            .field("next", &self.next)
            .field("messages", &self.entries.len())
            .field("audio_bytes", &self.audio.len())
            .field("text_bytes", &self.text_bytes)
            .finish_non_exhaustive()
    }
}

impl Unconsumed {
    /// An empty buffer for a connection whose `setup` was message 0,
    /// keeping at most `max_messages` messages and `max_audio` bytes of
    /// audio ([`AUDIO_BYTES_PER_MS`]).
    pub(crate) fn new(max_messages: usize, max_audio: usize) -> Self {
        Unconsumed {
            next: 1,
            entries: VecDeque::new(),
            audio: VecDeque::new(),
            texts: VecDeque::new(),
            text_bytes: 0,
            max_messages: max_messages.max(1),
            max_audio,
            max_text: MAX_TEXT_BYTES,
            down: Resampler::new(16_000, 8000).ok(),
            coder: AdpcmImaState::new(),
            dropped_through: None,
        }
    }

    /// The same with another bound on the text of other messages.
    #[cfg(test)]
    pub(crate) fn with_max_text(mut self, max_text: usize) -> Self {
        self.max_text = max_text;
        self
    }

    /// Messages kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of audio kept now.
    #[cfg(test)]
    pub(crate) fn audio_bytes(&self) -> usize {
        self.audio.len()
    }

    /// One message other than audio was sent on the connection.
    pub(crate) fn on_sent(&mut self, msg: &Utf8Bytes) {
        self.text_bytes += msg.len();
        self.texts.push_back(msg.clone());
        self.push(Slot::Message);
    }

    /// One `realtimeInput.audio` message of these 16 kHz s16le samples
    /// was sent on the connection (an odd trailing byte, which no whole
    /// sample owns, is not kept).
    pub(crate) fn on_sent_audio(&mut self, pcm: &[u8]) {
        let Some(mut down) = self.down.take() else {
            let index = self.next;
            self.next += 1;
            self.dropped_through = Some(index);
            return;
        };
        let mut chunk = self.start_chunk();
        for step in pcm.chunks(STEP * 2) {
            let mut wide = [0i16; STEP];
            let n = read_le(step, &mut wide);
            let mut narrow = [0i16; STEP / 2 + 1];
            // At most (STEP + 1) / 2 outputs for STEP inputs: never too small.
            let written = down.process(&wide[..n], &mut narrow).unwrap_or(0);
            self.code(&narrow[..written], &mut chunk);
        }
        self.down = Some(down);
        self.end_chunk(chunk);
    }

    /// One `realtimeInput.audio` message was sent whose audio was
    /// interpolated from these 8 kHz s16le samples: they are kept as they
    /// are (no decimation).
    pub(crate) fn on_sent_narrowband(&mut self, narrow: &[u8]) {
        let mut chunk = self.start_chunk();
        for step in narrow.chunks(STEP) {
            let mut samples = [0i16; STEP / 2];
            let n = read_le(step, &mut samples);
            self.code(&samples[..n], &mut chunk);
        }
        self.end_chunk(chunk);
    }

    fn start_chunk(&mut self) -> ChunkCoding {
        if self.audio.capacity() == 0 {
            self.audio.reserve_exact(self.max_audio + AUDIO_SLACK);
        }
        ChunkCoding {
            start: self.coder.clone(),
            samples: 0,
            low: None,
        }
    }

    /// Codes 8 kHz samples (at most `STEP / 2 + 1`) into the ring.
    fn code(&mut self, samples: &[i16], chunk: &mut ChunkCoding) {
        // Packed on the stack, then copied into the ring at once (with a
        // push per byte the keeping took 7.5 % of the agent's samples at
        // 1,000 calls, packed 5.7 %, perf, 2026-12-07).
        let mut packed = [0u8; STEP / 4 + 2];
        let mut k = 0;
        for &x in samples {
            let nibble = encode_adpcm_ima(x, &mut self.coder);
            match chunk.low.take() {
                None => chunk.low = Some(nibble),
                Some(l) => {
                    packed[k] = l | nibble << 4;
                    k += 1;
                }
            }
        }
        self.audio.extend(&packed[..k]);
        chunk.samples += u32::try_from(samples.len()).unwrap_or(0);
    }

    fn end_chunk(&mut self, chunk: ChunkCoding) {
        if let Some(l) = chunk.low {
            self.audio.push_back(l);
        }
        self.push(Slot::Audio {
            samples: chunk.samples,
            start: chunk.start,
        });
    }

    fn push(&mut self, slot: Slot) {
        let index = self.next;
        self.next += 1;
        self.entries.push_back((index, slot));
        while self.entries.len() > self.max_messages
            || self.audio.len() > self.max_audio
            || self.text_bytes > self.max_text
        {
            let Some(i) = self.pop_oldest() else {
                break;
            };
            self.dropped_through = Some(i);
        }
    }

    /// Drops the oldest message; its index.
    fn pop_oldest(&mut self) -> Option<u64> {
        let (i, slot) = self.entries.pop_front()?;
        self.release(&slot);
        Some(i)
    }

    fn release(&mut self, slot: &Slot) {
        match slot {
            Slot::Audio { samples, .. } => {
                let n = Slot::audio_bytes(*samples).min(self.audio.len());
                self.audio.drain(..n);
            }
            Slot::Message => {
                if let Some(t) = self.texts.pop_front() {
                    self.text_bytes -= t.len();
                }
            }
        }
    }

    /// A `sessionResumptionUpdate` with a new handle: the messages it
    /// includes are no longer needed (all sent so far without an index).
    pub(crate) fn on_update(&mut self, last_consumed: Option<u64>) {
        let last = last_consumed.unwrap_or(self.next.saturating_sub(1));
        while self.entries.front().is_some_and(|(i, _)| *i <= last) {
            self.pop_oldest();
        }
        // What was dropped up to `last` is in the server's state now.
        if self.dropped_through.is_some_and(|d| d <= last) {
            self.dropped_through = None;
        }
    }

    /// Takes what the new connection must replay, and starts the numbering
    /// of that connection (its `setup` is message 0).
    pub(crate) fn take_replay(&mut self) -> Replay {
        let mut messages = Vec::with_capacity(self.entries.len());
        while let Some((_, slot)) = self.entries.pop_front() {
            messages.push(match slot {
                Slot::Audio { samples, mut start } => {
                    let n = Slot::audio_bytes(samples).min(self.audio.len());
                    let mut out = Vec::with_capacity(samples as usize);
                    for b in self.audio.drain(..n) {
                        for nibble in [b & 0x0f, b >> 4] {
                            if out.len() < samples as usize {
                                out.push(decode_adpcm_ima(nibble, &mut start));
                            }
                        }
                    }
                    Kept::Audio(out.into())
                }
                Slot::Message => match self.texts.pop_front() {
                    Some(t) => Kept::Message(t),
                    None => continue,
                },
            });
        }
        self.audio.clear();
        self.texts.clear();
        self.text_bytes = 0;
        let lost = self.dropped_through.take().is_some();
        self.next = 1;
        Replay { messages, lost }
    }

    /// A new session with no state to resume: nothing to replay.
    pub(crate) fn reset(&mut self) {
        self.entries.clear();
        self.audio.clear();
        self.texts.clear();
        self.text_bytes = 0;
        self.next = 1;
        self.dropped_through = None;
        if let Some(d) = self.down.as_mut() {
            d.reset();
        }
        self.coder = AdpcmImaState::new();
    }
}

#[cfg(test)]
mod tests;
