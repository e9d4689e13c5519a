//! The planning and the reading of the kernel's answers (any user), and
//! the kernel's own verdicts with ACLs (root only: it takes another
//! user's identity).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::AccessFlags;

use super::{Ask, Meaning, Need, Who, check_all, judge, plan};

/// A temporary directory others may enter (tempfile makes it 0700).
fn open_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The last ask of a plan (the one about the path itself).
fn last(asks: &[Ask]) -> &Ask {
    asks.last().unwrap()
}

#[test]
fn the_plan_asks_every_ancestor_from_the_root_down_then_the_path() {
    let d = open_dir();
    let rec = d.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    let asks = plan(&rec, Need::Dir).unwrap();
    assert_eq!(asks[0].path, Path::new("/"));
    assert!(
        asks[..asks.len() - 1]
            .iter()
            .all(|a| a.mode == AccessFlags::X_OK && a.meaning == Meaning::Enter)
    );
    assert_eq!(asks[asks.len() - 2].path, d.path());
    let a = last(&asks);
    assert_eq!(a.path, rec);
    assert_eq!(a.mode, AccessFlags::W_OK | AccessFlags::X_OK);
    assert_eq!(a.meaning, Meaning::WriteIn);
    // Missing, deeper: created from the nearest existing directory.
    let a = plan(&rec.join("a/b"), Need::Dir).unwrap();
    assert_eq!(last(&a).path, rec);
    assert_eq!(last(&a).meaning, Meaning::CreateIn);
}

#[test]
fn the_plan_for_a_database_asks_the_file_and_its_directory() {
    let d = open_dir();
    let db = d.path().join("crm.db");
    std::fs::write(&db, b"").unwrap();
    let asks = plan(&db, Need::ReadWrite).unwrap();
    let n = asks.len();
    assert_eq!(asks[n - 2].path, db);
    assert_eq!(asks[n - 2].mode, AccessFlags::R_OK | AccessFlags::W_OK);
    assert_eq!(asks[n - 1].path, d.path());
    assert_eq!(asks[n - 1].meaning, Meaning::DatabaseDir);
    let clip = plan(&db, Need::Read).unwrap();
    assert_eq!(last(&clip).mode, AccessFlags::R_OK);
}

#[test]
fn what_exists_can_say_no_before_the_kernel_is_asked() {
    let d = open_dir();
    let f = d.path().join("clip.wav");
    std::fs::write(&f, b"x").unwrap();
    let e = plan(&f, Need::Dir).unwrap_err();
    assert!(e.contains("not a directory"), "{e}");
    let e = plan(d.path(), Need::ReadWrite).unwrap_err();
    assert!(e.contains("a directory, not a file"), "{e}");
    let e = plan(&d.path().join("missing.wav"), Need::Read).unwrap_err();
    assert!(e.contains("no such file"), "{e}");
    let e = plan(&f.join("below"), Need::Dir).unwrap_err();
    assert!(e.contains("Not a directory"), "{e}");
}

#[test]
fn each_refusal_reads_as_what_it_stops() {
    let ask = |p: &str, meaning| Ask {
        path: p.into(),
        mode: AccessFlags::X_OK,
        meaning,
    };
    let enter = ask("/srv", Meaning::Enter);
    let cases = [
        (Meaning::Read, "cannot read it"),
        (Meaning::WriteIn, "cannot write in it"),
        (Meaning::ReadWrite, "cannot read and write it"),
        (
            Meaning::CreateIn,
            "cannot create it: /srv/x is not writable",
        ),
        (Meaning::DatabaseDir, "-wal and -shm"),
    ];
    for (meaning, says) in cases {
        let asks = [enter.clone(), ask("/srv/x", meaning)];
        assert_eq!(judge(&asks, &[Ok(()), Ok(())]), Ok(()));
        for errno in [Errno::EACCES, Errno::EPERM] {
            let e = judge(&asks, &[Ok(()), Err(errno)]).unwrap_err();
            assert!(e.contains(says), "{meaning:?}: {e}");
        }
        // The first refusal wins: the ancestor that stops the way.
        let e = judge(&asks, &[Err(Errno::EACCES), Err(Errno::EACCES)]).unwrap_err();
        assert_eq!(e, "cannot enter /srv");
        // A read-only mount, whatever the ask (the kernel says EROFS
        // only for writes, root's included).
        let e = judge(&asks, &[Ok(()), Err(Errno::EROFS)]).unwrap_err();
        assert_eq!(
            e,
            "cannot write there: /srv/x is on a read-only file system"
        );
        // Anything else is reported as it is.
        let e = judge(&asks, &[Ok(()), Err(Errno::ELOOP)]).unwrap_err();
        assert!(e.starts_with("cannot be checked: /srv/x: "), "{e}");
    }
    assert!(
        judge(&[enter], &[]).is_err(),
        "missing answers are no answer"
    );
}

