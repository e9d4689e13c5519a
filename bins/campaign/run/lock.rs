//! The per-campaign run lock: an exclusive OS lock (`flock`) on
//! `campaign-<id>.lock`, taken with `File::try_lock` so a second run finds
//! it held at once, and released by the kernel when the holder exits or is
//! killed (no stale lock files to clean up).

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{CampaignError, Result};

/// The outcome of trying to lock.
#[derive(Debug)]
pub enum Lock {
    /// This process holds the lock until the file is dropped.
    Held(File),
    /// Another process holds it.
    Busy(PathBuf),
}

/// The lock file of campaign `id` in `dir`.
pub fn path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("campaign-{id}.lock"))
}

/// Tries to take campaign `id`'s lock in `dir` without waiting.
pub fn try_lock(dir: &Path, id: i64) -> Result<Lock> {
    let p = path(dir, id);
    let io = |source| CampaignError::Io {
        path: p.display().to_string(),
        source,
    };
    let mut f = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&p)
        .map_err(io)?;
    // `File::try_lock` (std since Rust 1.89, the workspace's MSRV).
    let locked = f.try_lock();
    match locked {
        Ok(()) => {
            // For a person looking: which process holds it.
            f.set_len(0).map_err(io)?;
            writeln!(f, "{}", std::process::id()).map_err(io)?;
            Ok(Lock::Held(f))
        }
        Err(TryLockError::WouldBlock) => Ok(Lock::Busy(p)),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_busy_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path(), 7).unwrap();
        assert!(matches!(first, Lock::Held(_)));
        // A second open file description conflicts, as another process would.
        assert!(matches!(try_lock(dir.path(), 7).unwrap(), Lock::Busy(_)));
        // Another campaign is independent.
        assert!(matches!(try_lock(dir.path(), 8).unwrap(), Lock::Held(_)));
        drop(first);
        assert!(matches!(try_lock(dir.path(), 7).unwrap(), Lock::Held(_)));
    }
}
