//! One full media tick of one call through the session's bridge, in
//! microseconds: receive one RTP frame (parse, jitter buffer, mu-law
//! decode), resample 8k -> 16k with the session's uplink, convert it for
//! the model exactly as `ModelSession::send_audio` does, feed the lifecycle
//! machine the tick's model audio, take 20 ms of 24 kHz model audio through
//! the session's downlink (resample to 8k, playback queue) and build the
//! outgoing RTP packet. Sockets and the model's WebSocket are not included.
//!
//! Run: `cargo bench --bench session_tick -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use callbridge_llm_bridge::audio::InputConverter;
use callbridge_llm_bridge::{AudioFormat, AudioFrame, SampleRate};
use callbridge_rtp::g711::{self, Law};
use callbridge_rtp::jitter::{JitterBuffer, JitterConfig};
use callbridge_rtp::sender::RtpSender;
use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};
use callbridge_session::bridge::audio::{Downlink, Uplink};
use callbridge_session::lifecycle::{
    CallMachine, Config, Direction, Input, MediaInput, ModelInput, SipInput,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn speech_like(n: usize, rate: f64) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            (9000.0 * (t * 2.0 * std::f64::consts::PI * 310.0).sin()
                + 4000.0 * (t * 2.0 * std::f64::consts::PI * 1870.0).sin()) as i16
        })
        .collect()
}

fn tick_bench(c: &mut Criterion) {
    const PACKETS: usize = 1 << 14;
    let pcm = speech_like(160, 8000.0);
    let mut codes = [0u8; 160];
    g711::ulaw_encode(&pcm, &mut codes);
    let packets: Vec<Bytes> = (0..PACKETS)
        .map(|i| {
            let mut buf = [0u8; 172];
            RtpHeader {
                marker: false,
                payload_type: PayloadType::PCMU,
                seq: SeqNo(i as u16),
                timestamp: i as u32 * 160,
                ssrc: Ssrc(42),
            }
            .write_to(&codes, &mut buf)
            .unwrap();
            Bytes::copy_from_slice(&buf)
        })
        .collect();
    let model_audio = speech_like(480, 24000.0);
    let mut jb = JitterBuffer::new(JitterConfig::default(), Law::MuLaw, PayloadType::PCMU);
    let mut up = Uplink::new(16_000).unwrap();
    let mut conv = InputConverter::new(AudioFormat::PCM_16K);
    let mut wire = BytesMut::with_capacity(64 * 1024);
    let mut down = Downlink::new(24_000).unwrap();
    let mut sender = RtpSender::new(Law::MuLaw, PayloadType::PCMU, Ssrc(1), SeqNo(0), 0);
    let mut machine = CallMachine::new(Direction::Inbound, Config::default());
    let t0 = Instant::now();
    machine.handle_input(t0, Input::Sip(SipInput::Invite));
    machine.handle_input(t0, Input::Model(ModelInput::Ready));
    while machine.poll_action().is_some() {}
    let mut frame8 = [0i16; 160];
    let mut out = [0u8; 172];
    let mut i = 0usize;
    let mut g = c.benchmark_group("session_tick");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtp_in_to_model_and_model_to_rtp_out", |b| {
        b.iter(|| {
            let now = t0 + Duration::from_millis(20 * i as u64);
            if let Ok(p) = RtpPacket::parse(packets[i % PACKETS].clone()) {
                jb.handle_packet(now, &p);
            }
            i += 1;
            jb.poll_frame(&mut frame8);
            let samples = up.process(&frame8);
            let frame = AudioFrame::Pcm16 {
                rate: SampleRate::HZ_16000,
                samples,
            };
            conv.convert_into(frame, &mut wire).unwrap();
            black_box(&wire);
            wire.clear();
            down.push_model_audio(|v| v.extend_from_slice(&model_audio));
            machine.handle_input(now, Input::Model(ModelInput::Audio));
            let mut played = None;
            let drained = down.on_tick(|f| {
                played = Some(f);
                true
            });
            if drained {
                machine.handle_input(now, Input::Media(MediaInput::PlaybackDrained));
            }
            while machine.poll_action().is_some() {}
            let n = sender
                .next_packet(played.as_ref().map(|f| &f[..]), &mut out)
                .unwrap();
            black_box(&out[..n]);
        });
    });
    g.finish();
}

criterion_group!(benches, tick_bench);
criterion_main!(benches);
