//! Shared helpers for the store's integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use callbridge_crm_store::*;
use jiff::Timestamp;

/// A fixed instant plus `secs` seconds (Tuesday 2026-11-17 12:00 UTC).
pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_763_380_800 + secs).unwrap()
}

/// A fresh store in a temporary directory.
pub fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("crm.sqlite")).unwrap();
    (dir, store)
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
