//! Migrations: a file created at every earlier schema version opens with
//! its data intact and ends with exactly the schema of a fresh file; a file
//! from a newer build is refused.
mod common;

use callbridge_crm_store::schema::{MIGRATIONS, SCHEMA_VERSION};
use callbridge_crm_store::*;
use common::{leads, t};

fn schema_sql(path: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT type || ' ' || name || ': ' || sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Writes data using only the parts of the API that the v1 tables carry.
fn write_v1_data(s: &mut Store) -> (CampaignId, SessionId) {
    let c = common::active_campaign(s, "old", 2);
    s.add_leads(c, &leads(3), t(0)).unwrap();
    let id = SessionId::new_v4();
    let mut n = NewSession::outbound(id, t(0));
    n.campaign = Some(c);
    s.create_session(&n).unwrap();
    s.set_state(id, SessionState::Active, t(1)).unwrap();
    s.append_turns(id, &[NewTurn::new(0, Speaker::Agent, "hello", 0)])
        .unwrap();
    s.finish_session(id, &Finish::ended(EndReason::CallerHangup, t(9)))
        .unwrap();
    let tok = ApiToken::from_random_bytes([1; 40]);
    s.create_user(&PersonName::new("a").unwrap(), Role::Admin, &tok, t(0))
        .unwrap();
    (c, id)
}

#[test]
fn a_file_at_every_earlier_version_migrates_with_its_data() {
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_path = fresh_dir.path().join("fresh.sqlite");
    drop(Store::open(&fresh_path).unwrap());
    let want_schema = schema_sql(&fresh_path);
    assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    const { assert!(SCHEMA_VERSION >= 3) };

    for v in 0..SCHEMA_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.sqlite");
        let opts = OpenOptions {
            schema_version: Some(v),
            ..OpenOptions::default()
        };
        let data = {
            let mut old = Store::open_with(&path, &opts).unwrap();
            assert_eq!(old.schema_version().unwrap(), v);
            (v >= 1).then(|| write_v1_data(&mut old))
        };
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION, "from v{v}");
        assert_eq!(
            schema_sql(&path),
            want_schema,
            "schema after migrating from v{v}"
        );
        assert!(s.integrity_ok().unwrap());
        if let Some((c, id)) = data {
            let rec = s.load_session(id).unwrap();
            assert_eq!(rec.session.state, SessionState::Ended);
            assert_eq!(rec.session.recording_path, None);
            assert_eq!(rec.turns.len(), 1);
            assert_eq!(s.claim_due_leads(c, t(10), 5).unwrap().len(), 2);
            // Columns added by later versions work on old rows.
            s.update_session(
                id,
                &SessionUpdate {
                    recording: Some(("/r/x.wav".into(), 5)),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(s.get_session(id).unwrap().recording_bytes, Some(5));
        }
    }
}

#[test]
fn opening_twice_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite");
    let mut a = Store::open(&path).unwrap();
    let id = SessionId::new_v4();
    a.create_session(&NewSession::inbound(id, t(0))).unwrap();
    let b = Store::open(&path).unwrap();
    assert_eq!(b.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(b.get_session(id).unwrap().id, id);
}

#[test]
fn a_file_from_a_newer_build_is_refused_with_schema_too_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite");
    drop(Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(c);
    match Store::open(&path) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn the_file_is_in_wal_mode_with_foreign_keys_enforced() {
    let (d, mut s) = common::fresh();
    let c = rusqlite::Connection::open(d.path().join("crm.sqlite")).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut n = NewSession::inbound(SessionId::new_v4(), t(0));
    n.campaign = Some(CampaignId(999));
    assert!(matches!(s.create_session(&n), Err(Error::Conflict { .. })));
}
