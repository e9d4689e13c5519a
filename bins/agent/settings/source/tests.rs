//! Unit tests of the key table, the file check and the environment
//! overrides.
use super::*;
use crate::settings::error::ConfigErrors;
use crate::settings::keys::{Preset, env_keys};

/// The layered sources, or every problem found (one per line).
fn load(text: &str, env: &[(&str, &str)]) -> Result<Sources, String> {
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut sources =
        Sources::new(Path::new("agent.toml"), text, &env).map_err(|e| e.to_string())?;
    ConfigErrors::check(sources.take_problems()).map_err(|e| e.to_string())?;
    Ok(sources)
}

/// The value at `key`, shown, or "unset".
fn get(s: &Sources, key: &str) -> String {
    s.value(key)
        .map_or_else(|| "unset".into(), |(v, _)| show(&v))
}

#[test]
fn the_example_file_parses_with_every_commented_key_uncommented() {
    let text = include_str!("../../../../agent.example.toml");
    let s = load(text, &[]).unwrap();
    assert_eq!(get(&s, "sip.bind"), "\"0.0.0.0:5060\"");
    // Uncomment the optional keys: each must be a known key.
    let full: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.starts_with("[sip.trunk]") => rest,
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let s = load(&full, &[]).unwrap();
    assert_eq!(get(&s, "sip.trunk.username"), "\"callbridge\"");
    assert!(s.value("model.endpoint").is_some());
    assert!(s.value("model.system_prompt_file").is_some());
}

#[test]
fn every_key_of_the_example_is_in_the_key_tree_and_back() {
    let text = include_str!("../../../../agent.example.toml");
    let mut documented = String::new();
    for l in text.lines() {
        let l = l.trim_start_matches("# ");
        if let Some((k, _)) = l.split_once(" = ")
            && !k.contains(' ')
            && !k.starts_with('#')
        {
            documented.push_str(k);
            documented.push('\n');
        }
    }
    for (_, key) in env_keys() {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            documented.lines().any(|d| d == leaf),
            "{key} is not documented in agent.example.toml"
        );
    }
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let m = load("[sip]\nbnd = \"1.2.3.4:5\"\n", &[]).unwrap_err();
    assert!(m.contains("unknown key sip.bnd in agent.toml"), "{m}");
    assert!(m.contains("bind"), "lists the valid keys: {m}");
}

#[test]
fn unknown_section_is_an_error() {
    let m = load("[sipp]\nbind = \"x\"\n", &[]).unwrap_err();
    assert!(m.contains("unknown key sipp"), "{m}");
}

#[test]
fn a_password_in_the_file_is_refused_with_the_variable_to_use() {
    let m = load("[sip.trunk]\npassword = \"hunter2\"\n", &[]).unwrap_err();
    assert!(m.contains("CALLBRIDGE_SIP_TRUNK_PASSWORD"), "{m}");
    assert!(!m.contains("hunter2"), "never echoes the secret: {m}");
}

#[test]
fn wrong_type_names_key_value_and_type() {
    let m = load("[calls]\nmax_concurrent = \"many\"\n", &[]).unwrap_err();
    assert_eq!(
        m,
        "calls.max_concurrent = \"many\": expected an integer (in agent.toml)"
    );
    let m = load("[sip]\nallowed_peers = [1]\n", &[]).unwrap_err();
    assert!(m.contains("expected a list of strings"), "{m}");
    let m = load("sip = 3\n", &[]).unwrap_err();
    assert_eq!(m, "sip = 3: expected a table (in agent.toml)");
}

#[test]
fn syntax_error_names_the_file() {
    let m = load("[sip\n", &[]).unwrap_err();
    assert!(m.starts_with("agent.toml: not valid TOML"), "{m}");
}

