//! Unit tests of validation: every error path names its key, value and
//! expectation; the mapping onto the manager and the model.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigErrors;
use super::load::from_text;
use super::values::{Synchronous, TlsRoots};
use super::*;
use callbridge_llm_bridge::AudioFormat;
use callbridge_rtp::latch::LatchPolicy;
use callbridge_session::lifecycle::ModelFailurePolicy;
use proptest::prop_assert;

const GOOD: &str = r#"
[sip]
bind = "127.0.0.1:0"
allowed_peers = ["127.0.0.1/32", "::1"]
[model]
provider = "mock"
[store]
database = "db.sqlite"
recordings_dir = "rec"
[http]
bind = "127.0.0.1:0"
"#;

fn env_map(env: &[(&str, &str)]) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn settings(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
    Settings::from_text(
        Path::new("agent.toml"),
        text,
        &env_map(env),
        Path::new("/etc/cb"),
    )
}

fn err(text: &str, env: &[(&str, &str)]) -> String {
    settings(text, env).unwrap_err().to_string()
}

#[test]
fn good_file_validates_and_maps_onto_the_manager() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.sip_bind, "127.0.0.1:0".parse().unwrap());
    assert_eq!(s.public_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(s.allowed_peers.len(), 2);
    assert_eq!(s.provider, Provider::Mock);
    assert_eq!(s.model, "mock-model");
    assert!(
        matches!(&s.store_url, callbridge_crm_store::StoreUrl::Sqlite(p) if p == Path::new("/etc/cb/db.sqlite"))
    );
    assert_eq!(s.on_model_failure, ModelFailurePolicy::AnswerThenEnd);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.max_calls, 100);
    assert_eq!(m.machine.no_speech, Duration::from_secs(30));
    assert_eq!(m.machine.max_duration, Duration::from_secs(1800));
    assert_eq!(m.shutdown_drain, Duration::from_secs(30));
    assert_eq!(m.recordings_dir, Some(PathBuf::from("/etc/cb/rec")));
    assert!(m.sip.filter.allows("127.0.0.1".parse().unwrap()));
    assert!(!m.sip.filter.allows("192.0.2.1".parse().unwrap()));
}

#[test]
fn the_spool_dir_defaults_to_spool_beside_the_database_and_may_be_elsewhere() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.spool_dir, PathBuf::from("/etc/cb/spool"));
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(
        m.store_writer.spool_dir,
        Some(PathBuf::from("/etc/cb/spool"))
    );
    let s = settings(GOOD, &[("CALLBRIDGE_STORE_SPOOL_DIR", "/var/spool/cb")]).unwrap();
    assert_eq!(s.spool_dir, PathBuf::from("/var/spool/cb"));
    let e = err(GOOD, &[("CALLBRIDGE_STORE_SPOOL_DIR", " ")]);
    assert!(e.contains("store.spool_dir"), "{e}");
}

#[test]
fn files_are_owner_only_unless_group_readable_is_set() {
    use callbridge_files::Access;
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.file_access, Access::Owner);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.file_access, Access::Owner);
    let s = settings(&format!("{GOOD}[files]\ngroup_readable = true\n"), &[]).unwrap();
    assert_eq!(s.file_access, Access::Group);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.file_access, Access::Group);
    let s = settings(GOOD, &[("CALLBRIDGE_FILES_GROUP_READABLE", "true")]).unwrap();
    assert_eq!(s.file_access, Access::Group);
    assert!(
        err(&format!("{GOOD}[files]\ngroup_readable = \"yes\"\n"), &[])
            .contains("files.group_readable")
    );
}

#[test]
fn the_example_file_validates() {
    let raw = include_str!("../../../agent.example.toml");
    let s = settings(raw, &[]).unwrap();
    assert_eq!(s.public_ip, "203.0.113.10".parse::<IpAddr>().unwrap());
    assert_eq!(
        s.outbound_target,
        Some("198.51.100.7:5060".parse().unwrap())
    );
    assert_eq!(s.provider, Provider::Gemini);
}

#[test]
fn gpt_live_takes_its_default_model_and_an_optional_delegation_model() {
    let s = settings(
        GOOD,
        &[
            ("CALLBRIDGE_MODEL_PROVIDER", "gpt-live"),
            ("CALLBRIDGE_MODEL_MODEL", ""),
        ],
    )
    .unwrap();
    assert_eq!(s.provider, Provider::GptLive);
    assert_eq!(s.provider.name(), "gpt-live");
    assert_eq!(s.model, "gpt-live-1");
    assert_eq!(s.provider.key_var(), Some("OPENAI_API_KEY"));
    assert_eq!(s.delegation_model, None);
    let s = settings(
        GOOD,
        &[
            ("CALLBRIDGE_MODEL_PROVIDER", "gpt-live"),
            ("CALLBRIDGE_MODEL_DELEGATION_MODEL", "gpt-5.5"),
        ],
    )
    .unwrap();
    assert_eq!(s.delegation_model.as_deref(), Some("gpt-5.5"));
}

#[test]
fn bad_sip_bind_names_key_value_and_expectation() {
    let m = err(
        &GOOD.replace("\"127.0.0.1:0\"\nallowed", "\"abc\"\nallowed"),
        &[],
    );
    assert!(m.starts_with("sip.bind = \"abc\": expected ip:port"), "{m}");
}

