//! Fuzz the carrier webhook parameters (Twilio form bodies, Twilio and
//! Vonage GET queries): never panic; at most `MAX_PARAMS` pairs; the text a
//! GET's `payload_hash` covers is always a JSON object with one string per
//! distinct name, the last value of each; and a Twilio signature computed
//! over the pairs verifies over them.
#![no_main]

use callbridge_carrier::signature::{query_payload, twilio_signature, verify_twilio};
use callbridge_carrier::webhook::{MAX_PARAMS, form_pairs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = form_pairs(data) else { return };
    assert!(pairs.len() <= MAX_PARAMS);
    let json: serde_json::Value =
        serde_json::from_str(&query_payload(&pairs)).expect("query payload is JSON");
    let obj = json.as_object().expect("an object");
    for (k, _) in &pairs {
        let last = pairs.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(obj.get(k).and_then(|v| v.as_str()), last);
    }
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let url = "https://agent.example/carrier/twilio/voice";
    let sig = twilio_signature(b"fuzz-token", url, &refs);
    assert!(verify_twilio(b"fuzz-token", url, &refs, Some(&sig)).is_ok());
});