#[test]
fn env_overrides_strings_integers_booleans_and_lists() {
    let s = load(
        "[sip]\nbind = \"1.2.3.4:5060\"\n",
        &[
            ("CALLBRIDGE_SIP_BIND", "127.0.0.1:0"),
            ("CALLBRIDGE_CALLS_MAX_CONCURRENT", "7"),
            ("CALLBRIDGE_MODEL_TOOLS", "false"),
            ("CALLBRIDGE_SIP_ALLOWED_PEERS", "10.0.0.0/8, 192.0.2.7/32"),
            ("CALLBRIDGE_SIP_TRUNK_USERNAME", "bob"),
        ],
    )
    .unwrap();
    assert_eq!(get(&s, "sip.bind"), "\"127.0.0.1:0\"");
    assert_eq!(get(&s, "calls.max_concurrent"), "7");
    assert_eq!(get(&s, "model.tools"), "false");
    assert_eq!(
        get(&s, "sip.allowed_peers"),
        "[\"10.0.0.0/8\", \"192.0.2.7/32\"]"
    );
    assert_eq!(get(&s, "sip.trunk.username"), "\"bob\"");
    assert_eq!(
        s.value("sip.bind").map(|(_, o)| o),
        Some(Origin::Env("CALLBRIDGE_SIP_BIND".into()))
    );
}

#[test]
fn every_key_has_its_variable() {
    let vars: Vec<String> = env_keys().into_iter().map(|(v, _)| v).collect();
    for v in [
        "CALLBRIDGE_SIP_BIND",
        "CALLBRIDGE_SIP_PUBLIC_ADDR",
        "CALLBRIDGE_SIP_TRUNK_REGISTER_EXPIRES",
        "CALLBRIDGE_RTP_PORT_MIN",
        "CALLBRIDGE_RTP_LATCH",
        "CALLBRIDGE_MEDIA_ENGINE_THREADS",
        "CALLBRIDGE_MEDIA_REALTIME_PRIORITY",
        "CALLBRIDGE_CALLS_ON_MODEL_FAILURE",
        "CALLBRIDGE_CALLS_FALLBACK_CLIP",
        "CALLBRIDGE_CALLS_MODEL_REPLY_TIMEOUT",
        "CALLBRIDGE_OUTBOUND_TARGET",
        "CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE",
        "CALLBRIDGE_STORE_RECORDINGS_DIR",
        "CALLBRIDGE_STORE_SPOOL_DIR",
        "CALLBRIDGE_FILES_GROUP_READABLE",
        "CALLBRIDGE_STORE_SYNCHRONOUS",
        "CALLBRIDGE_HTTP_BIND",
        "CALLBRIDGE_HTTP_PUBLIC_BIND",
        "CALLBRIDGE_HTTP_IDLE_TIMEOUT",
        "CALLBRIDGE_HTTP_MAX_CONNECTIONS_PER_IP",
        "CALLBRIDGE_LOG_LEVEL",
        "CALLBRIDGE_TRANSFER_TARGETS",
        "CALLBRIDGE_CARRIER_TWILIO_STREAM_TOKEN_TTL_S",
        "CALLBRIDGE_CARRIER_VONAGE_STREAM_TOKEN_TTL_S",
        "CALLBRIDGE_MODEL_UPLINK_MS",
        "CALLBRIDGE_MODEL_DELEGATION_MODEL",
        "CALLBRIDGE_CALLS_BARGE_IN_AFTER",
        "CALLBRIDGE_SIP_SESSION_EXPIRES",
        "CALLBRIDGE_SIP_MIN_SE",
        "CALLBRIDGE_SIP_MIN_SE_FLOOR",
        "CALLBRIDGE_SIP_TCP_BIND",
        "CALLBRIDGE_SIP_TLS_BIND",
        "CALLBRIDGE_SIP_TLS_CERT",
        "CALLBRIDGE_SIP_TLS_KEY",
        "CALLBRIDGE_SIP_TLS_CA",
        "CALLBRIDGE_SIP_TLS_CLIENT_CERT",
        "CALLBRIDGE_SIP_TLS_CLIENT_KEY",
        "CALLBRIDGE_SIP_MAX_CONNECTIONS",
        "CALLBRIDGE_SIP_MAX_CONNECTIONS_PER_IP",
        "CALLBRIDGE_SIP_CONNECTION_IDLE_TIMEOUT",
        "CALLBRIDGE_SIP_UDP_TO_TCP",
        "CALLBRIDGE_AMD_MACHINE_POLICY",
        "CALLBRIDGE_AMD_VOICEMAIL_PROMPT",
        "CALLBRIDGE_AMD_HUMAN_MAX_WORDS",
        // trunk (issue 20)
        "CALLBRIDGE_RTP_SRTP",
        "CALLBRIDGE_SIP_DNS_SERVERS",
        // issue 17
        "CALLBRIDGE_STORE_COMMIT_WINDOW",
        "CALLBRIDGE_MEDIA_ADMISSION_STEP",
        "CALLBRIDGE_CALLS_ADMISSION_WAIT",
    ] {
        assert!(vars.iter().any(|x| x == v), "{v} missing from {vars:?}");
    }
    // One variable per leaf of the key tree, none twice.
    let mut sorted = vars.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), vars.len());
    assert_eq!(
        vars.len(),
        40 + 10 + 7 + 1 + 1 + 2 + 1 + 3 + 1 + 2 + 11 + 14 + 8 + 8 + 1 + 3 + 3 + 2 + 4 + 1
            // issue 20 (dns): sip.dns_servers
            + 1
            // deleg (issue 23): model.providers
            + 1
            // issue 19: amd.human_quick_greeting, _quick_silence, _verdict_by
            + 3
            // issue 17: store.commit_window
            + 1
            // issue 17: media.admission_step, calls.admission_wait
            + 2,
        "10 carrier keys, 7 http limits and binds, tls.roots, model.uplink_ms, 2 media engine keys, calls.barge_in_after, 3 session timer keys, model.delegation_model, store.url and store.node, 11 SIP TCP/TLS keys, 17 amd keys, 8 [model.openai] keys, 8 webhooks keys, http.listen, 3 routing keys (issue 23: sip.keep_headers, routing.default_profile, routing.profiles_file), 3 retention keys, 2 inbound owner keys, 4 summary keys, rtp.srtp, model.providers, sip.dns_servers, store.commit_window, media.admission_step, calls.admission_wait"
    );
}

