//! End-to-end: what the real agent writes is private. The database (and
//! its `-wal`/`-shm` files) and every call recording are `0600`, the
//! recordings directory `0700` (one left `0755` is tightened at start),
//! whatever the umask; `files.group_readable = true` gives `0640`/`0750`.
#![cfg(unix)]

mod support_agent;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use callbridge_crm_store::SessionState;
use support_agent::raw_sip::RawCall;
use support_agent::{Agent, Opts};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn with_suffix(p: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// One answered call hung up by the caller; returns its recording.
fn one_recorded_call(agent: &Agent) -> std::path::PathBuf {
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    call.invite_and_ack(Duration::from_secs(10));
    agent.wait_for("the call to be answered", Duration::from_secs(10), || {
        let s = agent.sessions().into_iter().next()?;
        matches!(s.state, SessionState::Answered | SessionState::Active).then_some(())
    });
    let own = call.sock.try_clone().unwrap();
    call.bye_from(&own, Duration::from_secs(5))
        .expect("an answer to the caller's BYE");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    sessions[0]
        .recording_path
        .clone()
        .expect("a recording path in the store")
}

#[test]
fn the_database_recordings_and_their_directory_are_owner_only() {
    // The support code creates the recordings directory with the test's
    // umask (0755 under the usual 022): the agent must tighten it.
    let agent = Agent::start(Opts::default());
    let rec = one_recorded_call(&agent);
    assert_eq!(mode(&rec), 0o600, "recording {}", rec.display());
    assert_eq!(mode(&agent.recordings), 0o700, "recordings directory");
    assert_eq!(mode(&agent.db), 0o600, "database");
    for suffix in ["-wal", "-shm"] {
        // The running agent holds the database open in WAL mode.
        let p = with_suffix(&agent.db, suffix);
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[test]
fn group_readable_files_are_0640_and_directories_0750() {
    let agent = Agent::start(Opts {
        env: vec![("CALLBRIDGE_FILES_GROUP_READABLE".into(), "true".into())],
        ..Opts::default()
    });
    let rec = one_recorded_call(&agent);
    assert_eq!(mode(&rec), 0o640, "recording {}", rec.display());
    assert_eq!(mode(&agent.recordings), 0o750, "recordings directory");
    assert_eq!(mode(&agent.db), 0o640, "database");
}
