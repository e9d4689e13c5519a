//! Jitter buffer for one inbound G.711 stream: a sans-IO value that reorders
//! packets, drops duplicates and late packets, survives sequence-number
//! wrap-around and stream restarts (new SSRC, large sequence or timestamp
//! jumps), conceals lost frames by repeat-and-fade, and adapts its depth to
//! the measured interarrival jitter (RFC 3550 section 6.4.1 and appendix
//! A.8) between configured bounds.
//!
//! The driver feeds packets with [`JitterBuffer::handle_packet`] (passing
//! the arrival time) and takes one 20 ms frame of PCM per playout tick with
//! [`JitterBuffer::poll_frame`]. Storage is a fixed ring of slots, each
//! holding one payload inline (up to [`SLOT_PAYLOAD`] bytes, copied out of
//! the receive buffer, so the packet's buffer can be reused at once);
//! nothing allocates per packet or per frame.
//!
//! Playout rules:
//! - Before playing, and after an underrun, the buffer waits until it holds
//!   the target depth (prefetch), emitting silence.
//! - A missing frame with later frames buffered is lost: it is concealed
//!   and playout moves on. A missing frame with nothing later buffered is
//!   an underrun: it is concealed and playout waits (the packet may just
//!   be late), which also raises the depth by one frame up to the maximum.
//! - When more than the target plus two frames are buffered, one frame is
//!   discarded per tick to bring the delay back down.

use std::time::{Duration, Instant};

use crate::g711::Law;
use crate::ids::{ExtSeqNo, PayloadType, Ssrc};
use crate::rtp::RtpPacket;

/// Ring capacity in frames (640 ms at 20 ms, three times the largest
/// adaptive depth of 200 ms; 64 frames were 6 KB more of every call):
/// bounds memory whatever the peer sends.
pub const CAPACITY: usize = 32;

/// Payload bytes a slot holds: one 20 ms G.711 frame. A longer payload
/// is played up to this length (and counted in [`JitterStats::bad_size`]).
pub const SLOT_PAYLOAD: usize = 160;

/// Frames of concealment after which repeat-and-fade reaches silence.
const FADE_FRAMES: u32 = 3;

/// Jitter buffer configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Samples per frame and per packet (160 for 20 ms at 8 kHz).
    pub frame_samples: usize,
    /// Depth to start with before any jitter is measured.
    pub initial_depth: Duration,
    /// Lower bound of the adaptive depth.
    pub min_depth: Duration,
    /// Upper bound of the adaptive depth (at most `CAPACITY - 4` frames).
    pub max_depth: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            frame_samples: 160,
            initial_depth: Duration::from_millis(40),
            min_depth: Duration::from_millis(20),
            max_depth: Duration::from_millis(200),
        }
    }
}

/// Counters, cumulative since the buffer was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets that arrived after their frame was played or concealed.
    pub late: u64,
    /// Frames never received by the time they were due.
    pub lost: u64,
    /// Packets received twice.
    pub duplicate: u64,
    /// Packets that arrived after a later packet.
    pub reordered: u64,
    /// Frames filled by concealment (losses and underruns).
    pub concealed: u64,
    /// Ticks where nothing was buffered while playing.
    pub underruns: u64,
    /// Frames dropped to bring the delay back to the target.
    pub discarded: u64,
    /// Packets whose payload type is not the configured G.711 law.
    pub wrong_payload_type: u64,
    /// Payloads not exactly one frame long (padded or truncated).
    pub bad_size: u64,
    /// Restarts: new SSRC or a sequence jump the ring cannot span.
    pub resyncs: u64,
}

/// What [`JitterBuffer::handle_packet`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored for playout.
    Stored,
    /// Stored after flushing the old stream (new SSRC or jump).
    Resynced,
    /// Dropped: its frame was already played or concealed.
    Late,
    /// Dropped: already buffered.
    Duplicate,
    /// Dropped: payload type is not the configured law.
    WrongPayloadType,
}

