//! End-to-end: the store's files with the real `agent` binary on real
//! filesystems. A call killed with SIGKILL leaves its recording linked and
//! playable after the restart, its end dated by its audio; a recordings
//! disk that fills up mid-call stops the recording, not the call; every
//! start-up failure of the store exits 2 naming the path and the cause;
//! `agent store check` and `agent store backup` work beside a running
//! agent.
//!
//! Tests that need a small or read-only filesystem mount a tmpfs, which
//! needs root (CI runs as root); elsewhere they skip with a message.

mod support_agent;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use callbridge_crm_store::{EndReason, EventKind, SessionState, Store};
use callbridge_test_support::tmpfs::{Tmpfs, fill, is_root};
use support_agent::checks::check_wav;
use support_agent::raw_sip::RawCall;
use support_agent::{Agent, Opts, run_agent_cmd};

/// Options pointing the agent's store at `db` and `recordings`.
fn store_at(db: &Path, recordings: &Path) -> Opts {
    Opts {
        env: vec![
            ("CALLBRIDGE_STORE_DATABASE".into(), db.display().to_string()),
            (
                "CALLBRIDGE_STORE_RECORDINGS_DIR".into(),
                recordings.display().to_string(),
            ),
        ],
        ..Opts::default()
    }
}

/// One call from a raw UAC, answered and acknowledged.
fn call(agent: &Agent) -> RawCall {
    let mut c = RawCall::new("127.0.0.1", agent.sip);
    c.invite_and_ack(Duration::from_secs(15));
    c
}

fn hang_up(c: &mut RawCall) {
    let sock = c.sock.try_clone().unwrap();
    let ok = c.bye_from(&sock, Duration::from_secs(10));
    assert_eq!(
        ok.as_deref().and_then(support_agent::raw_sip::status),
        Some(200),
        "BYE answered: {ok:?}"
    );
}

fn frames_secs(frames: u32) -> f64 {
    f64::from(frames) / 8000.0
}

#[test]
fn sigkill_mid_call_then_restart_links_the_recording_and_dates_the_end_by_its_audio() {
    let d = tempfile::tempdir().unwrap();
    let (db, rec) = (d.path().join("crm.db"), d.path().join("recordings"));
    let opts = store_at(&db, &rec);
    let mut agent = Agent::start(opts.clone());
    let mut callers: Vec<RawCall> = (0..2).map(|_| call(&agent)).collect();
    // Linked with the row, while the call runs.
    let live = agent.wait_for("both recordings linked", Duration::from_secs(10), || {
        let s = Store::open(&db)
            .ok()?
            .list_sessions(&Default::default(), 10, None)
            .ok()?;
        (s.items.len() == 2 && s.items.iter().all(|s| s.recording_path.is_some()))
            .then_some(s.items)
    });
    for s in &live {
        assert!(!s.state.is_terminal(), "{s:?}");
    }
    std::thread::sleep(Duration::from_millis(4500));
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10));
    drop(agent);
    drop(callers.drain(..));

    let agent = Agent::start(opts);
    let sessions = agent.wait_for("recovered sessions", Duration::from_secs(10), || {
        let s = Store::open(&db)
            .ok()?
            .list_sessions(&Default::default(), 10, None)
            .ok()?;
        Some(s.items)
    });
    assert_eq!(sessions.len(), 2);
    for s in &sessions {
        assert_eq!(s.state, SessionState::Interrupted, "{s:?}");
        assert_eq!(s.end_reason, Some(EndReason::ProcessDied), "{s:?}");
        let path = s.recording_path.as_ref().expect("recording linked");
        assert_eq!(path, &rec.join(format!("{}.wav", s.id)));
        let (channels, rate, frames) = check_wav(path);
        assert_eq!((channels, rate), (2, 8000));
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            44 + 4 * u64::from(frames),
            "header repaired to every frame on disk"
        );
        assert_eq!(s.recording_bytes, Some(44 + 4 * u64::from(frames)));
        let audio = frames_secs(frames);
        assert!(
            audio > 3.5,
            "{} s of audio for a call killed at 4.5 s",
            audio
        );
        let duration = s
            .duration
            .expect("an answered call has a duration")
            .as_secs_f64();
        assert!(
            (audio - duration).abs() <= 1.0,
            "recording {audio:.2} s vs call {duration:.2} s"
        );
        let r = agent.request("GET", &format!("/api/sessions/{}/recording", s.id), None);
        assert_eq!(r.status, 200, "the recording is served after the restart");
    }
}

