//! The converter's tests.

use super::*;
use std::f64::consts::TAU;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn s16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn tone(rate: u32, hz: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (8000.0 * (TAU * hz * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

fn convert(a: &str, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_cli(args(a), input, &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    out
}

#[test]
fn s16le_to_ulaw_is_exactly_g711() {
    let pcm: Vec<i16> = (0..1000).map(|i| (i * 61 - 30_000) as i16).collect();
    let out = convert("--from s16le --to ulaw", &s16(&pcm));
    let mut expected = vec![0u8; pcm.len()];
    crate::g711::ulaw_encode(&pcm, &mut expected);
    assert_eq!(out, expected);
}

#[test]
fn alaw_to_s16le_is_exactly_g711() {
    let codes: Vec<u8> = (0..=255).collect();
    let out = convert("--from alaw --to s16le", &codes);
    let mut expected = vec![0i16; 256];
    crate::g711::alaw_decode(&codes, &mut expected);
    assert_eq!(out, s16(&expected));
}

#[test]
fn wav_16k_to_ulaw_to_wav_16k_keeps_duration_and_alignment() {
    let pcm = tone(16000, 440.0, 16000 + 123);
    let mut wav = Vec::new();
    write_wav(&mut wav, 16000, &pcm).unwrap();
    let ulaw = convert("--from wav --to ulaw", &wav);
    assert_eq!(ulaw.len(), (16000 + 123usize).div_ceil(2));
    let back = convert("--from ulaw --to wav --rate-out 16000", &ulaw);
    let r = hound::WavReader::new(&back[..]).unwrap();
    assert_eq!(r.spec().sample_rate, 16000);
    let out: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
    assert_eq!(out.len(), 16000 + 124);
    // Delay removed: the tone lines up with the input sample for sample
    // (within G.711 and filter error).
    let err: f64 = out[800..15000]
        .iter()
        .zip(&pcm[800..15000])
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / 14200.0;
    let snr = 10.0 * ((8000.0f64.powi(2) / 2.0) / err).log10();
    assert!(snr > 30.0, "aligned SNR {snr:.1} dB");
}

#[test]
fn committed_test_wav_goes_through_the_phone_path() {
    let wav = include_bytes!("../../testdata/hello-16k.wav");
    let ulaw = convert("--from wav --to ulaw", wav);
    let samples = hound::WavReader::new(&wav[..]).unwrap().duration() as usize;
    assert_eq!(ulaw.len(), samples.div_ceil(2));
    assert!(
        ulaw.iter().filter(|&&c| c != 0xff && c != 0x7f).count() > ulaw.len() / 4,
        "speech is not silence"
    );
}

#[test]
fn odd_byte_count_exits_2_with_a_clear_message() {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_cli(
        args("--from s16le --to ulaw"),
        &[1u8, 2, 3][..],
        &mut out,
        &mut err,
    );
    assert_eq!(code, 2);
    let msg = String::from_utf8(err).unwrap();
    assert!(msg.contains("odd number of bytes (3)"), "{msg}");
}

#[test]
fn bad_format_and_rates_exit_2() {
    for a in [
        "--from mp3 --to ulaw",
        "--from s16le --to ulaw --rate-out 16000",
        "--from s16le --to wav --rate-in 44100",
        "--from s16le",
        "--to ulaw --from",
    ] {
        let mut err = Vec::new();
        assert_eq!(run_cli(args(a), &[][..], Vec::new(), &mut err), 2, "{a}");
        assert!(String::from_utf8(err).unwrap().starts_with("transcode: "));
    }
}

#[test]
fn a_rate_pair_without_8000_is_named_as_such() {
    let mut err = Vec::new();
    let a = "--from s16le --to s16le --rate-in 16000 --rate-out 24000";
    assert_eq!(run_cli(args(a), &[][..], Vec::new(), &mut err), 2);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.starts_with(
            "transcode: no conversion from 16000 Hz to 24000 Hz: one side must be 8000"
        ),
        "{err}"
    );
}

/// A stereo 8 kHz recording as the agent writes it (the recorder).
fn recording(caller: &[i16], agent: &[i16]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let mut rec =
        crate::recorder::CallRecorder::create(&path, callbridge_files::Access::Owner).unwrap();
    for (c, a) in caller.chunks(160).zip(agent.chunks(160)) {
        rec.write(c, a).unwrap();
    }
    rec.finish().unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn a_stereo_wav_needs_a_channel_and_the_message_says_so() {
    let wav = recording(&[0; 160], &[0; 160]);
    let mut err = Vec::new();
    assert_eq!(
        run_cli(args("--from wav --to ulaw"), &wav[..], Vec::new(), &mut err),
        2
    );
    assert!(String::from_utf8(err).unwrap().contains("--channel"));
}

#[test]
fn the_agents_own_recording_gives_each_side_and_the_mix() {
    let caller = vec![1000i16; 320];
    let agent = vec![-3000i16; 320];
    let wav = recording(&caller, &agent);
    let side =
        |ch: &str| -> Vec<u8> { convert(&format!("--from wav --to s16le --channel {ch}"), &wav) };
    assert_eq!(side("caller"), s16(&caller));
    assert_eq!(side("left"), s16(&caller));
    assert_eq!(side("agent"), s16(&agent));
    assert_eq!(side("mix"), s16(&[-1000; 320]));
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    for a in ["--help", "-h", "--from wav --help"] {
        let mut out = Vec::new();
        let mut err = Vec::new();
        assert_eq!(run_cli(args(a), &[][..], &mut out, &mut err), 0, "{a}");
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("usage: transcode"), "{out}");
        assert!(out.contains("--channel"));
        assert!(err.is_empty());
    }
}

#[test]
fn channel_on_a_mono_input_is_refused() {
    let mut wav = Vec::new();
    write_wav(&mut wav, 8000, &[0; 160]).unwrap();
    for (a, input) in [
        ("--from wav --to ulaw --channel agent", &wav[..]),
        ("--from ulaw --to s16le --channel agent", &[0xffu8; 160][..]),
        ("--from wav --to ulaw --channel both", &wav[..]),
    ] {
        let mut err = Vec::new();
        assert_eq!(run_cli(args(a), input, Vec::new(), &mut err), 2, "{a}");
    }
}