/// What [`JitterBuffer::poll_frame`] wrote into the output frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// The decoded payload of the packet with this sequence number.
    Audio {
        /// Extended sequence number of the packet played.
        seq: ExtSeqNo,
        /// Its RTP timestamp.
        timestamp: u32,
    },
    /// Repeat-and-fade of the last frame (or silence) for a missing frame.
    Concealed,
    /// Silence while filling up to the target depth.
    Buffering,
}

#[derive(Debug, Clone)]
struct Slot {
    seq: Option<ExtSeqNo>,
    timestamp: u32,
    /// The payload's length as received (may exceed what is stored).
    len: usize,
    payload: [u8; SLOT_PAYLOAD],
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            seq: None,
            timestamp: 0,
            len: 0,
            payload: [0; SLOT_PAYLOAD],
        }
    }
}

/// The jitter buffer. See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    law: Law,
    payload_type: PayloadType,
    slots: Vec<Slot>,
    ssrc: Option<Ssrc>,
    /// Last extended sequence number seen (for extension).
    last_ext: Option<ExtSeqNo>,
    /// Highest extended sequence number stored.
    highest: Option<ExtSeqNo>,
    /// Next frame to play; None until the first packet.
    next: Option<ExtSeqNo>,
    playing: bool,
    /// True once a frame of this stream has been played or concealed.
    started: bool,
    /// Ticks spent prefetching with something buffered.
    waited: usize,
    /// Adaptive target in frames.
    target_frames: usize,
    min_frames: usize,
    max_frames: usize,
    /// RFC 3550 A.8 jitter estimate in RTP timestamp units, times 16.
    jitter_q4: u64,
    /// Transit time of the previous packet: (arrival, rtp timestamp).
    prev_transit: Option<(Instant, u32)>,
    last_frame: Vec<i16>,
    conceal_run: u32,
    stats: JitterStats,
}

fn frames_for(d: Duration, frame_samples: usize) -> usize {
    let frame_us = (frame_samples as u128 * 1_000_000) / 8000;
    (d.as_micros().div_ceil(frame_us.max(1))) as usize
}

impl JitterBuffer {
    /// A buffer for G.711 `law` arriving with `payload_type`.
    #[must_use]
    pub fn new(cfg: JitterConfig, law: Law, payload_type: PayloadType) -> JitterBuffer {
        let max_frames = frames_for(cfg.max_depth, cfg.frame_samples).clamp(1, CAPACITY - 4);
        let min_frames = frames_for(cfg.min_depth, cfg.frame_samples).clamp(1, max_frames);
        let target_frames =
            frames_for(cfg.initial_depth, cfg.frame_samples).clamp(min_frames, max_frames);
        JitterBuffer {
            cfg,
            law,
            payload_type,
            slots: vec![Slot::default(); CAPACITY],
            ssrc: None,
            last_ext: None,
            highest: None,
            next: None,
            playing: false,
            started: false,
            waited: 0,
            target_frames,
            min_frames,
            max_frames,
            jitter_q4: 0,
            prev_transit: None,
            last_frame: vec![0; cfg.frame_samples],
            conceal_run: 0,
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current target depth.
    #[must_use]
    pub fn target_depth(&self) -> Duration {
        Duration::from_micros((self.target_frames * self.cfg.frame_samples * 125) as u64)
    }

    /// Interarrival jitter estimate (RFC 3550 A.8), in RTP timestamp units
    /// (1/8000 s), as an RR block reports it.
    #[must_use]
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4) as u32
    }

    /// Extended highest sequence number received, as an RTCP report block
    /// carries it (cycle count in the high 16 bits, starting at 0).
    #[must_use]
    pub fn highest_seq(&self) -> u32 {
        self.last_ext
            .map_or(0, |e| e.0.saturating_sub(1 << 16) as u32)
    }

    /// The SSRC being played.
    #[must_use]
    pub fn ssrc(&self) -> Option<Ssrc> {
        self.ssrc
    }

    /// Frames buffered from the next frame to play up to the highest stored.
    #[must_use]
    pub fn buffered_frames(&self) -> usize {
        match (self.next, self.highest) {
            (Some(n), Some(h)) if h >= n => (h.0 - n.0 + 1) as usize,
            _ => 0,
        }
    }

