//! Private files: how callbridge creates every file and directory it
//! writes (the CRM database, call recordings, journals, spool and
//! recordings directories), so that call data is never left readable by
//! other local users.
//!
//! One policy, [`Access`]: owner only (files `0600`, directories `0700`,
//! the default) or group-readable (`0640` / `0750`, for a backup or
//! monitoring group). The mode is set on the open file descriptor right
//! after creation, so it is exact whatever the process umask; the file is
//! created with that mode in the first place, so it is never readable by
//! others in between. [`tighten`] takes an existing path down to the policy
//! (removing bits, never adding any), for files an older build left `0644`.
//!
//! Every crate that creates files takes an [`Access`] from its
//! configuration and calls [`create_file`], [`create_new_file`] or
//! [`create_dir_all`] instead of `File::create` / `fs::create_dir_all`.
//! On systems without Unix permissions the functions create the files and
//! set nothing.
#![deny(missing_docs)]

use std::fs::File;
use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Who may read the files callbridge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Access {
    /// The owner only: files `0600`, directories `0700`.
    #[default]
    Owner,
    /// The owner, and the group read-only: files `0640`, directories `0750`.
    Group,
}

impl Access {
    /// [`Access::Group`] when `yes` (the `files.group_readable` setting),
    /// else [`Access::Owner`].
    #[must_use]
    pub const fn group_readable(yes: bool) -> Access {
        if yes { Access::Group } else { Access::Owner }
    }

    /// The mode of a file.
    #[must_use]
    pub const fn file_mode(self) -> u32 {
        match self {
            Access::Owner => 0o600,
            Access::Group => 0o640,
        }
    }

    /// The mode of a directory.
    #[must_use]
    pub const fn dir_mode(self) -> u32 {
        match self {
            Access::Owner => 0o700,
            Access::Group => 0o750,
        }
    }
}

/// Sets `file`'s permission bits to exactly `mode` (through its
/// descriptor, so the umask does not apply).
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

fn options(access: Access) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    o.mode(access.file_mode());
    #[cfg(not(unix))]
    let _ = access;
    o
}

/// Creates (or truncates) `path` for writing, with `access`'s file mode.
/// A file that existed keeps its inode but gets the mode too; a path that
/// is not a regular file (a device, a pipe) keeps its mode.
///
/// # Errors
/// The operating system's error when the file cannot be opened or its
/// mode cannot be set.
pub fn create_file(path: &Path, access: Access) -> io::Result<File> {
    let f = options(access).create(true).truncate(true).open(path)?;
    // A device or pipe (a test's /dev/full) is written, never re-moded.
    if f.metadata()?.is_file() {
        set_mode(&f, access.file_mode())?;
    }
    Ok(f)
}

/// Creates `path` for writing with `access`'s file mode if it does not
/// exist; `Ok(None)` (and nothing touched) when it does.
///
/// # Errors
/// The operating system's error when the file cannot be created (other
/// than because it exists) or its mode cannot be set.
pub fn create_new_file(path: &Path, access: Access) -> io::Result<Option<File>> {
    match options(access).create_new(true).open(path) {
        Ok(f) => {
            set_mode(&f, access.file_mode())?;
            Ok(Some(f))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the directory `path` and its missing parents with `access`'s
/// directory mode. The directory itself ends with exactly that mode when
/// it is created here; one that already existed is [`tighten`]ed.
///
/// # Errors
/// The operating system's error when a directory cannot be created or
/// its mode cannot be read or set.
pub fn create_dir_all(path: &Path, access: Access) -> io::Result<()> {
    let existed = path.is_dir();
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(access.dir_mode());
    b.create(path)?;
    if existed {
        tighten(path, access)?;
    } else {
        #[cfg(unix)]
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.dir_mode()))?;
    }
    Ok(())
}

/// A permission change made by [`tighten`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tightened {
    /// The mode before (permission bits only).
    pub from: u32,
    /// The mode after.
    pub to: u32,
}

/// Removes from an existing file or directory every permission bit that
/// `access` does not allow (group write, anything for others, ...);
/// never adds a bit. `Ok(None)` when nothing had to change or `path`
/// does not exist. The set-group-id and sticky bits of a directory stay.
///
/// # Errors
/// The operating system's error when the mode cannot be read or set
/// (for example a file owned by another user).
pub fn tighten(path: &Path, access: Access) -> io::Result<Option<Tightened>> {
    #[cfg(unix)]
    {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let allowed = if meta.is_dir() {
            access.dir_mode() | 0o3000
        } else {
            access.file_mode()
        };
        let from = meta.permissions().mode() & 0o7777;
        let to = from & allowed;
        if to == from {
            return Ok(None);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(to))?;
        Ok(Some(Tightened { from, to }))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, access);
        Ok(None)
    }
}

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_are_created_with_the_exact_mode_of_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        drop(create_file(&p, Access::Owner).unwrap());
        assert_eq!(mode(&p), 0o600);
        // An existing file (an older build's 0644) is truncated and fixed.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(create_file(&p, Access::Group).unwrap());
        assert_eq!(mode(&p), 0o640);
    }

    #[test]
    fn create_new_file_never_touches_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crm.db");
        assert!(create_new_file(&p, Access::Owner).unwrap().is_some());
        assert_eq!(mode(&p), 0o600);
        std::fs::write(&p, b"data").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(create_new_file(&p, Access::Owner).unwrap().is_none());
        assert_eq!(
            (mode(&p), std::fs::read(&p).unwrap()),
            (0o640, b"data".to_vec())
        );
    }

    #[test]
    fn directories_get_the_policy_and_existing_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("var/recordings");
        create_dir_all(&p, Access::Owner).unwrap();
        assert_eq!((mode(&p), mode(p.parent().unwrap()) & 0o077), (0o700, 0));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o775)).unwrap();
        create_dir_all(&p, Access::Group).unwrap();
        assert_eq!(mode(&p), 0o750);
    }

    #[test]
    fn tighten_removes_bits_and_never_adds_any() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(
            tighten(&p, Access::Owner).unwrap(),
            Some(Tightened {
                from: 0o664,
                to: 0o600
            })
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(tighten(&p, Access::Group).unwrap(), None);
        assert_eq!(mode(&p), 0o400);
        assert_eq!(
            tighten(&dir.path().join("none"), Access::Owner).unwrap(),
            None
        );
    }
}
