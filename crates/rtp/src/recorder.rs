//! The call recorder: a stereo 8 kHz 16-bit WAV file, caller on the left
//! channel and agent on the right, written incrementally with hound.
//!
//! The header is rewritten every second of audio ([`FLUSH_EVERY_FRAMES`],
//! counted in frames written, not read from a clock), so after a crash the
//! file is still valid up to the last flush and start-up recovery
//! ([`crate::wav::repair`]) can extend it to every frame on disk; after
//! [`CallRecorder::finish`] (or drop) it is valid and complete.
//!
//! A write that fails (a full disk, an I/O error) stops the recording, not
//! the call: the recorder closes the file, repairs its header to the whole
//! frames that reached the disk (in place, so it needs no free space) and
//! refuses further writes. The caller learns it from the error and
//! records why ([`Error::is_disk_full`]).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use callbridge_files::Access;

use crate::error::Error;
use crate::wav::{self, WavInfo};

/// Sample rate of recordings.
pub const RECORDING_RATE: u32 = 8000;
/// Frames (20 ms) between header updates.
pub const FLUSH_EVERY_FRAMES: u32 = 50;

/// Writes one call to a stereo WAV file.
pub struct CallRecorder {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: PathBuf,
    /// Set once a write failed and the file was closed and repaired.
    stopped: Option<Stopped>,
    frames_since_flush: u32,
    samples: u64,
}

/// What a recording stopped by a failed write kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The file as repaired (`None` when even the repair failed; start-up
    /// recovery tries again).
    pub kept: Option<WavInfo>,
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
            path: path.to_path_buf(),
            stopped: None,
            frames_since_flush: 0,
            samples: 0,
        })
    }

    /// The file being written.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the recording stopped early, if a write failed.
    #[must_use]
    pub fn stopped(&self) -> Option<Stopped> {
        self.stopped
    }

    /// After a failed write: close the file (its buffered tail may be
    /// lost), then make its header describe the whole frames on disk.
    fn stop(&mut self, e: Error) -> Error {
        drop(self.writer.take());
        let kept = match wav::repair(&self.path) {
            Ok((info, _)) => Some(info),
            Err(re) => {
                tracing::warn!(error = %re, "stopped recording could not be repaired");
                None
            }
        };
        self.stopped = Some(Stopped { kept });
        e
    }

    /// Appends one frame: `caller` to the left channel, `agent` to the
    /// right. The shorter side is padded with silence.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Wav`] when writing fails (disk full): the
    /// recording is then stopped (see the module docs) and every later
    /// write fails with [`Error::InvalidArgument`], as after
    /// [`finish`](Self::finish).
    pub fn write(&mut self, caller: &[i16], agent: &[i16]) -> Result<(), Error> {
        let Some(w) = self.writer.as_mut() else {
            return Err(Error::InvalidArgument {
                what: "recorder already finished or stopped",
            });
        };
        let n = caller.len().max(agent.len());
        // hound's 16-bit batch writer: one copy into its reused buffer and
        // one write per frame; `WavWriter::write_sample` per sample went
        // through the BufWriter (a memcpy and a branch each) and was 7 %
        // of the agent's CPU at 200 calls (perf, 2026-12-06).
        let mut r = match u32::try_from(2 * n) {
            Ok(len) => {
                let mut batch = w.get_i16_writer(len);
                for i in 0..n {
                    batch.write_sample(caller.get(i).copied().unwrap_or(0));
                    batch.write_sample(agent.get(i).copied().unwrap_or(0));
                }
                batch.flush().map_err(Error::wav("write"))
            }
            Err(_) => Err(Error::InvalidArgument {
                what: "frame too long to record",
            }),
        };
        if r.is_ok() {
            self.samples += n as u64;
            self.frames_since_flush += 1;
            if self.frames_since_flush >= FLUSH_EVERY_FRAMES {
                self.frames_since_flush = 0;
                r = w.flush().map_err(Error::wav("flush"));
            }
        }
        r.map_err(|e| self.stop(e))
    }

    /// Samples per channel written so far.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Writes the final header and closes the file. After a stopped
    /// recording there is nothing left to do.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Wav`] when the final write fails (the file
    /// is then repaired as after a failed [`write`](Self::write)).
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.writer.take() {
            Some(w) => w
                .finalize()
                .map_err(Error::wav("finalize"))
                .map_err(|e| self.stop(e)),
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

    #[test]
    fn a_full_disk_stops_the_recording_and_says_so() {
        // /dev/full fails every write with ENOSPC once the buffer spills.
        let full = Path::new("/dev/full");
        if !full.exists() {
            eprintln!("skipped: /dev/full does not exist here");
            return;
        }
        let mut rec = CallRecorder::create(full, callbridge_files::Access::Owner).unwrap();
        let err = (0..FLUSH_EVERY_FRAMES)
            .find_map(|_| rec.write(&[1; 160], &[2; 160]).err())
            .expect("a write fails within a second of audio");
        assert!(err.is_disk_full(), "{err}");
        let stopped = rec.stopped().expect("the recording is stopped");
        assert_eq!(stopped.kept, None, "/dev/full holds no WAV to repair");
        assert!(matches!(
            rec.write(&[1; 160], &[2; 160]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(rec.finish().is_ok(), "nothing left to finish");
    }
}
