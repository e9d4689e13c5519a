//! RTCP compound parser: any datagram parses or fails with a typed error,
//! never panics, and iterating a parsed compound yields every packet.
#![no_main]

use callbridge_rtp::rtcp::{RtcpCompound, RtcpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = RtcpCompound::parse(data) {
        for p in c.packets() {
            match p {
                RtcpPacket::SenderReport(sr) => {
                    let _ = sr.reports.iter().count();
                }
                RtcpPacket::ReceiverReport(rr) => {
                    let _ = rr.reports.iter().count();
                }
                RtcpPacket::SourceDescription(s) => {
                    let _ = s.items().count();
                }
                RtcpPacket::Bye(b) => {
                    let _ = (b.ssrcs().count(), b.reason());
                }
                _ => {}
            }
        }
    }
});
