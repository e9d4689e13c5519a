//! The SIP TCP/TLS keys: each bad value names its key; certificates are
//! loaded at validation (made here with rcgen); the transport of outbound
//! calls follows `outbound.target` or the trunk registrar's URI.

use std::collections::BTreeMap;
use std::path::Path;

use callbridge_session::dns::{Destination, Locate};
use callbridge_sip::driver::tls::Trust;
use callbridge_sip::transport::Transport;

use super::secrets::Secrets;
use super::*;

const GOOD: &str = r#"
[sip]
bind = "127.0.0.1:0"
[model]
provider = "mock"
[store]
database = "db.sqlite"
recordings_dir = "rec"
[http]
bind = "127.0.0.1:0"
"#;

fn load(text: &str, env: &[(&str, &str)], dir: &Path) -> Result<Settings, String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Settings::load(&path, &env).map_err(|e| e.to_string())
}

/// cert.pem and key.pem for 127.0.0.1 in `dir`.
fn write_cert(dir: &Path) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
}

#[test]
fn by_default_there_is_no_tcp_or_tls_listener_and_no_udp_to_tcp_switch() {
    let dir = tempfile::tempdir().unwrap();
    let s = load(GOOD, &[], dir.path()).unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.sip_streams.tcp_bind, None);
    assert!(m.sip_streams.tls_bind.is_none());
    assert_eq!(m.sip.udp_max_request, None);
    assert_eq!(
        (m.sip_streams.max_connections, m.sip_streams.max_per_ip),
        (1024, 16)
    );
    assert_eq!(s.outbound_transport, Transport::Udp);
}

#[test]
fn listeners_with_a_certificate_map_onto_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let env = [
        ("CALLBRIDGE_SIP_TCP_BIND", "127.0.0.1:5070"),
        ("CALLBRIDGE_SIP_TLS_BIND", "127.0.0.1:5071"),
        ("CALLBRIDGE_SIP_TLS_CERT", "cert.pem"),
        ("CALLBRIDGE_SIP_TLS_KEY", "key.pem"),
        ("CALLBRIDGE_SIP_TLS_CA", "cert.pem"),
        ("CALLBRIDGE_SIP_MAX_CONNECTIONS_PER_IP", "4"),
        ("CALLBRIDGE_SIP_CONNECTION_IDLE_TIMEOUT", "1m"),
    ];
    let s = load(GOOD, &env, dir.path()).unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    let st = &m.sip_streams;
    assert_eq!(st.tcp_bind, Some("127.0.0.1:5070".parse().unwrap()));
    let (addr, files) = st.tls_bind.clone().unwrap();
    assert_eq!(addr, "127.0.0.1:5071".parse().unwrap());
    assert_eq!(files.key, dir.path().join("key.pem"));
    assert_eq!(
        st.tls_client.trust,
        Trust::CaFile(dir.path().join("cert.pem"))
    );
    assert_eq!((st.max_per_ip, st.idle_timeout.as_secs()), (4, 60));
    assert_eq!(m.sip.tcp_addr, Some("127.0.0.1:5070".parse().unwrap()));
    assert_eq!(m.sip.tls_addr, Some("127.0.0.1:5071".parse().unwrap()));
    assert_eq!(m.sip.udp_max_request, Some(1300));
    let s = load(
        GOOD,
        &[env[0], ("CALLBRIDGE_SIP_UDP_TO_TCP", "false")],
        dir.path(),
    )
    .unwrap();
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.sip.udp_max_request, None);
}

#[test]
fn tls_settings_that_do_not_fit_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("CALLBRIDGE_SIP_TLS_BIND", "127.0.0.1:5061")],
            "sip.tls_cert is missing",
        ),
        (
            &[
                ("CALLBRIDGE_SIP_TLS_CERT", "cert.pem"),
                ("CALLBRIDGE_SIP_TLS_KEY", "key.pem"),
            ],
            "set only with sip.tls_bind",
        ),
        (
            &[
                ("CALLBRIDGE_SIP_TLS_BIND", "127.0.0.1:5061"),
                ("CALLBRIDGE_SIP_TLS_CERT", "cert.pem"),
            ],
            "sip.tls_key is missing",
        ),
        (
            &[
                ("CALLBRIDGE_SIP_TLS_BIND", "127.0.0.1:5061"),
                ("CALLBRIDGE_SIP_TLS_CERT", "junk.pem"),
                ("CALLBRIDGE_SIP_TLS_KEY", "key.pem"),
            ],
            "sip.tls_cert (from CALLBRIDGE_SIP_TLS_CERT)",
        ),
        (&[("CALLBRIDGE_SIP_TLS_CA", "junk.pem")], "sip.tls_ca"),
        (
            &[("CALLBRIDGE_SIP_TLS_CLIENT_KEY", "key.pem")],
            "sip.tls_client_cert is missing",
        ),
        (&[("CALLBRIDGE_SIP_TCP_BIND", "nowhere")], "sip.tcp_bind"),
        (
            &[("CALLBRIDGE_SIP_MAX_CONNECTIONS", "-1")],
            "sip.max_connections",
        ),
        (
            &[("CALLBRIDGE_SIP_CONNECTION_IDLE_TIMEOUT", "soon")],
            "sip.connection_idle_timeout",
        ),
    ];
    for (env, want) in cases {
        let e = load(GOOD, env, dir.path()).unwrap_err();
        assert!(e.contains(want), "{env:?}: {e}");
    }
}

