//! `check-config`'s file-system checks: can the user the agent will run
//! as create and write its directories (recordings, the store's journal
//! spool, the SQLite database's directory), write the database file, and
//! read the files it reads (the fallback clip)? By default that user is
//! the one running `check-config` (the systemd unit runs it as the
//! service's user in `ExecStartPre`); `--user NAME` checks for another
//! (root asking on the service user's behalf).
//!
//! The kernel answers, not a reading of the permission bits: each path
//! and mode is put to `faccessat(2)` with `AT_EACCESS`, so ACLs, the ACL
//! mask, read-only mounts (`EROFS` for a write, root included; e.g. a
//! container's read-only bind or `ProtectSystem=strict` without a
//! `ReadWritePaths=`) and whatever else the kernel weighs count as they
//! will when the agent runs. Run as that user, the process asks itself;
//! run as root for another user, a child process takes the user's uid,
//! gid and supplementary groups and asks for it ([`kernel`]). Anyone
//! else cannot take another user's identity, and `--user` is refused.
//!
//! This module decides *what* to ask (from what exists: the nearest
//! existing directory of a missing path, whether a path is a file or a
//! directory) and what each answer means; [`kernel`] asks.

mod kernel;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::AccessFlags;

use crate::settings::Settings;

/// A user: ids, groups and a name for messages.
#[derive(Debug, Clone)]
pub struct Who {
    uid: u32,
    gid: u32,
    /// Supplementary groups (the primary one may be among them).
    groups: Vec<u32>,
    name: String,
}

impl Who {
    /// The user running this process (effective ids).
    pub fn current() -> Who {
        let uid = nix::unistd::geteuid();
        let groups: Vec<u32> = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| u.name);
        Who {
            uid: uid.as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups,
            name,
        }
    }

    /// The user called `name`, with its primary and supplementary groups.
    pub fn named(name: &str) -> Result<Who, String> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| format!("--user {name}: cannot look the user up: {e}"))?
            .ok_or_else(|| format!("--user {name}: no such user"))?;
        let cname =
            std::ffi::CString::new(name).map_err(|_| format!("--user {name}: not a user name"))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| vec![user.gid.as_raw()]);
        Ok(Who {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
            name: user.name,
        })
    }
}

/// What one path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A directory to write in, created if missing.
    Dir,
    /// A file to read and write, created if missing (its directory must
    /// then be writable).
    ReadWrite,
    /// A file to read.
    Read,
}

/// One question for the kernel and what a refusal means.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ask {
    path: PathBuf,
    mode: AccessFlags,
    meaning: Meaning,
}

/// What a refused [`Ask`] tells the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Search (`X_OK`) on an ancestor directory.
    Enter,
    /// Read (`R_OK`) a file.
    Read,
    /// Write in (`W_OK | X_OK`) an existing directory.
    WriteIn,
    /// Read and write (`R_OK | W_OK`) an existing file.
    ReadWrite,
    /// Create the missing path in this, its nearest existing directory.
    CreateIn,
    /// Create the database's `-wal` and `-shm` files in its directory.
    DatabaseDir,
}

/// Every problem the user `who` would meet with `settings`' paths, one
/// message per problem (empty: none); `Err` when the kernel cannot be
/// asked on `who`'s behalf at all (not root, or the child failed).
pub fn problems(settings: &Settings, who: &Who) -> Result<Vec<String>, String> {
    let mut wanted: Vec<(&str, PathBuf, Need)> = vec![
        (
            "store.recordings_dir",
            settings.recordings_dir.clone(),
            Need::Dir,
        ),
        ("store.spool_dir", settings.spool_dir.clone(), Need::Dir),
    ];
    if let callbridge_crm_store::StoreUrl::Sqlite(db) = &settings.store_url {
        wanted.push(("store.database", db.clone(), Need::ReadWrite));
    }
    if let Some(clip) = &settings.fallback_clip {
        wanted.push(("calls.fallback_clip", clip.clone(), Need::Read));
    }
    let checks: Vec<(String, Result<(), String>)> = check_all(
        who,
        wanted.iter().map(|(_, p, n)| (p.as_path(), *n)).collect(),
    )?
    .into_iter()
    .zip(&wanted)
    .map(|(r, (key, path, _))| (format!("{key} {}", path.display()), r))
    .collect();
    Ok(checks
        .into_iter()
        .filter_map(|(what, r)| {
            r.err()
                .map(|why| format!("{what}: user {} {why}", who.name))
        })
        .collect())
}