#[test]
fn env_origin_is_named_in_errors() {
    let m = err(GOOD, &[("CALLBRIDGE_HTTP_BIND", "localhost")]);
    assert!(
        m.starts_with("http.bind (from CALLBRIDGE_HTTP_BIND) = \"localhost\": expected ip:port"),
        "{m}"
    );
}

#[test]
fn wildcard_bind_needs_public_addr() {
    let m = err(
        &GOOD.replace("127.0.0.1:0\"\nallowed", "0.0.0.0:5060\"\nallowed"),
        &[],
    );
    assert!(m.starts_with("sip.public_addr is missing"), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_SIP_PUBLIC_ADDR", "0.0.0.0")]);
    assert!(m.contains("not a wildcard"), "{m}");
}

#[test]
fn bad_peer_network() {
    let m = err(GOOD, &[("CALLBRIDGE_SIP_ALLOWED_PEERS", "10.0.0.0/33")]);
    assert!(
        m.contains("sip.allowed_peers") && m.contains("\"10.0.0.0/33\"") && m.contains("CIDR"),
        "{m}"
    );
}

#[test]
fn bad_choices_list_the_options() {
    let m = err(GOOD, &[("CALLBRIDGE_SIP_REJECT_UNLISTED", "ignore")]);
    assert!(m.contains("one of \"forbidden\", \"drop\""), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_MODEL_PROVIDER", "claude")]);
    assert!(
        m.contains("model.provider")
            && m.contains("\"gemini\", \"openai\", \"gpt-live\", \"mock\""),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_CALLS_ON_MODEL_FAILURE", "shrug")]);
    assert!(m.contains("\"answer-then-hangup\", \"reject\""), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_LOG_FORMAT", "xml")]);
    assert!(m.contains("log.format"), "{m}");
}

#[test]
fn rtp_latch_defaults_to_signalling_ip_takes_overrides_and_names_the_options() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.rtp_latch, LatchPolicy::SignallingIp);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.rtp_latch, LatchPolicy::SignallingIp);
    for p in LatchPolicy::ALL {
        let s = settings(GOOD, &[("CALLBRIDGE_RTP_LATCH", p.as_str())]).unwrap();
        let m = s.manager_config(s.session_config(&Secrets::default(), None));
        assert_eq!(m.rtp_latch, p);
    }
    let m = err(GOOD, &[("CALLBRIDGE_RTP_LATCH", "any")]);
    assert!(
        m.contains("rtp.latch") && m.contains("\"signalling-ip\", \"allowed-peers\", \"strict\""),
        "{m}"
    );
}

#[test]
fn the_media_engine_defaults_to_one_thread_at_fifo_10_and_takes_overrides() {
    use callbridge_rtp::engine::RealtimePriority;
    let s = settings(GOOD, &[]).unwrap();
    let e = s.engine_config();
    assert_eq!(
        (e.threads, e.realtime_priority),
        (1, RealtimePriority::Fifo(10))
    );
    let s = settings(GOOD, &[("CALLBRIDGE_MEDIA_REALTIME_PRIORITY", "off")]).unwrap();
    assert_eq!(s.engine_config().realtime_priority, RealtimePriority::Off);
    let s = settings(
        GOOD,
        &[
            ("CALLBRIDGE_MEDIA_ENGINE_THREADS", "2"),
            ("CALLBRIDGE_MEDIA_REALTIME_PRIORITY", "20"),
        ],
    )
    .unwrap();
    let e = s.engine_config();
    assert_eq!(
        (e.threads, e.realtime_priority),
        (2, RealtimePriority::Fifo(20))
    );
    for bad in ["0", "100", "high"] {
        let m = err(GOOD, &[("CALLBRIDGE_MEDIA_REALTIME_PRIORITY", bad)]);
        assert!(
            m.contains("media.realtime_priority") && m.contains("1 to 99"),
            "{m}"
        );
    }
    let m = err(GOOD, &[("CALLBRIDGE_MEDIA_ENGINE_THREADS", "0")]);
    assert!(m.contains("media.engine_threads"), "{m}");
}

#[test]
fn the_admission_wait_defaults_to_2s_takes_off_and_refuses_more_than_10s() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(
        s.manager_config(s.session_config(&Secrets::default(), None))
            .admission_wait,
        Duration::from_secs(2)
    );
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_ADMISSION_WAIT", "off")]).unwrap();
    assert_eq!(s.admission_wait, Duration::ZERO);
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_ADMISSION_WAIT", "500ms")]).unwrap();
    assert_eq!(s.admission_wait, Duration::from_millis(500));
    for bad in ["11s", "0s", "later"] {
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_ADMISSION_WAIT", bad)]);
        assert!(m.contains("calls.admission_wait"), "{bad}: {m}");
    }
}

#[test]
fn the_admission_step_defaults_to_100_calls_a_window_and_takes_overrides() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.engine_config().admission.step, 100);
    let s = settings(GOOD, &[("CALLBRIDGE_MEDIA_ADMISSION_STEP", "250")]).unwrap();
    let a = s.engine_config().admission;
    assert_eq!(a.step, 250);
    assert_eq!(
        a.growth,
        callbridge_rtp::engine::AdmissionPolicy::default().growth
    );
    for bad in ["0", "-3", "many"] {
        let m = err(GOOD, &[("CALLBRIDGE_MEDIA_ADMISSION_STEP", bad)]);
        assert!(m.contains("media.admission_step"), "{bad}: {m}");
    }
}

