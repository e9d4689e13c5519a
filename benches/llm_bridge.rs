//! Hot paths of the realtime model clients: per-message JSON encode/decode.
//!
//! Run: `cargo bench --bench llm_bridge`
//! - `gemini/encode_audio_20ms`: one 20 ms 16 kHz frame (640 bytes) into a
//!   `realtimeInput.audio` message (base64) in a reused buffer.
//! - `gemini/decode_audio_delta_{20,100}ms`: one `serverContent` message
//!   carrying 24 kHz audio (960 / 4800 bytes) into events.
//! - `audio/convert_8k_to_16k_20ms`: a 160-sample 8 kHz frame to 16 kHz.

use std::hint::black_box;

use base64::Engine as _;
use bytes::BytesMut;
use callbridge_llm_bridge::audio::{AudioFormat, AudioFrame, InputConverter, SampleRate};
use callbridge_llm_bridge::gemini::wire::{self, Inbound};
use criterion::{Criterion, criterion_group, criterion_main};

fn pcm(n_bytes: usize) -> Vec<u8> {
    (0..n_bytes).map(|i| (i * 31 % 251) as u8).collect()
}

fn gemini(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemini");
    let frame = pcm(640);
    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("encode_audio_20ms", |b| {
        b.iter(|| {
            out.clear();
            wire::encode_audio_into(black_box(&frame), &mut out);
            black_box(out.len())
        })
    });
    for (name, bytes) in [
        ("decode_audio_delta_20ms", 960),
        ("decode_audio_delta_100ms", 4800),
    ] {
        let data = base64::engine::general_purpose::STANDARD.encode(pcm(bytes));
        let msg = format!(
            r#"{{"serverContent":{{"modelTurn":{{"parts":[{{"inlineData":{{"mimeType":"audio/pcm;rate=24000","data":"{data}"}}}}]}}}}}}"#
        );
        let mut items: Vec<Inbound> = Vec::with_capacity(8);
        g.bench_function(name, |b| {
            b.iter(|| {
                items.clear();
                wire::decode_server_message(black_box(msg.as_bytes()), &mut items).ok();
                black_box(items.len())
            })
        });
    }
    g.finish();
}

fn audio(c: &mut Criterion) {
    let mut g = c.benchmark_group("audio");
    let frame: Vec<i16> = (0..160).map(|i| (i * 97 % 2000) as i16).collect();
    let mut conv = InputConverter::new(AudioFormat::PCM_16K);
    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("convert_8k_to_16k_20ms", |b| {
        b.iter(|| {
            out.clear();
            conv.convert_into(
                AudioFrame::Pcm16 {
                    rate: SampleRate::HZ_8000,
                    samples: black_box(&frame),
                },
                &mut out,
            )
            .ok();
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, gemini, audio);
criterion_main!(benches);
