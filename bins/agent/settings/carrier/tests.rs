//! `[carrier.*]` keys and the carriers' secrets, through the whole load.
use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::settings::{Secrets, Settings};

const BASE: &str = "[sip]\nbind = \"127.0.0.1:0\"\n[model]\nprovider = \"mock\"\n";

fn entry(name: &str, url: &str, verify: bool) -> String {
    format!(
        "[carrier.{name}]\nenabled = true\npublic_url = \"{url}\"\nverify_signatures = {verify}\n"
    )
}

/// The carriers with their secrets, or every error of the load.
fn load(carriers: &str, env: &[(&str, &str)]) -> Result<CarrierSettings, String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let text = format!("{BASE}{carriers}");
    let settings = Settings::from_text(Path::new("agent.toml"), &text, &env, Path::new("/etc/cb"))
        .map_err(|e| e.to_string())?;
    Secrets::from_env(&settings, &env)
        .map(|s| s.carrier)
        .map_err(|e| e.to_string())
}

#[test]
fn signature_checks_need_their_secret_from_the_environment() {
    let twilio = entry("twilio", "https://agent.example/", true);
    let m = load(&twilio, &[]).unwrap_err();
    assert!(m.contains(TWILIO_AUTH_TOKEN), "{m}");
    let s = load(&twilio, &[(TWILIO_AUTH_TOKEN, "tok")]).unwrap();
    let t = s.twilio.unwrap();
    assert_eq!(t.public_url, "https://agent.example");
    assert_eq!(t.ws_base(), "wss://agent.example");
    assert_eq!(t.api_base, "https://api.twilio.com");
    assert!(!format!("{t:?}").contains("tok\""), "secret redacted");
}

const TEST_KEY: &str = include_str!("../../../../crates/carrier/tests/data/vonage-test-key.pem");
const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

fn vonage_with(env: &[(&str, &str)]) -> Result<Option<VonageBearer>, String> {
    load(&entry("vonage", "https://agent.example", false), env)
        .map(|s| s.vonage.and_then(|v| v.hangup_bearer))
}

fn key_path() -> String {
    format!(
        "{}/../../crates/carrier/tests/data/vonage-test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn vonage_hangup_tokens_are_minted_from_the_application_key_in_env_or_file() {
    let b = vonage_with(&[(VONAGE_APPLICATION_ID, APP), (VONAGE_PRIVATE_KEY, TEST_KEY)])
        .unwrap()
        .expect("a bearer");
    assert!(b.is_minted());
    let shown = format!("{b:?}");
    assert!(shown.contains(APP) && !shown.contains("MII"), "{shown}");
    let path = key_path();
    let b = vonage_with(&[
        (VONAGE_APPLICATION_ID, APP),
        (VONAGE_PRIVATE_KEY_PATH, &path),
    ])
    .unwrap()
    .expect("a bearer");
    assert!(b.is_minted());
    // One line with literal \n, as PEM often sits in an env file.
    let one_line = TEST_KEY.replace('\n', "\\n");
    assert!(
        vonage_with(&[
            (VONAGE_APPLICATION_ID, APP),
            (VONAGE_PRIVATE_KEY, &one_line)
        ])
        .unwrap()
        .is_some_and(|b| b.is_minted())
    );
    // Nothing configured: no REST hangup.
    assert!(vonage_with(&[]).unwrap().is_none());
}

#[test]
fn vonage_api_jwt_overrides_minting() {
    let b = vonage_with(&[
        (VONAGE_API_JWT, "eyJ.fixed.sig"),
        (VONAGE_APPLICATION_ID, APP),
        (VONAGE_PRIVATE_KEY, TEST_KEY),
    ])
    .unwrap()
    .unwrap();
    assert!(!b.is_minted());
    assert_eq!(&*b.token().unwrap(), "eyJ.fixed.sig");
    let b = vonage_with(&[(VONAGE_API_JWT, "eyJ.fixed.sig")])
        .unwrap()
        .unwrap();
    assert!(!b.is_minted());
}

#[test]
fn bad_or_incomplete_vonage_credentials_name_the_variable_and_hide_the_secret() {
    let path = key_path();
    let garbage =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[(VONAGE_APPLICATION_ID, APP)], VONAGE_PRIVATE_KEY),
        (&[(VONAGE_PRIVATE_KEY, TEST_KEY)], VONAGE_APPLICATION_ID),
        (
            &[(VONAGE_APPLICATION_ID, APP), (VONAGE_PRIVATE_KEY, garbage)],
            VONAGE_PRIVATE_KEY,
        ),
        (
            &[
                (VONAGE_APPLICATION_ID, APP),
                (VONAGE_PRIVATE_KEY, "hunter2"),
            ],
            VONAGE_PRIVATE_KEY,
        ),
        (
            &[
                (VONAGE_APPLICATION_ID, "not-a-uuid"),
                (VONAGE_PRIVATE_KEY, TEST_KEY),
            ],
            VONAGE_APPLICATION_ID,
        ),
        (
            &[
                (VONAGE_APPLICATION_ID, APP),
                (VONAGE_PRIVATE_KEY, TEST_KEY),
                (VONAGE_PRIVATE_KEY_PATH, &path),
            ],
            VONAGE_PRIVATE_KEY_PATH,
        ),
        (
            &[
                (VONAGE_APPLICATION_ID, APP),
                (VONAGE_PRIVATE_KEY_PATH, "/nonexistent/vonage.key"),
            ],
            VONAGE_PRIVATE_KEY_PATH,
        ),
    ];
    for (env, var) in cases {
        let m = vonage_with(env).unwrap_err();
        assert!(m.starts_with(var), "{env:?}: {m}");
        for secret in ["c2VjcmV0", "hunter2", "MII"] {
            assert!(!m.contains(secret), "{m}");
        }
    }
}

#[test]
fn stream_token_ttl_defaults_to_30_s_and_is_bounded() {
    let env = [(TWILIO_AUTH_TOKEN, "tok")];
    let load = |ttl: Option<i64>| {
        let mut twilio = entry("twilio", "https://agent.example", true);
        if let Some(ttl) = ttl {
            twilio.push_str(&format!("stream_token_ttl_s = {ttl}\n"));
        }
        load(&twilio, &env).map(|s| s.twilio.unwrap().stream_token_ttl)
    };
    assert_eq!(load(None).unwrap(), Duration::from_secs(30));
    assert_eq!(load(Some(1)).unwrap(), Duration::from_secs(1));
    for bad in [0, 301, -1] {
        let m = load(Some(bad)).unwrap_err();
        assert!(m.contains("carrier.twilio.stream_token_ttl_s"), "{m}");
    }
}

#[test]
fn a_public_url_must_be_http_or_https_and_disabled_carriers_are_off() {
    assert!(load(&entry("vonage", "agent.example", false), &[]).is_err());
    let off = "[carrier.twilio]\nenabled = false\npublic_url = \"x\"\n";
    assert!(load(off, &[]).unwrap().twilio.is_none());
}

#[test]
fn a_bad_url_and_a_missing_secret_are_reported_together() {
    let text = format!("{BASE}{}", entry("twilio", "ftp://agent.example", true));
    let m = crate::settings::load::from_text(
        Path::new("agent.toml"),
        &text,
        &BTreeMap::new(),
        Path::new("/etc/cb"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        m.contains("carrier.twilio.public_url = \"ftp://agent.example\"")
            && m.contains("(in agent.toml)"),
        "{m}"
    );
    assert!(m.contains("TWILIO_AUTH_TOKEN is not set"), "{m}");
    assert_eq!(m.lines().count(), 2, "{m}");
}