#[test]
fn reject_policy_maps_to_503() {
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_ON_MODEL_FAILURE", "reject")]).unwrap();
    assert!(matches!(
        s.on_model_failure,
        ModelFailurePolicy::Reject503 { .. }
    ));
}

#[test]
fn bad_durations() {
    let m = err(GOOD, &[("CALLBRIDGE_CALLS_MAX_DURATION", "forever")]);
    assert!(
        m.contains("calls.max_duration") && m.contains("expected a duration like"),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_CALLS_DRAIN_TIMEOUT", "0s")]);
    assert!(m.contains("above zero"), "{m}");
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_NO_SPEECH_TIMEOUT", "1m 30s")]).unwrap();
    assert_eq!(s.no_speech_timeout, Duration::from_secs(90));
}

#[test]
fn session_timers_default_to_30m_and_90s_and_go_below_90s_only_with_the_test_floor() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.session_timer.session_expires, Duration::from_secs(1800));
    assert_eq!(s.session_timer.min_se, Duration::from_secs(90));
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.sip.session_timer, s.session_timer);
    let m = err(GOOD, &[("CALLBRIDGE_SIP_MIN_SE", "10s")]);
    assert!(
        m.contains("sip.min_se") && m.contains("min_se_floor = 90s"),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_SIP_SESSION_EXPIRES", "60s")]);
    assert!(
        m.contains("sip.session_expires") && m.contains("min_se = 90s"),
        "{m}"
    );
    let s = settings(
        GOOD,
        &[
            ("CALLBRIDGE_SIP_MIN_SE_FLOOR", "1s"),
            ("CALLBRIDGE_SIP_MIN_SE", "2s"),
            ("CALLBRIDGE_SIP_SESSION_EXPIRES", "4s"),
        ],
    )
    .unwrap();
    assert_eq!(s.session_timer.min_se, Duration::from_secs(2));
    assert_eq!(s.session_timer.session_expires, Duration::from_secs(4));
    let m = err(GOOD, &[("CALLBRIDGE_SIP_MIN_SE_FLOOR", "500ms")]);
    assert!(m.contains("sip.min_se_floor"), "{m}");
}

#[test]
fn model_reply_timeout_defaults_to_8s_takes_overrides_and_off() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.model_reply_timeout, Some(Duration::from_secs(8)));
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.machine.model_reply_timeout, Some(Duration::from_secs(8)));
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_MODEL_REPLY_TIMEOUT", "3s")]).unwrap();
    assert_eq!(s.model_reply_timeout, Some(Duration::from_secs(3)));
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_MODEL_REPLY_TIMEOUT", "off")]).unwrap();
    assert_eq!(s.model_reply_timeout, None);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.machine.model_reply_timeout, None);
    for bad in ["0s", "soon"] {
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_MODEL_REPLY_TIMEOUT", bad)]);
        assert!(
            m.contains("calls.model_reply_timeout")
                && m.contains("CALLBRIDGE_CALLS_MODEL_REPLY_TIMEOUT")
                && m.contains("\"off\""),
            "{m}"
        );
    }
}

#[test]
fn uplink_ms_defaults_to_40_takes_20_and_60_and_refuses_anything_else() {
    use callbridge_llm_bridge::UplinkChunk;
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.uplink, UplinkChunk::Ms40);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.model.uplink, UplinkChunk::Ms40);
    let s = settings(GOOD, &[("CALLBRIDGE_MODEL_UPLINK_MS", "60")]).unwrap();
    assert_eq!(
        s.session_config(&Secrets::default(), None).uplink,
        UplinkChunk::Ms60
    );
    let file = GOOD.replace("provider = \"mock\"", "provider = \"mock\"\nuplink_ms = 20");
    assert_eq!(settings(&file, &[]).unwrap().uplink, UplinkChunk::Ms20);
    for bad in ["0", "30", "100", "-20"] {
        let m = err(GOOD, &[("CALLBRIDGE_MODEL_UPLINK_MS", bad)]);
        assert!(
            m.contains("model.uplink_ms (from CALLBRIDGE_MODEL_UPLINK_MS)")
                && m.contains("20, 40 or 60"),
            "{m}"
        );
    }
    let file = GOOD.replace("provider = \"mock\"", "provider = \"mock\"\nuplink_ms = 50");
    let m = err(&file, &[]);
    assert!(
        m.contains("model.uplink_ms = 50: expected 20, 40 or 60") && m.contains("(in agent.toml)"),
        "{m}"
    );
}

#[test]
fn barge_in_after_defaults_to_250ms_takes_overrides_and_off() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.barge_in_after, Some(Duration::from_millis(250)));
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.barge_in_after, Some(Duration::from_millis(250)));
    assert_eq!(m.machine.rtp_inactivity, Some(Duration::from_secs(30)));
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_BARGE_IN_AFTER", "400ms")]).unwrap();
    assert_eq!(s.barge_in_after, Some(Duration::from_millis(400)));
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_BARGE_IN_AFTER", "off")]).unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.barge_in_after, None);
    for bad in ["0s", "6s", "soon"] {
        let m = err(GOOD, &[("CALLBRIDGE_CALLS_BARGE_IN_AFTER", bad)]);
        assert!(
            m.contains("calls.barge_in_after") && m.contains("\"off\""),
            "{m}"
        );
    }
}

