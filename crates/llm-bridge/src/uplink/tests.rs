//! The uplink on a simulated clock: frames pushed at chosen instants,
//! chunks polled and checked byte for byte.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::format::SampleRate;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A 20 ms frame of 16 kHz PCM whose samples all equal `v`.
fn frame16(v: i16) -> [i16; 320] {
    [v; 320]
}

fn pcm16(samples: &[i16]) -> AudioFrame<'_> {
    AudioFrame::Pcm16 {
        rate: SampleRate::HZ_16000,
        samples,
    }
}

fn drain(up: &mut Uplink) -> Vec<Bytes> {
    std::iter::from_fn(|| up.poll_chunk()).collect()
}

#[test]
fn chunk_lengths_are_20_40_or_60_ms_and_nothing_else() {
    assert_eq!(UplinkChunk::from_ms(20), Some(UplinkChunk::Ms20));
    assert_eq!(UplinkChunk::from_ms(40), Some(UplinkChunk::Ms40));
    assert_eq!(UplinkChunk::from_ms(60), Some(UplinkChunk::Ms60));
    for bad in [0, 10, 30, 50, 80, 100, u64::MAX] {
        assert_eq!(UplinkChunk::from_ms(bad), None, "{bad}");
    }
    assert_eq!(UplinkChunk::Ms60.bytes(AudioFormat::PCM_16K), 1920);
    assert_eq!(UplinkChunk::Ms40.bytes(AudioFormat::PCM_24K), 1920);
    assert_eq!(UplinkChunk::Ms60.bytes(AudioFormat::Pcmu), 480);
}

#[test]
fn twenty_ms_sends_every_frame_at_once() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms20);
    for i in 0..5u64 {
        up.push(t0 + ms(20 * i), pcm16(&frame16(i as i16))).unwrap();
        let chunks = drain(&mut up);
        assert_eq!(chunks.len(), 1, "frame {i}");
        assert_eq!(chunks[0].len(), 640);
        assert_eq!(up.poll_timeout(), None);
    }
}

#[test]
fn sixty_ms_sends_one_message_per_three_frames_in_order() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms60);
    let mut sent = Vec::new();
    for i in 0..9u64 {
        up.push(t0 + ms(20 * i), pcm16(&frame16(i as i16))).unwrap();
        let chunks = drain(&mut up);
        if i % 3 == 2 {
            assert_eq!(chunks.len(), 1, "frame {i} completes a chunk");
            assert_eq!(chunks[0].len(), 1920);
        } else {
            assert!(chunks.is_empty(), "frame {i} waits");
        }
        sent.extend(chunks);
    }
    assert_eq!(sent.len(), 3);
    // Each chunk is three frames in order: samples 0,1,2 then 3,4,5 ...
    for (c, chunk) in sent.iter().enumerate() {
        for f in 0..3 {
            let off = f * 640;
            let v = i16::from_le_bytes([chunk[off], chunk[off + 1]]);
            assert_eq!(v, (c * 3 + f) as i16);
        }
    }
}

#[test]
fn pending_audio_is_due_one_chunk_after_its_first_frame() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms60);
    up.push(t0, pcm16(&frame16(1))).unwrap();
    assert_eq!(up.poll_timeout(), Some(t0 + ms(60)));
    up.handle_timeout(t0 + ms(59));
    assert!(up.poll_chunk().is_none(), "not due yet");
    up.handle_timeout(t0 + ms(60));
    assert_eq!(up.poll_chunk().map(|c| c.len()), Some(640));
    assert_eq!(up.poll_timeout(), None);
    assert_eq!(up.pending(), Duration::ZERO);
}

