//! Fuzz the Vonage WebSocket parser and the carrier core fed Vonage
//! frames (the first byte picks text or binary for each chunk): never
//! panic; bounds hold; at most one stream start.
#![no_main]

use bytes::Bytes;
use callbridge_carrier::core::{CarrierCore, CarrierEvent, WireFrame};
use callbridge_carrier::{Carrier, WsMessage, vonage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vonage::parse(text);
    }
    let mut core = CarrierCore::new(Carrier::Vonage);
    let first = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"u1"}"#;
    let _ = core.handle_message(&WsMessage::Text(first.to_owned()));
    let mut starts = 0;
    for chunk in data.split(|&b| b == 0xff) {
        let msg = match chunk.split_first() {
            Some((0, rest)) => WsMessage::Binary(Bytes::copy_from_slice(rest)),
            Some((_, rest)) => WsMessage::Text(String::from_utf8_lossy(rest).into_owned()),
            None => WsMessage::Binary(Bytes::from(vec![0u8; 640])),
        };
        let _ = core.handle_message(&msg);
        core.queue_frame(&WireFrame::L16Wide([0; 320]));
        while let Some(e) = core.poll_event() {
            if matches!(e, CarrierEvent::Started(_)) {
                starts += 1;
            }
        }
        while core.pop_caller_frame().is_some() {}
        while core.poll_transmit().is_some() {}
        assert!(core.frames_played() <= core.frames_sent());
    }
    assert!(starts <= 1);
});
