//! CSV lead import and E.164 parsing of untrusted bytes: never panics,
//! whatever the file holds.
#![no_main]

use callbridge_crm_store::{CampaignSettings, ImportMode, PhoneNumber, Store, jiff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PhoneNumber::parse(s);
    }
    let Ok(mut store) = Store::open(":memory:") else {
        return;
    };
    let now = jiff::Timestamp::UNIX_EPOCH;
    let Ok(c) = store.create_campaign(&CampaignSettings::new("fuzz", "mock"), now) else {
        return;
    };
    let _ = store.import_leads_csv(c, data, ImportMode::GoodRowsOnly, now);
});
