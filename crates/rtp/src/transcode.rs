//! Offline conversion between raw PCM, G.711 and WAV through exactly the
//! code a call uses: [`crate::g711`] and the streaming
//! [`StreamResampler`], in 20 ms frames. The `transcode` example is a thin
//! wrapper around [`run_cli`]; operators use it to prepare prompts for the
//! phone and to listen to captures.
//!
//! Formats: `s16le` (raw 16-bit little-endian mono PCM at `--rate-in`, or
//! 8000 Hz), `ulaw` and `alaw` (raw G.711, always 8000 Hz) and `wav` (mono
//! 16-bit PCM WAV; the rate comes from the header). The output rate is
//! `--rate-out`, else 8000 Hz for G.711 and the input rate otherwise.
//! The resampler's 2 ms delay is removed, so the output lines up with the
//! input and has the same duration.

use std::io::{Read, Write};
use std::str::FromStr;

use crate::g711::Law;
use crate::resample::StreamResampler;

/// Sample formats the converter reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Raw signed 16-bit little-endian mono PCM.
    S16le,
    /// Raw G.711 mu-law bytes, 8 kHz.
    Ulaw,
    /// Raw G.711 A-law bytes, 8 kHz.
    Alaw,
    /// A mono 16-bit PCM WAV file.
    Wav,
}

impl FromStr for Format {
    type Err = TranscodeError;

    fn from_str(s: &str) -> Result<Format, TranscodeError> {
        Ok(match s {
            "s16le" => Format::S16le,
            "ulaw" => Format::Ulaw,
            "alaw" => Format::Alaw,
            "wav" => Format::Wav,
            other => return Err(TranscodeError::BadFormat(other.to_owned())),
        })
    }
}

impl Format {
    fn law(self) -> Option<Law> {
        match self {
            Format::Ulaw => Some(Law::MuLaw),
            Format::Alaw => Some(Law::ALaw),
            Format::S16le | Format::Wav => None,
        }
    }
}

/// What went wrong, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// Unknown format name.
    #[error("unknown format {0:?}: use s16le, ulaw, alaw or wav")]
    BadFormat(String),
    /// Command line not understood.
    #[error("{0}")]
    Usage(&'static str),
    /// A rate argument is not a number or not supported.
    #[error("unsupported rate {0}: use 8000, 16000 or 24000")]
    BadRate(String),
    /// Both rates are supported, but not as a pair: the resampler converts
    /// 8000 Hz to or from 16000 or 24000 Hz.
    #[error("no conversion from {0} Hz to {1} Hz: one side must be 8000 (8000 <-> 16000 or 24000)")]
    RatePair(u32, u32),
    /// G.711 is 8 kHz only.
    #[error("{0} is always 8000 Hz; drop --rate-in/--rate-out for it or use 8000")]
    G711Rate(&'static str),
    /// s16le input with an odd number of bytes.
    #[error("input has an odd number of bytes ({0}); s16le needs 2 bytes per sample")]
    OddByteCount(u64),
    /// WAV input that is not mono 16-bit PCM, or unreadable.
    #[error("wav input: {0}")]
    Wav(String),
    /// Reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Input format.
    pub from: Format,
    /// Output format.
    pub to: Format,
    /// `--rate-in`, if given.
    pub rate_in: Option<u32>,
    /// `--rate-out`, if given.
    pub rate_out: Option<u32>,
}

/// Usage text.
pub const USAGE: &str =
    "usage: transcode --from FORMAT --to FORMAT [--rate-in HZ] [--rate-out HZ] < in > out
FORMAT: s16le | ulaw | alaw | wav; HZ: 8000 | 16000 | 24000";

fn parse_rate(v: &str) -> Result<u32, TranscodeError> {
    match v.parse::<u32>() {
        Ok(r @ (8000 | 16000 | 24000)) => Ok(r),
        _ => Err(TranscodeError::BadRate(v.to_owned())),
    }
}

/// Parses the arguments after the program name.
///
/// # Errors
/// [`TranscodeError`] for unknown flags, formats or rates.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, TranscodeError> {
    let (mut from, mut to, mut rate_in, mut rate_out) = (None, None, None, None);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or(TranscodeError::Usage("every flag needs a value"))?;
        match flag.as_str() {
            "--from" => from = Some(value.parse()?),
            "--to" => to = Some(value.parse()?),
            "--rate-in" => rate_in = Some(parse_rate(&value)?),
            "--rate-out" => rate_out = Some(parse_rate(&value)?),
            _ => return Err(TranscodeError::Usage("unknown flag")),
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(TranscodeError::Usage("--from and --to are required"));
    };
    Ok(Options {
        from,
        to,
        rate_in,
        rate_out,
    })
}

