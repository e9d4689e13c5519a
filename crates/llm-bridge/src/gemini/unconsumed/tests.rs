//! `Unconsumed` on its own: numbering, bounds, order, and what a replay
//! sounds like.

use std::time::Duration;

use super::*;

fn msg(i: u32) -> Utf8Bytes {
    Utf8Bytes::from(format!("{{\"chunk\":{i}}}"))
}

fn kept(i: u32) -> Kept {
    Kept::Message(msg(i))
}

/// 40 ms of 16 kHz s16le at the constant level of chunk `i`.
fn chunk(i: u8) -> Vec<u8> {
    level(i).to_le_bytes().repeat(640)
}

fn level(i: u8) -> i16 {
    500 * i16::from(i) - 12_000
}

/// Which chunk made by [`chunk`] a kept one is: the level of its
/// middle sample (the filters' 2 ms at each edge blend in the
/// neighbours; ADPCM settles within a few samples).
fn chunk_code(k: &Kept) -> u8 {
    let samples = audio(k);
    let mid = f64::from(samples[samples.len() / 2]);
    ((mid + 12_000.0) / 500.0).round() as u8
}

/// The 8 kHz samples of a kept audio chunk.
fn audio(k: &Kept) -> &[i16] {
    match k {
        Kept::Audio(samples) => samples,
        Kept::Message(_) => panic!("not audio: {k:?}"),
    }
}

/// `n` samples of a tone of a sixteenth of the rate, at 12,000.
fn tone(n: i32) -> Vec<i16> {
    (0..n)
        .map(|k| ((f64::from(k) * std::f64::consts::TAU / 16.0).sin() * 12_000.0) as i16)
        .collect()
}

fn le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Signal to noise of `back` against `sent`, `back` `lag` samples
/// late, from sample `skip` on.
fn snr_db(sent: &[i16], back: &[i16], lag: usize, skip: usize) -> f64 {
    let (mut signal, mut noise) = (0f64, 0f64);
    for (i, &x) in sent.iter().enumerate().take(sent.len() - lag).skip(skip) {
        signal += f64::from(x).powi(2);
        noise += (f64::from(x) - f64::from(back[i + lag])).powi(2);
    }
    10.0 * (signal / noise).log10()
}

#[test]
fn a_message_dropped_alone_stays_lost_until_an_update_covers_it() {
    // One message larger than the byte bound: kept and dropped at once,
    // so the buffer is empty but the message was never consumed.
    let mut u = Unconsumed::new(100, 1 << 20).with_max_text(8);
    u.on_sent(&msg(1)); // index 1, 11 bytes > 8
    assert_eq!(u.len(), 0);
    u.on_update(Some(0)); // the server has only the setup
    let r = u.take_replay();
    assert!(r.messages.is_empty());
    assert!(r.lost, "the dropped message was not consumed");
    // Covered by an update: not lost.
    u.on_sent(&msg(2)); // index 1 of the new connection
    u.on_update(Some(1));
    assert!(!u.take_replay().lost);
}

#[test]
fn an_update_drops_what_it_includes_and_keeps_the_rest() {
    let mut u = Unconsumed::new(100, 1 << 20);
    for i in 0..5 {
        u.on_sent(&msg(i));
    }
    // Messages 1..=5 on the wire; the state includes up to 3.
    u.on_update(Some(3));
    let r = u.take_replay();
    assert_eq!(r.messages, [kept(3), kept(4)]);
    assert!(!r.lost);
}

#[test]
fn an_update_without_an_index_includes_everything_sent() {
    let mut u = Unconsumed::new(100, 1 << 20);
    u.on_sent(&msg(0));
    u.on_sent(&msg(1));
    u.on_update(None);
    u.on_sent(&msg(2));
    assert_eq!(u.take_replay().messages, [kept(2)]);
}

#[test]
fn over_its_bounds_it_drops_the_oldest_and_says_so() {
    let mut u = Unconsumed::new(3, 1 << 20);
    for i in 0..5 {
        u.on_sent(&msg(i));
    }
    assert_eq!(u.len(), 3);
    let r = u.take_replay();
    assert_eq!(r.messages, [kept(2), kept(3), kept(4)]);
    assert!(r.lost);
    // Bytes bound too.
    let mut u = Unconsumed::new(100, 1 << 20).with_max_text(msg(0).len() * 2);
    for i in 0..3 {
        u.on_sent(&msg(i));
    }
    assert!(u.take_replay().lost);
    // A later update past the loss clears it.
    let mut u = Unconsumed::new(2, 1 << 20);
    for i in 0..4 {
        u.on_sent(&msg(i));
    }
    u.on_update(Some(4));
    assert!(!u.take_replay().lost);
}

#[test]
fn numbering_starts_again_on_the_new_connection() {
    let mut u = Unconsumed::new(100, 1 << 20);
    u.on_sent(&msg(0));
    u.on_sent(&msg(1));
    let r = u.take_replay();
    assert_eq!(r.messages.len(), 2);
    // The replay is sent again on the new connection: messages 1, 2.
    for m in &r.messages {
        let Kept::Message(m) = m else {
            panic!("not a message: {m:?}")
        };
        u.on_sent(m);
    }
    u.on_sent(&msg(2));
    u.on_update(Some(2));
    assert_eq!(u.take_replay().messages, [kept(2)]);
}

