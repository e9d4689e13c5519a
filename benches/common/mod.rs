//! What several benchmarks share: the thread CPU clock, test speech, and
//! the 20 ms frame paths of a call, so that the criterion benches
//! (`rtp.rs`) and the callgrind program (`frame_calls.rs`) run the same
//! code. Included with `#[path = "common/mod.rs"] mod common;`; each
//! benchmark uses only part of it.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_rtp::g711::{self, Law};
use callbridge_rtp::jitter::{JitterBuffer, JitterConfig};
use callbridge_rtp::resample::StreamResampler;
use callbridge_rtp::sender::RtpSender;
use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};

/// CPU time consumed by this thread (what a path costs, without the time
/// the thread spends descheduled on a loaded, shared machine).
#[allow(
    unsafe_code,
    reason = "clock_gettime has no std wrapper; ts is a plain out-parameter"
)]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Runs `f` `iters` times; the thread CPU time it took.
pub fn cpu_timed<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iters {
        black_box(f());
    }
    thread_cpu_time().saturating_sub(start)
}

/// `n` samples at 8 kHz of a deterministic mix of tones and a little
/// noise, full of varied codes.
pub fn speech_like(n: usize) -> Vec<i16> {
    let mut x = 12345u32;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let t = i as f64 / 8000.0;
            let v = 9000.0 * (t * 2.0 * std::f64::consts::PI * 310.0).sin()
                + 4000.0 * (t * 2.0 * std::f64::consts::PI * 1870.0).sin()
                + f64::from((x >> 16) as i16 % 500);
            v as i16
        })
        .collect()
}

/// The RTP header of packet `seq` of a PCMU stream.
pub fn header(seq: u16, ts: u32) -> RtpHeader {
    RtpHeader {
        marker: false,
        payload_type: PayloadType::PCMU,
        seq: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(0x1234_5678),
    }
}

/// One 20 ms frame path of a call, with everything it needs built up
/// front. Inbound: RTP packet -> parse -> jitter buffer -> mu-law decode ->
/// 8 kHz to the model's rate. Outbound: one frame of model audio -> 8 kHz ->
/// mu-law -> RTP packet. Resample: the resampler alone.
pub struct FramePath {
    kind: Kind,
    /// One full cycle of 16-bit sequence numbers, so they wrap as on a
    /// long call (the jitter buffer never resyncs).
    packets: Vec<Bytes>,
    jb: JitterBuffer,
    sender: RtpSender,
    resampler: StreamResampler,
    input: Vec<i16>,
    output: Vec<i16>,
    frame8: [i16; 160],
    pkt: [u8; 172],
    t0: Instant,
    i: usize,
}

enum Kind {
    Inbound,
    Outbound,
    Resample,
}

impl FramePath {
    /// Inbound to the model's `rate`.
    pub fn inbound(rate: u32) -> FramePath {
        FramePath::new(Kind::Inbound, 8000, rate)
    }

    /// Outbound from the model's `rate`.
    pub fn outbound(rate: u32) -> FramePath {
        FramePath::new(Kind::Outbound, rate, 8000)
    }

    /// The resampler alone, `from` to `to` Hz.
    pub fn resample(from: u32, to: u32) -> FramePath {
        FramePath::new(Kind::Resample, from, to)
    }

    fn new(kind: Kind, from: u32, to: u32) -> FramePath {
        let resampler = StreamResampler::new(from, to).expect("a supported rate pair");
        let mut codes = [0u8; 160];
        g711::ulaw_encode(&speech_like(160), &mut codes);
        let packets = match kind {
            Kind::Inbound => (0..1usize << 16)
                .map(|i| {
                    let mut buf = [0u8; 172];
                    let n = header(i as u16, i as u32 * 160)
                        .write_to(&codes, &mut buf)
                        .expect("a 172-byte packet");
                    Bytes::copy_from_slice(&buf[..n])
                })
                .collect(),
            _ => Vec::new(),
        };
        FramePath {
            kind,
            packets,
            jb: JitterBuffer::new(JitterConfig::default(), Law::MuLaw, PayloadType::PCMU),
            sender: RtpSender::new(Law::MuLaw, PayloadType::PCMU, Ssrc(1), SeqNo(0), 0),
            input: speech_like(resampler.input_frame_len()),
            output: vec![0; resampler.output_frame_len()],
            resampler,
            frame8: [0; 160],
            pkt: [0; 172],
            t0: Instant::now(),
            i: 0,
        }
    }

    /// Runs one frame.
    #[inline]
    pub fn step(&mut self) {
        match self.kind {
            Kind::Inbound => {
                let now = self.t0 + Duration::from_millis(20 * self.i as u64);
                let packet = self.packets[self.i % self.packets.len()].clone();
                if let Ok(p) = RtpPacket::parse(packet) {
                    self.jb.handle_packet(now, &p);
                }
                self.jb.poll_frame(&mut self.frame8);
                let _ = self.resampler.process(&self.frame8, &mut self.output);
                black_box(&self.output);
            }
            Kind::Outbound => {
                let _ = self
                    .resampler
                    .process(black_box(&self.input), &mut self.frame8);
                if let Ok(n) = self.sender.next_packet(Some(&self.frame8), &mut self.pkt) {
                    black_box(&self.pkt[..n]);
                }
            }
            Kind::Resample => {
                let _ = self
                    .resampler
                    .process(black_box(&self.input), &mut self.output);
                black_box(&self.output);
            }
        }
        self.i += 1;
    }
}