#[test]
fn an_outbound_target_uri_picks_the_transport_and_the_tls_name() {
    let dir = tempfile::tempdir().unwrap();
    let target = |t: &str| load(GOOD, &[("CALLBRIDGE_OUTBOUND_TARGET", t)], dir.path());
    let s = target("sips:127.0.0.1").unwrap();
    assert_eq!(s.outbound_target, Some("127.0.0.1:5061".parse().unwrap()));
    assert_eq!(s.outbound_transport, Transport::Tls);
    let s = target("sip:127.0.0.1:5070;transport=tcp").unwrap();
    assert_eq!(
        (s.outbound_target, s.outbound_transport),
        (Some("127.0.0.1:5070".parse().unwrap()), Transport::Tcp)
    );
    // A domain is located (RFC 3263) per call, and its TLS targets are
    // verified against it (the driver learns the name with the targets).
    let s = target("sips:localhost:5071").unwrap();
    assert_eq!(
        s.outbound_target,
        Some(Destination::Locate(Locate {
            host: "localhost".into(),
            port: Some(5071),
            transport: None,
            secure: true,
        }))
    );
    assert!(s.sip_tls_names.is_empty(), "{:?}", s.sip_tls_names);
    assert_eq!(s.outbound().transport, Transport::Tls);
    let s = target("sip:Trunk.Example.;transport=tcp").unwrap();
    assert_eq!(
        s.outbound_target,
        Some(Destination::Locate(Locate {
            host: "trunk.example".into(),
            port: None,
            transport: Some(Transport::Tcp),
            secure: false,
        }))
    );
    let e = target("sip:127.0.0.1;transport=sctp").unwrap_err();
    assert!(e.contains("outbound.target"), "{e}");
}

#[test]
fn a_sips_registrar_sends_the_trunks_calls_over_tls_to_port_5061() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{GOOD}\n[sip.trunk]\nregistrar = \"sips:localhost\"\nusername = \"u\"\n");
    let s = load(
        &text,
        &[("CALLBRIDGE_SIP_TRUNK_PASSWORD", "pw")],
        dir.path(),
    )
    .unwrap();
    let trunk = s.trunk.clone().unwrap();
    assert_eq!(trunk.transport, Transport::Tls);
    // Located per request (RFC 3263: `_sips._tcp` SRV, else port 5061),
    // TLS verified against the domain.
    let Destination::Locate(l) = &trunk.target else {
        panic!("not located: {:?}", trunk.target)
    };
    assert_eq!((l.host.as_str(), l.secure), ("localhost", true));
    assert_eq!(l.default_port(), 5061);
    assert_eq!(s.outbound_transport, Transport::Tls);
    assert_eq!(trunk.domain, "localhost");
}

#[test]
fn sip_dns_servers_are_ip_port_and_reach_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let s = load(GOOD, &[], dir.path()).unwrap();
    assert!(s.sip_transport.dns_servers.is_empty());
    let text = format!("{GOOD}\n");
    let text = text.replacen(
        "[sip]\n",
        "[sip]\ndns_servers = [\"127.0.0.1:5353\", \"[::1]:53\"]\n",
        1,
    );
    let s = load(&text, &[], dir.path()).unwrap();
    assert_eq!(
        s.sip_transport.dns_servers,
        vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    let text =
        format!("{GOOD}\n").replacen("[sip]\n", "[sip]\ndns_servers = [\"ns.example\"]\n", 1);
    let e = load(&text, &[], dir.path()).unwrap_err();
    assert!(e.contains("sip.dns_servers"), "{e}");
}
