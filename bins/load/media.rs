//! One call's media as a sans-IO script: what the caller sends on each
//! 20 ms tick and what it measures from each RTP packet of the agent.
//!
//! The conversation (driven by what is heard, RFC 3550 packets of G.711
//! µ-law, RFC 3551 payload type 0):
//! 1. silence until the greeting is heard (answer-to-first-audio), then
//!    until it ends (`QUIET_END` quiet packets);
//! 2. the caller speaks the recorded reply clip, then is silent; the first
//!    loud agent packet after the end of the caller's last loud frame gives
//!    caller-stop-to-agent-audio;
//! 3. `BARGE_AFTER` loud packets into that reply the caller speaks again;
//!    the last loud packet before `QUIET_FLUSH` quiet ones gives the
//!    barge-in flush time (from the caller's first barge-in frame).
//!
//! Every packet also feeds [`RxStats`]: inter-packet interval error against
//! the RTP timestamp step, packets lost (sequence gaps) and packets late
//! (more than [`LATE`] behind the schedule set by the earliest packet).

use std::sync::Arc;
use std::time::Duration;

use callbridge_audio::g711;
use tokio::time::Instant;

use crate::stats::Samples;

/// RMS (in 16-bit sample units) above which a packet counts as speech.
pub const LOUD: f64 = 300.0;
/// Quiet packets that end the greeting (200 ms).
const QUIET_END: u32 = 10;
/// Loud reply packets before the caller barges in (300 ms).
const BARGE_AFTER: u32 = 15;
/// Quiet packets that show a reply was flushed (200 ms).
const QUIET_FLUSH: u32 = 10;
/// How long the caller waits for a reply before giving up on it.
const REPLY_WAIT: Duration = Duration::from_secs(6);
/// A packet more than this behind its schedule is late.
pub const LATE: Duration = Duration::from_millis(10);
/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// Which parts of the conversation a call plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Speak after the greeting and measure the reply.
    pub speak: bool,
    /// Barge in on the reply and measure the flush.
    pub barge: bool,
}

/// The caller's speech frames.
#[derive(Debug)]
pub struct Audio {
    /// The recorded speech as µ-law frames of [`FRAME`] bytes.
    speech: Vec<[u8; FRAME]>,
    /// One past the last loud speech frame: the caller "stops" there.
    speech_end: usize,
}

impl Audio {
    /// Encodes `speech` (8 kHz samples) once.
    pub fn new(speech: &[i16]) -> Arc<Audio> {
        let law = callbridge_rtp::g711::Law::MuLaw;
        let speech = speech
            .chunks(FRAME)
            .map(|c| {
                let mut pcm = [0i16; FRAME];
                pcm[..c.len()].copy_from_slice(c);
                let mut out = [0xffu8; FRAME];
                // Invariant: both are FRAME long.
                let _ = law.encode(&pcm, &mut out);
                out
            })
            .collect::<Vec<_>>();
        let mut audio = Audio {
            speech,
            speech_end: 0,
        };
        audio.speech_end = audio
            .speech
            .iter()
            .rposition(|f| audio.rms(f) > LOUD)
            .map_or(audio.speech.len(), |i| i + 1);
        Arc::new(audio)
    }

    /// RMS of a µ-law payload.
    pub fn rms(&self, payload: &[u8]) -> f64 {
        callbridge_audio::level::rms_iter(payload.iter().map(|&b| g711::ulaw_to_linear(b)))
    }
}

/// µ-law silence.
pub const SILENCE: [u8; FRAME] = [0xff; FRAME];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitGreeting,
    Greeting {
        quiet: u32,
    },
    /// Caller speaking its turn (ends at the last speech frame).
    Speaking,
    WaitReply {
        since: Instant,
    },
    Reply {
        loud: u32,
    },
    /// Barging in: measuring how soon the reply stops.
    Barge {
        quiet: u32,
    },
    Done,
}

/// The figures of one call's media.
#[derive(Debug, Default, Clone)]
pub struct MediaResult {
    /// Answer to the first loud packet.
    pub first_audio: Option<Duration>,
    /// The caller's last speech frame to the first loud reply packet.
    pub stop_to_audio: Option<Duration>,
    /// The caller's first barge-in frame to the last loud packet of the reply.
    pub barge_flush: Option<Duration>,
    /// The caller spoke but no reply came within the wait.
    pub reply_missing: bool,
    /// What the receiver saw.
    pub rx: RxStats,
    /// How late the caller's own ticks ran (the load tool's own noise).
    pub send_lag: Samples,
    /// Packets sent.
    pub sent: u64,
    /// Packets timed by their read, for want of a kernel stamp.
    pub unstamped: u64,
    /// Packets from an address other than the agent's media address (not
    /// measured).
    pub stray: u64,
}

