//! Stage A of answering-machine detection (`callbridge-amd`), per 20 ms
//! frame of caller audio, in thread CPU time: the Goertzel bank, the level,
//! zero crossings and noise floor, the tone and speech tracking and the
//! verdict rules. Issue 19's bar: at most 2 % of one core per call, i.e.
//! 400 µs per 20 ms frame.
//!
//! The frames are corpus calls (a voicemail greeting with a beep, a human
//! answer) played in a loop; a detector that has decided is replaced by a
//! fresh one (as the next call would), so every frame is analysed.
//!
//! Run: `cargo bench -p callbridge-benches --bench amd -- --measurement-time 3 --warm-up-time 1`

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use callbridge_amd::{AmdConfig, Detector};
use callbridge_audio::g711::ulaw_to_linear;
use common::cpu_timed;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FRAME: Duration = Duration::from_millis(20);

/// The 20 ms frames of a corpus file.
fn corpus(file: &str) -> Vec<[i16; 160]> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/amd/corpus")
        .join(file);
    let codes = std::fs::read(&path).expect("the committed corpus");
    codes
        .chunks_exact(160)
        .map(|c| std::array::from_fn(|n| ulaw_to_linear(c[n])))
        .collect()
}

/// Frames in a loop through detectors, one call after another.
struct Calls {
    frames: Vec<[i16; 160]>,
    fresh: Detector,
    amd: Detector,
    t0: Instant,
    i: usize,
    tick: u32,
}

impl Calls {
    fn new(file: &str) -> Calls {
        let fresh = Detector::new(AmdConfig::default()).expect("the default settings");
        Calls {
            frames: corpus(file),
            amd: fresh.clone(),
            fresh,
            t0: Instant::now(),
            i: 0,
            tick: 0,
        }
    }

    fn step(&mut self) {
        if self.amd.is_done() || self.i == self.frames.len() {
            self.amd = self.fresh.clone();
            self.i = 0;
            self.tick = 0;
        }
        self.tick += 1;
        self.amd
            .push_frame(self.t0 + FRAME * self.tick, &self.frames[self.i]);
        while self.amd.poll_decision().is_some() {}
        self.i += 1;
    }
}

fn amd_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("amd");
    g.throughput(Throughput::Elements(1));
    for (name, file) in [
        ("push_frame/voicemail_with_beep", "machine/m000.ul"),
        ("push_frame/human_hello", "human/h000.ul"),
    ] {
        let mut calls = Calls::new(file);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| cpu_timed(iters, || calls.step()));
        });
    }
    g.finish();
}

criterion_group!(benches, amd_bench);
criterion_main!(benches);
