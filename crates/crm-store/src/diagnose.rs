//! Why a database file cannot be opened, in the operator's terms.
//!
//! SQLite reports an unusable file with a handful of result codes
//! (`SQLITE_CANTOPEN`, `SQLITE_READONLY`, `SQLITE_FULL`, `SQLITE_NOTADB`,
//! `SQLITE_CORRUPT`, `SQLITE_BUSY`), several of which hide the OS's
//! reason: a read-only mount, a file owned by another user and a missing
//! directory all come back as "unable to open" or "readonly database".
//! After such a failure (never on the happy path) [`classify_open`] asks
//! the OS directly: it opens the file for writing, creates and removes a
//! probe file beside it (SQLite needs to create `-wal` and `-shm` there),
//! and on Linux reads `/proc/locks` for the pid holding a lock on the
//! file. The result is an [`Error::Unusable`] naming the [`FileFault`].

use std::fs::OpenOptions;
use std::path::Path;

use crate::db::DbErr;
use crate::error::{DbError, Error, FileFault, fault_of_code, fault_of_io};

/// Turns a failure of opening (and migrating) the store at `path` into
/// [`Error::Unusable`] when it is a fault of the file or its place.
pub(crate) fn classify_open(path: &Path, e: Error) -> Error {
    let by_code = match &e {
        Error::Busy => Some(FileFault::Locked { holder: None }),
        Error::Database(DbError(DbErr::Sqlite(inner))) => fault_of_code(inner),
        Error::Io { source, .. } => fault_of_io(source),
        _ => return e,
    };
    let fault = match by_code {
        Some(FileFault::Locked { .. }) => FileFault::Locked {
            holder: lock_holder(path),
        },
        // The OS knows better than "read-only" or "cannot open".
        Some(FileFault::ReadOnly | FileFault::CannotOpen | FileFault::PermissionDenied) | None => {
            match (ask_the_os(path), by_code) {
                (Some(f), _) => f,
                (None, Some(f)) => f,
                (None, None) => return e,
            }
        }
        Some(f) => f,
    };
    Error::Unusable { fault }
}

/// What the OS says when asked to write the file and its directory.
fn ask_the_os(path: &Path) -> Option<FileFault> {
    if is_memory(path) {
        return None;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Some(FileFault::MissingDirectory);
    }
    if path.exists()
        && let Err(e) = OpenOptions::new().read(true).write(true).open(path)
    {
        return fault_of_io(&e);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let probe = dir.join(format!(".{name}.probe-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => fault_of_io(&e),
    }
}

fn is_memory(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s == ":memory:" || s.starts_with("file:")
}

/// The pid holding a POSIX lock on the file or its `-shm` (Linux), if any
/// other than this process.
fn lock_holder(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let mut inodes = Vec::new();
    for p in [
        path.to_path_buf(),
        std::path::PathBuf::from(format!("{}-shm", path.display())),
    ] {
        if let Ok(m) = std::fs::metadata(&p) {
            inodes.push(m.ino());
        }
    }
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, &inodes, std::process::id())
}

/// Parses `/proc/locks` lines (`1: POSIX ADVISORY WRITE 1234 08:01:5678 0 EOF`)
/// for a lock on one of `inodes` held by a pid other than `me`.
fn holder_in(locks: &str, inodes: &[u64], me: u32) -> Option<u32> {
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // A blocked waiter's line has "->" after the number.
        let f = if f.get(1) == Some(&"->") {
            &f[1..]
        } else {
            &f[..]
        };
        let pid: u32 = f.get(4)?.parse().ok()?;
        let inode: u64 = f.get(5)?.rsplit(':').next()?.parse().ok()?;
        (pid != me && inodes.contains(&inode)).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_is_read_from_proc_locks_lines() {
        let locks = "1: POSIX  ADVISORY  READ  4242 fd:01:777 128 128\n\
                     2: POSIX  ADVISORY  WRITE 999 08:01:123 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 17 08:01:555 0 EOF\n";
        assert_eq!(holder_in(locks, &[123], 1), Some(999));
        assert_eq!(holder_in(locks, &[777], 1), Some(4242));
        assert_eq!(holder_in(locks, &[777], 4242), None, "our own lock");
        assert_eq!(holder_in(locks, &[1], 1), None);
        assert_eq!(holder_in("garbage\n\n1: x", &[1], 1), None);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/crm.db");
        assert_eq!(ask_the_os(&p), Some(FileFault::MissingDirectory));
        assert_eq!(ask_the_os(&d.path().join("crm.db")), None);
        assert!(
            std::fs::read_dir(d.path()).unwrap().next().is_none(),
            "the probe file is removed"
        );
    }
}
