//! Fuzz the SDP parser and offer/answer: never panic; a parsed session
//! writes text that parses back equal; answering any parsed offer returns,
//! under every SRTP policy (the `a=crypto` parser, RFC 4568); a crypto line
//! that parses writes a value that parses back equal.
#![no_main]

use callbridge_sip::sdp::{
    CryptoAttribute, CryptoSuite, KeyMaterial, LocalMedia, Session, SrtpPolicy, answer,
    hold_state, process_answer,
};
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
        for c in m.crypto() {
            assert_eq!(CryptoAttribute::parse(&c.to_value()).ok(), Some(c));
        }
    }
    for policy in SrtpPolicy::ALL {
        let mut local = LocalMedia::new([192, 0, 2, 1].into(), 4000);
        local.srtp = policy;
        local.srtp_keys = CryptoSuite::ALL
            .into_iter()
            .map(|s| (s, KeyMaterial::new(&vec![7; s.master_len()])))
            .collect();
        if let Ok((ans, _)) = answer(&session, &local) {
            let _ = process_answer(&session, &ans);
        }
    }
});
