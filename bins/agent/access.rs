//! `check-config`'s file-system checks: can the user the agent will run
//! as create and write its directories (recordings, the store's journal
//! spool, the SQLite database's directory), write the database file, and
//! read the files it reads (the fallback clip)? By default that user is
//! the one running `check-config` (the systemd unit runs it as the
//! service's user in `ExecStartPre`); `--user NAME` checks for another
//! (root asking on the service user's behalf).
//!
//! The answer comes from the permission bits, owner and group of each
//! path and its ancestors, against the user's uid and groups (POSIX
//! rules; uid 0 may do anything), and from the mount: a path to write
//! (the directories, the database) on a file system mounted read-only
//! (`statvfs` `ST_RDONLY`, e.g. a container's read-only bind or
//! `ProtectSystem=strict` without a `ReadWritePaths=`) is reported for
//! every user, root included. ACLs are not seen: the agent's own start
//! still reports those (exit 2).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::settings::Settings;

const R: u32 = 0o4;
const W: u32 = 0o2;
const X: u32 = 0o1;

/// A user: id, groups and a name for messages.
#[derive(Debug, Clone)]
pub struct Who {
    uid: u32,
    gids: Vec<u32>,
    name: String,
}

impl Who {
    /// The user running this process (effective ids).
    pub fn current() -> Who {
        let uid = nix::unistd::geteuid();
        let mut gids: Vec<u32> = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        gids.push(nix::unistd::getegid().as_raw());
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| u.name);
        Who {
            uid: uid.as_raw(),
            gids,
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
        let gids = nix::unistd::getgrouplist(&cname, user.gid)
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| vec![user.gid.as_raw()]);
        Ok(Who {
            uid: user.uid.as_raw(),
            gids,
            name: user.name,
        })
    }

    /// Whether this user has every permission of `want` (R/W/X bits) on a
    /// file with `meta`.
    fn may(&self, meta: &std::fs::Metadata, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let mode = meta.mode();
        let bits = if meta.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&meta.gid()) {
            mode >> 3
        } else {
            mode
        } & 0o7;
        bits & want == want
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

/// Every problem the user `who` would meet with `settings`' paths, one
/// message per problem (empty: none).
pub fn problems(settings: &Settings, who: &Who) -> Vec<String> {
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
    wanted
        .into_iter()
        .filter_map(|(key, path, need)| {
            check(who, &path, need)
                .err()
                .map(|why| format!("{key} {}: user {} {why}", path.display(), who.name))
        })
        .collect()
}

/// Whether the file system holding a path is mounted read-only; `Err`
/// when that cannot be told (then the permission bits decide alone).
type ReadOnlyProbe = dyn Fn(&Path) -> std::io::Result<bool>;

/// The real probe: `statvfs(2)`'s `ST_RDONLY` flag.
fn statvfs_read_only(path: &Path) -> std::io::Result<bool> {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .map_err(std::io::Error::from)
}

/// `Err(why)` when `who` cannot use `path` as `need` says.
fn check(who: &Who, path: &Path, need: Need) -> Result<(), String> {
    check_with(who, path, need, &statvfs_read_only)
}

