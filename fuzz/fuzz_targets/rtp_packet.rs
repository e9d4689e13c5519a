//! RTP parser: any datagram parses or fails with a typed error, never panics;
//! a parsed packet's accessors stay in bounds.
#![no_main]

use bytes::Bytes;
use callbridge_rtp::RtpPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(data)) {
        let _ = p.csrcs().count();
        let _ = p.extension();
        assert!(p.payload().len() <= data.len());
        let _ = p.payload_bytes();
    }
});
