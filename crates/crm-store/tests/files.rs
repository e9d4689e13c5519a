//! The store's file on real filesystems: every reason a file cannot be
//! opened is named ([`Error::Unusable`]), the online backup is consistent
//! while another connection writes, and recordings left by a dead process
//! are linked with their end taken from the audio.
//!
//! Tests that need a small or read-only filesystem mount a tmpfs; they run
//! as root (CI does) and otherwise skip with a message saying why.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callbridge_crm_store::*;
use callbridge_test_support::tmpfs::{Tmpfs, is_root};
use common::t;

fn fault(r: Result<Store>) -> FileFault {
    match r {
        Err(Error::Unusable { fault }) => fault,
        other => panic!("wanted Error::Unusable, got {other:?}"),
    }
}

fn a_store_with_a_session(path: &Path) -> SessionId {
    let mut s = Store::open(path).unwrap();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    id
}

#[test]
fn a_file_that_is_not_a_database_is_named_with_the_way_out() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("crm.db");
    std::fs::write(&p, vec![0x5a; 8192]).unwrap();
    let f = fault(Store::open(&p));
    assert_eq!(f, FileFault::NotADatabase);
    let msg = Error::Unusable { fault: f }.to_string();
    assert!(
        msg.contains("not a database") && msg.contains("backup"),
        "{msg}"
    );
    assert_eq!(
        fault(Store::open_read_only(&p, Duration::from_millis(100))),
        FileFault::NotADatabase
    );
}

#[test]
fn a_database_with_damaged_pages_fails_its_integrity_check() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("crm.db");
    {
        let mut s = Store::open(&p).unwrap();
        for i in 0..200 {
            let id = SessionId::new_v4();
            s.create_session(&NewSession::inbound(id, t(i))).unwrap();
        }
        assert!(s.integrity_problems().unwrap().is_empty());
    }
    // Checkpointed on close; scribble over the middle of the file.
    let mut bytes = std::fs::read(&p).unwrap();
    assert!(bytes.len() > 16_384, "{} bytes", bytes.len());
    for b in &mut bytes[8192..12_288] {
        *b = 0xa5;
    }
    std::fs::write(&p, bytes).unwrap();
    match Store::open_read_only(&p, Duration::from_millis(100)) {
        Ok(s) => {
            let problems = s.integrity_problems();
            assert!(
                !matches!(&problems, Ok(v) if v.is_empty()),
                "damage must be found: {problems:?}"
            );
        }
        Err(e) => assert!(
            matches!(
                e.fault(),
                Some(FileFault::Damaged | FileFault::NotADatabase)
            ),
            "{e}"
        ),
    }
}

#[test]
fn a_schema_newer_than_this_build_names_both_versions() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("crm.db");
    a_store_with_a_session(&p);
    let c = rusqlite::Connection::open(&p).unwrap();
    c.pragma_update(None, "user_version", schema::SCHEMA_VERSION + 3)
        .unwrap();
    drop(c);
    let e = Store::open(&p).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::SchemaTooNew { .. }), "{e:?}");
    assert!(
        msg.contains(&(schema::SCHEMA_VERSION + 3).to_string())
            && msg.contains(&schema::SCHEMA_VERSION.to_string()),
        "{msg}"
    );
}

#[test]
fn a_missing_directory_is_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nowhere/crm.db");
    assert_eq!(fault(Store::open(&p)), FileFault::MissingDirectory);
    assert!(!p.exists());
}

#[test]
fn a_store_locked_by_another_connection_is_named_locked() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("crm.db");
    a_store_with_a_session(&p);
    let holder = rusqlite::Connection::open(&p).unwrap();
    holder
        .pragma_update(None, "locking_mode", "EXCLUSIVE")
        .unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE; COMMIT;").unwrap();
    let opts = OpenOptions {
        busy_timeout: Duration::from_millis(200),
        ..OpenOptions::default()
    };
    let f = fault(Store::open_with(&p, &opts));
    assert!(matches!(f, FileFault::Locked { .. }), "{f:?}");
    assert!(f.to_string().contains("locked by another process"), "{f}");
    drop(holder);
    Store::open_with(&p, &opts).expect("opens once the lock is gone");
}

#[test]
fn a_read_only_filesystem_is_named() {
    let Some(fs) = Tmpfs::mount("4m", "the read-only filesystem test") else {
        return;
    };
    let p = fs.path().join("crm.db");
    a_store_with_a_session(&p);
    fs.remount_ro();
    let f = fault(Store::open(&p));
    assert_eq!(f, FileFault::ReadOnlyFilesystem);
    assert!(f.to_string().starts_with("read-only filesystem"), "{f}");
    // A new file there too.
    assert_eq!(
        fault(Store::open(fs.path().join("new.db"))),
        FileFault::ReadOnlyFilesystem
    );
}

#[test]
fn a_full_disk_is_named() {
    let Some(fs) = Tmpfs::mount("64k", "the disk-full test") else {
        return;
    };
    // Fill the filesystem to the last byte.
    let filler = fs.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let e = Store::open(fs.path().join("crm.db")).unwrap_err();
    assert_eq!(e.fault(), Some(FileFault::DiskFull), "{e:?}");
    assert!(e.to_string().starts_with("disk full"), "{e}");
}