/// [`check`] with the read-only probe given (tests inject one: a
/// read-only bind mount needs privileges a test does not have).
fn check_with(who: &Who, path: &Path, need: Need, read_only: &ReadOnlyProbe) -> Result<(), String> {
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
    // Every ancestor of what exists must be searchable.
    for dir in existing.ancestors().skip(1) {
        if let Ok(m) = std::fs::metadata(dir)
            && !who.may(&m, X)
        {
            return Err(format!("cannot enter {}", dir.display()));
        }
    }
    // Writing needs a writable mount, whoever writes (root too). The
    // nearest existing directory or the file itself is on the mount the
    // path is created or written on.
    if need != Need::Read && read_only(existing).unwrap_or(false) {
        return Err(format!(
            "cannot write there: {} is on a read-only file system",
            existing.display()
        ));
    }
    let exists = existing == abs;
    match (need, exists) {
        (Need::Read, false) => Err("finds no such file".into()),
        (Need::Read, true) if !who.may(&meta, R) => Err("cannot read it".into()),
        (Need::Dir, true) if !meta.is_dir() => Err("finds a file, not a directory".into()),
        (Need::Dir, true) if !who.may(&meta, W | X) => Err("cannot write in it".into()),
        (Need::ReadWrite, true) if meta.is_dir() => Err("finds a directory, not a file".into()),
        (Need::ReadWrite, true) if !who.may(&meta, R | W) => Err("cannot read and write it".into()),
        // Missing: it is created in the nearest existing directory.
        (Need::Dir | Need::ReadWrite, false) if !meta.is_dir() => {
            Err(format!("cannot create it: {} is not a directory", existing.display()))
        }
        (Need::Dir | Need::ReadWrite, false) if !who.may(&meta, W | X) => Err(format!(
            "cannot create it: {} is not writable for that user",
            existing.display()
        )),
        // A new database also needs its directory writable (SQLite's
        // -wal and -shm files beside it).
        (Need::ReadWrite, true) => match abs.parent().map(std::fs::metadata) {
            Some(Ok(dir)) if !who.may(&dir, W | X) => Err(
                "cannot create the database's -wal and -shm files beside it (its directory is not writable)"
                    .into(),
            ),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use std::path::Path;

    use super::{Need, Who, check, check_with, statvfs_read_only};

    /// A user that owns nothing and is in no group of the files.
    fn stranger() -> Who {
        Who {
            uid: 4_000_000,
            gids: vec![4_000_000],
            name: "stranger".into(),
        }
    }

    /// A temporary directory others may enter (tempfile makes it 0700).
    fn open_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn a_directory_the_user_cannot_create_or_write_is_reported() {
        let d = open_dir();
        let base = d.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rec = base.join("recordings");
        // Mode 0755: others may enter but not create.
        let e = check(&stranger(), &rec, Need::Dir).unwrap_err();
        assert!(e.contains("cannot create it"), "{e}");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(check(&stranger(), &rec, Need::Dir), Ok(()));
        std::fs::create_dir(&rec).unwrap();
        std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = check(&stranger(), &rec, Need::Dir).unwrap_err();
        assert!(e.contains("cannot write in it"), "{e}");
        // A deeper missing path is created from the nearest existing one.
        assert!(check(&stranger(), &rec.join("a/b"), Need::Dir).is_err());
    }

    #[test]
    fn files_need_their_bits_and_a_file_is_not_a_directory() {
        let d = open_dir();
        let f = d.path().join("clip.wav");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = check(&stranger(), &f, Need::Read).unwrap_err();
        assert!(e.contains("cannot read it"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check(&stranger(), &f, Need::Read), Ok(()));
        let e = check(&stranger(), &f, Need::Dir).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let e = check(&stranger(), &d.path().join("missing.wav"), Need::Read).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn root_may_do_anything() {
        let root = Who {
            uid: 0,
            gids: vec![0],
            name: "root".into(),
        };
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o000)).unwrap();
        assert_eq!(check(&root, &d.path().join("x"), Need::Dir), Ok(()));
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// A probe that says every path under `root` is on a read-only mount.
    fn read_only_under(root: &Path) -> impl Fn(&Path) -> std::io::Result<bool> + use<> {
        let root = root.to_path_buf();
        move |p: &Path| Ok(p.starts_with(&root))
    }

    #[test]
    fn a_read_only_mount_is_reported_for_writes_even_for_root() {
        let root = Who {
            uid: 0,
            gids: vec![0],
            name: "root".into(),
        };
        let d = open_dir();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let ro = read_only_under(d.path());
        let db = d.path().join("crm.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
        for who in [root, stranger()] {
            // A missing directory: created on the read-only mount.
            let e = check_with(&who, &d.path().join("rec"), Need::Dir, &ro).unwrap_err();
            assert!(e.contains("read-only file system"), "{e}");
            assert!(e.contains(&d.path().display().to_string()), "{e}");
            // An existing database file, its bits allowing everything.
            let e = check_with(&who, &db, Need::ReadWrite, &ro).unwrap_err();
            assert!(e.contains("read-only file system"), "{e}");
            // Reading from a read-only mount is fine.
            assert_eq!(check_with(&who, &db, Need::Read, &ro), Ok(()));
        }
        // A probe that cannot tell leaves the decision to the bits.
        let unknown = |_: &Path| Err(std::io::Error::other("statvfs failed"));
        assert_eq!(
            check_with(&stranger(), &d.path().join("rec"), Need::Dir, &unknown),
            Ok(())
        );
        // A writable mount: the bits decide as before.
        let rw = |_: &Path| Ok(false);
        assert_eq!(check_with(&stranger(), &db, Need::ReadWrite, &rw), Ok(()));
    }

    #[test]
    fn the_real_probe_sees_a_writable_temporary_directory() {
        let d = tempfile::tempdir().unwrap();
        assert!(!statvfs_read_only(d.path()).unwrap());
    }
}
