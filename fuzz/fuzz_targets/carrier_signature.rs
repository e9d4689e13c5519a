//! Fuzz webhook signature verification with untrusted headers and bodies:
//! never panic, and never accept a header made up by the fuzzer for the
//! Twilio check (the key is not in the input).
#![no_main]

use callbridge_session::carrier::signature::{VonageCheck, verify_twilio, verify_vonage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (header, body) = text.split_once('\n').unwrap_or((text, ""));
    let check = VonageCheck { body: Some(body.as_bytes()), now_unix: 1_795_323_600, max_age_s: Some(300) };
    let _ = verify_vonage(b"fuzz-secret", Some(header), &check);
    let params: Vec<(&str, &str)> = body.split('&').filter_map(|kv| kv.split_once('=')).collect();
    assert!(verify_twilio(b"fuzz-secret", "https://agent.example/twilio/voice", &params, Some(header)).is_err());
});
