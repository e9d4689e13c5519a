//! RFC 4733 telephone-event parser and receiver: any payload sequence is
//! handled without panicking.
#![no_main]

use callbridge_rtp::dtmf::{DtmfReceiver, TelephoneEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rx = DtmfReceiver::new();
    for (i, chunk) in data.chunks(4).enumerate() {
        if let Ok(ev) = TelephoneEvent::parse(chunk) {
            let _ = rx.handle((i as u32 / 3) * 800, ev);
        }
    }
});
