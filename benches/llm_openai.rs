//! OpenAI Realtime wire codec speed: encode one 20 ms caller frame into an
//! `input_audio_buffer.append` event (base64; µ-law and PCM16 24 kHz) and
//! decode one `response.output_audio.delta` event, per message.
//!
//! Run: `cargo bench -p callbridge --bench llm_openai`

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::BytesMut;
use callbridge_llm_bridge::openai::wire;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn speech(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 251) as u8).collect()
}

fn delta_message(audio: &[u8]) -> Vec<u8> {
    format!(
        "{{\"type\":\"response.output_audio.delta\",\"event_id\":\"event_CQ3x1\",\
         \"response_id\":\"resp_CQ3x0abc\",\"item_id\":\"item_CQ3x0def\",\"output_index\":0,\
         \"content_index\":0,\"delta\":\"{}\"}}",
        B64.encode(audio)
    )
    .into_bytes()
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("openai_encode_append_20ms");
    for (name, bytes) in [("pcmu_8k_160B", 160), ("pcm16_24k_960B", 960)] {
        let frame = speech(bytes);
        let mut out = BytesMut::with_capacity(4096);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                wire::encode_audio_into(black_box(&frame), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("openai_decode_output_audio_delta");
    for (name, bytes) in [
        ("pcmu_8k_20ms", 160),
        ("pcm16_24k_20ms", 960),
        ("pcm16_24k_100ms", 4800),
    ] {
        let msg = delta_message(&speech(bytes));
        g.bench_function(name, |b| {
            b.iter(|| {
                let ev = wire::decode_server_event(black_box(&msg));
                black_box(matches!(ev, Ok(wire::Inbound::AudioDelta { .. })))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
