//! The Gemini Live server-message decoder must never panic on any bytes.
#![no_main]

use callbridge_llm_bridge::gemini::wire::decode_server_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = decode_server_message(data, &mut out);
});
