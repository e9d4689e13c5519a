//! Reading and repairing the header of a PCM WAV file: what start-up
//! recovery, `agent store check` and the recorder's own full-disk path use
//! to tell how much audio a recording really holds.
//!
//! A WAV file (RIFF, "WAVE") is a `fmt ` chunk describing the samples and
//! a `data` chunk holding them; the RIFF size (bytes 4..8) and the `data`
//! chunk's size are written up front and must be brought up to date as
//! samples are appended. [`crate::recorder::CallRecorder`] does that every
//! second and on close, so a process killed mid-call or a disk that filled
//! up leaves a header that is *stale*: it declares fewer (or, after a
//! failed buffered write, more) bytes than the file holds. [`inspect`]
//! reads the header and compares it with the file's length; [`repair`]
//! rewrites the two sizes to match the whole frames present and cuts a
//! trailing partial frame, which neither needs free space (the header is
//! rewritten in place, the file only shrinks) nor loses a whole frame of
//! audio.
//!
//! The `data` chunk is taken to be the file's last chunk, as in every
//! recording this crate writes; a file with chunks after its samples is
//! not a recording and must not be given to [`repair`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::Error;

/// How many bytes of the file's head are searched for the `data` chunk.
pub const HEADER_SCAN: usize = 4096;

/// What a WAV file's header says and what the file really holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Channels.
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Bytes per frame (one sample of every channel).
    pub block_align: u16,
    /// Where the samples start.
    pub data_offset: u64,
    /// The RIFF size the header declares.
    pub declared_riff: u32,
    /// The `data` size the header declares.
    pub declared_data: u32,
    /// Bytes of whole frames present after `data_offset` (at most what a
    /// 32-bit `data` size can declare).
    pub data_bytes: u64,
    /// The file's length.
    pub file_bytes: u64,
}

impl WavInfo {
    /// Whole frames present in the file.
    #[must_use]
    pub fn frames(&self) -> u64 {
        self.data_bytes / u64::from(self.block_align)
    }

    /// How long the audio present lasts.
    #[must_use]
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        let rate = u64::from(self.sample_rate);
        let frames = self.frames();
        Duration::from_secs(frames / rate)
            + Duration::from_nanos((frames % rate) * 1_000_000_000 / rate)
    }

    /// How long the audio the header declares lasts.
    #[must_use]
    pub fn declared_duration(&self) -> Duration {
        let declared = WavInfo {
            data_bytes: u64::from(self.declared_data),
            ..*self
        };
        declared.duration()
    }

    /// True when the header does not describe the file: its sizes differ
    /// from the whole frames present, or a partial frame trails them.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        u64::from(self.declared_data) != self.data_bytes
            || u64::from(self.declared_riff) != self.riff_size()
            || self.file_bytes != self.data_offset + self.data_bytes
    }

    /// The RIFF size matching the whole frames present.
    fn riff_size(&self) -> u64 {
        self.data_offset + self.data_bytes - 8
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn not_wav(detail: &str) -> Error {
    Error::Wav {
        what: "header",
        detail: detail.to_owned(),
    }
}

/// Parses the head of a file (`head`, at most [`HEADER_SCAN`] bytes) of
/// `file_bytes` bytes.
///
/// # Errors
/// [`Error::Wav`] when it is not a PCM WAV header with a `data` chunk in
/// the scanned bytes.
pub fn parse(head: &[u8], file_bytes: u64) -> Result<WavInfo, Error> {
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return Err(not_wav("no RIFF/WAVE signature"));
    }
    let declared_riff = le32(head, 4).ok_or_else(|| not_wav("short header"))?;
    let mut fmt = None;
    let mut at = 12usize;
    loop {
        let id = head
            .get(at..at + 4)
            .ok_or_else(|| not_wav("no data chunk in the first 4 KiB"))?;
        let size = le32(head, at + 4).ok_or_else(|| not_wav("short chunk header"))?;
        let body = at + 8;
        if id == b"data" {
            let Some((channels, sample_rate, block_align, bits_per_sample)) = fmt else {
                return Err(not_wav("data chunk before the fmt chunk"));
            };
            let data_offset = body as u64;
            if file_bytes < data_offset {
                return Err(not_wav("file shorter than its header"));
            }
            let align = u64::from(block_align);
            let max = (u64::from(u32::MAX) - (data_offset - 8)) / align * align;
            let data_bytes = ((file_bytes - data_offset) / align * align).min(max);
            return Ok(WavInfo {
                channels,
                sample_rate,
                bits_per_sample,
                block_align,
                data_offset,
                declared_riff,
                declared_data: size,
                data_bytes,
                file_bytes,
            });
        }
        if id == b"fmt " {
            let b = head
                .get(body..body + 16)
                .ok_or_else(|| not_wav("short fmt chunk"))?;
            let channels = le16(b, 2).unwrap_or(0);
            let sample_rate = le32(b, 4).unwrap_or(0);
            let block_align = le16(b, 12).unwrap_or(0);
            let bits = le16(b, 14).unwrap_or(0);
            if channels == 0 || block_align == 0 || sample_rate == 0 {
                return Err(not_wav("fmt chunk with no channels, rate or frame size"));
            }
            fmt = Some((channels, sample_rate, block_align, bits));
        }
        // Chunks are padded to an even size.
        let next = usize::try_from(size)
            .ok()
            .and_then(|s| body.checked_add(s)?.checked_add(s & 1))
            .ok_or_else(|| not_wav("chunk size out of range"))?;
        at = next;
    }
}

