//! Offline conversion between raw PCM, G.711 and WAV through exactly the
//! code a call uses: [`crate::g711`] and the streaming
//! [`StreamResampler`], in 20 ms frames. The `transcode` example is a thin
//! wrapper around [`run_cli`]; operators use it to prepare prompts for the
//! phone and to listen to captures.
//!
//! Formats: `s16le` (raw 16-bit little-endian mono PCM at `--rate-in`, or
//! 8000 Hz), `ulaw` and `alaw` (raw G.711, always 8000 Hz) and `wav` (16-bit
//! PCM WAV; the rate comes from the header). A stereo WAV input, such as
//! the agent's own call recordings (caller left, agent right), needs
//! `--channel caller|agent|mix` (or `left|right`). The output rate is
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

/// Which channel of a stereo WAV input to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The left channel (the caller, in the agent's recordings).
    Left,
    /// The right channel (the agent, in the agent's recordings).
    Right,
    /// Both, averaged.
    Mix,
}

impl FromStr for Channel {
    type Err = TranscodeError;

    fn from_str(s: &str) -> Result<Channel, TranscodeError> {
        Ok(match s {
            "left" | "caller" => Channel::Left,
            "right" | "agent" => Channel::Right,
            "mix" => Channel::Mix,
            _ => {
                return Err(TranscodeError::Usage(
                    "--channel takes caller, agent, mix, left or right",
                ));
            }
        })
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Convert.
    Convert(Options),
    /// Print the usage (`--help` or `-h`).
    Help,
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
    /// `--channel`, for a stereo WAV input.
    pub channel: Option<Channel>,
}

/// Usage text.
pub const USAGE: &str = "usage: transcode --from FORMAT --to FORMAT [--rate-in HZ] [--rate-out HZ] [--channel CH] < in > out
       transcode --help
FORMAT: s16le | ulaw | alaw | wav; HZ: 8000 | 16000 | 24000
CH (stereo WAV input, e.g. a call recording): caller | agent | mix (or left | right)";

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
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, TranscodeError> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    let (mut from, mut to, mut rate_in, mut rate_out, mut channel) = (None, None, None, None, None);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if !matches!(
            flag.as_str(),
            "--from" | "--to" | "--rate-in" | "--rate-out" | "--channel"
        ) {
            return Err(TranscodeError::Usage("unknown flag"));
        }
        let value = it
            .next()
            .ok_or(TranscodeError::Usage("every flag needs a value"))?;
        match flag.as_str() {
            "--from" => from = Some(value.parse()?),
            "--to" => to = Some(value.parse()?),
            "--rate-in" => rate_in = Some(parse_rate(&value)?),
            "--rate-out" => rate_out = Some(parse_rate(&value)?),
            _ => channel = Some(value.parse()?),
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(TranscodeError::Usage("--from and --to are required"));
    };
    if channel.is_some() && from != Format::Wav {
        return Err(TranscodeError::Usage("--channel is for a stereo WAV input"));
    }
    Ok(Command::Convert(Options {
        from,
        to,
        rate_in,
        rate_out,
        channel,
    }))
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
    Raw {
        r: R,
        law: Option<Law>,
        total: u64,
    },
    Wav(hound::WavIntoSamples<R, i16>),
    /// A stereo WAV, one channel (or the mix) taken.
    Stereo(hound::WavIntoSamples<R, i16>, Channel),
}

fn wav_sample<R: Read>(
    samples: &mut hound::WavIntoSamples<R, i16>,
) -> Result<Option<i16>, TranscodeError> {
    samples
        .next()
        .transpose()
        .map_err(|e| TranscodeError::Wav(e.to_string()))
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
            Source::Stereo(samples, channel) => {
                let mut n = 0;
                for o in out.iter_mut() {
                    let Some(left) = wav_sample(samples)? else {
                        break;
                    };
                    let right = wav_sample(samples)?.unwrap_or(0);
                    *o = match channel {
                        Channel::Left => left,
                        Channel::Right => right,
                        // The mean of two i16 always fits an i16.
                        Channel::Mix => ((i32::from(left) + i32::from(right)) / 2) as i16,
                    };
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
            if !matches!(spec.channels, 1 | 2)
                || spec.bits_per_sample != 16
                || spec.sample_format != hound::SampleFormat::Int
            {
                return Err(TranscodeError::Wav(format!(
                    "need mono or stereo 16-bit PCM, got {} channel(s) of {}-bit {:?}",
                    spec.channels, spec.bits_per_sample, spec.sample_format
                )));
            }
            let stereo = spec.channels == 2;
            if stereo && opts.channel.is_none() {
                return Err(TranscodeError::Usage(
                    "stereo WAV input: choose --channel caller, agent or mix",
                ));
            }
            if !stereo && opts.channel.is_some() {
                return Err(TranscodeError::Usage(
                    "--channel is for a stereo WAV input; this one is mono",
                ));
            }
            let rate = parse_rate(&spec.sample_rate.to_string())?;
            if opts.rate_in.is_some_and(|r| r != rate) {
                return Err(TranscodeError::Usage(
                    "--rate-in differs from the WAV header's rate",
                ));
            }
            let samples = reader.into_samples();
            match opts.channel {
                Some(c) if stereo => (Source::Stereo(samples, c), rate),
                _ => (Source::Wav(samples), rate),
            }
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
    let mut output = output;
    let result = parse_args(args).and_then(|cmd| match cmd {
        Command::Help => writeln!(output, "{USAGE}").map_err(TranscodeError::from),
        Command::Convert(opts) => transcode(&opts, input, output).map(|_| ()),
    });
    match result {
        Ok(()) => 0,
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
mod tests;