#[test]
fn permission_denied_is_named_for_another_user() {
    if is_root() {
        // Root reads and writes every file; the e2e test runs the agent
        // as `nobody` for this case.
        eprintln!("skipped: permissions do not apply to root");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("crm.db");
    a_store_with_a_session(&p);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let f = fault(Store::open(&p));
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(f, FileFault::PermissionDenied);
}

#[test]
fn backup_while_another_connection_writes_is_a_sound_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("crm.db");
    a_store_with_a_session(&p);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = Store::open(&p).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = SessionId::new_v4();
                s.create_session(&NewSession::inbound(id, t(1))).unwrap();
                s.append_turns(id, &[NewTurn::new(0, Speaker::Caller, "hello", 0)])
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let store = Store::open(&p).unwrap();
    let mut backups = Vec::new();
    for i in 0..3 {
        let dest = d.path().join(format!("backup-{i}.db"));
        backups.push(store.backup_to(&dest).unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    let mut last = 0;
    for b in &backups {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&b.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", b.path.display());
        let copy = Store::open_read_only(&b.path, Duration::from_secs(1)).unwrap();
        assert!(copy.integrity_problems().unwrap().is_empty());
        assert_eq!(copy.schema_version().unwrap(), schema::SCHEMA_VERSION);
        let (sessions, _) = copy.session_counts().unwrap();
        assert_eq!(sessions, b.sessions);
        assert!(sessions >= last, "later backups hold at least as much");
        last = sessions;
        assert!(
            !PathBuf::from(format!("{}-wal", b.path.display())).exists(),
            "a backup is one file"
        );
    }
    // The destination is never overwritten.
    assert!(matches!(
        store.backup_to(&backups[0].path),
        Err(Error::Io { .. })
    ));
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_dead_process_recording_is_linked_and_its_end_taken_from_the_audio() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("recordings");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Store::open(d.path().join("crm.db")).unwrap();
    // Answered one second after it was created, killed 12 s into the call.
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    s.set_state(id, SessionState::Active, t(1)).unwrap();
    let wav = rec.join(format!("{id}.wav"));
    std::fs::write(&wav, vec![0u8; 44 + 12 * 32_000]).unwrap();
    // Restarted an hour later.
    let r = s.recover_with(t(3600), |_| false).unwrap();
    assert_eq!(r.interrupted, vec![id]);
    let mut probed = Vec::new();
    let r = s
        .reconcile_with(&rec, true, t(3600), |p| {
            probed.push(p.to_path_buf());
            Some(RecordingFacts {
                bytes: 44 + 12 * 32_000,
                duration: Some(Duration::from_secs(12)),
                stale: true,
            })
        })
        .unwrap();
    assert_eq!(r.attached, vec![(id, wav.clone())]);
    assert_eq!(r.stale, vec![wav.clone()]);
    assert_eq!(r.ends_from_recording, vec![id]);
    assert!(r.orphans.is_empty());
    let ses = s.get_session(id).unwrap();
    assert_eq!(ses.recording_path.as_deref(), Some(wav.as_path()));
    assert_eq!(ses.ended_at, Some(t(12)));
    assert_eq!(ses.duration, Some(Duration::from_secs(11)));
    // Again: nothing left to do, the settled file is not even read.
    probed.clear();
    let again = s
        .reconcile_with(&rec, true, t(3700), |p| {
            probed.push(p.to_path_buf());
            None
        })
        .unwrap();
    assert!(again.attached.is_empty() && again.ends_from_recording.is_empty());
    assert_eq!(s.get_session(id).unwrap().ended_at, Some(t(12)));
}

#[test]
fn an_orphan_recording_is_imported_timed_by_its_audio_and_audited_first() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("recordings");
    std::fs::create_dir_all(&rec).unwrap();
    let mut s = Store::open(d.path().join("crm.db")).unwrap();
    let lost = SessionId::new_v4();
    let wav = rec.join(format!("{lost}.wav"));
    std::fs::write(&wav, vec![0u8; 44 + 4 * 32_000]).unwrap();
    let facts = |_: &Path| {
        Some(RecordingFacts {
            bytes: 44 + 4 * 32_000,
            duration: Some(Duration::from_secs(4)),
            stale: false,
        })
    };
    let audit = s.audit_recordings(&rec, facts).unwrap();
    assert_eq!(audit.orphans.len(), 1);
    assert!(audit.imported.is_empty());
    assert!(s.get_session(lost).is_err(), "auditing writes nothing");

    let r = s.reconcile_with(&rec, true, t(100), facts).unwrap();
    assert_eq!(r.imported, vec![lost]);
    let ses = s.get_session(lost).unwrap();
    assert_eq!(ses.transport, Transport::Unknown);
    assert_eq!(ses.end_reason, Some(EndReason::OrphanRecording));
    assert_eq!(ses.recording_path.as_deref(), Some(wav.as_path()));
    let (start, end) = (ses.created_at, ses.ended_at.unwrap());
    assert_eq!(end.duration_since(start).as_secs(), 4);
    let audit = s.audit_recordings(&rec, facts).unwrap();
    assert!(audit.orphans.is_empty() && audit.attached.is_empty());
}
