//! The mock's strict Gemini client-message validator must never panic.
#![no_main]

use callbridge_llm_mock::gemini_validate::parse_client_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = parse_client_message(&v);
    }
});
