//! A writer that holds the lock past the busy timeout yields `Error::Busy`
//! (retryable, nothing written), never SQLite's raw "database is locked".
mod common;

use std::time::Duration;

use callbridge_crm_store::*;
use common::t;

#[test]
fn a_lock_held_past_the_busy_timeout_is_error_busy_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite");
    let opts = OpenOptions {
        busy_timeout: Duration::from_millis(50),
        ..OpenOptions::default()
    };
    let mut s = Store::open_with(&path, &opts).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let id = SessionId::new_v4();
    let err = s
        .create_session(&NewSession::inbound(id, t(0)))
        .unwrap_err();
    assert!(matches!(err, Error::Busy), "{err:?}");
    assert!(!err.to_string().contains("locked"));
    // Readers are not blocked by the writer (WAL).
    assert!(s.list_sessions(&SessionFilter::default(), 10, None).is_ok());
    other.execute_batch("ROLLBACK").unwrap();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
}
