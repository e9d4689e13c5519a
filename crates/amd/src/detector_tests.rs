//! The detector on synthetic calls, on simulated time: each test builds a
//! call from segments of silence, noise, tones and speech-like sound and
//! checks the verdicts and when they came.

use proptest::prelude::*;

use super::*;
use crate::frame::signal::{noise, speech, tone};

/// One stretch of a synthetic call.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Silence(u64),
    Noise(u64, f32),
    Tone(u64, f32, f32),
    Speech(u64, f32),
}

/// The frames of `segs` (20 ms each), the sample clock running on.
fn frames(segs: &[Seg]) -> Vec<[i16; FRAME_SAMPLES]> {
    let mut out = Vec::new();
    for seg in segs {
        let (ms, f): (u64, Box<dyn Fn(usize) -> [i16; FRAME_SAMPLES]>) = match *seg {
            Seg::Silence(ms) => (ms, Box::new(|_| [0; FRAME_SAMPLES])),
            Seg::Noise(ms, db) => (ms, Box::new(move |i| noise(db, i, 11))),
            Seg::Tone(ms, hz, db) => (ms, Box::new(move |i| tone(hz, db, i))),
            Seg::Speech(ms, f0) => (ms, Box::new(move |i| speech(f0, -18.0, i))),
        };
        for _ in 0..ms / 20 {
            let i = out.len();
            out.push(f(i));
        }
    }
    out
}

/// Runs `segs` then silence up to 30 s; the decisions.
fn detect_with(cfg: AmdConfig, segs: &[Seg]) -> Vec<Decision> {
    let mut amd = Detector::new(cfg).unwrap();
    let t0 = Instant::now();
    let mut f = frames(segs);
    f.resize(1500, [0; FRAME_SAMPLES]);
    let mut out = Vec::new();
    for (i, frame) in f.iter().enumerate() {
        amd.push_frame(t0 + FRAME * (i as u32 + 1), frame);
        out.extend(std::iter::from_fn(|| amd.poll_decision()));
    }
    out
}

fn detect(segs: &[Seg]) -> Vec<Decision> {
    detect_with(AmdConfig::default(), segs)
}