fn read_head(file: &mut File) -> Result<(Vec<u8>, u64), Error> {
    let len = file.metadata().map_err(Error::io("wav stat"))?.len();
    let mut head = Vec::with_capacity(HEADER_SCAN);
    Read::by_ref(file)
        .take(HEADER_SCAN as u64)
        .read_to_end(&mut head)
        .map_err(Error::io("wav read"))?;
    Ok((head, len))
}

/// Reads the header of the WAV file at `path` and measures the file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Wav`] when it is
/// not a PCM WAV file.
pub fn inspect(path: &Path) -> Result<WavInfo, Error> {
    let mut file = File::open(path).map_err(Error::io("wav open"))?;
    let (head, len) = read_head(&mut file)?;
    parse(&head, len)
}

/// Brings a stale header up to date (see the module docs) and returns the
/// file as it is afterwards, with whether anything was written. A valid
/// file is not touched.
///
/// # Errors
/// As [`inspect`], and [`Error::Io`] when the file cannot be written.
pub fn repair(path: &Path) -> Result<(WavInfo, bool), Error> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("wav open"))?;
    let (head, len) = read_head(&mut file)?;
    let info = parse(&head, len)?;
    if !info.is_stale() {
        return Ok((info, false));
    }
    let end = info.data_offset + info.data_bytes;
    if info.file_bytes != end {
        file.set_len(end).map_err(Error::io("wav truncate"))?;
    }
    // Both values fit: `parse` caps `data_bytes` so the RIFF size does.
    let riff = u32::try_from(info.riff_size()).unwrap_or(u32::MAX);
    let data = u32::try_from(info.data_bytes).unwrap_or(u32::MAX);
    file.seek(SeekFrom::Start(4))
        .map_err(Error::io("wav seek"))?;
    file.write_all(&riff.to_le_bytes())
        .map_err(Error::io("wav header"))?;
    file.seek(SeekFrom::Start(info.data_offset - 4))
        .map_err(Error::io("wav seek"))?;
    file.write_all(&data.to_le_bytes())
        .map_err(Error::io("wav header"))?;
    file.sync_data().map_err(Error::io("wav sync"))?;
    Ok((
        WavInfo {
            declared_riff: riff,
            declared_data: data,
            file_bytes: end,
            ..info
        },
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, frames: u32) {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..frames {
            w.write_sample(i as i16).unwrap();
            w.write_sample(-(i as i16)).unwrap();
        }
        w.finalize().unwrap();
    }

    fn set_sizes(path: &Path, riff: u32, data: u32) {
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(4)).unwrap();
        f.write_all(&riff.to_le_bytes()).unwrap();
        f.seek(SeekFrom::Start(40)).unwrap();
        f.write_all(&data.to_le_bytes()).unwrap();
    }

    #[test]
    fn a_finalized_file_is_not_stale_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.wav");
        write_wav(&p, 8000);
        let info = inspect(&p).unwrap();
        assert_eq!(
            (info.channels, info.sample_rate, info.block_align),
            (2, 8000, 4)
        );
        assert_eq!((info.data_offset, info.frames()), (44, 8000));
        assert_eq!(info.duration(), Duration::from_secs(1));
        assert!(!info.is_stale());
        let before = std::fs::read(&p).unwrap();
        assert_eq!(repair(&p).unwrap(), (info, false));
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn a_header_left_behind_by_a_crash_is_brought_up_to_the_frames_present() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crash.wav");
        write_wav(&p, 16_000);
        // As a process killed after the first second's flush leaves it.
        set_sizes(&p, 36 + 32_000, 32_000);
        let info = inspect(&p).unwrap();
        assert!(info.is_stale());
        assert_eq!(info.declared_duration(), Duration::from_secs(1));
        assert_eq!(info.duration(), Duration::from_secs(2));
        let (fixed, wrote) = repair(&p).unwrap();
        assert!(wrote && !fixed.is_stale());
        let r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.duration(), 16_000);
        let last: Vec<i16> = r
            .into_samples()
            .map(Result::unwrap)
            .skip(2 * 15_999)
            .collect();
        assert_eq!(last, vec![15_999, -15_999]);
    }

    #[test]
    fn a_trailing_partial_frame_is_cut_and_an_overstated_header_corrected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("full.wav");
        write_wav(&p, 100);
        // A failed buffered write: 3 stray bytes, and a header claiming more.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);
        set_sizes(&p, 36 + 4000, 4000);
        let (fixed, wrote) = repair(&p).unwrap();
        assert!(wrote);
        assert_eq!((fixed.frames(), fixed.file_bytes), (100, 44 + 400));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 444);
        assert_eq!(hound::WavReader::open(&p).unwrap().duration(), 100);
    }

    #[test]
    fn files_that_are_not_wav_are_refused_without_panicking() {
        assert!(parse(b"", 0).is_err());
        assert!(parse(b"RIFF\0\0\0\0WAVE", 12).is_err());
        assert!(
            parse(b"RIFF\0\0\0\0WAVEdata\0\0\0\0", 20).is_err(),
            "data before fmt"
        );
        let mut head = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        head.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&head, 100).is_err(), "chunk size past the scan");
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse(&junk, n as u64);
        }
    }
}