#[test]
fn a_frame_after_a_gap_sends_the_old_audio_alone_first() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms60);
    up.push(t0, pcm16(&frame16(1))).unwrap();
    up.push(t0 + ms(20), pcm16(&frame16(2))).unwrap();
    // The caller's media stalls for 200 ms, then frames resume.
    up.push(t0 + ms(220), pcm16(&frame16(3))).unwrap();
    let chunks = drain(&mut up);
    assert_eq!(chunks.len(), 1, "the 40 ms from before the gap");
    assert_eq!(chunks[0].len(), 1280);
    assert_eq!(i16::from_le_bytes([chunks[0][640], chunks[0][641]]), 2);
    // The new frame starts a new chunk with its own deadline.
    assert_eq!(up.poll_timeout(), Some(t0 + ms(280)));
    assert_eq!(up.pending(), ms(20));
}

#[test]
fn late_frames_within_the_chunk_length_still_make_whole_chunks() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms40);
    // Jitter: the second frame comes 35 ms after the first.
    up.push(t0, pcm16(&frame16(1))).unwrap();
    up.push(t0 + ms(35), pcm16(&frame16(2))).unwrap();
    let chunks = drain(&mut up);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].len(), 1280);
}

#[test]
fn flush_sends_a_partial_chunk_and_nothing_when_empty() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms60);
    up.flush();
    assert!(up.poll_chunk().is_none());
    up.push(t0, pcm16(&frame16(7))).unwrap();
    up.flush();
    assert_eq!(up.poll_chunk().map(|c| c.len()), Some(640));
    assert!(up.poll_chunk().is_none());
    assert_eq!(up.poll_timeout(), None);
}

#[test]
fn telephone_frames_are_converted_before_chunking() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms40);
    up.push(t0, AudioFrame::Pcmu(&[0xFF; 160])).unwrap();
    up.push(t0 + ms(20), AudioFrame::Pcmu(&[0xFF; 160]))
        .unwrap();
    let chunk = up.poll_chunk().unwrap();
    assert_eq!(chunk.len(), 1280, "40 ms of 16 kHz s16le");
    assert!(chunk.iter().all(|&b| b == 0), "µ-law 0xFF is silence");
    // G.711 straight through for OpenAI: 40 ms is 320 bytes.
    let mut up = Uplink::new(AudioFormat::Pcmu, UplinkChunk::Ms40);
    up.push(t0, AudioFrame::Pcmu(&[0x55; 160])).unwrap();
    up.push(t0 + ms(20), AudioFrame::Pcmu(&[0x55; 160]))
        .unwrap();
    assert_eq!(up.poll_chunk().map(|c| c.len()), Some(320));
}

fn pcm24k() -> AudioFrame<'static> {
    AudioFrame::Pcm16 {
        rate: SampleRate::HZ_24000,
        samples: &[0; 480],
    }
}

#[test]
fn an_unconvertible_frame_is_refused_and_adds_nothing() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms60);
    up.push(t0, pcm16(&frame16(1))).unwrap();
    let err = up.push(t0 + ms(20), pcm24k()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedAudio { .. }));
    assert!(up.poll_chunk().is_none());
    assert_eq!(up.pending(), ms(20));
    assert_eq!(up.poll_timeout(), Some(t0 + ms(60)));
}

/// A refused frame still tells the time: audio that is due by then is
/// ready for the caller to poll (the session queues it before returning
/// the error).
#[test]
fn a_refused_frame_still_makes_due_audio_ready() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms60);
    up.push(t0, pcm16(&frame16(1))).unwrap();
    assert!(up.push(t0 + ms(60), pcm24k()).is_err());
    assert_eq!(up.poll_chunk().map(|c| c.len()), Some(640));
    assert_eq!(up.pending(), Duration::ZERO);
    assert_eq!(up.poll_timeout(), None);
}

#[test]
fn a_sent_chunk_gives_its_allocation_back_to_the_next() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms40);
    let mut first_ptr = None;
    for i in 0..20u64 {
        up.push(t0 + ms(20 * i), pcm16(&frame16(1))).unwrap();
        if let Some(chunk) = up.poll_chunk() {
            let ptr = chunk.as_ptr();
            assert_eq!(*first_ptr.get_or_insert(ptr), ptr, "chunk {i}");
            drop(chunk); // the driver encoded and dropped it
        }
    }
    assert!(first_ptr.is_some());
}

