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

/// Inserts a session row the way a build before v5 did: only the v1
/// columns, no `transport`.
fn insert_old_session(path: &std::path::Path, id: SessionId, sip_call_id: &str, end: Option<&str>) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute(
        "INSERT INTO call_sessions (id, direction, sip_call_id, state, end_reason, writer, \
         created_at) VALUES (?1, 'outbound', ?2, ?3, ?4, 'old-build', ?5)",
        rusqlite::params![
            id.to_string(),
            sip_call_id,
            if end.is_some() {
                "interrupted"
            } else {
                "created"
            },
            end,
            t(0).as_millisecond()
        ],
    )
    .unwrap();
}

/// Inserts a user row the way a build before v7 did: the v1 columns only.
/// The token's hash is taken from a user created in a scratch store, so
/// the test does not depend on how hashes are computed.
pub fn insert_old_user(path: &std::path::Path, name: &str, tok: &ApiToken) {
    let scratch = tempfile::tempdir().unwrap();
    let scratch_db = scratch.path().join("s.sqlite");
    Store::open(&scratch_db)
        .unwrap()
        .create_user(&PersonName::new("x").unwrap(), Role::Admin, tok, t(0))
        .unwrap();
    let (token_id, hash): (String, Vec<u8>) = rusqlite::Connection::open(&scratch_db)
        .unwrap()
        .query_row("SELECT token_id, token_hash FROM users", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .execute(
            "INSERT INTO users (name, role, token_id, token_hash, created_at) \
             VALUES (?1, 'admin', ?2, ?3, ?4)",
            rusqlite::params![name, token_id, hash, t(0).as_millisecond()],
        )
        .unwrap();
}

/// Writes data using only the parts of the API that the v1 tables carry
/// (the session row itself as an old build wrote it).
/// An active campaign written with v1's columns only (today's
/// `create_campaign` writes columns later versions added).
fn insert_old_campaign(path: &std::path::Path, name: &str) -> CampaignId {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute(
        "INSERT INTO campaigns (name, status, system_prompt, greeting, model_provider, \
         window_start_min, window_end_min, window_days, time_zone, max_attempts, retry_busy_s, \
         retry_no_answer_s, retry_failed_s, retry_voicemail_s, max_concurrent, calls_per_minute, \
         created_at, updated_at) VALUES (?1, 'active', '', '', 'gemini', 0, 1440, 127, 'UTC', 3, \
         60, 60, 60, 60, 2, 10, 0, 0)",
        rusqlite::params![name],
    )
    .unwrap();
    CampaignId(conn.last_insert_rowid())
}

fn write_v1_data(s: &mut Store, path: &std::path::Path) -> (CampaignId, SessionId) {
    let c = insert_old_campaign(path, "old");
    s.add_leads(c, &leads(3), t(0)).unwrap();
    let id = SessionId::new_v4();
    insert_old_session(path, id, "a84b4c76e66710@pc33.example.com", None);
    rusqlite::Connection::open(path)
        .unwrap()
        .execute(
            "UPDATE call_sessions SET campaign_id = ?2 WHERE id = ?1",
            rusqlite::params![id.to_string(), c.0],
        )
        .unwrap();
    s.set_state(id, SessionState::Active, t(1)).unwrap();
    s.append_turns(id, &[NewTurn::new(0, Speaker::Agent, "hello", 0)])
        .unwrap();
    s.finish_session(id, &Finish::ended(EndReason::CallerHangup, t(9)))
        .unwrap();
    insert_old_user(path, "a", &ApiToken::from_random_bytes([1; 40]));
    (c, id)
}

#[test]
fn a_file_at_every_earlier_version_migrates_with_its_data() {
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_path = fresh_dir.path().join("fresh.sqlite");
    drop(Store::open(&fresh_path).unwrap());
    let want_schema = schema_sql(&fresh_path);
    assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    const { assert!(SCHEMA_VERSION >= 5) };

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
            (v >= 1).then(|| write_v1_data(&mut old, &path))
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
            assert_eq!(rec.session.campaign, Some(c));
            assert_eq!(rec.session.transport, Transport::Sip);
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
            let tok = ApiToken::from_random_bytes([1; 40]);
            let u = s.verify_token(&tok.expose(), t(10)).unwrap();
            assert_eq!((u.name.as_str(), u.token_issued_at), ("a", t(0)));
        }
    }
}

