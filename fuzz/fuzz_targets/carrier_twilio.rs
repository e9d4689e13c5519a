//! Fuzz the Twilio Media Streams parser and the carrier core fed Twilio
//! messages: never panic; the core's bounds hold; the played count never
//! passes the sent count; at most one stream start.
#![no_main]

use callbridge_carrier::core::{CarrierCore, CarrierEvent, WireFrame};
use callbridge_carrier::{Carrier, WsMessage, twilio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(twilio::Inbound::Media { payload, .. }) = twilio::parse(text) {
        let mut out = [0u8; 512];
        let _ = twilio::decode_payload(&payload, &mut out);
    }
    let mut core = CarrierCore::new(Carrier::Twilio);
    let start = r#"{"event":"start","start":{"streamSid":"MZ1","callSid":"CA1","accountSid":"AC1"}}"#;
    let mut starts = 0;
    for line in std::iter::once(start).chain(text.split('\n')) {
        let _ = core.handle_message(&WsMessage::Text(line.to_owned()));
        core.queue_frame(&WireFrame::Ulaw([0xff; 160]));
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