    /// The audio buffered, as time: [`JitterBuffer::buffered_frames`]
    /// times the frame length (what the playout is behind the newest
    /// packet; the depth gauge of the metrics).
    #[must_use]
    pub fn buffered(&self) -> Duration {
        let frame_us = self.cfg.frame_samples as u64 * 1_000_000 / 8000;
        Duration::from_micros(self.buffered_frames() as u64 * frame_us)
    }

    fn slot(&mut self, seq: ExtSeqNo) -> &mut Slot {
        &mut self.slots[(seq.0 % CAPACITY as u64) as usize]
    }

    /// Drops everything buffered and forgets the stream (its SSRC and
    /// sequence numbers): the next packet starts a new one, as if from a
    /// new source. Counters are kept.
    pub fn reset(&mut self) {
        self.flush();
        self.ssrc = None;
    }

    fn flush(&mut self) {
        for s in &mut self.slots {
            s.seq = None;
        }
        self.last_ext = None;
        self.highest = None;
        self.next = None;
        self.playing = false;
        self.started = false;
        self.waited = 0;
        self.prev_transit = None;
    }

    /// Feeds one received packet, `now` being its arrival time.
    pub fn handle_packet<B: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        packet: &RtpPacket<B>,
    ) -> Accepted {
        if packet.payload_type() != self.payload_type {
            self.stats.wrong_payload_type += 1;
            return Accepted::WrongPayloadType;
        }
        let mut resynced = false;
        if self.ssrc != Some(packet.ssrc()) {
            if self.ssrc.is_some() {
                self.stats.resyncs += 1;
                resynced = true;
            }
            self.flush();
            self.ssrc = Some(packet.ssrc());
        }
        let mut ext = ExtSeqNo::extend(self.last_ext, packet.seq());
        if let Some(next) = self.next {
            let too_far = ext.0 >= next.0 + (CAPACITY as u64 - 1);
            let far_back = ext < next && next.0 - ext.0 > CAPACITY as u64;
            if too_far || far_back {
                // The stream restarted or jumped (RFC 3550 A.1 "bad
                // sequence"): start over from this packet.
                self.stats.resyncs += 1;
                resynced = true;
                self.flush();
                ext = ExtSeqNo::extend(None, packet.seq());
            } else if ext < next {
                // Late once playout has begun; before that, only when taking
                // it would make the buffered span exceed the ring.
                let span_too_wide = self
                    .highest
                    .is_some_and(|h| h.0 - ext.0 >= CAPACITY as u64 - 1);
                if self.started || span_too_wide {
                    self.stats.late += 1;
                    return Accepted::Late;
                }
            }
        }
        if self.slot(ext).seq == Some(ext) {
            self.stats.duplicate += 1;
            return Accepted::Duplicate;
        }
        if self.last_ext.is_none_or(|l| ext > l) {
            self.last_ext = Some(ext);
        }
        if packet.marker() {
            // A new talkspurt: the timestamp jumped over the silence, so the
            // transit difference to the previous packet is not jitter.
            self.prev_transit = None;
        }
        self.update_jitter(now, packet.timestamp());
        if self.highest.is_some_and(|h| ext < h) {
            self.stats.reordered += 1;
        }
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        // Before the first frame is played, an earlier packet moves the
        // start back (reordering at the start of the stream).
        if self.next.is_none_or(|n| ext < n) && !self.started {
            self.next = Some(ext);
        }
        // A talkspurt starts on an empty buffer: refill to the target
        // before playing so that it is not cut by the first jitter.
        if packet.marker() && self.playing && self.buffered_frames() == 0 {
            self.playing = false;
        }
        let slot = self.slot(ext);
        slot.seq = Some(ext);
        slot.timestamp = packet.timestamp();
        let payload = packet.payload();
        let kept = payload.len().min(SLOT_PAYLOAD);
        slot.len = payload.len();
        slot.payload[..kept].copy_from_slice(&payload[..kept]);
        self.stats.received += 1;
        if resynced {
            Accepted::Resynced
        } else {
            Accepted::Stored
        }
    }

    fn update_jitter(&mut self, now: Instant, ts: u32) {
        if let Some((prev_at, prev_ts)) = self.prev_transit {
            // D = (arrival difference) - (timestamp difference), in 1/8000 s.
            let arrival = now.saturating_duration_since(prev_at).as_micros() as i64
                - prev_at.saturating_duration_since(now).as_micros() as i64;
            let arrival_units = arrival * 8 / 1000;
            let ts_units = i64::from(ts.wrapping_sub(prev_ts) as i32);
            let d = (arrival_units - ts_units).unsigned_abs().min(8000);
            // J += (|D| - J) / 16, kept in Q4.
            self.jitter_q4 = self.jitter_q4 + d - (self.jitter_q4 >> 4);
            // Target: one frame plus three times the jitter, in whole frames.
            let jitter = (self.jitter_q4 >> 4) as usize;
            let want = (3 * jitter + self.cfg.frame_samples)
                .div_ceil(self.cfg.frame_samples)
                .clamp(self.min_frames, self.max_frames);
            // Grow at once, shrink only by one frame at a time.
            if want > self.target_frames {
                self.target_frames = want;
            } else if want < self.target_frames && self.stats.received.is_multiple_of(50) {
                self.target_frames -= 1;
            }
        }
        self.prev_transit = Some((now, ts));
    }

    /// Writes the next 20 ms frame of PCM into `out[..frame_samples]` and
    /// says where it came from. Call once per playout tick. An `out`
    /// shorter than `frame_samples` is filled as far as it goes.
    pub fn poll_frame(&mut self, out: &mut [i16]) -> Playout {
        let n = self.cfg.frame_samples.min(out.len());
        let out = &mut out[..n];
        let Some(next) = self.next else {
            return self.fill_idle(out);
        };
        if !self.playing {
            let buffered = self.buffered_frames();
            // Start at the target depth, or once the oldest frame has waited
            // that long (the end of a talkspurt must not wait for the next).
            if buffered >= self.target_frames || (buffered > 0 && self.waited >= self.target_frames)
            {
                self.playing = true;
                self.waited = 0;
            } else {
                if buffered > 0 {
                    self.waited += 1;
                }
                return self.fill_idle(out);
            }
        }
        self.started = true;
        let mut next = next;
        // Too much delay: drop the oldest frames down to the target.
        while self.buffered_frames() > self.target_frames + 2 {
            let s = self.slot(next);
            if s.seq == Some(next) {
                s.seq = None;
                self.stats.discarded += 1;
            } else {
                self.stats.lost += 1;
            }
            next = ExtSeqNo(next.0 + 1);
            self.next = Some(next);
        }
        let s = self.slot(next);
        if s.seq == Some(next) {
            s.seq = None;
            let (len, timestamp) = (s.len, s.timestamp);
            let payload = s.payload;
            let m = len.min(n).min(SLOT_PAYLOAD);
            if len != self.cfg.frame_samples {
                self.stats.bad_size += 1;
            }
            self.law.decode(&payload[..m], &mut out[..m]).unwrap_or(());
            out[m..].fill(0);
            self.last_frame[..n].copy_from_slice(out);
            self.conceal_run = 0;
            self.next = Some(ExtSeqNo(next.0 + 1));
            return Playout::Audio {
                seq: next,
                timestamp,
            };
        }
        // Missing frame.
        self.conceal(out);
        self.stats.concealed += 1;
        if self.buffered_frames() > 1 {
            self.stats.lost += 1;
            self.next = Some(ExtSeqNo(next.0 + 1));
        } else {
            self.stats.underruns += 1;
            self.playing = false;
            self.target_frames = (self.target_frames + 1).min(self.max_frames);
        }
        Playout::Concealed
    }

    /// Output while not playing: the rest of a fade-out after a loss, then
    /// silence.
    fn fill_idle(&mut self, out: &mut [i16]) -> Playout {
        if self.conceal_run > 0 && self.conceal_run < FADE_FRAMES {
            self.conceal(out);
            self.stats.concealed += 1;
            return Playout::Concealed;
        }
        out.fill(0);
        Playout::Buffering
    }

    /// Repeat-and-fade: the k-th consecutive concealed frame repeats the
    /// last good frame with a gain ramping from (1 - (k-1)/3) to (1 - k/3);
    /// from the third on it is silence.
    fn conceal(&mut self, out: &mut [i16]) {
        let k = self.conceal_run;
        self.conceal_run = self.conceal_run.saturating_add(1);
        if k >= FADE_FRAMES {
            out.fill(0);
            return;
        }
        let n = out.len() as i64;
        let fade = i64::from(FADE_FRAMES);
        for (i, (o, &l)) in out.iter_mut().zip(&self.last_frame).enumerate() {
            // gain = 1 - (k + i/n) / FADE_FRAMES, in exact integer math.
            let num = fade * n - (i64::from(k) * n + i as i64);
            *o = (i64::from(l) * num / (fade * n)) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeqNo;
    use crate::rtp::RtpHeader;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn pkt(ssrc: u32, seq: u16, ts: u32, marker: bool, code: u8) -> RtpPacket {
        let h = RtpHeader {
            marker,
            payload_type: PayloadType::PCMU,
            seq: SeqNo(seq),
            timestamp: ts,
            ssrc: Ssrc(ssrc),
        };
        let mut out = vec![0u8; 172];
        h.write_to(&[code; 160], &mut out).unwrap();
        RtpPacket::parse(Bytes::from(out)).unwrap()
    }

    fn jb() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::default(), Law::MuLaw, PayloadType::PCMU)
    }

    /// A simulated 20 ms clock driving one buffer.
    struct Sim {
        jb: JitterBuffer,
        now: Instant,
        out: [i16; 160],
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                jb: jb(),
                now: Instant::now(),
                out: [0; 160],
            }
        }

        fn send(&mut self, ssrc: u32, seq: u16, ts: u32, marker: bool) -> Accepted {
            self.jb
                .handle_packet(self.now, &pkt(ssrc, seq, ts, marker, 0x80))
        }

        fn tick(&mut self) -> Playout {
            self.now += Duration::from_millis(20);
            self.jb.poll_frame(&mut self.out)
        }

        fn tick_seq(&mut self) -> Option<u16> {
            match self.tick() {
                Playout::Audio { seq, .. } => Some(seq.seq().0),
                _ => None,
            }
        }
    }

    /// Sends `seqs` one per 20 ms tick (timestamps follow the seq), then
    /// ticks `extra` more times; returns what each tick played.
    fn drive(jb: &mut JitterBuffer, seqs: &[u16], extra: usize) -> Vec<Option<u16>> {
        let mut sim = Sim::new();
        std::mem::swap(&mut sim.jb, jb);
        let mut played = Vec::new();
        for &s in seqs {
            sim.send(1, s, u32::from(s) * 160, false);
            played.push(sim.tick_seq());
        }
        for _ in 0..extra {
            played.push(sim.tick_seq());
        }
        std::mem::swap(&mut sim.jb, jb);
        played
    }

    #[test]
    fn buffered_reports_the_depth_as_time() {
        let mut sim = Sim::new();
        assert_eq!(sim.jb.buffered(), Duration::ZERO);
        for s in 0..3u16 {
            sim.send(1, s, u32::from(s) * 160, false);
        }
        assert_eq!(sim.jb.buffered(), Duration::from_millis(60));
        assert_eq!(sim.tick_seq(), Some(0));
        assert_eq!(sim.jb.buffered(), Duration::from_millis(40));
    }

    #[test]
    fn buffers_to_40ms_then_plays_in_order() {
        let mut b = jb();
        let played = drive(&mut b, &[10, 11, 12, 13], 0);
        assert_eq!(played, vec![None, Some(10), Some(11), Some(12)]);
    }

    #[test]
    fn reorders_within_depth() {
        let mut b = jb();
        let played: Vec<u16> = drive(&mut b, &[1, 3, 2, 4, 6, 5, 7, 8], 4)
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(played, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b.stats().reordered, 2);
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn drops_duplicates_and_counts_them() {
        let mut sim = Sim::new();
        let mut played = Vec::new();
        for s in 1..=4u16 {
            assert_eq!(sim.send(1, s, u32::from(s) * 160, false), Accepted::Stored);
            assert_eq!(
                sim.send(1, s, u32::from(s) * 160, false),
                Accepted::Duplicate
            );
            played.push(sim.tick_seq());
        }
        for _ in 0..4 {
            played.push(sim.tick_seq());
        }
        assert_eq!(
            played.into_iter().flatten().collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(sim.jb.stats().duplicate, 4);
    }

    #[test]
    fn survives_sequence_wraparound() {
        let mut b = jb();
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        let played: Vec<u16> = drive(&mut b, &seqs, 4).into_iter().flatten().collect();
        assert_eq!(played, seqs);
        assert_eq!(b.stats().lost + b.stats().late + b.stats().resyncs, 0);
    }

    #[test]
    fn conceals_a_lost_frame_and_counts_it() {
        let mut sim = Sim::new();
        let mut kinds = Vec::new();
        for s in [1u16, 2, 4, 5, 6] {
            sim.send(1, s, u32::from(s) * 160, false);
            kinds.push(sim.tick());
        }
        assert_eq!(kinds[3], Playout::Concealed, "{kinds:?}");
        assert_eq!(sim.jb.stats().lost, 1);
        assert_eq!(sim.jb.stats().concealed, 1);
    }

    #[test]
    fn concealment_fades_to_silence() {
        let mut sim = Sim::new();
        for s in 1..=3u16 {
            sim.send(1, s, u32::from(s) * 160, false);
            sim.tick();
        }
        while sim.jb.buffered_frames() > 0 {
            assert!(matches!(sim.tick(), Playout::Audio { .. }));
        }
        assert_eq!(sim.out[0], 32124);
        // Nothing more arrives: underrun, repeat-and-fade, then silence.
        assert_eq!(sim.tick(), Playout::Concealed);
        assert_eq!(sim.out[0], 32124);
        assert!(
            sim.out[159] < 32124 && sim.out[159] > 21_000,
            "{}",
            sim.out[159]
        );
        assert_eq!(sim.tick(), Playout::Concealed);
        assert!(sim.out[0] < 22_000 && sim.out[159] < 11_000);
        assert_eq!(sim.tick(), Playout::Concealed);
        assert!(sim.out[159] < 200);
        assert_eq!(sim.tick(), Playout::Buffering);
        assert!(sim.out.iter().all(|&v| v == 0));
        assert_eq!(sim.jb.stats().underruns, 1);
    }

    #[test]
    fn late_packet_is_dropped_and_counted() {
        let mut sim = Sim::new();
        for s in [1u16, 2, 3, 5, 6, 7] {
            sim.send(1, s, u32::from(s) * 160, false);
            sim.tick();
        }
        // 4 was concealed as lost; it now arrives.
        assert_eq!(sim.send(1, 4, 640, false), Accepted::Late);
        assert_eq!(sim.jb.stats().late, 1);
        assert_eq!(sim.jb.stats().lost, 1);
    }

    #[test]
    fn new_ssrc_resyncs() {
        let mut sim = Sim::new();
        for s in [100u16, 101, 102] {
            sim.send(1, s, u32::from(s) * 160, false);
            sim.tick();
        }
        assert_eq!(sim.send(2, 7, 999, true), Accepted::Resynced);
        assert_eq!(sim.jb.ssrc(), Some(Ssrc(2)));
        let mut played = Vec::new();
        for s in 8..12u16 {
            played.push(sim.tick_seq());
            sim.send(2, s, 999 + 160 * u32::from(s - 7), false);
        }
        assert_eq!(played.into_iter().flatten().next(), Some(7));
    }

    #[test]
    fn sequence_jump_beyond_ring_resyncs() {
        let mut b = jb();
        drive(&mut b, &[1, 2, 3], 0);
        let t = Instant::now();
        assert_eq!(
            b.handle_packet(t, &pkt(1, 30_000, 5, false, 0x80)),
            Accepted::Resynced
        );
        assert_eq!(b.stats().resyncs, 1);
    }

    #[test]
    fn marker_after_silence_refills_before_playing() {
        let mut sim = Sim::new();
        for s in 1..=3u16 {
            sim.send(1, s, u32::from(s) * 160, false);
            sim.tick();
        }
        for _ in 0..10 {
            sim.tick();
        }
        assert_eq!(sim.jb.stats().underruns, 1);
        // Talkspurt resumes with a timestamp jump and the marker bit: the
        // buffer waits for the target depth before playing it.
        sim.send(1, 4, 100_000, true);
        assert_eq!(sim.tick(), Playout::Buffering);
        sim.send(1, 5, 100_160, false);
        sim.send(1, 6, 100_320, false);
        assert_eq!(sim.tick_seq(), Some(4));
        assert_eq!(sim.tick_seq(), Some(5));
    }

    #[test]
    fn reordering_before_playout_starts_is_kept() {
        let mut sim = Sim::new();
        sim.send(1, 11, 11 * 160, false);
        assert_eq!(sim.send(1, 10, 10 * 160, false), Accepted::Stored);
        sim.send(1, 12, 12 * 160, false);
        let played: Vec<u16> = (0..3).filter_map(|_| sim.tick_seq()).collect();
        assert_eq!(played, vec![10, 11, 12]);
    }

    #[test]
    fn last_frames_of_a_talkspurt_are_not_held_back() {
        let mut b = jb();
        let played: Vec<u16> = drive(&mut b, &[1], 5).into_iter().flatten().collect();
        assert_eq!(played, vec![1]);
    }

    #[test]
    fn depth_grows_with_jitter_and_stays_bounded() {
        let mut b = jb();
        let t0 = Instant::now();
        let mut out = [0i16; 160];
        for i in 0..200u16 {
            // Arrival alternates 0 ms and 60 ms late.
            let late = if i % 2 == 0 { 0 } else { 60 };
            let at = t0 + Duration::from_millis(20 * u64::from(i) + late);
            b.handle_packet(at, &pkt(1, i, u32::from(i) * 160, false, 0x80));
            b.poll_frame(&mut out);
        }
        assert!(
            b.target_depth() > Duration::from_millis(40),
            "{:?}",
            b.target_depth()
        );
        assert!(b.target_depth() <= Duration::from_millis(200));
        assert!(b.jitter() > 100);
    }

    #[test]
    fn wrong_payload_type_is_refused() {
        let mut b = JitterBuffer::new(JitterConfig::default(), Law::ALaw, PayloadType::PCMA);
        assert_eq!(
            b.handle_packet(Instant::now(), &pkt(1, 1, 0, false, 0)),
            Accepted::WrongPayloadType
        );
    }

    proptest! {
        /// Any arrival order with losses and duplicates: what is played is
        /// strictly increasing (between resyncs), the buffer never holds
        /// more than its ring, and every packet is accounted for.
        #[test]
        fn playout_is_ordered_and_bounded(
            start: u16,
            ops in proptest::collection::vec((0u16..100, any::<bool>(), any::<bool>()), 1..300),
        ) {
            let mut b = jb();
            let t0 = Instant::now();
            let mut out = [0i16; 160];
            let mut last: Option<ExtSeqNo> = None;
            let mut sent = 0u64;
            let mut resyncs = 0;
            for (i, (jitter, dup, poll)) in ops.iter().enumerate() {
                let seq = start.wrapping_add((i as u16).saturating_sub(*jitter));
                let at = t0 + Duration::from_millis(20 * i as u64);
                let p = pkt(1, seq, u32::from(seq) * 160, false, 0x80);
                b.handle_packet(at, &p);
                sent += 1;
                if *dup {
                    b.handle_packet(at, &p);
                    sent += 1;
                }
                if b.stats().resyncs != resyncs {
                    // A resync starts a new stream: ordering restarts.
                    resyncs = b.stats().resyncs;
                    last = None;
                }
                if *poll
                    && let Playout::Audio { seq, .. } = b.poll_frame(&mut out) {
                        prop_assert!(last.is_none_or(|l| seq > l));
                        last = Some(seq);
                    }
                prop_assert!(b.buffered_frames() <= CAPACITY);
            }
            let s = b.stats();
            prop_assert!(s.received + s.duplicate + s.late <= sent);
            prop_assert_eq!(s.received + s.duplicate + s.late, sent);
        }
    }
}
