//! Fuzz the Vonage application key reader (PEM text from the environment
//! or a file): never panic, and a key that is accepted signs a token.
#![no_main]

use callbridge_carrier::vonage_jwt::{ApplicationId, TOKEN_TTL, VonageSigner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(app) = ApplicationId::new("aaaaaaaa-bbbb-cccc-dddd-0123456789ab") else { return };
    if let Ok(signer) = VonageSigner::from_pem(app, data) {
        assert!(signer.mint(0, TOKEN_TTL, "fuzz").is_ok());
    }
});
