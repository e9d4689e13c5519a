//! Fuzz Vonage signed-webhook JWTs past their signature: the first line is
//! the claims (JSON, signed here with the known secret), the rest the
//! request (a POST body, or a GET query). Never panic; a token accepted
//! once is refused as a replay the second time; no token verifies under
//! another secret; the jti cache stays within its cap.
#![no_main]

use callbridge_carrier::replay::JtiCache;
use callbridge_carrier::signature::{
    SignatureError, Signed, VonageCheck, sign_hs256, verify_vonage, verify_vonage_once,
};
use callbridge_carrier::webhook::form_pairs;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-signature-secret";
const NOW: i64 = 1_795_323_600;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (claims, request) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(claims) = serde_json::from_str::<serde_json::Value>(claims) else { return };
    let bearer = format!("Bearer {}", sign_hs256(SECRET, &claims));
    let query = form_pairs(request.as_bytes()).unwrap_or_default();
    let mut seen = JtiCache::new(2);
    for signed in [Signed::Body(request.as_bytes()), Signed::Query(&query)] {
        let check = VonageCheck { signed, now_unix: NOW, max_age_s: Some(300), fresh_s: 30, application_id: None };
        if verify_vonage_once(SECRET, Some(&bearer), &check, &mut seen).is_ok() {
            assert_eq!(
                verify_vonage_once(SECRET, Some(&bearer), &check, &mut seen),
                Err(SignatureError::Replayed)
            );
        }
        assert!(verify_vonage(b"another-secret", Some(&bearer), &check).is_err());
        assert!(seen.len() <= 2);
    }
});