#[test]
fn asking_as_oneself_needs_no_child() {
    let d = tempfile::tempdir().unwrap();
    let me = Who::current();
    let got = check_all(
        &me,
        vec![(&d.path().join("rec"), Need::Dir), (d.path(), Need::Dir)],
    )
    .unwrap();
    assert_eq!(got, vec![Ok(()), Ok(())]);
}

/// Root, `setfacl` and the `nobody` user, or why the ACL tests cannot run.
fn acl_setup() -> Result<Who, &'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: taking another user's identity needs root");
    }
    let found = std::process::Command::new("setfacl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err("setfacl is missing: apt-get install acl (scripts/test does)");
    }
    Who::named("nobody").map_err(|_| "no user nobody")
}

fn setfacl(spec: &str, path: &Path) {
    let out = std::process::Command::new("setfacl")
        .args(["-m", spec])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setfacl -m {spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_acl_granting_what_the_bits_deny_is_reported_ok() {
    let nobody = match acl_setup() {
        Ok(w) => w,
        Err(why) => {
            return eprintln!("SKIPPED an_acl_granting_what_the_bits_deny_is_reported_ok: {why}");
        }
    };
    let d = open_dir();
    let rec = d.path().join("recordings");
    std::fs::create_dir(&rec).unwrap();
    set_mode(&rec, 0o700);
    let db = d.path().join("crm.db");
    std::fs::write(&db, b"").unwrap();
    set_mode(&db, 0o600);
    // Without the ACL the kernel refuses (bits: root's, 0700/0600).
    let got = check_all(&nobody, vec![(&rec, Need::Dir), (&db, Need::ReadWrite)]).unwrap();
    assert_eq!(got[0], Err("cannot write in it".into()));
    assert_eq!(got[1], Err("cannot read and write it".into()));
    setfacl("u:nobody:rwx", &rec);
    setfacl("u:nobody:rw", &db);
    setfacl("u:nobody:rwx", d.path());
    let got = check_all(&nobody, vec![(&rec, Need::Dir), (&db, Need::ReadWrite)]).unwrap();
    assert_eq!(got, vec![Ok(()), Ok(())]);
}

#[test]
fn an_acl_mask_denying_what_the_bits_allow_is_reported() {
    let nobody = match acl_setup() {
        Ok(w) => w,
        Err(why) => {
            return eprintln!("SKIPPED an_acl_mask_denying_what_the_bits_allow_is_reported: {why}");
        }
    };
    let d = open_dir();
    let rec = d.path().join("recordings");
    std::fs::create_dir(&rec).unwrap();
    set_mode(&rec, 0o777);
    // Others' bits allow everything, and nobody can write there...
    assert_eq!(
        check_all(&nobody, vec![(&rec, Need::Dir)]).unwrap(),
        vec![Ok(())]
    );
    // ...until a named entry for nobody, cut by the mask, decides.
    setfacl("u:nobody:rwx,m::r-x", &rec);
    let got = check_all(
        &nobody,
        vec![(&rec, Need::Dir), (&rec.join("new"), Need::Dir)],
    )
    .unwrap();
    assert_eq!(got[0], Err("cannot write in it".into()));
    assert!(
        got[1].as_ref().unwrap_err().contains("cannot create it"),
        "{got:?}"
    );
    // And one the user cannot enter is named.
    let inner = rec.join("inner");
    std::fs::create_dir(&inner).unwrap();
    set_mode(&inner, 0o777);
    setfacl("u:nobody:---", &rec);
    let got = check_all(&nobody, vec![(&inner, Need::Dir)]).unwrap();
    assert_eq!(got[0], Err(format!("cannot enter {}", rec.display())));
}

#[test]
fn root_checking_for_itself_is_refused_only_by_the_mount() {
    if !nix::unistd::geteuid().is_root() {
        return eprintln!(
            "SKIPPED root_checking_for_itself_is_refused_only_by_the_mount: not root"
        );
    }
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o000);
    let got = check_all(&Who::current(), vec![(&d.path().join("x"), Need::Dir)]).unwrap();
    set_mode(d.path(), 0o700);
    assert_eq!(got, vec![Ok(())]);
}