#[test]
fn a_full_recordings_disk_stops_the_recording_not_the_call() {
    // 96 KiB: about two seconds of stereo 8 kHz audio.
    let Some(fs) = Tmpfs::mount("96k", "the full-disk recording test") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("crm.db");
    let agent = Agent::start(store_at(&db, fs.path()));
    let mut c = call(&agent);
    // Well past the point where the disk fills.
    std::thread::sleep(Duration::from_secs(5));
    hang_up(&mut c);
    let rec = agent.wait_for(
        "the call's end in the store",
        Duration::from_secs(15),
        || {
            let store = Store::open(&db).ok()?;
            let page = store.list_sessions(&Default::default(), 10, None).ok()?;
            let s = page.items.first().filter(|s| s.state.is_terminal())?;
            store.load_session(s.id).ok()
        },
    );
    let s = &rec.session;
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(
        s.end_reason,
        Some(EndReason::CallerHangup),
        "the call went on"
    );
    let duration = s.duration.unwrap().as_secs_f64();
    assert!(duration > 4.5, "call lasted {duration} s");
    let stopped = rec
        .events
        .iter()
        .find(|e| e.kind == EventKind::Recording && e.detail["stopped"].is_string())
        .unwrap_or_else(|| panic!("a recording-stopped event: {:?}", rec.events));
    assert_eq!(stopped.detail["stopped"], "disk full", "{}", stopped.detail);
    let path = s
        .recording_path
        .as_ref()
        .expect("the recording stays linked");
    let (_, _, frames) = check_wav(path);
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, 44 + 4 * u64::from(frames), "header matches the file");
    assert_eq!(s.recording_bytes, Some(len));
    let kept = frames_secs(frames);
    assert!(
        kept > 1.0 && kept < duration - 1.0,
        "kept {kept} s of {duration} s"
    );
    assert_eq!(
        stopped.detail["kept_ms"].as_u64(),
        Some(u64::from(frames) / 8),
        "{}",
        stopped.detail
    );
    agent.wait_idle(Duration::from_secs(10));
}