/// The caller side of one call's media.
#[derive(Debug)]
pub struct Script {
    audio: Arc<Audio>,
    plan: Plan,
    answered: Instant,
    phase: Phase,
    /// Index of the next speech frame while speaking.
    speech_pos: Option<usize>,
    stop_at: Option<Instant>,
    barge_at: Option<Instant>,
    last_loud: Option<Instant>,
    seq: u16,
    ts: u32,
    /// The result so far.
    pub result: MediaResult,
}

impl Script {
    /// A script for a call answered at `answered`.
    pub fn new(audio: Arc<Audio>, plan: Plan, answered: Instant, first_seq: u16) -> Script {
        Script {
            audio,
            plan,
            answered,
            phase: Phase::WaitGreeting,
            speech_pos: None,
            stop_at: None,
            barge_at: None,
            last_loud: None,
            seq: first_seq,
            ts: u32::from(first_seq) * 160,
            result: MediaResult::default(),
        }
    }

    /// The 20 ms tick scheduled at `due`, run at `now`: writes the RTP
    /// packet to send into `out` (cleared first).
    pub fn on_tick(&mut self, due: Instant, now: Instant, ssrc: u32, out: &mut Vec<u8>) {
        self.result
            .send_lag
            .push(now.saturating_duration_since(due));
        if self.phase == Phase::Speaking && self.speech_pos >= Some(self.audio.speech_end) {
            // The last loud frame has gone out: the caller has stopped.
            self.stop_at = Some(now);
            self.phase = Phase::WaitReply { since: now };
        }
        let payload: &[u8; FRAME] = match self.speech_pos {
            Some(i) if i < self.audio.speech.len() => {
                if i == 0 && matches!(self.phase, Phase::Barge { .. }) {
                    self.barge_at = Some(now);
                }
                self.speech_pos = Some(i + 1);
                &self.audio.speech[i]
            }
            Some(_) => {
                self.speech_pos = None;
                &SILENCE
            }
            None => &SILENCE,
        };
        out.clear();
        out.extend_from_slice(&[0x80, 0x00]);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        out.extend_from_slice(&ssrc.to_be_bytes());
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME as u32);
        self.result.sent += 1;
    }

    /// An RTP packet from the agent arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, pkt: &[u8]) {
        let Some((seq, ts, payload)) = parse_rtp(pkt) else {
            self.result.rx.malformed += 1;
            return;
        };
        self.result.rx.on_packet(now, seq, ts);
        let loud = self.audio.rms(payload) > LOUD;
        if loud {
            self.last_loud = Some(now);
        }
        self.phase = match self.phase {
            Phase::WaitGreeting if loud => {
                self.result.first_audio = Some(now.saturating_duration_since(self.answered));
                Phase::Greeting { quiet: 0 }
            }
            Phase::Greeting { quiet } => {
                let quiet = if loud { 0 } else { quiet + 1 };
                if quiet < QUIET_END {
                    Phase::Greeting { quiet }
                } else if self.plan.speak {
                    self.speech_pos = Some(0);
                    Phase::Speaking
                } else {
                    Phase::Done
                }
            }
            Phase::WaitReply { since } => {
                if loud {
                    if let Some(stop) = self.stop_at {
                        self.result.stop_to_audio = Some(now.saturating_duration_since(stop));
                    }
                    Phase::Reply { loud: 1 }
                } else if now.saturating_duration_since(since) > REPLY_WAIT {
                    self.result.reply_missing = true;
                    Phase::Done
                } else {
                    self.phase
                }
            }
            Phase::Reply { loud: n } if loud => {
                if n + 1 >= BARGE_AFTER && self.plan.barge {
                    self.speech_pos = Some(0);
                    Phase::Barge { quiet: 0 }
                } else {
                    Phase::Reply { loud: n + 1 }
                }
            }
            Phase::Barge { quiet } => {
                let quiet = if loud { 0 } else { quiet + 1 };
                if quiet >= QUIET_FLUSH {
                    if let (Some(b), Some(l)) = (self.barge_at, self.last_loud) {
                        self.result.barge_flush = Some(l.saturating_duration_since(b));
                    }
                    Phase::Done
                } else {
                    Phase::Barge { quiet }
                }
            }
            p => p,
        };
    }

    /// The caller is silent and has nothing more to measure.
    #[cfg(test)]
    pub fn done(&self) -> bool {
        self.phase == Phase::Done && self.speech_pos.is_none()
    }
}

