//! Media hot paths of callbridge-rtp: G.711 throughput, RTP parse/build,
//! the resamplers alone, the full inbound and outbound 20 ms frame paths of
//! a call, and the media clock's table (one period of 500 streams).
//! `resample_frame` and `frame_path` measure the benchmark thread's CPU
//! time per 20 ms frame (issue 17's budget: 1 us each way), the others
//! wall time.
//!
//! Run: `cargo bench --bench rtp -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_rtp::clock::{MAX_CATCH_UP, Schedule, Tick, WAKE_TOLERANCE};
use callbridge_rtp::g711::{self, Law};
use callbridge_rtp::jitter::{JitterBuffer, JitterConfig};
use callbridge_rtp::resample::StreamResampler;
use callbridge_rtp::sender::RtpSender;
use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn speech_like(n: usize) -> Vec<i16> {
    // A deterministic mix of tones and a little noise, full of varied codes.
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

fn header(seq: u16, ts: u32) -> RtpHeader {
    RtpHeader {
        marker: false,
        payload_type: PayloadType::PCMU,
        seq: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(0x1234_5678),
    }
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

/// CPU time consumed by this thread (what the frame path costs, without
/// the time the thread spends descheduled on a loaded, shared machine).
#[allow(
    unsafe_code,
    reason = "clock_gettime has no std wrapper; ts is a plain out-parameter"
)]
fn thread_cpu_time() -> Duration {
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
fn cpu_timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iters {
        f();
    }
    thread_cpu_time().saturating_sub(start)
}

/// One 20 ms frame through the resampler alone, every direction (thread
/// CPU time per frame).
fn resample_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_frame");
    for (a, b_rate) in [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000)] {
        let mut r = StreamResampler::new(a, b_rate).unwrap();
        let input = speech_like(r.input_frame_len());
        let mut out = vec![0i16; r.output_frame_len()];
        g.bench_function(format!("{a}_to_{b_rate}"), |b| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    r.process(black_box(&input), black_box(&mut out)).unwrap();
                })
            });
        });
    }
    g.finish();
}

/// The whole 20 ms frame path of a call each way, thread CPU time per
/// frame. Inbound: RTP packet -> parse -> jitter buffer -> mu-law decode
/// -> 8 kHz to the model's input rate (16 kHz Gemini, 24 kHz OpenAI).
/// Outbound: one frame of model audio (24 kHz both, 16 kHz for a wide
/// carrier leg) -> 8 kHz -> mu-law -> RTP packet.
fn path_bench(c: &mut Criterion) {
    const PACKETS: usize = 1 << 16;
    let pcm = speech_like(160);
    let mut codes = [0u8; 160];
    g711::ulaw_encode(&pcm, &mut codes);
    let packets: Vec<Bytes> = (0..PACKETS)
        .map(|i| {
            let mut buf = [0u8; 172];
            header(i as u16, i as u32 * 160)
                .write_to(&codes, &mut buf)
                .unwrap();
            Bytes::copy_from_slice(&buf)
        })
        .collect();
    let mut g = c.benchmark_group("frame_path");
    g.throughput(Throughput::Elements(1));
    for rate in [16_000u32, 24_000] {
        let mut jb = JitterBuffer::new(JitterConfig::default(), Law::MuLaw, PayloadType::PCMU);
        let mut up = StreamResampler::new(8000, rate).unwrap();
        let mut frame8 = [0i16; 160];
        let mut wide = vec![0i16; up.output_frame_len()];
        let t0 = Instant::now();
        let mut i = 0usize;
        g.bench_function(
            format!("inbound_rtp_jitter_ulaw_8k_to_{}k", rate / 1000),
            |b| {
                b.iter_custom(|iters| {
                    cpu_timed(iters, || {
                        let now = t0 + Duration::from_millis(20 * i as u64);
                        if let Ok(p) = RtpPacket::parse(packets[i % PACKETS].clone()) {
                            jb.handle_packet(now, &p);
                        }
                        i += 1;
                        jb.poll_frame(&mut frame8);
                        up.process(&frame8, &mut wide).unwrap();
                        black_box(&wide);
                    })
                });
            },
        );
    }
    for rate in [24_000u32, 16_000] {
        let model = speech_like(rate as usize / 50);
        let mut down = StreamResampler::new(rate, 8000).unwrap();
        let mut sender = RtpSender::new(Law::MuLaw, PayloadType::PCMU, Ssrc(1), SeqNo(0), 0);
        let mut frame8 = [0i16; 160];
        let mut pkt = [0u8; 172];
        g.bench_function(format!("outbound_{}k_to_8k_ulaw_rtp", rate / 1000), |b| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    down.process(black_box(&model), &mut frame8).unwrap();
                    let n = sender.next_packet(Some(&frame8), &mut pkt).unwrap();
                    black_box(&pkt[..n]);
                })
            });
        });
    }
    g.finish();
}

/// The media clock's bookkeeping alone: 500 streams with deadlines spread
/// over the 20 ms period, served wake-up by wake-up as the clock thread
/// does (next deadline, then every entry due within the tolerance). One
/// iteration is one whole period: 500 ticks and about 40 wake-ups.
fn clock_bench(c: &mut Criterion) {
    const STREAMS: u32 = 500;
    let period = Duration::from_millis(20);
    let t0 = Instant::now();
    let mut table = Schedule::new(period, WAKE_TOLERANCE, MAX_CATCH_UP);
    for i in 0..STREAMS {
        table.insert(t0 + period * i / STREAMS, i);
    }
    let mut g = c.benchmark_group("media_clock");
    g.throughput(Throughput::Elements(u64::from(STREAMS)));
    g.bench_function("schedule_500_streams_one_period", |b| {
        b.iter(|| {
            let end = table.next_deadline().map(|d| d + period);
            let mut ticks = 0u32;
            while let (Some(d), Some(end)) = (table.next_deadline(), end) {
                if d >= end {
                    break;
                }
                table.run_due(d, |i, _| {
                    ticks += black_box(*i) & 1;
                    Tick::Done
                });
            }
            black_box(ticks);
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    g711_bench,
    rtp_bench,
    resample_bench,
    path_bench,
    clock_bench
);
criterion_main!(benches);