#[test]
fn bad_ports_and_capacity() {
    let m = err(GOOD, &[("CALLBRIDGE_RTP_PORT_MIN", "70000")]);
    assert!(
        m.contains("rtp.port_min") && m.contains("1 to 65535"),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_RTP_PORT_MIN", "30000")]);
    assert!(
        m.contains("rtp.port_max = 20999: expected a port above rtp.port_min"),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_CALLS_MAX_CONCURRENT", "0")]);
    assert!(
        m.contains("calls.max_concurrent") && m.contains("1 to 10000"),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_RTP_PORT_MAX", "20009")]);
    assert!(m.contains("at most 5 (one even RTP port per call"), "{m}");
    let odd = [
        ("CALLBRIDGE_RTP_PORT_MIN", "20001"),
        ("CALLBRIDGE_RTP_PORT_MAX", "20003"),
    ];
    let m = err(GOOD, &odd);
    assert!(
        m.contains("at most 1 "),
        "20001..=20003 holds one even port: {m}"
    );
}

#[test]
fn bad_outbound() {
    let m = err(GOOD, &[("CALLBRIDGE_OUTBOUND_FROM", "5551234")]);
    assert!(m.contains("outbound.from") && m.contains("E.164"), "{m}");
    let m = err(
        GOOD,
        &[("CALLBRIDGE_OUTBOUND_TARGET", "nowhere.invalid:99999")],
    );
    assert!(m.contains("outbound.target"), "{m}");
}

#[test]
fn bad_model_settings() {
    let m = err(GOOD, &[("CALLBRIDGE_MODEL_ENDPOINT", "http://x")]);
    assert!(m.contains("ws:// or wss://"), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_MODEL_ENDPOINT", "ws://127.0.0.1:1/x")]);
    assert!(m.contains("no endpoint with provider = \"mock\""), "{m}");
    let m = err(
        GOOD,
        &[
            ("CALLBRIDGE_MODEL_SYSTEM_PROMPT", "a"),
            ("CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE", "b"),
        ],
    );
    assert!(m.contains("not both"), "{m}");
    let m = err(
        GOOD,
        &[("CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE", "missing.txt")],
    );
    assert!(
        m.contains(
            "model.system_prompt_file (from CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE) = \"missing.txt\": expected a readable file"
        ),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_MODEL_SETUP_TIMEOUT", "soon")]);
    assert!(m.contains("model.setup_timeout"), "{m}");
}

#[test]
fn prompt_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.txt"), "be brief").unwrap();
    std::fs::write(dir.path().join("agent.toml"), GOOD).unwrap();
    let env = [(
        "CALLBRIDGE_MODEL_SYSTEM_PROMPT_FILE".to_owned(),
        "p.txt".to_owned(),
    )]
    .into();
    let s = Settings::load(&dir.path().join("agent.toml"), &env).unwrap();
    assert_eq!(s.system_prompt, "be brief");
    assert!(
        matches!(&s.store_url, callbridge_crm_store::StoreUrl::Sqlite(p) if *p == dir.path().join("db.sqlite"))
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let m = Settings::load(Path::new("/nonexistent/agent.toml"), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(m.starts_with("cannot read /nonexistent/agent.toml"), "{m}");
}

#[test]
fn store_synchronous_defaults_to_normal_and_takes_full() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.synchronous, Synchronous::Normal);
    assert!(!s.store_options().sync_full);
    let s = settings(GOOD, &[("CALLBRIDGE_STORE_SYNCHRONOUS", "full")]).unwrap();
    assert_eq!(s.synchronous, Synchronous::Full);
    assert!(s.store_options().sync_full);
    let m = err(GOOD, &[("CALLBRIDGE_STORE_SYNCHRONOUS", "off")]);
    assert!(
        m.starts_with("store.synchronous (from CALLBRIDGE_STORE_SYNCHRONOUS) = \"off\": expected one of \"normal\", \"full\""),
        "{m}"
    );
}

#[test]
fn store_commit_window_defaults_to_10ms_takes_off_and_refuses_more_than_1s() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.commit_window, Duration::from_millis(10));
    assert_eq!(
        s.manager_config(s.session_config(&Secrets::default(), None))
            .store_writer
            .commit_window,
        Duration::from_millis(10)
    );
    let s = settings(GOOD, &[("CALLBRIDGE_STORE_COMMIT_WINDOW", "off")]).unwrap();
    assert_eq!(s.commit_window, Duration::ZERO);
    let s = settings(GOOD, &[("CALLBRIDGE_STORE_COMMIT_WINDOW", "2ms")]).unwrap();
    assert_eq!(s.commit_window, Duration::from_millis(2));
    for bad in ["2s", "0s", "soon"] {
        let m = err(GOOD, &[("CALLBRIDGE_STORE_COMMIT_WINDOW", bad)]);
        assert!(
            m.starts_with(&format!(
                "store.commit_window (from CALLBRIDGE_STORE_COMMIT_WINDOW) = \"{bad}\": expected a duration up to \"1s\""
            )),
            "{m}"
        );
    }
}

#[test]
fn bad_store_and_log() {
    let m = err(GOOD, &[("CALLBRIDGE_STORE_DATABASE", " ")]);
    assert!(m.contains("store.database"), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_LOG_LEVEL", "loud")]);
    assert!(
        m.starts_with("log.level (from CALLBRIDGE_LOG_LEVEL) = \"loud\": expected a level"),
        "{m}"
    );
}

#[test]
fn trunk_needs_registrar_username_and_password() {
    let t = format!("{GOOD}\n[sip.trunk]\nusername = \"u\"\n");
    assert!(err(&t, &[]).starts_with("sip.trunk.registrar is missing"));
    let t = format!("{GOOD}\n[sip.trunk]\nregistrar = \"sip:127.0.0.1:5070\"\n");
    assert!(err(&t, &[]).starts_with("sip.trunk.username is missing"));
    let t = format!("{GOOD}\n[sip.trunk]\nregistrar = \"not a uri\"\nusername = \"u\"\n");
    assert!(err(&t, &[]).contains("a SIP URI"), "{}", err(&t, &[]));
    let t = format!(
        "{GOOD}\n[sip.trunk]\nregistrar = \"sip:127.0.0.1:5070\"\nusername = \"u\"\nregister_expires = \"5m\"\n"
    );
    let s = settings(&t, &[]).unwrap();
    let trunk = s.trunk.clone().unwrap();
    assert_eq!(trunk.target, "127.0.0.1:5070".parse().unwrap());
    assert_eq!(trunk.expires, Duration::from_secs(300));
    assert_eq!(
        s.outbound_target,
        Some(trunk.target.clone()),
        "outbound defaults to the trunk"
    );
    assert_eq!(s.outbound().domain.as_deref(), Some("127.0.0.1"));
    let e = Secrets::from_env(&s, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("CALLBRIDGE_SIP_TRUNK_PASSWORD is not set"),
        "{e}"
    );
    let env = [("CALLBRIDGE_SIP_TRUNK_PASSWORD".to_owned(), "pw".to_owned())].into();
    let secrets = Secrets::from_env(&s, &env).unwrap();
    assert!(!format!("{secrets:?}").contains("pw\""));
    assert_eq!(s.trunk_credentials(&secrets).unwrap().username, "u");
    let auth = s.outbound_auth(&secrets).unwrap();
    assert_eq!(auth.target, trunk.target, "credentials go with the trunk");
    assert!(auth.for_target(&trunk.target).is_some());
    assert!(
        auth.for_target(&"192.0.2.9:5060".parse().unwrap())
            .is_none()
    );
    assert!(!format!("{auth:?}").contains("\"pw\""));
}

#[test]
fn outbound_credentials_only_for_calls_sent_to_the_trunk() {
    let trunk = "[sip.trunk]\nregistrar = \"sip:127.0.0.1:5070\"\nusername = \"u\"\n\
                 outbound_proxy = \"127.0.0.1:5080\"\n";
    let env: BTreeMap<String, String> =
        [("CALLBRIDGE_SIP_TRUNK_PASSWORD".to_owned(), "pw".to_owned())].into();
    let s = settings(&format!("{GOOD}\n{trunk}"), &[]).unwrap();
    let secrets = Secrets::from_env(&s, &env).unwrap();
    let auth = s.outbound_auth(&secrets).unwrap();
    assert_eq!(
        auth.target,
        "127.0.0.1:5080".parse().unwrap(),
        "the outbound proxy"
    );
    assert_eq!(s.outbound_target, Some(auth.target));
    // outbound.target elsewhere: the manager gives those calls none.
    let s = settings(
        &format!("{GOOD}\n{trunk}[outbound]\ntarget = \"127.0.0.1:6000\"\n"),
        &[],
    )
    .unwrap();
    let auth = s.outbound_auth(&secrets).unwrap();
    assert!(auth.for_target(&s.outbound_target.unwrap()).is_none());
    // No trunk, no credentials.
    let s = settings(GOOD, &[]).unwrap();
    assert!(s.outbound_auth(&Secrets::default()).is_none());
}

#[test]
fn providers_need_their_key_from_the_environment() {
    let s = settings(GOOD, &[("CALLBRIDGE_MODEL_PROVIDER", "gemini")]).unwrap();
    let e = Secrets::from_env(&s, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "GEMINI_API_KEY is not set: model.provider = \"gemini\" needs its API key"
    );
    let env = [("GEMINI_API_KEY".to_owned(), "k-123".to_owned())].into();
    let secrets = Secrets::from_env(&s, &env).unwrap();
    assert_eq!(secrets.model_key.as_deref(), Some("k-123"));
    let s = settings(GOOD, &[("CALLBRIDGE_MODEL_PROVIDER", "openai")]).unwrap();
    assert!(
        Secrets::from_env(&s, &BTreeMap::new())
            .unwrap_err()
            .to_string()
            .starts_with("OPENAI_API_KEY")
    );
    let m = s.session_config(&Secrets::default(), None);
    assert_eq!(
        (m.input_format, m.output_format),
        (AudioFormat::Pcmu, AudioFormat::Pcmu)
    );
    let mock = settings(GOOD, &[]).unwrap();
    assert!(
        Secrets::from_env(&mock, &BTreeMap::new())
            .unwrap()
            .model_key
            .is_none()
    );
}

#[test]
fn tools_switch_maps_onto_builtin_tools() {
    let s = settings(GOOD, &[("CALLBRIDGE_MODEL_TOOLS", "false")]).unwrap();
    let m = s.session_config(&Secrets::default(), Some("ws://127.0.0.1:9/x".into()));
    assert!(!m.builtin_tools.end_call && !m.builtin_tools.transfer_call);
    assert_eq!(m.endpoint.as_deref(), Some("ws://127.0.0.1:9/x"));
}

#[test]
fn transfer_targets_are_checked_at_start_and_reach_the_manager() {
    // Default: none, so the model is offered no transfer at all.
    let s = settings(GOOD, &[]).unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert!(m.transfer_targets.is_empty());
    let file =
        format!("{GOOD}[transfer]\ntargets = [\"sales=sip:sales@127.0.0.1\", \"london=+4420*\"]\n");
    let s = settings(&file, &[]).unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.transfer_targets.names(), ["sales", "london"]);
    assert!(m.transfer_targets.check("+19005550123", None).is_err());
    // From the environment, comma-separated.
    let s = settings(
        GOOD,
        &[(
            "CALLBRIDGE_TRANSFER_TARGETS",
            "desk=+441632960123, ops=sip:ops@127.0.0.1",
        )],
    )
    .unwrap();
    assert_eq!(s.transfer_targets.names(), ["desk", "ops"]);
    // With the tools off, nothing may be dialled either.
    let s = settings(
        GOOD,
        &[
            ("CALLBRIDGE_TRANSFER_TARGETS", "desk=+441632960123"),
            ("CALLBRIDGE_MODEL_TOOLS", "false"),
        ],
    )
    .unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert!(m.transfer_targets.is_empty());
    // A bad entry stops the start, naming the key and the entry, never
    // the target (a phone number).
    let e = err(
        GOOD,
        &[(
            "CALLBRIDGE_TRANSFER_TARGETS",
            "ok=+441632960123,premium=0900123456",
        )],
    );
    assert!(
        e.contains("transfer.targets") && e.contains("entry 2 (\"premium\")"),
        "{e}"
    );
    assert!(
        e.contains("CALLBRIDGE_TRANSFER_TARGETS") && !e.contains("0900123456"),
        "{e}"
    );
    let e = err(GOOD, &[("CALLBRIDGE_TRANSFER_TARGETS", "sip:x@127.0.0.1")]);
    assert!(e.contains("name=target"), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any value for any key, through its environment variable: the
    /// loader never panics, and an error names that key (or, for a key
    /// of an optional section, a key of that section: the ones it then
    /// requires).
    #[test]
    fn any_env_value_for_any_key_is_accepted_or_named(
        index in 0usize..keys::KEYS.len(),
        value in "[ -~]{0,24}",
    ) {
        let keys = env_keys();
        let (var, key) = &keys[index % keys.len()];
        if let Err(e) = settings(GOOD, &[(var.as_str(), value.as_str())]) {
            let m = e.to_string();
            // A trunk key set alone brings in [sip.trunk], whose
            // required keys are then named instead; so does enabling a
            // carrier (its public_url).
            let section = ["sip.trunk.", "carrier.twilio.", "carrier.vonage."]
                .iter()
                .any(|s| key.starts_with(s) && m.contains(s));
            prop_assert!(
                m.contains(key.as_str()) || m.contains(var.as_str()) || section,
                "{var}={value:?}: {m}"
            );
        }
    }

    /// Arbitrary file text never panics the loader.
    #[test]
    fn arbitrary_file_text_never_panics(text in "(\\[[a-z.]{1,12}\\]\n|[a-z_]{1,12} = (\"[ -~]{0,12}\"|[0-9]{1,6}|true|\\[\\])\n){0,8}") {
        let _ = settings(&text, &[]);
    }
}

#[test]
fn fallback_clip_from_the_environment_is_checked_and_passed_to_the_manager() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(
        s.manager_config(s.session_config(&Secrets::default(), None))
            .fallback_clip,
        None
    );
    let clip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/session/assets/fallback-apology-8k.wav"
    );
    let s = settings(GOOD, &[("CALLBRIDGE_CALLS_FALLBACK_CLIP", clip)]).unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.fallback_clip, Some(PathBuf::from(clip)));
    let not_wav = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let m = err(GOOD, &[("CALLBRIDGE_CALLS_FALLBACK_CLIP", not_wav)]);
    assert!(
        m.starts_with("calls.fallback_clip (from CALLBRIDGE_CALLS_FALLBACK_CLIP) = ")
            && m.contains("a mono 16-bit PCM WAV file at 8000 Hz"),
        "{m}"
    );
}