/// Sequence number, timestamp and payload of an RTP packet (RFC 3550
/// section 5.1); `None` when it is not one.
pub fn parse_rtp(pkt: &[u8]) -> Option<(u16, u32, &[u8])> {
    let head = pkt.get(..12)?;
    let b0 = head[0];
    if b0 >> 6 != 2 {
        return None;
    }
    let cc = usize::from(b0 & 0x0f);
    let mut start = 12 + 4 * cc;
    if b0 & 0x10 != 0 {
        let ext = pkt.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = pkt.len();
    if b0 & 0x20 != 0 {
        end = end.checked_sub(usize::from(*pkt.last()?))?;
    }
    let seq = u16::from_be_bytes([head[2], head[3]]);
    let ts = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    Some((seq, ts, pkt.get(start..end)?))
}

/// Receive-side figures of one call.
#[derive(Debug, Default, Clone)]
pub struct RxStats {
    /// |arrival interval - RTP timestamp interval| between consecutive packets.
    pub interval_error: Samples,
    /// Packets received.
    pub received: u64,
    /// Sequence numbers skipped.
    pub lost: u64,
    /// Packets older than the newest one seen.
    pub reordered: u64,
    /// Packets more than [`LATE`] behind schedule.
    pub late: u64,
    /// Datagrams that were not RTP.
    pub malformed: u64,
    last: Option<(Instant, u16, u32)>,
    /// Arrival minus media time of the earliest packet so far (schedule).
    base: Option<(Instant, u32)>,
}

impl RxStats {
    fn on_packet(&mut self, now: Instant, seq: u16, ts: u32) {
        self.received += 1;
        if let Some((at, last_seq, last_ts)) = self.last {
            let step = seq.wrapping_sub(last_seq);
            if step == 0 || step > 0x8000 {
                self.reordered += 1;
                return;
            }
            self.lost += u64::from(step - 1);
            if step == 1 {
                let nominal = media_time(ts.wrapping_sub(last_ts));
                let actual = now.saturating_duration_since(at);
                self.interval_error.push(actual.abs_diff(nominal));
            }
        }
        self.last = Some((now, seq, ts));
        self.schedule(now, ts);
    }

    /// Lateness against the schedule of the earliest-arriving packet: the
    /// packet's media time after the base one, added to the base arrival.
    fn schedule(&mut self, now: Instant, ts: u32) {
        let Some((at, base_ts)) = self.base else {
            self.base = Some((now, ts));
            return;
        };
        let delta = ts.wrapping_sub(base_ts);
        if delta > 0x8000_0000 || delta > 8000 * 3600 {
            // Timestamp went back or jumped (a new source): a new schedule.
            self.base = Some((now, ts));
            return;
        }
        let due = at + media_time(delta);
        if now > due + LATE {
            self.late += 1;
        } else if now < due {
            // Earlier than the schedule: this packet is the new base.
            self.base = Some((now, ts));
        }
    }
}

fn media_time(ticks: u32) -> Duration {
    Duration::from_micros(u64::from(ticks) * 1_000_000 / 8000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, level: i16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        let pcm = [level; FRAME];
        let mut out = [0u8; FRAME];
        callbridge_rtp::g711::Law::MuLaw
            .encode(&pcm, &mut out)
            .unwrap();
        p.extend_from_slice(&out);
        p
    }

    fn audio() -> Arc<Audio> {
        Audio::new(&vec![3000i16; FRAME * 5])
    }

    proptest::proptest! {
        #[test]
        fn parse_rtp_and_the_script_never_panic_on_any_datagram(
            pkt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            if let Some((_, _, payload)) = parse_rtp(&pkt) {
                proptest::prop_assert!(payload.len() <= pkt.len());
            }
            let t0 = Instant::now();
            let mut s = Script::new(audio(), Plan { speak: true, barge: true }, t0, 0);
            s.on_packet(t0, &pkt);
            s.on_packet(t0 + Duration::from_millis(20), &pkt);
        }
    }

    #[test]
    fn parse_rtp_skips_csrcs_extension_and_padding() {
        let mut p = vec![0xb1, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0; 4]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension
        p.extend_from_slice(&[7, 7, 0, 2]); // payload 7 7, padding 2
        let (seq, ts, payload) = parse_rtp(&p).unwrap();
        assert_eq!((seq, ts, payload), (9, 256, &[7u8, 7][..]));
        assert!(parse_rtp(&[0x40; 20]).is_none());
        assert!(parse_rtp(&[0x80, 0, 0]).is_none());
    }

    #[test]
    fn steady_packets_have_no_error_and_gaps_count_as_lost() {
        let mut rx = RxStats::default();
        let t0 = Instant::now();
        for i in 0..10u16 {
            if i == 5 {
                continue;
            }
            rx.on_packet(
                t0 + Duration::from_millis(20 * u64::from(i)),
                i,
                160 * u32::from(i),
            );
        }
        assert_eq!(rx.received, 9);
        assert_eq!(rx.lost, 1);
        assert_eq!(rx.late, 0);
        let s = rx.interval_error.summary();
        assert_eq!(s.max_ms, Some(0.0));
        assert_eq!(s.n, 7);
    }

    #[test]
    fn a_packet_15ms_behind_schedule_is_late_and_its_interval_error_shows() {
        let mut rx = RxStats::default();
        let t0 = Instant::now();
        rx.on_packet(t0, 0, 0);
        rx.on_packet(t0 + Duration::from_millis(20), 1, 160);
        rx.on_packet(t0 + Duration::from_millis(55), 2, 320);
        rx.on_packet(t0 + Duration::from_millis(60), 3, 480);
        assert_eq!(rx.late, 1);
        let s = rx.interval_error.summary();
        assert_eq!(s.max_ms, Some(15.0));
    }

    #[test]
    fn reordered_packets_are_counted_not_measured() {
        let mut rx = RxStats::default();
        let t0 = Instant::now();
        rx.on_packet(t0, 10, 0);
        rx.on_packet(t0 + Duration::from_millis(40), 12, 320);
        rx.on_packet(t0 + Duration::from_millis(41), 11, 160);
        assert_eq!((rx.lost, rx.reordered), (1, 1));
    }

    #[test]
    fn the_script_measures_greeting_reply_and_barge_in() {
        let t0 = Instant::now();
        let mut s = Script::new(
            audio(),
            Plan {
                speak: true,
                barge: true,
            },
            t0,
            100,
        );
        let mut out = Vec::new();
        let mut t = t0;
        let mut seq = 0u16;
        let mut step = |s: &mut Script, t: &mut Instant, level: i16| {
            *t += Duration::from_millis(20);
            s.on_tick(*t, *t, 5, &mut out);
            s.on_packet(*t, &pkt(seq, u32::from(seq) * 160, level));
            seq += 1;
        };
        for _ in 0..3 {
            step(&mut s, &mut t, 0);
        }
        step(&mut s, &mut t, 5000); // greeting starts at tick 4 (80 ms)
        assert_eq!(s.result.first_audio, Some(Duration::from_millis(80)));
        for _ in 0..20 {
            step(&mut s, &mut t, 5000);
        }
        for _ in 0..QUIET_END {
            step(&mut s, &mut t, 0);
        }
        assert_eq!(s.phase, Phase::Speaking);
        // Five speech frames, then the stop is stamped on the next tick.
        for _ in 0..6 {
            step(&mut s, &mut t, 0);
        }
        assert!(matches!(s.phase, Phase::WaitReply { .. }));
        for _ in 0..24 {
            step(&mut s, &mut t, 0);
        }
        step(&mut s, &mut t, 5000);
        assert_eq!(s.result.stop_to_audio, Some(Duration::from_millis(500)));
        for _ in 0..(BARGE_AFTER - 1) {
            step(&mut s, &mut t, 5000);
        }
        assert_eq!(s.phase, Phase::Barge { quiet: 0 });
        // The reply goes on for 6 more packets after the first barge frame.
        for _ in 0..6 {
            step(&mut s, &mut t, 5000);
        }
        for _ in 0..QUIET_FLUSH {
            step(&mut s, &mut t, 0);
        }
        assert_eq!(s.result.barge_flush, Some(Duration::from_millis(100)));
        assert!(s.done());
        assert_eq!(s.result.rx.lost, 0);
    }

    #[test]
    fn a_missing_reply_is_reported_after_the_wait() {
        let t0 = Instant::now();
        let mut s = Script::new(
            audio(),
            Plan {
                speak: true,
                barge: false,
            },
            t0,
            1,
        );
        s.phase = Phase::WaitReply { since: t0 };
        s.on_packet(t0 + REPLY_WAIT + Duration::from_millis(1), &pkt(1, 0, 0));
        assert!(s.result.reply_missing);
        assert!(s.done());
    }
}
