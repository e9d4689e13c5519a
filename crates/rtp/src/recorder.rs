//! The call recorder: a stereo 8 kHz 16-bit WAV file, caller on the left
//! channel and agent on the right, written incrementally with hound.
//!
//! The header is rewritten every second ([`FLUSH_EVERY_FRAMES`]), so after
//! a crash the file is still valid up to the last flush; after
//! [`CallRecorder::finish`] (or drop) it is valid and complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use callbridge_files::Access;

use crate::error::Error;

/// Sample rate of recordings.
pub const RECORDING_RATE: u32 = 8000;
/// Frames (20 ms) between header updates.
pub const FLUSH_EVERY_FRAMES: u32 = 50;

/// Writes one call to a stereo WAV file.
pub struct CallRecorder {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    frames_since_flush: u32,
    samples: u64,
}

impl std::fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecorder")
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl CallRecorder {
    /// Creates (or truncates) the WAV file at `path`, readable as `access`
    /// says (owner only: `0600`), whatever the umask.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Wav`] when the file cannot be created.
    pub fn create(path: &Path, access: Access) -> Result<CallRecorder, Error> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: RECORDING_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = callbridge_files::create_file(path, access).map_err(|source| Error::Io {
            what: "create",
            source,
        })?;
        let writer =
            hound::WavWriter::new(BufWriter::new(file), spec).map_err(Error::wav("create"))?;
        Ok(CallRecorder {
            writer: Some(writer),
            frames_since_flush: 0,
            samples: 0,
        })
    }

    /// Appends one frame: `caller` to the left channel, `agent` to the
    /// right. The shorter side is padded with silence.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Wav`] when writing fails (disk full), or
    /// [`Error::InvalidArgument`] after [`finish`](Self::finish).
    pub fn write(&mut self, caller: &[i16], agent: &[i16]) -> Result<(), Error> {
        let Some(w) = self.writer.as_mut() else {
            return Err(Error::InvalidArgument {
                what: "recorder already finished",
            });
        };
        let n = caller.len().max(agent.len());
        for i in 0..n {
            w.write_sample(caller.get(i).copied().unwrap_or(0))
                .map_err(Error::wav("write"))?;
            w.write_sample(agent.get(i).copied().unwrap_or(0))
                .map_err(Error::wav("write"))?;
        }
        self.samples += n as u64;
        self.frames_since_flush += 1;
        if self.frames_since_flush >= FLUSH_EVERY_FRAMES {
            self.frames_since_flush = 0;
            w.flush().map_err(Error::wav("flush"))?;
        }
        Ok(())
    }

    /// Samples per channel written so far.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Writes the final header and closes the file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Wav`] when the final write fails.
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(Error::wav("finalize")),
            None => Ok(()),
        }
    }
}

impl Drop for CallRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(error = %e, "recording could not be finalized");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stereo_caller_left_agent_right_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut rec = CallRecorder::create(&path, Access::Owner).unwrap();
        for f in 0..120i16 {
            let caller = [f; 160];
            let agent = [-f; 160];
            rec.write(&caller, &agent).unwrap();
        }
        rec.write(&[7; 160], &[]).unwrap();
        rec.finish().unwrap();
        assert!(rec.write(&[0], &[0]).is_err());

        let mut r = hound::WavReader::open(&path).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(r.duration(), 121 * 160);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s.len(), 2 * 121 * 160);
        assert_eq!((s[0], s[1]), (0, 0));
        let at = 2 * 160 * 100;
        assert_eq!((s[at], s[at + 1]), (100, -100));
        let last = s.len() - 2;
        assert_eq!((s[last], s[last + 1]), (7, 0));
    }

    #[cfg(unix)]
    #[test]
    fn recordings_are_owner_only_or_group_readable_as_configured() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (access, want) in [(Access::Owner, 0o600), (Access::Group, 0o640)] {
            let path = dir.path().join(format!("{want:o}.wav"));
            CallRecorder::create(&path, access)
                .unwrap()
                .finish()
                .unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want);
        }
    }

    #[test]
    fn header_is_valid_while_recording_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.wav");
        let mut rec = CallRecorder::create(&path, Access::Owner).unwrap();
        for _ in 0..FLUSH_EVERY_FRAMES {
            rec.write(&[1; 160], &[2; 160]).unwrap();
        }
        // Not finished: a reader opened now sees one second of audio.
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), FLUSH_EVERY_FRAMES * 160);
        drop(rec);
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), FLUSH_EVERY_FRAMES * 160);
    }
}