#[test]
fn http_limits_and_listeners_default_and_validate() {
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.http_limits, crate::http::Limits::default());
    assert_eq!((s.http_public_bind, s.http_metrics_bind), (None, None));
    let s = settings(
        GOOD,
        &[
            ("CALLBRIDGE_HTTP_PUBLIC_BIND", "127.0.0.1:0"),
            ("CALLBRIDGE_HTTP_IDLE_TIMEOUT", "5s"),
            ("CALLBRIDGE_HTTP_MAX_CONNECTIONS", "64"),
        ],
    )
    .unwrap();
    assert_eq!(s.http_public_bind, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(s.http_limits.idle_timeout, Duration::from_secs(5));
    assert_eq!(s.http_limits.max_connections, 64);
    let m = err(GOOD, &[("CALLBRIDGE_HTTP_MAX_CONNECTIONS_PER_IP", "0")]);
    assert!(
        m.starts_with("http.max_connections_per_ip (from CALLBRIDGE_HTTP_MAX_CONNECTIONS_PER_IP) = 0: expected a number from 1 to 100000"),
        "{m}"
    );
    let m = err(GOOD, &[("CALLBRIDGE_HTTP_HEADER_READ_TIMEOUT", "0s")]);
    assert!(m.starts_with("http.header_read_timeout"), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_HTTP_METRICS_BIND", "metrics")]);
    assert!(m.starts_with("http.metrics_bind"), "{m}");
}

#[test]
fn two_bad_values_in_one_file_are_both_reported_with_the_file() {
    let file = GOOD
        .replace("\"127.0.0.1:0\"\nallowed", "\"abc\"\nallowed")
        .replace(
            "provider = \"mock\"",
            "provider = \"mock\"\nsetup_timeout = \"soon\"",
        );
    let m = err(&file, &[]);
    let lines: Vec<&str> = m.lines().collect();
    assert_eq!(lines.len(), 2, "{m}");
    assert_eq!(
        lines[0],
        "sip.bind = \"abc\": expected ip:port (e.g. \"0.0.0.0:5060\" or \"[::1]:5060\") (in agent.toml)"
    );
    assert!(
        lines[1].starts_with("model.setup_timeout = \"soon\": expected a duration")
            && lines[1].ends_with("(in agent.toml)"),
        "{m}"
    );
}

#[test]
fn a_bad_variable_is_named_beside_a_bad_file_value() {
    let file = GOOD.replace("recordings_dir = \"rec\"", "recordings_dir = \"\"");
    let m = err(
        &file,
        &[
            ("CALLBRIDGE_RTP_LATCH", "any"),
            ("CALLBRIDGE_HTTP_MAX_CONNECTIONS", "lots"),
        ],
    );
    assert!(
        m.contains("rtp.latch (from CALLBRIDGE_RTP_LATCH) = \"any\": expected one of"),
        "{m}"
    );
    assert!(
        m.contains(
            "http.max_connections (from CALLBRIDGE_HTTP_MAX_CONNECTIONS) = \"lots\": expected an integer"
        ),
        "{m}"
    );
    assert!(
        m.contains("store.recordings_dir = \"\": expected a directory path (in agent.toml)"),
        "{m}"
    );
    assert_eq!(m.lines().count(), 3, "{m}");
}

#[test]
fn bad_keys_and_missing_secrets_are_reported_in_one_pass() {
    let file = format!(
        "{}\n[sip.trunk]\nusername = \"u\"\n",
        GOOD.replace("provider = \"mock\"", "provider = \"gemini\"")
    );
    let m = from_text(
        Path::new("agent.toml"),
        &file,
        &env_map(&[("CALLBRIDGE_CALLS_MAX_DURATION", "forever")]),
        Path::new("/etc/cb"),
    )
    .unwrap_err()
    .to_string();
    for part in [
        "sip.trunk.registrar is missing",
        "calls.max_duration (from CALLBRIDGE_CALLS_MAX_DURATION) = \"forever\"",
        "GEMINI_API_KEY is not set",
        "CALLBRIDGE_SIP_TRUNK_PASSWORD is not set",
    ] {
        assert!(m.contains(part), "{part}: {m}");
    }
    assert_eq!(m.lines().count(), 4, "{m}");
}

#[test]
fn tls_roots_default_to_the_system_store_and_take_bundled() {
    assert_eq!(settings(GOOD, &[]).unwrap().tls_roots, TlsRoots::System);
    let s = settings(&format!("{GOOD}[tls]\nroots = \"bundled\"\n"), &[]).unwrap();
    assert_eq!(s.tls_roots, TlsRoots::Bundled);
    let s = settings(GOOD, &[("CALLBRIDGE_TLS_ROOTS", "bundled")]).unwrap();
    assert_eq!(s.tls_roots, TlsRoots::Bundled);
    // The model's WebSocket connects with the chosen roots.
    let m = s.session_config(&Secrets::default(), None);
    assert_eq!(m.tls_roots, TlsRoots::Bundled);
    let m = err(GOOD, &[("CALLBRIDGE_TLS_ROOTS", "webpki")]);
    assert_eq!(
        m,
        "tls.roots (from CALLBRIDGE_TLS_ROOTS) = \"webpki\": expected one of \"system\", \"bundled\""
    );
}

#[test]
fn validation_reads_every_key_of_the_table_and_no_other() {
    // Every optional section present, so that each of its keys is read.
    let file = format!(
        "{GOOD}[sip.trunk]\nregistrar = \"sip:127.0.0.1:5070\"\nusername = \"u\"\n\
         [carrier.twilio]\nenabled = true\npublic_url = \"https://a.example\"\n\
         [carrier.vonage]\nenabled = true\npublic_url = \"https://a.example\"\n"
    );
    let read = load::keys_read(Path::new("agent.toml"), &file);
    let table: std::collections::BTreeSet<&str> = keys::KEYS.iter().map(|k| k.path).collect();
    assert_eq!(read, table);
}

#[test]
fn the_store_is_store_url_else_the_database_file_and_the_node_defaults_to_the_host() {
    use callbridge_crm_store::{NodeId, StoreUrl};
    let s = settings(GOOD, &[]).unwrap();
    assert!(matches!(&s.store_url, StoreUrl::Sqlite(p) if p == Path::new("/etc/cb/db.sqlite")));
    assert_eq!(s.node, NodeId::from_host());
    assert_eq!(s.store_options().node, Some(NodeId::from_host()));

    let pg = GOOD.replace(
        "database = \"db.sqlite\"",
        "url = \"postgres://cb@db.internal:5432/crm\"\nnode = \"agent-2\"",
    );
    let s = settings(&pg, &[]).unwrap();
    assert!(matches!(&s.store_url, StoreUrl::Postgres(_)));
    assert_eq!(s.node.as_str(), "agent-2");
    assert_eq!(s.store_at().options.node.unwrap().as_str(), "agent-2");
    // From the environment, like every key; a relative SQLite path is
    // relative to the configuration file.
    let s = settings(GOOD, &[("CALLBRIDGE_STORE_URL", "sqlite:other.db")]).unwrap();
    assert!(matches!(&s.store_url, StoreUrl::Sqlite(p) if p == Path::new("/etc/cb/other.db")));
    // The password is a secret of the environment, and a bad URL is
    // reported without echoing it.
    assert!(settings(GOOD, &[("CALLBRIDGE_STORE_PASSWORD", "pw")]).is_ok());
    let m = err(
        &GOOD.replace(
            "database = \"db.sqlite\"",
            "url = \"postgres://cb:hunter2@[bad/crm\"",
        ),
        &[],
    );
    assert!(m.contains("store.url") && !m.contains("hunter2"), "{m}");
    let m = err(
        &GOOD.replace("database = \"db.sqlite\"", "node = \"two words\""),
        &[],
    );
    assert!(m.contains("store.node"), "{m}");
}

#[test]
fn amd_defaults_to_hangup_and_a_voicemail_needs_one_message() {
    use callbridge_session::amd::{MachinePolicy, VoicemailMessage};
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.amd, callbridge_session::amd::AmdSettings::default());
    let s = settings(
        &format!(
            "{GOOD}[amd]\nmachine_policy = \"voicemail\"\nvoicemail_prompt = \"Say hi.\"\nhuman_silence = \"700ms\"\nhuman_verdict_by = \"1700ms\"\nunknown = \"machine\"\n"
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        s.amd.policy,
        MachinePolicy::Voicemail(VoicemailMessage::Prompt("Say hi.".into()))
    );
    assert_eq!(s.amd.acoustic.human_silence, Duration::from_millis(700));
    assert_eq!(s.amd.acoustic.human_verdict_by, Duration::from_millis(1700));
    assert_eq!(
        s.amd.acoustic.human_quick_silence,
        Duration::from_millis(600)
    );
    assert!(!s.amd.unknown_is_human);
    let m = err(
        &format!("{GOOD}[amd]\nmachine_policy = \"voicemail\"\n"),
        &[],
    );
    assert!(m.contains("amd.machine_policy"), "{m}");
    let m = err(&format!("{GOOD}[amd]\nhuman_max_greeting = \"3s\"\n"), &[]);
    assert!(m.contains("human_max_greeting"), "{m}");
    let m = err(GOOD, &[("CALLBRIDGE_AMD_MACHINE_POLICY", "shout")]);
    assert!(m.contains("amd.machine_policy"), "{m}");
}

// --- issue 23 (live): [webhooks], http.listen ---
#[test]
fn webhooks_are_off_by_default_and_validated_whole() {
    let s = settings(GOOD, &[]).unwrap();
    assert!(s.webhooks.is_none());
    assert!(!s.http_listen);
    let s = settings(
        &format!(
            "{GOOD}[webhooks]\nurls = [\"https://hooks.example/cb\"]\n\
             secret_env = \"HOOK_SECRET\"\nevents = [\"call.ended\"]\nretry_initial = \"2s\"\n"
        ),
        &[("CALLBRIDGE_HTTP_LISTEN", "true")],
    )
    .unwrap();
    let w = s.webhooks.unwrap();
    // The schedule is the profiles' too (issue 23, prof2).
    assert_eq!(
        s.routing.defaults.webhooks.backoff.initial,
        Duration::from_secs(2)
    );
    assert!(s.routing.defaults.webhooks.urls.is_empty());
    assert_eq!(w.config.urls, vec!["https://hooks.example/cb".to_owned()]);
    assert_eq!(w.config.events, vec!["call.ended".to_owned()]);
    assert_eq!(w.secret_env.as_deref(), Some("HOOK_SECRET"));
    assert_eq!(w.config.backoff.initial, Duration::from_secs(2));
    assert!(s.http_listen);
    let m = err(
        &format!("{GOOD}[webhooks]\nurls = [\"ftp://x\"]\nevents = [\"call.exploded\"]\n"),
        &[],
    );
    assert!(m.contains("ftp://x") && m.contains("call.exploded"), "{m}");
    let m = err(
        &format!("{GOOD}[webhooks]\nurls = [\"http://a\"]\nretry_initial = \"10m\"\n"),
        &[],
    );
    assert!(m.contains("webhooks.retry_max"), "{m}");
}
// --- end issue 23 (live) ---
// --- trunk (issue 20) ---

#[test]
fn rtp_srtp_defaults_to_off_takes_overrides_and_names_the_options() {
    use callbridge_sip::sdp::SrtpPolicy;
    let s = settings(GOOD, &[]).unwrap();
    assert_eq!(s.rtp_srtp, SrtpPolicy::Off);
    for p in SrtpPolicy::ALL {
        let s = settings(GOOD, &[("CALLBRIDGE_RTP_SRTP", p.as_str())]).unwrap();
        let m = s.manager_config(s.session_config(&Secrets::default(), None));
        assert_eq!(m.srtp, p);
    }
    let m = err(GOOD, &[("CALLBRIDGE_RTP_SRTP", "mandatory")]);
    assert!(
        m.contains("rtp.srtp") && m.contains("\"off\", \"offer\", \"require\""),
        "{m}"
    );
}