/// For each `(path, need)`: `Err(why)` when `who` cannot use it so.
fn check_all(who: &Who, wanted: Vec<(&Path, Need)>) -> Result<Vec<Result<(), String>>, String> {
    let plans: Vec<Result<Vec<Ask>, String>> = wanted
        .iter()
        .map(|(path, need)| plan(path, *need))
        .collect();
    let questions: Vec<(CString, AccessFlags)> = plans
        .iter()
        .flat_map(|p| p.iter().flatten())
        .map(|a| {
            CString::new(a.path.as_os_str().as_bytes())
                .map(|c| (c, a.mode))
                .map_err(|_| format!("{}: a path with a NUL byte", a.path.display()))
        })
        .collect::<Result<_, _>>()?;
    let mut answers = kernel::ask(who, &questions)?.into_iter();
    Ok(plans
        .into_iter()
        .map(|p| {
            let asks = p?;
            let mine: Vec<Result<(), Errno>> = answers.by_ref().take(asks.len()).collect();
            judge(&asks, &mine)
        })
        .collect())
}

/// What to ask the kernel about `path` needed as `need`, in order (the
/// first refusal is the one reported); `Err` when what exists already
/// says no (a file where a directory is wanted, nothing to read).
fn plan(path: &Path, need: Need) -> Result<Vec<Ask>, String> {
    let abs = std::path::absolute(path).map_err(|e| format!("cannot resolve the path: {e}"))?;
    // The nearest ancestor (or the path itself) that exists.
    let mut existing = abs.as_path();
    let meta = loop {
        match std::fs::metadata(existing) {
            Ok(m) => break m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing.parent() {
                Some(p) => existing = p,
                None => return Err("cannot reach any directory of it".into()),
            },
            Err(e) => return Err(format!("cannot look at {}: {e}", existing.display())),
        }
    };
    let ask = |path: &Path, mode, meaning| Ask {
        path: path.to_path_buf(),
        mode,
        meaning,
    };
    // Every ancestor of what exists must be searchable: asked from the
    // root down, so the first refusal names the directory that stops.
    let mut asks: Vec<Ask> = existing
        .ancestors()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|dir| ask(dir, AccessFlags::X_OK, Meaning::Enter))
        .collect();
    let rw = AccessFlags::R_OK | AccessFlags::W_OK;
    let wx = AccessFlags::W_OK | AccessFlags::X_OK;
    let exists = existing == abs;
    match (need, exists) {
        (Need::Read, false) => return Err("finds no such file".into()),
        (Need::Read, true) => asks.push(ask(existing, AccessFlags::R_OK, Meaning::Read)),
        (Need::Dir, true) if !meta.is_dir() => {
            return Err("finds a file, not a directory".into());
        }
        (Need::Dir, true) => asks.push(ask(existing, wx, Meaning::WriteIn)),
        (Need::ReadWrite, true) if meta.is_dir() => {
            return Err("finds a directory, not a file".into());
        }
        (Need::ReadWrite, true) => {
            asks.push(ask(existing, rw, Meaning::ReadWrite));
            // SQLite's -wal and -shm files are created beside it.
            if let Some(dir) = abs.parent() {
                asks.push(ask(dir, wx, Meaning::DatabaseDir));
            }
        }
        // Missing: it is created in the nearest existing directory.
        (Need::Dir | Need::ReadWrite, false) if !meta.is_dir() => {
            return Err(format!(
                "cannot create it: {} is not a directory",
                existing.display()
            ));
        }
        (Need::Dir | Need::ReadWrite, false) => asks.push(ask(existing, wx, Meaning::CreateIn)),
    }
    Ok(asks)
}

/// The verdict on one path from the kernel's answers to its asks (in
/// the same order): the first refusal, in words.
fn judge(asks: &[Ask], answers: &[Result<(), Errno>]) -> Result<(), String> {
    if answers.len() != asks.len() {
        return Err("could not be checked (the kernel's answers were cut short)".into());
    }
    for (a, answer) in asks.iter().zip(answers) {
        let Err(errno) = answer else { continue };
        let p = a.path.display();
        return Err(match (errno, a.meaning) {
            (Errno::EROFS, _) => {
                format!("cannot write there: {p} is on a read-only file system")
            }
            (Errno::EACCES | Errno::EPERM, Meaning::Enter) => format!("cannot enter {p}"),
            (Errno::EACCES | Errno::EPERM, Meaning::Read) => "cannot read it".into(),
            (Errno::EACCES | Errno::EPERM, Meaning::WriteIn) => "cannot write in it".into(),
            (Errno::EACCES | Errno::EPERM, Meaning::ReadWrite) => {
                "cannot read and write it".into()
            }
            (Errno::EACCES | Errno::EPERM, Meaning::CreateIn) => {
                format!("cannot create it: {p} is not writable for that user")
            }
            (Errno::EACCES | Errno::EPERM, Meaning::DatabaseDir) => {
                "cannot create the database's -wal and -shm files beside it (its directory is not writable)".into()
            }
            (e, _) => format!("cannot be checked: {p}: {}", e.desc()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
