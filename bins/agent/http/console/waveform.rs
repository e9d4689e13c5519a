//! The waveform of a call recording, drawn on the server as SVG: the
//! caller (left channel) above, the agent (right channel) below, one
//! vertical stroke per column from that column's lowest to highest sample.
//! An SVG of a few hundred columns is ~20 kB whatever the call's length,
//! needs no script, and is sent as an image (`img-src 'self'`).

use std::fmt::Write as _;
use std::io::Read;

/// Columns of the drawing.
pub const COLUMNS: usize = 600;
/// Height of one channel's band, in SVG units.
const BAND: i32 = 60;

/// Why a recording cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum WaveformError {
    /// Not a WAV file hound can read.
    #[error("not a readable WAV file: {0}")]
    Wav(#[from] hound::Error),
    /// A WAV file in another format than the recorder's 16-bit PCM.
    #[error("unsupported recording format ({bits}-bit, {channels} channels)")]
    Format {
        /// Bits per sample.
        bits: u16,
        /// Channels.
        channels: u16,
    },
}

/// Per channel, per column: the lowest and highest sample.
type Peaks = Vec<Vec<(i16, i16)>>;

/// The peaks of a 16-bit PCM WAV stream, `columns` per channel (1 or 2
/// channels; a mono file draws its one channel twice).
pub fn peaks<R: Read>(wav: R, columns: usize) -> Result<Peaks, WaveformError> {
    let reader = hound::WavReader::new(wav)?;
    let spec = reader.spec();
    if spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
        || !(1..=2).contains(&spec.channels)
    {
        return Err(WaveformError::Format {
            bits: spec.bits_per_sample,
            channels: spec.channels,
        });
    }
    let channels = usize::from(spec.channels);
    let frames = reader.duration() as usize;
    let per_column = frames.div_ceil(columns.max(1)).max(1);
    let mut out = vec![vec![(0i16, 0i16); columns]; 2];
    for (i, sample) in reader.into_samples::<i16>().enumerate() {
        let v = sample?;
        let column = (i / channels / per_column).min(columns.saturating_sub(1));
        let channel = i % channels;
        let targets: &[usize] = if channels == 1 { &[0, 1] } else { &[channel] };
        for &c in targets {
            if let Some(p) = out[c].get_mut(column) {
                p.0 = p.0.min(v);
                p.1 = p.1.max(v);
            }
        }
    }
    Ok(out)
}

/// The SVG drawing of `peaks` (two bands, caller above, agent below).
pub fn svg(peaks: &Peaks) -> String {
    let columns = peaks.first().map_or(0, Vec::len);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {columns} {}\" \
         preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Waveform: caller above, agent below\">",
        BAND * 2
    );
    let scale = |v: i16| i32::from(v) * (BAND / 2 - 1) / i32::from(i16::MAX);
    for (band, (channel, color)) in peaks.iter().zip(["#1f6feb", "#b35900"]).enumerate() {
        let mid = BAND * i32::try_from(band).unwrap_or(0) + BAND / 2;
        let _ = write!(s, "<path stroke=\"{color}\" stroke-width=\"1\" d=\"");
        for (x, &(lo, hi)) in channel.iter().enumerate() {
            // At least one unit tall, so silence shows as a line.
            let (top, bottom) = (mid - scale(hi), (mid - scale(lo)).max(mid - scale(hi) + 1));
            let _ = write!(s, "M{x} {top}V{bottom}");
        }
        s.push_str("\"/>");
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn wav(channels: u16, samples: &[i16]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    #[test]
    fn each_channel_gets_its_own_peaks() {
        // Left loud in the first half, right loud in the second.
        let mut s = Vec::new();
        for i in 0..400 {
            let (l, r) = if i < 200 { (12_000, 10) } else { (-5, -20_000) };
            s.extend([l, r]);
        }
        let p = peaks(wav(2, &s).as_slice(), 4).unwrap();
        assert_eq!(
            p[0],
            vec![(0, 12_000), (0, 12_000), (-5, 0), (-5, 0)],
            "each column spans zero"
        );
        assert_eq!(p[1], vec![(0, 10), (0, 10), (-20_000, 0), (-20_000, 0)]);
        let drawn = svg(&p);
        assert!(drawn.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(drawn.matches("<path").count(), 2);
        assert_eq!(drawn.matches('M').count(), 8);
    }

    #[test]
    fn mono_draws_twice_and_other_formats_are_refused() {
        let p = peaks(wav(1, &[100, -100, 50]).as_slice(), 3).unwrap();
        assert_eq!(p[0], p[1]);
        assert!(peaks(&b"not a wav"[..], 3).is_err());
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        w.write_sample(1i8).unwrap();
        w.write_sample(1i8).unwrap();
        w.finalize().unwrap();
        assert!(matches!(
            peaks(buf.into_inner().as_slice(), 3),
            Err(WaveformError::Format { bits: 8, .. })
        ));
    }

    #[test]
    fn an_empty_recording_draws_flat_lines() {
        let p = peaks(wav(2, &[]).as_slice(), 5).unwrap();
        assert!(p.iter().all(|c| c.iter().all(|&x| x == (0, 0))));
        assert!(svg(&p).contains("M0 30V31"));
    }
}
