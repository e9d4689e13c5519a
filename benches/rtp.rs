//! Media hot paths of callbridge-rtp: G.711 throughput, RTP parse/build,
//! the resamplers alone, and the full inbound and outbound 20 ms frame paths
//! of a call.
//! `resample_frame` and `frame_path` measure the benchmark thread's CPU
//! time per 20 ms frame (issue 17's budget: 1 us each way), the others
//! wall time.
//!
//! Run: `cargo bench --bench rtp -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;

use bytes::Bytes;
use callbridge_rtp::RtpPacket;
use callbridge_rtp::g711;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;
use common::{FramePath, cpu_timed, header, speech_like};

fn g711_bench(c: &mut Criterion) {
    const N: usize = 8000;
    let pcm = speech_like(N);
    let mut codes = vec![0u8; N];
    g711::ulaw_encode(&pcm, &mut codes);
    let mut out_codes = vec![0u8; N];
    let mut out_pcm = vec![0i16; N];
    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("ulaw_encode", |b| {
        b.iter(|| g711::ulaw_encode(black_box(&pcm), black_box(&mut out_codes)));
    });
    g.bench_function("ulaw_decode", |b| {
        b.iter(|| g711::ulaw_decode(black_box(&codes), black_box(&mut out_pcm)));
    });
    g.bench_function("alaw_encode", |b| {
        b.iter(|| g711::alaw_encode(black_box(&pcm), black_box(&mut out_codes)));
    });
    g.bench_function("alaw_decode", |b| {
        b.iter(|| g711::alaw_decode(black_box(&codes), black_box(&mut out_pcm)));
    });
    g.finish();
}

fn rtp_bench(c: &mut Criterion) {
    let mut buf = [0u8; 172];
    header(1, 160).write_to(&[0xff; 160], &mut buf).unwrap();
    let packet = Bytes::copy_from_slice(&buf);
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| RtpPacket::parse(black_box(packet.clone())).map(|p| p.payload().len()));
    });
    let payload = [0x55u8; 160];
    let mut out = [0u8; 172];
    let mut seq = 0u16;
    g.bench_function("build", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            header(seq, u32::from(seq) * 160).write_to(black_box(&payload), black_box(&mut out))
        });
    });
    g.finish();
}

/// trunk (issue 20): the SRTP cost of one 20 ms frame (a 172-byte PCMU
/// packet) per suite: protect (what the media core does before each send)
/// and protect + unprotect (a peer's packet checked and decrypted). The
/// library allocates its output per packet; these figures include it.
fn srtp_bench(c: &mut Criterion) {
    use callbridge_rtp::srtp::{MAX_SRTP_PACKET, SrtpKey, SrtpKeys, SrtpSession, SrtpSuite};
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(1));
    for suite in SrtpSuite::ALL {
        let key = |b: u8| SrtpKey::new(suite, &vec![b; suite.master_len()]).unwrap();
        let mut tx = SrtpSession::new(&SrtpKeys::new(key(1), key(2)).unwrap()).unwrap();
        let mut rx = SrtpSession::new(&SrtpKeys::new(key(2), key(1)).unwrap()).unwrap();
        let mut seq = 0u16;
        let mut buf = [0u8; MAX_SRTP_PACKET];
        g.bench_function(format!("protect/{suite:?}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                let n = header(seq, u32::from(seq) * 160)
                    .write_to(&[0x55; 160], &mut buf)
                    .unwrap();
                tx.protect_rtp(black_box(&mut buf), n).unwrap()
            });
        });
        // A fresh pair: the protect-only run above wrapped the sequence
        // number many times (its rollover counter is far ahead of a
        // receiver that saw none of those packets).
        let mut tx = SrtpSession::new(&SrtpKeys::new(key(1), key(2)).unwrap()).unwrap();
        let mut seq = 0u16;
        let mut clear = [0u8; MAX_SRTP_PACKET];
        g.bench_function(format!("protect_unprotect/{suite:?}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                let n = header(seq, u32::from(seq) * 160)
                    .write_to(&[0x55; 160], &mut buf)
                    .unwrap();
                let n = tx.protect_rtp(&mut buf, n).unwrap();
                rx.unprotect_rtp(black_box(&buf[..n]), &mut clear).unwrap()
            });
        });
    }
    g.finish();
}

/// One 20 ms frame through the resampler alone, every direction (thread
/// CPU time per frame).
fn resample_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_frame");
    for (a, b_rate) in [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000)] {
        let mut path = FramePath::resample(a, b_rate);
        g.bench_function(format!("{a}_to_{b_rate}"), |b| {
            b.iter_custom(|iters| cpu_timed(iters, || path.step()));
        });
    }
    g.finish();
}

/// The whole 20 ms frame path of a call each way, thread CPU time per
/// frame ([`FramePath`]): inbound to the model's input rate (16 kHz Gemini,
/// 24 kHz OpenAI), outbound from 24 kHz (both) and 16 kHz (a wide carrier
/// leg).
fn path_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_path");
    g.throughput(Throughput::Elements(1));
    for rate in [16_000u32, 24_000] {
        let mut path = FramePath::inbound(rate);
        g.bench_function(
            format!("inbound_rtp_jitter_ulaw_8k_to_{}k", rate / 1000),
            |b| b.iter_custom(|iters| cpu_timed(iters, || path.step())),
        );
    }
    for rate in [24_000u32, 16_000] {
        let mut path = FramePath::outbound(rate);
        g.bench_function(format!("outbound_{}k_to_8k_ulaw_rtp", rate / 1000), |b| {
            b.iter_custom(|iters| cpu_timed(iters, || path.step()));
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    g711_bench,
    rtp_bench,
    srtp_bench,
    resample_bench,
    path_bench
);
criterion_main!(benches);