fn verdicts(d: &[Decision]) -> Vec<Verdict> {
    d.iter().map(|d| d.verdict).collect()
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

use Seg::*;

/// The issue's single rule: `human_silence` after any short greeting.
fn without_quicker_rules() -> AmdConfig {
    AmdConfig {
        human_quick_greeting: Duration::ZERO,
        human_verdict_by: Duration::ZERO,
        ..AmdConfig::default()
    }
}

#[test]
fn hello_then_silence_is_a_human_800ms_after_the_hello_by_the_issues_rule() {
    let d = detect_with(
        without_quicker_rules(),
        &[Silence(400), Speech(600, 180.0), Silence(3000)],
    );
    assert_eq!(verdicts(&d), [Verdict::Human]);
    let e = d[0].evidence;
    assert_eq!(e.speech_onset, Some(ms(400)));
    let end = e.last_sound.unwrap();
    assert!(end >= ms(900) && end <= ms(1000), "{e:?}");
    assert_eq!(e.decided_at, end + ms(800));
    assert_eq!(e.utterances, 1);
}

#[test]
fn a_one_word_hello_is_a_human_600ms_after_it() {
    let d = detect(&[Silence(400), Speech(500, 180.0), Silence(3000)]);
    assert_eq!(verdicts(&d), [Verdict::Human]);
    let e = d[0].evidence;
    assert!(e.greeting <= ms(600) && e.utterances == 1, "{e:?}");
    assert_eq!(e.decided_at, e.last_sound.unwrap() + ms(600));
}

#[test]
fn a_longer_greeting_waits_800ms_or_until_1_9s_from_its_first_word() {
    // 0.9 s: 1.9 s from its first word is 1 s after it, more than 800 ms.
    let d = detect(&[Silence(300), Speech(900, 150.0), Silence(3000)]);
    assert_eq!(verdicts(&d), [Verdict::Human]);
    let e = d[0].evidence;
    assert!(e.greeting > ms(600), "{e:?}");
    assert_eq!(e.decided_at, e.last_sound.unwrap() + ms(800));
    // 1.3 s: 1.9 s from its first word, 600 ms after it.
    let d = detect(&[Silence(300), Speech(1300, 150.0), Silence(3000)]);
    assert_eq!(verdicts(&d), [Verdict::Human]);
    let e = d[0].evidence;
    let onset = e.speech_onset.unwrap();
    assert!(e.greeting >= ms(1200), "{e:?}");
    assert!(
        e.decided_at >= onset + ms(1900) && e.decided_at <= onset + ms(1920),
        "{e:?}"
    );
    assert!(e.decided_at - e.last_sound.unwrap() < ms(800), "{e:?}");
    // 1.45 s: never less than 600 ms of silence.
    let d = detect(&[Silence(300), Speech(1450, 150.0), Silence(3000)]);
    let e = d[0].evidence;
    assert_eq!(verdicts(&d), [Verdict::Human], "{e:?}");
    assert!(e.decided_at - e.last_sound.unwrap() >= ms(600), "{e:?}");
}

#[test]
fn hello_in_line_noise_is_a_human() {
    let d = detect(&[Noise(1500, -45.0), Speech(700, 140.0), Noise(2000, -45.0)]);
    assert_eq!(verdicts(&d), [Verdict::Human], "{d:?}");
}

#[test]
fn a_long_greeting_is_a_machine_at_2_5_s_then_ends_in_silence() {
    let d = detect(&[Silence(300), Speech(6000, 110.0), Silence(5000)]);
    assert_eq!(
        verdicts(&d),
        [Verdict::Machine, Verdict::MachineEndSilence],
        "{d:?}"
    );
    let onset = d[0].evidence.speech_onset.unwrap();
    let at = d[0].evidence.decided_at;
    assert!(at > onset + ms(2500) && at <= onset + ms(2560), "{d:?}");
    let last = d[1].evidence.last_sound.unwrap();
    assert_eq!(d[1].evidence.decided_at, last + ms(2000));
}

#[test]
fn three_short_utterances_are_a_machine() {
    let d = detect(&[
        Silence(300),
        Speech(400, 120.0),
        Silence(400),
        Speech(400, 120.0),
        Silence(400),
        Speech(400, 120.0),
        Silence(4000),
    ]);
    assert_eq!(verdicts(&d)[0], Verdict::Machine, "{d:?}");
    assert_eq!(d[0].evidence.utterances, 3);
    // The third utterance starts at 1.9 s and counts 100 ms later.
    assert_eq!(d[0].evidence.decided_at, ms(2000));
}

#[test]
fn a_greeting_and_a_beep_is_machine_then_machine_end_beep_1s_after_it() {
    let d = detect(&[
        Silence(200),
        Speech(3000, 200.0),
        Silence(400),
        Tone(300, 1000.0, -15.0),
        Silence(3000),
    ]);
    assert_eq!(
        verdicts(&d),
        [Verdict::Machine, Verdict::MachineEndBeep],
        "{d:?}"
    );
    let beep = d[1].evidence.beep.unwrap();
    assert!((beep.frequency_hz - 1000.0).abs() < 5.0, "{beep:?}");
    assert_eq!(beep.start, ms(3600));
    assert_eq!(beep.end, ms(3900));
    assert_eq!(d[1].evidence.decided_at, ms(4900));
}

#[test]
fn a_short_greeting_then_a_beep_is_a_machine_not_a_human() {
    // "Leave a message" (1 s), 500 ms, a 600 Hz beep.
    let d = detect(&[
        Silence(300),
        Speech(1000, 150.0),
        Silence(500),
        Tone(500, 600.0, -20.0),
        Silence(3000),
    ]);
    assert_eq!(
        verdicts(&d),
        [Verdict::Machine, Verdict::MachineEndBeep],
        "{d:?}"
    );
}

#[test]
fn a_beep_alone_is_a_machine() {
    let d = detect(&[Silence(1000), Tone(250, 1900.0, -28.0), Silence(3000)]);
    assert_eq!(verdicts(&d), [Verdict::Machine, Verdict::MachineEndBeep]);
}

#[test]
fn a_quiet_beep_after_a_long_greeting_is_not_heard_and_silence_ends_it() {
    let d = detect(&[
        Silence(200),
        Speech(3000, 200.0),
        Silence(300),
        Tone(300, 1000.0, -40.0),
        Silence(3000),
    ]);
    assert_eq!(verdicts(&d), [Verdict::Machine, Verdict::MachineEndSilence]);
    assert_eq!(d[1].evidence.beep, None);
}

#[test]
fn silence_is_no_speech_at_4_5_s() {
    let d = detect(&[Silence(10_000)]);
    assert_eq!(verdicts(&d), [Verdict::NoSpeech]);
    assert_eq!(d[0].evidence.decided_at, ms(4500));
}

#[test]
fn hiss_is_no_speech() {
    let d = detect(&[Noise(10_000, -20.0)]);
    assert_eq!(verdicts(&d), [Verdict::NoSpeech], "{d:?}");
}

#[test]
fn a_sit_is_unreachable() {
    let d = detect(&[
        Silence(200),
        Tone(380, 985.2, -20.0),
        Tone(380, 1428.5, -20.0),
        Tone(380, 1776.7, -20.0),
        Speech(3000, 120.0),
    ]);
    assert_eq!(verdicts(&d), [Verdict::Unreachable], "{d:?}");
    let sit = d[0].evidence.sit.unwrap();
    assert!((sit.frequencies_hz[2] - 1776.7).abs() < 10.0, "{sit:?}");
}

#[test]
fn a_long_greeting_then_silence_after_a_pause_is_forgotten_and_the_next_hello_decides() {
    // 2 s of speech (neither rule), 1 s of silence, a 500 ms hello.
    let d = detect(&[
        Silence(300),
        Speech(2000, 150.0),
        Silence(1000),
        Speech(500, 150.0),
        Silence(3000),
    ]);
    assert_eq!(verdicts(&d), [Verdict::Human], "{d:?}");
    assert!(d[0].evidence.decided_at > ms(4000));
}

#[test]
fn an_undecided_greeting_then_silence_is_unknown_2s_after_it() {
    // "Hello, Maria speaking, who is it?": 2 s, neither rule, then waiting.
    let d = detect(&[Silence(300), Speech(2000, 150.0), Silence(5000)]);
    assert_eq!(verdicts(&d), [Verdict::Unknown], "{d:?}");
    let e = d[0].evidence;
    assert_eq!(e.decided_at, e.last_sound.unwrap() + ms(2000));
    assert!(e.decided_at < ms(5000));
}

#[test]
fn an_undecided_greeting_then_a_late_beep_is_a_machine() {
    let d = detect(&[
        Silence(300),
        Speech(2000, 150.0),
        Silence(1200),
        Tone(400, 1000.0, -20.0),
        Silence(3000),
    ]);
    assert_eq!(
        verdicts(&d),
        [Verdict::Machine, Verdict::MachineEndBeep],
        "{d:?}"
    );
}

#[test]
fn with_undecided_silence_at_the_timeout_only_the_timeout_decides() {
    let cfg = AmdConfig {
        undecided_silence: ms(8000),
        ..AmdConfig::default()
    };
    let d = detect_with(cfg, &[Silence(300), Speech(2000, 150.0), Silence(9000)]);
    assert_eq!(verdicts(&d), [Verdict::Unknown], "{d:?}");
    assert_eq!(d[0].evidence.decided_at, ms(8000));
}

#[test]
fn nothing_decidable_is_unknown_at_8_s() {
    // Utterances of 2 s each separated by 900 ms: each is forgotten.
    let mut segs = vec![Silence(300)];
    for _ in 0..4 {
        segs.extend([Speech(2000, 150.0), Silence(900)]);
    }
    let d = detect(&segs);
    assert_eq!(verdicts(&d), [Verdict::Unknown], "{d:?}");
    assert_eq!(d[0].evidence.decided_at, ms(8000));
}

#[test]
fn a_greeting_that_never_ends_times_out() {
    let d = detect(&[Silence(300), Speech(29_000, 120.0)]);
    assert_eq!(
        verdicts(&d),
        [Verdict::Machine, Verdict::MachineEndTimeout],
        "{d:?}"
    );
    assert_eq!(d[1].evidence.decided_at, ms(20_000));
}

#[test]
fn settings_change_the_rules() {
    let cfg = AmdConfig {
        human_silence: ms(500),
        no_speech: ms(2000),
        ..AmdConfig::default()
    };
    // `human_quick_silence` (600 ms) above `human_silence` acts as it.
    let d = detect_with(cfg.clone(), &[Silence(400), Speech(600, 180.0)]);
    let e = d[0].evidence;
    assert_eq!(e.decided_at, e.last_sound.unwrap() + ms(500));
    let d = detect_with(cfg.clone(), &[Silence(400), Speech(1200, 180.0)]);
    let e = d[0].evidence;
    assert_eq!(e.decided_at, e.last_sound.unwrap() + ms(500));
    let d = detect_with(cfg, &[Silence(5000)]);
    assert_eq!(d[0].evidence.decided_at, ms(2000));
}

#[test]
fn time_is_the_callers_and_never_runs_backwards() {
    let mut amd = Detector::new(AmdConfig::default()).unwrap();
    let t0 = Instant::now();
    amd.push_frame(t0 + ms(20), &[0; FRAME_SAMPLES]);
    amd.push_frame(t0, &[0; FRAME_SAMPLES]);
    assert_eq!(amd.elapsed(), ms(20));
    // A 5 s stall: the next frame is past the no-speech deadline.
    amd.push_frame(t0 + ms(5020), &[0; FRAME_SAMPLES]);
    assert_eq!(
        amd.poll_decision().map(|d| d.verdict),
        Some(Verdict::NoSpeech)
    );
    assert!(amd.is_done());
    assert_eq!(amd.verdict(), Some(Verdict::NoSpeech));
}

#[test]
fn an_invalid_config_is_refused() {
    let cfg = AmdConfig {
        machine_utterances: 1,
        ..AmdConfig::default()
    };
    assert!(Detector::new(cfg).is_err());
}

/// Any frame: silence, noise, a tone, speech or random samples.
fn any_frame() -> impl Strategy<Value = [i16; FRAME_SAMPLES]> {
    prop_oneof![
        Just([0i16; FRAME_SAMPLES]),
        (-60.0f32..0.0, 0usize..1000).prop_map(|(db, i)| noise(db, i, 3)),
        (300.0f32..2500.0, -40.0f32..0.0, 0usize..1000).prop_map(|(hz, db, i)| tone(hz, db, i)),
        (80.0f32..300.0, 0usize..1000).prop_map(|(f0, i)| speech(f0, -18.0, i)),
        proptest::collection::vec(any::<i16>(), FRAME_SAMPLES)
            .prop_map(|v| std::array::from_fn(|k| v[k])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Runs of frames (each repeated up to 40 times, so tones and speech
    /// last): never a panic; the first verdict is final and comes by
    /// `decision_timeout`; only `Machine` is followed, by one `MachineEnd*`
    /// by `greeting_timeout`.
    #[test]
    fn verdicts_are_final_and_on_time(
        runs in proptest::collection::vec((any_frame(), 1usize..40), 1..60),
    ) {
        let cfg = AmdConfig::default();
        let mut amd = Detector::new(cfg.clone()).unwrap();
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut i = 0u32;
        let frames = runs.iter().flat_map(|(f, n)| std::iter::repeat_n(f, *n));
        for f in frames.chain(std::iter::repeat_n(&[0i16; FRAME_SAMPLES], 1100)) {
            i += 1;
            amd.push_frame(t0 + FRAME * i, f);
            got.extend(std::iter::from_fn(|| amd.poll_decision()));
        }
        prop_assert!(!got.is_empty());
        prop_assert!(got[0].evidence.decided_at <= cfg.decision_timeout, "{got:?}");
        prop_assert!(!got[0].verdict.is_machine_end());
        match got[0].verdict {
            Verdict::Machine => {
                prop_assert_eq!(got.len(), 2, "{:?}", got);
                prop_assert!(got[1].verdict.is_machine_end());
                prop_assert!(got[1].evidence.decided_at <= cfg.greeting_timeout);
            }
            _ => prop_assert_eq!(got.len(), 1, "{:?}", got),
        }
        prop_assert!(amd.is_done());
        prop_assert_eq!(amd.verdict(), got.last().map(|d| d.verdict));
    }
}
