//! Fuzzes the GPT-Live server-event decoder (untrusted network input).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = callbridge_llm_bridge::gpt_live::wire::decode_server_event(data);
});
