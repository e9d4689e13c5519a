//! A small tmpfs for the durability tests (a disk that fills up, or a
//! read-only filesystem), mounted on a temporary directory and unmounted on
//! drop. Mounting needs root (CI runs as root); elsewhere the tests that
//! need one skip and say why.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted (lazily) when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

/// Whether this process runs as root (`/proc/self` belongs to the
/// process's effective user).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`"3m"`, `"96k"`), or says why `what`
    /// is skipped and returns `None`.
    pub fn mount(size: &str, what: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!(
                "skipped: {what} needs a small tmpfs, and mounting one needs root (CI runs as root)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: {what}: mount -t tmpfs failed (no CAP_SYS_ADMIN here?)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only.
    pub fn remount_ro(&self) {
        let st = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount read-only");
    }

    /// Fills it with one file, to the last byte; returns the file's path
    /// (remove it to free the disk).
    pub fn fill(&self) -> PathBuf {
        fill(self.path())
    }
}

/// Fills the filesystem of `dir` with one file `filler`, to the last byte.
pub fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
    p
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}