/// The case on simulated time: a caller speaks for 2 s in 40 ms
/// chunks; the server takes chunks into its state 200 ms behind and
/// reports it every 120 ms; the connection drops 1.3 s in. What the
/// old connection's state held plus what the new one is sent is the
/// whole utterance, each chunk once.
#[test]
fn a_drop_mid_utterance_loses_nothing_and_repeats_nothing() {
    const CHUNK: Duration = Duration::from_millis(40);
    const LAG: Duration = Duration::from_millis(200);
    const REPORT: Duration = Duration::from_millis(120);
    const DROP_AT: Duration = Duration::from_millis(1300);
    let chunks: u32 = 50;
    let mut u = Unconsumed::new(1000, 1 << 20);
    // The server's view: (index, chunk) received, and what it consumed.
    let mut received: Vec<(u64, u32)> = Vec::new();
    let mut reported: u64 = 0;
    let mut next_index = 1u64;
    let mut next_report = REPORT;
    let mut now = Duration::ZERO;
    let mut sent = 0u32;
    while now < DROP_AT {
        if now >= CHUNK * sent && sent < chunks {
            u.on_sent_audio(&chunk(sent as u8));
            received.push((next_index, sent));
            next_index += 1;
            sent += 1;
        }
        if now >= next_report {
            // Consumed: what arrived at least LAG ago.
            let consumed = received
                .iter()
                .filter(|(i, _)| CHUNK * (*i as u32 - 1) + LAG <= now)
                .map(|(i, _)| *i)
                .max();
            if let Some(last) = consumed {
                reported = last;
                u.on_update(Some(last));
            }
            next_report += REPORT;
        }
        now += Duration::from_millis(10);
    }
    // The state of the last handle: chunks up to the reported index.
    let mut model: Vec<u32> = received
        .iter()
        .filter(|(i, _)| *i <= reported)
        .map(|(_, c)| *c)
        .collect();
    assert!(model.len() < sent as usize, "the drop cut the utterance");
    let replay = u.take_replay();
    assert!(!replay.lost);
    for m in &replay.messages {
        model.push(u32::from(chunk_code(m)));
    }
    // The rest of the utterance follows on the new connection.
    model.extend(sent..chunks);
    assert_eq!(model, (0..chunks).collect::<Vec<_>>());
}

#[test]
fn audio_is_kept_at_8_khz_in_adpcm_and_replayed_within_its_precision() {
    let mut u = Unconsumed::new(100, 1 << 20);
    // 400 ms of a 1 kHz tone at 16 kHz in 40 ms chunks.
    let tone = tone(6400);
    for c in tone.chunks(640) {
        u.on_sent_audio(&le(c));
    }
    assert_eq!(u.audio_bytes(), 1600, "half a byte per 8 kHz sample");
    let r = u.take_replay();
    assert_eq!(r.messages.len(), 10);
    let mut expander = Expander::new().unwrap();
    let mut back = Vec::new();
    for k in &r.messages {
        expander.expand(audio(k), &mut back);
    }
    let mut wide = vec![0i16; back.len() / 2];
    let n = read_le(&back, &mut wide);
    let back = &wide[..n];
    assert_eq!(back.len(), tone.len(), "as long as what was sent");
    // The two filters delay by 2 ms each: 64 samples at 16 kHz.
    let snr = snr_db(&tone, back, 64, 160);
    // 20.6 dB when written: 4-bit ADPCM's usual on a 1 kHz tone.
    assert!(snr >= 18.0, "SNR {snr:.1} dB");
}

#[test]
fn the_audio_bound_counts_the_kept_bytes() {
    // 3 chunks of 160 kept bytes fit in 500; a fourth drops the first.
    let mut u = Unconsumed::new(100, 500);
    for i in 0..3 {
        u.on_sent_audio(&chunk(i));
    }
    assert_eq!((u.len(), u.audio_bytes()), (3, 480));
    u.on_sent_audio(&chunk(3));
    let r = u.take_replay();
    assert!(r.lost);
    let codes: Vec<u8> = r.messages.iter().map(chunk_code).collect();
    assert_eq!(codes, [1, 2, 3]);
}

#[test]
fn audio_and_messages_keep_their_order_through_updates() {
    let mut u = Unconsumed::new(100, 1 << 20);
    u.on_sent_audio(&chunk(10)); // 1
    u.on_sent(&msg(1)); // 2
    u.on_sent_audio(&chunk(11)); // 3
    u.on_sent(&msg(2)); // 4
    u.on_sent_audio(&chunk(12)); // 5
    u.on_update(Some(2));
    let r = u.take_replay();
    assert_eq!(r.messages.len(), 3);
    assert_eq!(chunk_code(&r.messages[0]), 11);
    assert_eq!(r.messages[1], kept(2));
    assert_eq!(chunk_code(&r.messages[2]), 12);
    assert!(!r.lost);
}

#[test]
fn audio_given_at_8_khz_is_kept_as_given_without_decimating() {
    let mut u = Unconsumed::new(100, 1 << 20);
    // 400 ms of a 500 Hz tone at 8 kHz in 40 ms chunks.
    let tone = tone(3200);
    for c in tone.chunks(320) {
        u.on_sent_narrowband(&le(c));
    }
    assert_eq!(u.audio_bytes(), 1600, "half a byte per sample");
    let r = u.take_replay();
    let back: Vec<i16> = r.messages.iter().flat_map(|k| audio(k).to_vec()).collect();
    assert_eq!(back.len(), tone.len());
    // Sample for sample (no filter delay), at ADPCM's precision.
    let snr = snr_db(&tone, &back, 0, 80);
    assert!(snr >= 18.0, "SNR {snr:.1} dB");
}