#[test]
fn bad_env_integer_names_variable_and_key() {
    let m = load("", &[("CALLBRIDGE_RTP_PORT_MIN", "low")]).unwrap_err();
    assert_eq!(
        m,
        "rtp.port_min (from CALLBRIDGE_RTP_PORT_MIN) = \"low\": expected an integer"
    );
    let m = load("", &[("CALLBRIDGE_MODEL_TOOLS", "maybe")]).unwrap_err();
    assert!(m.contains("expected true or false"), "{m}");
}

#[test]
fn unknown_variable_in_our_sections_is_an_error_others_are_ignored() {
    let m = load("", &[("CALLBRIDGE_SIP_BIDN", "x")]).unwrap_err();
    assert!(m.contains("CALLBRIDGE_SIP_BIDN"), "{m}");
    assert!(
        load(
            "",
            &[
                ("CALLBRIDGE_TOKEN", "x"),
                ("CALLBRIDGE_SIP_TRUNK_PASSWORD", "p")
            ]
        )
        .is_ok()
    );
}

#[test]
fn empty_file_takes_defaults() {
    let s = load("", &[]).unwrap();
    assert_eq!(get(&s, "calls.max_concurrent"), "unset");
    assert_eq!(
        keys::key("calls.max_concurrent").map(|k| k.default),
        Some(Preset::Int(100))
    );
    assert!(s.value("sip").is_none() && s.value("calls").is_none());
}
