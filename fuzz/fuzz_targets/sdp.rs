//! Fuzz the SDP parser and offer/answer: never panic; a parsed session
//! writes text that parses back equal; answering any parsed offer returns.
#![no_main]

use callbridge_sip::sdp::{LocalMedia, Session, answer, hold_state, process_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(session) = Session::parse(data) else { return };
    let text = session.to_text();
    let again = Session::parse(text.as_bytes()).expect("written SDP must parse");
    assert_eq!(again, session, "SDP round trip changed the session");
    let _ = hold_state(&session);
    for k in 0..session.media.len() {
        let m = &session.media[k];
        let _ = (m.rtpmaps(), m.ptime(), m.rtcp(), session.direction(k));
    }
    if let Ok((ans, _)) = answer(&session, &LocalMedia::new([192, 0, 2, 1].into(), 4000)) {
        let _ = process_answer(&session, &ans);
    }
});
