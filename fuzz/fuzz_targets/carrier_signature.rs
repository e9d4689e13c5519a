//! Fuzz webhook signature verification with untrusted headers and bodies:
//! never panic, and never accept a header made up by the fuzzer (the key
//! is not in the input), for a POST body or a GET query alike.
#![no_main]

use callbridge_carrier::replay::JtiCache;
use callbridge_carrier::signature::{
    Signed, VonageCheck, verify_twilio, verify_vonage, verify_vonage_once,
};
use callbridge_carrier::webhook::form_pairs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (header, body) = text.split_once('\n').unwrap_or((text, ""));
    let query = form_pairs(body.as_bytes()).unwrap_or_default();
    let mut seen = JtiCache::new(4);
    for signed in [Signed::Body(body.as_bytes()), Signed::Query(&query)] {
        let check = VonageCheck { signed, now_unix: 1_795_323_600, max_age_s: Some(300), fresh_s: 30, application_id: None };
        assert!(verify_vonage(b"fuzz-secret", Some(header), &check).is_err());
        assert!(verify_vonage_once(b"fuzz-secret", Some(header), &check, &mut seen).is_err());
    }
    assert!(seen.is_empty());
    let params: Vec<(&str, &str)> = body.split('&').filter_map(|kv| kv.split_once('=')).collect();
    assert!(verify_twilio(b"fuzz-secret", "https://agent.example/twilio/voice", &params, Some(header)).is_err());
});
