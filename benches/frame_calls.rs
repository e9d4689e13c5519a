//! The 20 ms frame paths of `benches/rtp.rs` (`frame_path`, `resample_frame`)
//! as a plain program, for instruction counts under callgrind, which are
//! steady on a loaded machine where times are not.
//!
//! `frame_calls PATH FRAMES` runs FRAMES frames of one path inside
//! `run_frames` (never inlined), so callgrind can count just that function:
//!
//! ```text
//! cargo build --release -p callbridge-benches --example frame_calls
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     --toggle-collect='frame_calls::run_frames' \
//!     target/release/examples/frame_calls in16 10000
//! callgrind_annotate /tmp/cg.out | head -20   # total Ir / 10000 = per frame
//! ```
//!
//! PATH: `in16`, `in24` (RTP packet -> jitter buffer -> mu-law -> 8 kHz to
//! 16/24 kHz), `out24`, `out16` (16/24 kHz -> 8 kHz -> mu-law -> RTP), or
//! the resampler alone: `up16`, `up24`, `down16`, `down24`.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_rtp::g711::{self, Law};
use callbridge_rtp::jitter::{JitterBuffer, JitterConfig};
use callbridge_rtp::resample::StreamResampler;
use callbridge_rtp::sender::RtpSender;
use callbridge_rtp::{PayloadType, RtpHeader, SeqNo, Ssrc};

fn speech_like(n: usize) -> Vec<i16> {
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

enum Path {
    Inbound(u32),
    Outbound(u32),
    Resample(u32, u32),
}

/// Everything a path needs, built before the counted part.
struct Rig {
    packets: Vec<Bytes>,
    jb: JitterBuffer,
    sender: RtpSender,
    resampler: StreamResampler,
    input: Vec<i16>,
    output: Vec<i16>,
    frame8: [i16; 160],
    pkt: [u8; 172],
}

#[inline(never)]
fn run_frames(path: &Path, rig: &mut Rig, frames: usize) {
    let t0 = Instant::now();
    for i in 0..frames {
        match path {
            Path::Inbound(_) => {
                let now = t0 + Duration::from_millis(20 * i as u64);
                let packet = rig.packets[i % rig.packets.len()].clone();
                if let Ok(p) = callbridge_rtp::RtpPacket::parse(packet) {
                    rig.jb.handle_packet(now, &p);
                }
                rig.jb.poll_frame(&mut rig.frame8);
                let _ = rig.resampler.process(&rig.frame8, &mut rig.output);
            }
            Path::Outbound(_) => {
                let _ = rig.resampler.process(&rig.input, &mut rig.frame8);
                if let Ok(n) = rig.sender.next_packet(Some(&rig.frame8), &mut rig.pkt) {
                    black_box(&rig.pkt[..n]);
                }
            }
            Path::Resample(..) => {
                let _ = rig.resampler.process(&rig.input, &mut rig.output);
            }
        }
        black_box(&rig.output);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let path = match args.get(1).map(String::as_str) {
        Some("in16") => Path::Inbound(16_000),
        Some("in24") => Path::Inbound(24_000),
        Some("out16") => Path::Outbound(16_000),
        Some("out24") => Path::Outbound(24_000),
        Some("up16") => Path::Resample(8000, 16_000),
        Some("up24") => Path::Resample(8000, 24_000),
        Some("down16") => Path::Resample(16_000, 8000),
        Some("down24") => Path::Resample(24_000, 8000),
        _ => {
            eprintln!("usage: frame_calls in16|in24|out16|out24|up16|up24|down16|down24 FRAMES");
            return ExitCode::FAILURE;
        }
    };
    let Some(frames) = args.get(2).and_then(|n| n.parse::<usize>().ok()) else {
        eprintln!("FRAMES: a number of 20 ms frames");
        return ExitCode::FAILURE;
    };
    let (rate_in, rate_out) = match path {
        Path::Inbound(r) => (8000, r),
        Path::Outbound(r) => (r, 8000),
        Path::Resample(a, b) => (a, b),
    };
    let Ok(resampler) = StreamResampler::new(rate_in, rate_out) else {
        eprintln!("unsupported rates");
        return ExitCode::FAILURE;
    };
    let mut codes = [0u8; 160];
    g711::ulaw_encode(&speech_like(160), &mut codes);
    let packets = (0..1024u32)
        .map(|i| {
            let mut buf = [0u8; 172];
            let header = RtpHeader {
                marker: false,
                payload_type: PayloadType::PCMU,
                seq: SeqNo(i as u16),
                timestamp: i * 160,
                ssrc: Ssrc(0x1234_5678),
            };
            let n = header.write_to(&codes, &mut buf).unwrap_or(0);
            Bytes::copy_from_slice(&buf[..n])
        })
        .collect();
    let mut rig = Rig {
        packets,
        jb: JitterBuffer::new(JitterConfig::default(), Law::MuLaw, PayloadType::PCMU),
        sender: RtpSender::new(Law::MuLaw, PayloadType::PCMU, Ssrc(1), SeqNo(0), 0),
        input: speech_like(resampler.input_frame_len()),
        output: vec![0; resampler.output_frame_len()],
        resampler,
        frame8: [0; 160],
        pkt: [0; 172],
    };
    run_frames(&path, &mut rig, frames);
    ExitCode::SUCCESS
}