/// Runs `agent run` against `opts`'s store and returns (exit code, stderr).
fn start_fails(opts: &Opts, config: &Path) -> (Option<i32>, String) {
    let out = run_agent_cmd(
        &["run", "--config", config.to_str().unwrap()],
        opts,
        Duration::from_secs(40),
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration file for start-up tests (the store comes from `opts`).
fn config_in(dir: &Path) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        "[sip]\nbind = \"127.0.0.1:0\"\nallowed_peers = [\"127.0.0.1/32\"]\n\
         [model]\nprovider = \"mock\"\n[http]\nbind = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    p
}

fn assert_exit_2(case: &str, (code, stderr): (Option<i32>, String), path: &Path, cause: &str) {
    assert_eq!(code, Some(2), "{case}: exit status; stderr:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("agent: "))
        .unwrap_or_else(|| panic!("{case}: no `agent:` line in\n{stderr}"));
    assert!(
        line.contains(&path.display().to_string()) && line.contains(cause),
        "{case}: wanted the path {} and {cause:?} in {line:?}",
        path.display()
    );
    println!("{case}: {line}");
}

#[test]
fn store_start_up_errors_exit_2_naming_the_path_and_the_cause() {
    let d = tempfile::tempdir().unwrap();
    let config = config_in(d.path());
    let rec = d.path().join("recordings");

    // Not a database.
    let junk = d.path().join("junk.db");
    std::fs::write(&junk, vec![0x42; 16_384]).unwrap();
    assert_exit_2(
        "not a database",
        start_fails(&store_at(&junk, &rec), &config),
        &junk,
        "not a database",
    );

    // Written by a newer build.
    let newer = d.path().join("newer.db");
    drop(Store::open(&newer).unwrap());
    let supported = callbridge_crm_store::schema::SCHEMA_VERSION;
    set_user_version(&newer, supported + 5);
    let r = start_fails(&store_at(&newer, &rec), &config);
    assert_exit_2(
        "newer schema",
        r.clone(),
        &newer,
        &format!(
            "schema version {} is newer than this build supports ({supported})",
            supported + 5
        ),
    );

    // Its directory is missing.
    let nowhere = d.path().join("no/such/dir/crm.db");
    assert_exit_2(
        "missing directory",
        start_fails(&store_at(&nowhere, &rec), &config),
        &nowhere,
        "directory does not exist",
    );

    // Locked by another process: a child holding an exclusive lock.
    let locked = d.path().join("locked.db");
    drop(Store::open(&locked).unwrap());
    let mut holder = hold_exclusive_lock(&locked);
    let r = start_fails(&store_at(&locked, &rec), &config);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_exit_2(
        "locked",
        r,
        &locked,
        &format!("locked by another process (pid {})", holder.id()),
    );

    if !is_root() {
        eprintln!("skipped: read-only, disk-full and permission cases need root");
        return;
    }
    // A read-only filesystem.
    let ro = Tmpfs::mount("4m", "the read-only filesystem case").unwrap();
    let ro_db = ro.path().join("crm.db");
    drop(Store::open(&ro_db).unwrap());
    ro.remount_ro();
    assert_exit_2(
        "read-only filesystem",
        start_fails(&store_at(&ro_db, &rec), &config),
        &ro_db,
        "read-only filesystem",
    );

    // A full disk.
    let full = Tmpfs::mount("64k", "the disk-full case").unwrap();
    fill(full.path());
    let full_db = full.path().join("crm.db");
    assert_exit_2(
        "disk full",
        start_fails(&store_at(&full_db, &rec), &config),
        &full_db,
        "disk full",
    );

    // Permission denied: the agent runs as `nobody`, the store is root's.
    let shared = tempfile::tempdir_in("/tmp").unwrap();
    let perm_db = shared.path().join("crm.db");
    drop(Store::open(&perm_db).unwrap());
    let perm_config = config_in(shared.path());
    open_up(shared.path(), 0o755);
    open_up(&perm_config, 0o644);
    open_up(&perm_db, 0o644);
    // Recordings in a directory of `nobody`'s own, so the store is what
    // fails.
    let perm_rec = shared.path().join("recordings");
    std::fs::create_dir(&perm_rec).unwrap();
    std::os::unix::fs::chown(&perm_rec, Some(65_534), Some(65_534)).unwrap();
    let out = Command::new(support_agent::agent_bin())
        .args(["run", "--config", perm_config.to_str().unwrap()])
        .env("CALLBRIDGE_STORE_DATABASE", &perm_db)
        .env("CALLBRIDGE_STORE_RECORDINGS_DIR", &perm_rec)
        .uid(65_534)
        .gid(65_534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_exit_2(
        "permission denied",
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        &perm_db,
        "permission denied",
    );
}

fn open_up(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn set_user_version(db: &Path, v: i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.pragma_update(None, "user_version", v).unwrap();
}

/// A child process (this test binary, re-run as a helper) holding an
/// exclusive lock on `db` until killed.
fn hold_exclusive_lock(db: &Path) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "lock_holder", "--nocapture", "--ignored"])
        .env("AGENT_STORE_LOCK_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    support_agent::die_with_parent(&mut cmd);
    #[allow(
        clippy::zombie_processes,
        reason = "the child is returned to the caller, which kills and waits for it"
    )]
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0);
        assert!(n > 0, "the lock holder exited early");
        if line.trim() == "locked" {
            return child;
        }
    }
}

