//! Shared helpers for the store's integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use callbridge_crm_store::*;
use jiff::Timestamp;

/// A fixed instant plus `secs` seconds (Tuesday 2026-11-17 12:00 UTC).
pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_763_380_800 + secs).unwrap()
}

/// The backend a test runs on: the same test body runs on each (see
/// [`on_both_backends`]); [`fresh`] opens a store on the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A fresh database on this process's throw-away PostgreSQL cluster.
    Postgres,
}

thread_local! {
    static BACKEND: std::cell::Cell<Db> = const { std::cell::Cell::new(Db::Sqlite) };
}

/// Runs `test` with [`fresh`] opening stores on `db` (each test has its
/// own thread). On PostgreSQL the test is skipped, loudly, when PostgreSQL
/// is not installed (`callbridge_test_support::postgres`).
pub fn run_on(db: Db, test: fn()) {
    if db == Db::Postgres && callbridge_test_support::postgres::PgCluster::shared().is_none() {
        return;
    }
    BACKEND.with(|b| b.set(db));
    test();
}

/// The backend of the running test.
pub fn backend() -> Db {
    BACKEND.with(std::cell::Cell::get)
}

/// A fresh, empty store on the current backend, and a temporary directory
/// (the SQLite file's, and for recordings).
pub fn fresh() -> (tempfile::TempDir, Store) {
    fresh_with(&OpenOptions::default())
}

/// A fresh, empty store's URL on the current backend (for tests that open
/// it more than once), and the temporary directory.
pub fn fresh_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend() {
        Db::Sqlite => format!("sqlite:{}", dir.path().join("crm.sqlite").display()),
        Db::Postgres => callbridge_test_support::postgres::PgCluster::shared()
            .expect("checked by run_on")
            .create_database(None),
    };
    (dir, url)
}

/// [`fresh`] with options.
pub fn fresh_with(opts: &OpenOptions) -> (tempfile::TempDir, Store) {
    let (dir, url) = fresh_url();
    let store = Store::open_url(&url, opts).unwrap();
    (dir, store)
}

/// Declares each listed test body (a plain `fn name()`) as two tests,
/// `sqlite::name` and `postgres::name`, one per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { $crate::common::run_on($crate::common::Db::Sqlite, super::$name) })*
        }
        mod postgres {
            $(#[test] fn $name() { $crate::common::run_on($crate::common::Db::Postgres, super::$name) })*
        }
    };
}

/// An active campaign with an always-open window in UTC.
pub fn active_campaign(store: &mut Store, name: &str, max_concurrent: u32) -> CampaignId {
    let mut s = CampaignSettings::new(name, "gemini");
    s.max_concurrent = max_concurrent;
    let id = store.create_campaign(&s, t(0)).unwrap();
    store
        .set_campaign_status(id, CampaignStatus::Active, t(0))
        .unwrap();
    id
}

/// A phone number `+1555000` followed by `n` on four digits.
pub fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1555000{n:04}")).unwrap()
}

/// `n` plain leads.
pub fn leads(n: u32) -> Vec<NewLead> {
    (0..n).map(|i| NewLead::new(phone(i))).collect()
}