/// Reads up to `buf.len()` bytes, stopping early only at end of input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum Source<R: Read> {
    Raw { r: R, law: Option<Law>, total: u64 },
    Wav(hound::WavIntoSamples<R, i16>),
}

impl<R: Read> Source<R> {
    /// Fills `out` with up to `out.len()` samples; returns how many.
    fn read(&mut self, out: &mut [i16], bytes: &mut [u8]) -> Result<usize, TranscodeError> {
        match self {
            Source::Raw {
                r,
                law: Some(law),
                total,
            } => {
                let n = read_full(r, &mut bytes[..out.len()])?;
                *total += n as u64;
                law.decode(&bytes[..n], out)
                    .map_err(|_| TranscodeError::Usage("internal buffer size"))?;
                Ok(n)
            }
            Source::Raw {
                r,
                law: None,
                total,
            } => {
                let n = read_full(r, &mut bytes[..2 * out.len()])?;
                *total += n as u64;
                if n % 2 == 1 {
                    return Err(TranscodeError::OddByteCount(*total));
                }
                for (o, c) in out.iter_mut().zip(bytes[..n].chunks_exact(2)) {
                    *o = i16::from_le_bytes([c[0], c[1]]);
                }
                Ok(n / 2)
            }
            Source::Wav(samples) => {
                let mut n = 0;
                for o in out.iter_mut() {
                    match samples.next() {
                        Some(Ok(s)) => *o = s,
                        Some(Err(e)) => return Err(TranscodeError::Wav(e.to_string())),
                        None => break,
                    }
                    n += 1;
                }
                Ok(n)
            }
        }
    }
}

/// Summary of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Input rate in Hz.
    pub rate_in: u32,
    /// Output rate in Hz.
    pub rate_out: u32,
    /// Input samples read.
    pub samples_in: u64,
    /// Output samples written.
    pub samples_out: u64,
}

