//! The 20 ms frame paths of `benches/rtp.rs` (`frame_path`, `resample_frame`;
//! the same code: `common::FramePath`) as a plain program, for instruction counts under callgrind, which are
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

use std::process::ExitCode;

#[path = "common/mod.rs"]
mod common;
use common::FramePath;

/// The counted part: `frames` frames of `path`.
#[inline(never)]
fn run_frames(path: &mut FramePath, frames: usize) {
    for _ in 0..frames {
        path.step();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mut path = match args.get(1).map(String::as_str) {
        Some("in16") => FramePath::inbound(16_000),
        Some("in24") => FramePath::inbound(24_000),
        Some("out16") => FramePath::outbound(16_000),
        Some("out24") => FramePath::outbound(24_000),
        Some("up16") => FramePath::resample(8000, 16_000),
        Some("up24") => FramePath::resample(8000, 24_000),
        Some("down16") => FramePath::resample(16_000, 8000),
        Some("down24") => FramePath::resample(24_000, 8000),
        _ => {
            eprintln!("usage: frame_calls in16|in24|out16|out24|up16|up24|down16|down24 FRAMES");
            return ExitCode::FAILURE;
        }
    };
    let Some(frames) = args.get(2).and_then(|n| n.parse::<usize>().ok()) else {
        eprintln!("FRAMES: a number of 20 ms frames");
        return ExitCode::FAILURE;
    };
    run_frames(&mut path, frames);
    ExitCode::SUCCESS
}