/// The last version where user names could repeat or be empty.
const BEFORE_UNIQUE_USERS: i64 = 6;

#[test]
fn a_v6_file_with_duplicate_and_empty_user_names_opens_and_renames_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite");
    let opts = OpenOptions {
        schema_version: Some(BEFORE_UNIQUE_USERS),
        ..OpenOptions::default()
    };
    drop(Store::open_with(&path, &opts).unwrap());
    let names = [
        "ann",
        "ann",
        "",
        "  ",
        "ann",
        "bob",
        "ann (duplicate 5)",
        "\t\n",
    ];
    let tokens: Vec<ApiToken> = (0..names.len() as u8)
        .map(|i| ApiToken::from_random_bytes([i + 1; 40]))
        .collect();
    for (name, tok) in names.iter().zip(&tokens) {
        insert_old_user(&path, name, tok);
    }
    let s = Store::open(&path).unwrap();
    let got: Vec<String> = s
        .list_users()
        .unwrap()
        .iter()
        .map(|u| u.name.as_str().to_owned())
        .collect();
    // Ids 1..=7. The oldest `ann` keeps its name; the pre-existing
    // `ann (duplicate 5)` (id 7) collided with the rename of id 5.
    assert_eq!(
        &got[..6],
        &[
            "ann",
            "ann (duplicate 2)",
            "user-3",
            "user-4",
            "ann (duplicate 5)",
            "bob"
        ]
    );
    assert!(got[6].starts_with("user-7-"), "{got:?}");
    assert_eq!(got[7], "user-8");
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "{got:?}");
    // Renaming kept every token working.
    for tok in &tokens {
        assert!(s.verify_token(&tok.expose(), t(1)).is_ok());
    }
}

/// The last version without `sessions.transport`.
const BEFORE_TRANSPORT: i64 = 4;

#[test]
fn a_v4_file_migrates_old_rows_to_sip_and_carrier_rows_to_their_carrier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite");
    let opts = OpenOptions {
        schema_version: Some(BEFORE_TRANSPORT),
        ..OpenOptions::default()
    };
    let old = Store::open_with(&path, &opts).unwrap();
    assert_eq!(old.schema_version().unwrap(), BEFORE_TRANSPORT);
    let rows = [
        ("a84b4c76e66710@pc33.example.com", None, Transport::Sip),
        (
            "twilio:CA5f0e0a1b2c3d4e5f60718293a4b5c6d7",
            None,
            Transport::Twilio,
        ),
        (
            "vonage:63f61863-4a51-4f6b-86e1-46edebcf9356",
            None,
            Transport::Vonage,
        ),
        // A prefix with nothing after it is no carrier key.
        ("twilio:", None, Transport::Sip),
        // Case matters: carrier keys are written lower-case.
        ("Vonage:63f61863", None, Transport::Sip),
        ("/r/x.wav", Some("orphan-recording"), Transport::Unknown),
    ];
    let ids: Vec<SessionId> = rows
        .iter()
        .map(|(call_id, end, _)| {
            let id = SessionId::new_v4();
            insert_old_session(&path, id, call_id, *end);
            id
        })
        .collect();
    drop(old);

    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    for (id, (call_id, _, want)) in ids.iter().zip(&rows) {
        let got = s.get_session(*id).unwrap();
        assert_eq!(got.transport, *want, "{call_id}");
        assert_eq!(got.sip_call_id.as_deref(), Some(*call_id), "call id kept");
    }
    let twilio = SessionFilter {
        transport: Some(Transport::Twilio),
        ..Default::default()
    };
    let listed = s.list_sessions(&twilio, 10, None).unwrap().items;
    assert_eq!(listed.iter().map(|x| x.id).collect::<Vec<_>>(), [ids[1]]);
    // A row written after the migration without naming a transport (an
    // older writer sharing the file cannot, it refuses the newer schema)
    // and one written by this build both read back.
    let new = SessionId::new_v4();
    let mut n = NewSession::inbound(new, t(1));
    n.transport = Transport::Vonage;
    s.create_session(&n).unwrap();
    assert_eq!(s.get_session(new).unwrap().transport, Transport::Vonage);
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