/// Converts `input` to `output` as `opts` says.
///
/// # Errors
/// [`TranscodeError`] for bad input or failed IO.
pub fn transcode<R: Read, W: Write>(
    opts: &Options,
    input: R,
    mut output: W,
) -> Result<Report, TranscodeError> {
    let (mut source, rate_in) = match opts.from {
        Format::Wav => {
            let reader =
                hound::WavReader::new(input).map_err(|e| TranscodeError::Wav(e.to_string()))?;
            let spec = reader.spec();
            if spec.channels != 1
                || spec.bits_per_sample != 16
                || spec.sample_format != hound::SampleFormat::Int
            {
                return Err(TranscodeError::Wav(format!(
                    "need mono 16-bit PCM, got {} channel(s) of {}-bit {:?}",
                    spec.channels, spec.bits_per_sample, spec.sample_format
                )));
            }
            let rate = parse_rate(&spec.sample_rate.to_string())?;
            if opts.rate_in.is_some_and(|r| r != rate) {
                return Err(TranscodeError::Usage(
                    "--rate-in differs from the WAV header's rate",
                ));
            }
            (Source::Wav(reader.into_samples()), rate)
        }
        Format::S16le => (
            Source::Raw {
                r: input,
                law: None,
                total: 0,
            },
            opts.rate_in.unwrap_or(8000),
        ),
        Format::Ulaw | Format::Alaw => {
            if opts.rate_in.is_some_and(|r| r != 8000) {
                return Err(TranscodeError::G711Rate("--from ulaw/alaw"));
            }
            (
                Source::Raw {
                    r: input,
                    law: opts.from.law(),
                    total: 0,
                },
                8000,
            )
        }
    };
    let rate_out = match opts.to.law() {
        Some(_) if opts.rate_out.is_some_and(|r| r != 8000) => {
            return Err(TranscodeError::G711Rate("--to ulaw/alaw"));
        }
        Some(_) => 8000,
        None => opts.rate_out.unwrap_or(rate_in),
    };
    let mut resampler = StreamResampler::new(rate_in, rate_out)
        .map_err(|_| TranscodeError::RatePair(rate_in, rate_out))?;
    let frame_in = resampler.input_frame_len();
    let frame_out = resampler.output_frame_len();
    let mut pcm_in = vec![0i16; frame_in];
    let mut pcm_out = vec![0i16; frame_out];
    let mut bytes = vec![0u8; 2 * frame_in.max(frame_out)];
    let mut skip = resampler.delay_samples();
    let mut wav_samples: Vec<i16> = Vec::new();
    let mut samples_in = 0u64;
    let mut samples_out = 0u64;
    let mut ended = false;
    loop {
        let n = if ended {
            0
        } else {
            source.read(&mut pcm_in, &mut bytes)?
        };
        if n == 0 && !ended {
            ended = true;
        }
        samples_in += n as u64;
        pcm_in[n..].fill(0);
        let wanted = (samples_in * u64::from(rate_out)).div_ceil(u64::from(rate_in));
        if samples_out >= wanted {
            break;
        }
        resampler
            .process(&pcm_in, &mut pcm_out)
            .map_err(|_| TranscodeError::Usage("internal resampler failure"))?;
        let from = skip.min(frame_out);
        skip -= from;
        let take = (frame_out - from).min((wanted - samples_out) as usize);
        let chunk = &pcm_out[from..from + take];
        samples_out += take as u64;
        match opts.to {
            Format::Wav => wav_samples.extend_from_slice(chunk),
            Format::S16le => {
                for (b, s) in bytes.chunks_exact_mut(2).zip(chunk) {
                    b.copy_from_slice(&s.to_le_bytes());
                }
                output.write_all(&bytes[..2 * chunk.len()])?;
            }
            Format::Ulaw | Format::Alaw => {
                if let Some(law) = opts.to.law() {
                    law.encode(chunk, &mut bytes)
                        .map_err(|_| TranscodeError::Usage("internal buffer size"))?;
                }
                output.write_all(&bytes[..chunk.len()])?;
            }
        }
    }
    if opts.to == Format::Wav {
        write_wav(&mut output, rate_out, &wav_samples)?;
    }
    output.flush()?;
    Ok(Report {
        rate_in,
        rate_out,
        samples_in,
        samples_out,
    })
}

/// Writes a mono 16-bit WAV; hound needs a seekable writer, stdout is not
/// one, so the file is built in memory first.
fn write_wav<W: Write>(output: &mut W, rate: u32, samples: &[i16]) -> Result<(), TranscodeError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::with_capacity(44 + 2 * samples.len()));
    let wav_err = |e: hound::Error| TranscodeError::Wav(e.to_string());
    let mut w = hound::WavWriter::new(&mut cursor, spec).map_err(wav_err)?;
    for &s in samples {
        w.write_sample(s).map_err(wav_err)?;
    }
    w.finalize().map_err(wav_err)?;
    output.write_all(cursor.get_ref())?;
    Ok(())
}

/// The whole command: parses `args`, converts `input` to `output`, writes
/// errors to `err`, and returns the process exit status (0, or 2 on any
/// error).
pub fn run_cli<I, R, W, E>(args: I, input: R, output: W, mut err: E) -> i32
where
    I: IntoIterator<Item = String>,
    R: Read,
    W: Write,
    E: Write,
{
    let result = parse_args(args).and_then(|opts| transcode(&opts, input, output));
    match result {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "transcode: {e}");
            if matches!(
                e,
                TranscodeError::Usage(_)
                    | TranscodeError::BadFormat(_)
                    | TranscodeError::BadRate(_)
                    | TranscodeError::RatePair(..)
            ) {
                let _ = writeln!(err, "{USAGE}");
            }
            2
        }
    }
}

#[cfg(test)]
mod tests {
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
        let wav = include_bytes!("../testdata/hello-16k.wav");
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

    #[test]
    fn stereo_wav_is_refused() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut c = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        let mut err = Vec::new();
        assert_eq!(
            run_cli(
                args("--from wav --to ulaw"),
                &c.get_ref()[..],
                Vec::new(),
                &mut err
            ),
            2
        );
        assert!(String::from_utf8(err).unwrap().contains("mono 16-bit"));
    }
}