/// Not a test: the body of [`hold_exclusive_lock`]'s child process.
#[test]
#[ignore = "helper process of store_start_up_errors_exit_2_naming_the_path_and_the_cause"]
fn lock_holder() {
    let Some(db) = std::env::var_os("AGENT_STORE_LOCK_DB") else {
        return;
    };
    let conn = hold(&PathBuf::from(db));
    println!("locked");
    std::thread::sleep(Duration::from_secs(60));
    drop(conn);
}

/// Opens `db` with `locking_mode = EXCLUSIVE` and writes, so the lock is
/// kept until the connection closes.
fn hold(db: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db).unwrap();
    c.pragma_update(None, "locking_mode", "EXCLUSIVE").unwrap();
    c.execute_batch("BEGIN EXCLUSIVE; COMMIT;").unwrap();
    c
}

#[test]
fn store_check_passes_a_good_store_and_fails_an_orphan_or_a_corrupt_file() {
    let d = tempfile::tempdir().unwrap();
    let (db, rec) = (d.path().join("crm.db"), d.path().join("recordings"));
    let opts = store_at(&db, &rec);
    let config = config_in(d.path());
    let check = || {
        run_agent_cmd(
            &["store", "check", "--config", config.to_str().unwrap()],
            &opts,
            Duration::from_secs(30),
        )
    };
    let agent = Agent::start(opts.clone());
    let mut c = call(&agent);
    std::thread::sleep(Duration::from_millis(1500));
    // Beside a running agent with a call in progress: all is well.
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("integrity: ok") && text.trim_end().ends_with("ok"),
        "{text}"
    );
    hang_up(&mut c);
    let ended = agent.wait_for("the call's end", Duration::from_secs(15), || {
        let page = Store::open(&db)
            .ok()?
            .list_sessions(&Default::default(), 10, None)
            .ok()?;
        page.items.into_iter().find(|s| s.state.is_terminal())
    });
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // An orphan recording.
    let orphan = rec.join("left-behind.wav");
    std::fs::copy(ended.recording_path.as_ref().unwrap(), &orphan).unwrap();
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("orphan recording {}", orphan.display())),
        "{text}"
    );
    std::fs::remove_file(&orphan).unwrap();

    // A corrupt database file.
    drop(agent);
    std::fs::write(&db, vec![0x17; 32_768]).unwrap();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", db.display()));
    }
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&db.display().to_string()) && text.contains("not a database"),
        "{text}"
    );
}

#[test]
fn store_backup_while_calls_are_written_is_a_sound_copy() {
    let agent = Agent::start(Opts::default());
    let cfg = agent.config.to_str().unwrap().to_owned();
    let out_dir = tempfile::tempdir().unwrap();
    let mut calls: Vec<RawCall> = Vec::new();
    let mut copies = Vec::new();
    for i in 0..4 {
        calls.push(call(&agent));
        std::thread::sleep(Duration::from_millis(300));
        let dest = out_dir.path().join(format!("backup-{i}.db"));
        let out = run_agent_cmd(
            &["store", "backup", dest.to_str().unwrap(), "--config", &cfg],
            &Opts::default(),
            Duration::from_secs(30),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        copies.push(dest);
    }
    // The name is never reused.
    let out = run_agent_cmd(
        &[
            "store",
            "backup",
            copies[0].to_str().unwrap(),
            "--config",
            &cfg,
        ],
        &Opts::default(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    for c in &mut calls {
        hang_up(c);
    }
    agent.wait_sessions_terminal(4, Duration::from_secs(20));
    for (i, p) in copies.iter().enumerate() {
        let copy = Store::open_read_only(p, Duration::from_secs(1)).unwrap();
        assert!(
            copy.integrity_problems().unwrap().is_empty(),
            "{}",
            p.display()
        );
        let (all, _) = copy.session_counts().unwrap();
        assert!(
            all > i as u64,
            "backup {i} holds the calls started before it: {all}"
        );
    }
}