/// What the test feeds: a frame of `len` samples `gap_ms` after the last,
/// or a flush.
#[derive(Debug, Clone)]
enum Step {
    Frame { len: usize, gap_ms: u64 },
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (1usize..700, 0u64..90).prop_map(|(len, gap_ms)| Step::Frame { len, gap_ms }),
        1 => Just(Step::Flush),
    ]
}

proptest! {
    /// Whatever the frame sizes, arrival times and flushes: the chunks are
    /// exactly the input in order (nothing lost, doubled or reordered), no
    /// chunk is empty or longer than a chunk plus one frame, and after every
    /// push the pending audio is younger than one chunk length.
    #[test]
    fn chunks_are_the_input_in_order_and_never_overdue(
        chunk in prop::sample::select(UplinkChunk::ALL.to_vec()),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut up = Uplink::new(AudioFormat::PCM_16K, chunk);
        let chunk_bytes = chunk.bytes(AudioFormat::PCM_16K);
        let mut input = Vec::new();
        let mut output = Vec::new();
        let mut counter = 0i16;
        for s in steps {
            match s {
                Step::Frame { len, gap_ms } => {
                    now += ms(gap_ms);
                    let samples: Vec<i16> = (0..len)
                        .map(|_| { counter = counter.wrapping_add(1); counter })
                        .collect();
                    for v in &samples {
                        input.extend_from_slice(&v.to_le_bytes());
                    }
                    up.push(now, pcm16(&samples)).unwrap();
                    prop_assert!(up.poll_timeout().is_none_or(|due| due > now));
                    while let Some(c) = up.poll_chunk() {
                        prop_assert!(!c.is_empty());
                        prop_assert!(c.len() < chunk_bytes + 2 * len);
                        output.extend_from_slice(&c);
                    }
                }
                Step::Flush => {
                    up.flush();
                    prop_assert!(up.poll_timeout().is_none());
                    while let Some(c) = up.poll_chunk() {
                        prop_assert!(!c.is_empty());
                        output.extend_from_slice(&c);
                    }
                }
            }
        }
        up.flush();
        while let Some(c) = up.poll_chunk() {
            output.extend_from_slice(&c);
        }
        prop_assert_eq!(input, output);
    }
}

#[test]
fn a_chunk_carries_its_8_khz_audio_only_when_every_frame_came_with_it() {
    let t0 = Instant::now();
    let mut up = Uplink::new(AudioFormat::PCM_16K, UplinkChunk::Ms40);
    let narrow = |v: i16| [v; 160];
    // Two frames with their 8 kHz audio: one chunk with 40 ms of it.
    up.push_with_narrowband(t0, pcm16(&frame16(1)), &narrow(1))
        .unwrap();
    up.push_with_narrowband(t0 + ms(20), pcm16(&frame16(2)), &narrow(2))
        .unwrap();
    let (pcm, n) = up.poll_chunk_with_narrowband().unwrap();
    assert_eq!(pcm.len(), 1280);
    let n = n.expect("both frames came with it");
    let samples: Vec<i16> = n
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(samples, [[1i16; 160], [2; 160]].concat());
    // One frame without it: the chunk goes without, the next has it again.
    up.push(t0 + ms(40), pcm16(&frame16(3))).unwrap();
    up.push_with_narrowband(t0 + ms(60), pcm16(&frame16(4)), &narrow(4))
        .unwrap();
    assert_eq!(up.poll_chunk_with_narrowband().map(|(_, n)| n), Some(None));
    up.push_with_narrowband(t0 + ms(80), pcm16(&frame16(5)), &narrow(5))
        .unwrap();
    up.flush();
    let (pcm, n) = up.poll_chunk_with_narrowband().unwrap();
    assert_eq!((pcm.len(), n.map(|n| n.len())), (640, Some(320)));
    // Audio that is not half as long (not 16 kHz from 8 kHz): not carried.
    up.push_with_narrowband(t0 + ms(100), pcm16(&frame16(6)), &[6; 100])
        .unwrap();
    up.flush();
    assert_eq!(up.poll_chunk_with_narrowband().map(|(_, n)| n), Some(None));
}
