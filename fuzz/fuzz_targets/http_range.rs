//! Fuzz the recording endpoint's Range decision (the agent's `http/range.rs`,
//! RFC 9110 section 14): any header text and file length is answered
//! without panicking, and a partial answer always lies inside the file.
//! The module is included by path: depending on the agent's package would
//! build the whole agent (axum, the session manager) for one pure function.
#![no_main]

#[path = "../../bins/agent/http/range.rs"]
#[allow(dead_code)]
mod range;

use libfuzzer_sys::fuzz_target;
use range::{RangeAnswer, resolve};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, text) = data.split_at(8);
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let Ok(text) = std::str::from_utf8(text) else { return };
    for header in [None, Some(text)] {
        if let RangeAnswer::Partial { start, end } = resolve(header, len) {
            assert!(start <= end && end < len, "{start}-{end} outside {len}");
        }
    }
});
