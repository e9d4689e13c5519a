//! The committed inputs of the signature and key fuzz targets
//! (`fuzz/corpus/carrier_signature`, `carrier_webhook_jwt`, `vonage_key`),
//! run through the same checks as the targets on every `cargo test`, so
//! they stay regression tests on stable, without libFuzzer.

use std::path::PathBuf;

use callbridge_carrier::replay::JtiCache;
use callbridge_carrier::signature::{
    SignatureError, Signed, VonageCheck, sign_hs256, verify_twilio, verify_vonage,
    verify_vonage_once,
};
use callbridge_carrier::vonage_jwt::{ApplicationId, TOKEN_TTL, VonageSigner};
use callbridge_carrier::webhook::form_pairs;

/// The files of one target's corpus (at least one).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{target}: empty corpus");
    files
}

/// `carrier_signature`: a made-up header (the key is not in the input)
/// never verifies, for a POST body or a GET query alike, and burns no jti.
#[test]
fn made_up_signatures_never_verify() {
    for (name, data) in corpus("carrier_signature") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let (header, body) = text.split_once('\n').unwrap_or((text, ""));
        let query = form_pairs(body.as_bytes()).unwrap_or_default();
        let mut seen = JtiCache::new(4);
        for signed in [Signed::Body(body.as_bytes()), Signed::Query(&query)] {
            let check = VonageCheck {
                signed,
                now_unix: 1_795_323_600,
                max_age_s: Some(300),
                fresh_s: 30,
                application_id: None,
            };
            assert!(
                verify_vonage(b"fuzz-secret", Some(header), &check).is_err(),
                "{name}"
            );
            assert!(
                verify_vonage_once(b"fuzz-secret", Some(header), &check, &mut seen).is_err(),
                "{name}"
            );
        }
        assert!(seen.is_empty(), "{name}");
        let params: Vec<(&str, &str)> = body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        assert!(
            verify_twilio(
                b"fuzz-secret",
                "https://agent.example/twilio/voice",
                &params,
                Some(header)
            )
            .is_err(),
            "{name}"
        );
    }
}

/// `carrier_webhook_jwt`: tokens signed with the known secret; one that is
/// accepted is refused as a replay the second time; none verifies under
/// another secret; the jti cache stays within its cap. The seeds are real
/// webhooks, so each is accepted once.
#[test]
fn signed_webhooks_are_single_use_and_bound_to_their_secret() {
    const SECRET: &[u8] = b"fuzz-signature-secret";
    const NOW: i64 = 1_795_323_600;
    for (name, data) in corpus("carrier_webhook_jwt") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let (claims, request) = text.split_once('\n').unwrap_or((text, ""));
        let Ok(claims) = serde_json::from_str::<serde_json::Value>(claims) else {
            continue;
        };
        let bearer = format!("Bearer {}", sign_hs256(SECRET, &claims));
        let query = form_pairs(request.as_bytes()).unwrap_or_default();
        let mut seen = JtiCache::new(2);
        let mut accepted = 0;
        for signed in [Signed::Body(request.as_bytes()), Signed::Query(&query)] {
            let check = VonageCheck {
                signed,
                now_unix: NOW,
                max_age_s: Some(300),
                fresh_s: 30,
                application_id: None,
            };
            if verify_vonage_once(SECRET, Some(&bearer), &check, &mut seen).is_ok() {
                accepted += 1;
                assert_eq!(
                    verify_vonage_once(SECRET, Some(&bearer), &check, &mut seen),
                    Err(SignatureError::Replayed),
                    "{name}"
                );
            }
            assert!(
                verify_vonage(b"another-secret", Some(&bearer), &check).is_err(),
                "{name}"
            );
            assert!(seen.len() <= 2, "{name}");
        }
        assert_eq!(accepted, 1, "{name}: accepted once, as what it signs");
    }
}

/// `vonage_key`: reading a key never panics, and a key that is accepted
/// signs a token.
#[test]
fn keys_that_are_accepted_sign() {
    for (name, data) in corpus("vonage_key") {
        let app = ApplicationId::new("aaaaaaaa-bbbb-cccc-dddd-0123456789ab").unwrap();
        let accepted = VonageSigner::from_pem(app, &data);
        if let Ok(signer) = &accepted {
            assert!(signer.mint(0, TOKEN_TTL, "fuzz").is_ok(), "{name}");
        }
        // The truncated key is refused; the committed test key is read.
        match name.as_str() {
            "seed-escaped-truncated" => assert!(accepted.is_err(), "{name}"),
            "seed-test-key-pkcs1" => assert!(accepted.is_ok(), "{name}"),
            _ => {}
        }
    }
}
