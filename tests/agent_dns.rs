//! End-to-end: outbound calls to a trunk named by its domain (issue 20,
//! RFC 3263) on the real `agent` binary, against a DNS stub on loopback
//! (`sip.dns_servers`; no real DNS anywhere): SRV with two targets where
//! the first answers 503 and the second (sipp) takes the call; a first
//! target that never answers (Timer B, 32 s) and a second that does; a
//! first TCP target whose connection is refused and a second (sipp over
//! TCP) that answers at once; the RTP latch following the server the
//! INVITE failed over to; a NAPTR record that picks TLS, whose server's
//! certificate is verified against the domain (it carries no IP address).

mod support_agent;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use support_agent::dns::{DnsStub, RawPeer, a, a_at, naptr, response, srv};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

fn dns_agent(dns: &DnsStub, target: &str, sip_extra: &str, ring_timeout: &str) -> Agent {
    Agent::start(Opts {
        sip_extra: format!("dns_servers = [\"{}\"]\n{sip_extra}", dns.addr),
        env: vec![
            ("CALLBRIDGE_OUTBOUND_TARGET".into(), target.into()),
            ("CALLBRIDGE_CALLS_RING_TIMEOUT".into(), ring_timeout.into()),
        ],
        ..Opts::default()
    })
}

fn place(agent: &Agent) -> String {
    let r = agent.request(
        "POST",
        "/api/calls",
        Some(&serde_json::json!({"to": "+15550100777"})),
    );
    assert_eq!(r.status, 202, "POST /api/calls: {}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Waits for the call to be answered, hangs up, and checks that sipp saw
/// a whole call.
fn answered_then_hung_up(
    agent: &Agent,
    id: &str,
    sipp: support_agent::sipp::SippChild,
    what: &str,
) {
    agent.wait_for(what, Duration::from_secs(60), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        matches!(v["state"].as_str(), Some("answered" | "active")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE /api/calls/{id}: {}", r.text());
    sipp.finish().assert_ok(what);
    let v = agent.wait_for("the call to end", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        (v["state"] == "ended").then_some(v)
    });
    assert_eq!(v["outcome"], "completed", "{v}");
}

#[test]
fn srv_with_two_targets_the_first_answering_503_the_second_takes_the_call() {
    let refuser = RawPeer::start(Some(503));
    let uas = Sipp::uas("uas_answer.xml").within(Duration::from_secs(40));
    let sipp = uas.spawn();
    // Priority 10 refuses; priority 20 is sipp. No NAPTR, no TLS or TCP
    // SRV: the locator falls back to `_sip._udp` (RFC 3263 section 4.1).
    let dns = DnsStub::start(vec![
        srv(
            "_sip._udp.trunk.test.",
            10,
            refuser.addr.port(),
            "a.trunk.test.",
        ),
        srv(
            "_sip._udp.trunk.test.",
            20,
            uas.addr().port(),
            "b.trunk.test.",
        ),
        a("a.trunk.test."),
        a("b.trunk.test."),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let agent = dns_agent(&dns, "sip:trunk.test", "", "10s");
    let id = place(&agent);
    answered_then_hung_up(
        &agent,
        &id,
        sipp,
        "the second SRV target to answer after the first's 503",
    );
    assert_eq!(refuser.invites(), 1, "the first target got one INVITE");
    assert!(dns.asked("trunk.test.", RecordType::NAPTR));
    assert!(dns.asked("_sip._udp.trunk.test.", RecordType::SRV));
}

#[test]
fn a_first_target_that_never_answers_is_left_at_timer_b_for_the_second() {
    let silent = RawPeer::start(None);
    let uas = Sipp::uas("uas_answer.xml").within(Duration::from_secs(80));
    let sipp = uas.spawn();
    let dns = DnsStub::start(vec![
        srv(
            "_sip._udp.trunk.test.",
            10,
            silent.addr.port(),
            "a.trunk.test.",
        ),
        srv(
            "_sip._udp.trunk.test.",
            20,
            uas.addr().port(),
            "b.trunk.test.",
        ),
        a("a.trunk.test."),
        a("b.trunk.test."),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    // A ring timeout that outlasts Timer B (64*T1 = 32 s).
    let agent = dns_agent(&dns, "sip:trunk.test", "", "50s");
    let id = place(&agent);
    answered_then_hung_up(
        &agent,
        &id,
        sipp,
        "the second SRV target to answer after the first's Timer B",
    );
    // Timer A's retransmissions, all to the first target, then nothing.
    assert!(silent.invites() >= 6, "{} INVITEs", silent.invites());
}

#[test]
fn a_naptr_record_picks_tls_verified_against_the_domain() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    // A certificate for the domain only: the handshake succeeds only when
    // the agent verifies the located target against trunk.test.
    let ck = rcgen::generate_simple_self_signed(vec!["trunk.test".to_string()]).unwrap();
    let cert = dir.path().join("trunk-cert.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let tls_port = listener.local_addr().unwrap().port();
    let server = {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    };
    // The TLS server reads the INVITE and refuses it with 486.
    let got = rt.spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = server.accept(tcp).await.unwrap();
        let mut buf = vec![0u8; 16384];
        let mut text = String::new();
        while !text.contains("\r\n\r\n") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole INVITE");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        tls.write_all(response(&text, 486).as_bytes())
            .await
            .unwrap();
        tls.flush().await.unwrap();
        // Wait for the ACK (or the agent closing).
        let _ = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf)).await;
        text
    });
    // NAPTR: TLS first (order 10), UDP after (order 20), which is never
    // tried: a 486 is final.
    let udp = RawPeer::start(Some(503));
    let dns = DnsStub::start(vec![
        naptr("trunk.test.", 10, "SIPS+D2T", "_sips._tcp.trunk.test."),
        naptr("trunk.test.", 20, "SIP+D2U", "_sip._udp.trunk.test."),
        srv("_sips._tcp.trunk.test.", 10, tls_port, "tls.trunk.test."),
        srv(
            "_sip._udp.trunk.test.",
            10,
            udp.addr.port(),
            "udp.trunk.test.",
        ),
        a("tls.trunk.test."),
        a("udp.trunk.test."),
    ]);
    let agent = dns_agent(
        &dns,
        "sip:trunk.test",
        &format!("tls_ca = \"{}\"\n", cert.display()),
        "10s",
    );
    let id = place(&agent);
    let invite = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), got).await })
        .expect("no INVITE over TLS within 20 s")
        .unwrap();
    assert!(
        invite.starts_with("INVITE sip:+15550100777@trunk.test "),
        "{invite}"
    );
    let via = invite
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("via:"))
        .unwrap();
    assert!(via.contains("SIP/2.0/TLS"), "{via}");
    let v = agent.wait_for("the call to fail busy", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        (v["sip_status"] == 486).then_some(v)
    });
    assert_ne!(v["state"], "active", "{v}");
    assert_eq!(udp.invites(), 0, "a 486 is not failed over");
    assert!(dns.asked("_sips._tcp.trunk.test.", RecordType::SRV));
}

/// The SDP offer's media address (`c=` and `m=audio`).
fn offer_media(invite: &str) -> SocketAddr {
    let body = invite.split("\r\n\r\n").nth(1).unwrap_or_default();
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= in the offer");
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .expect("m=audio in the offer");
    format!("{}:{}", ip.trim(), port).parse().unwrap()
}

#[test]
fn after_a_failover_the_latch_follows_the_server_that_answered() {
    use support_agent::media::{drain_rms, pcmu_packet};
    // The first server (127.0.0.1) refuses; the second is at 127.0.0.2:
    // its SDP names one port, its media comes from another (a relay on
    // the server's IP), which `rtp.latch = "signalling-ip"` lets latch
    // only if the signalling IP is the second server's.
    let refuser = RawPeer::start(Some(503));
    let sip = UdpSocket::bind("127.0.0.2:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let sdp_port = UdpSocket::bind("127.0.0.2:0").unwrap();
    let relay = UdpSocket::bind("127.0.0.2:0").unwrap();
    relay.set_nonblocking(true).unwrap();
    let dns = DnsStub::start(vec![
        srv(
            "_sip._udp.trunk.test.",
            10,
            refuser.addr.port(),
            "a.trunk.test.",
        ),
        srv(
            "_sip._udp.trunk.test.",
            20,
            sip.local_addr().unwrap().port(),
            "b.trunk.test.",
        ),
        a("a.trunk.test."),
        a_at("b.trunk.test.", Ipv4Addr::new(127, 0, 0, 2)),
    ]);
    let agent = Agent::start(Opts {
        sip_extra: format!("dns_servers = [\"{}\"]\n", dns.addr),
        allowed_peers: vec!["127.0.0.0/8"],
        env: vec![
            ("CALLBRIDGE_OUTBOUND_TARGET".into(), "sip:trunk.test".into()),
            ("CALLBRIDGE_RTP_LATCH".into(), "signalling-ip".into()),
        ],
        ..Opts::default()
    });
    let id = place(&agent);
    let mut buf = [0u8; 8192];
    let (invite, from) = loop {
        let (n, from) = sip
            .recv_from(&mut buf)
            .expect("an INVITE at the second server");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("INVITE ") {
            break (text, from);
        }
    };
    assert_eq!(refuser.invites(), 1, "the first server was tried first");
    let agent_rtp = offer_media(&invite);
    let here = sdp_port.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=b 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        here.port()
    );
    let ok = response(&invite, 200).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Contact: <sip:b@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sip.local_addr().unwrap(),
            sdp.len()
        ),
    );
    sip.send_to(ok.as_bytes(), from).unwrap();
    agent.wait_for("the call to be answered", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        matches!(v["state"].as_str(), Some("answered" | "active")).then_some(())
    });
    // The relay speaks; the agent must latch to it and send there.
    let mut got = Vec::new();
    let mut seq = 0u16;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while got.len() < 5 && std::time::Instant::now() < deadline {
        let _ = relay.send_to(&pcmu_packet(seq, 0x5eed, 0xe7), agent_rtp);
        seq = seq.wrapping_add(1);
        drain_rms(&relay, &mut got);
        thread::sleep(Duration::from_millis(20));
    }
    let rejected = agent.metrics().value_with(
        "callbridge_rtp_rejected_packets_total",
        &[("reason", "latch_policy")],
    );
    assert!(
        got.len() >= 5,
        "the agent sent {} packets to the relay on the answering server's IP \
         ({rejected} refused by the latch policy)",
        got.len()
    );
    assert_eq!(rejected, 0.0);
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE /api/calls/{id}: {}", r.text());
}

#[test]
fn a_first_tcp_target_refusing_the_connection_is_left_at_once_for_the_second() {
    // A loopback TCP port with nothing listening: the connect is refused.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uas = Sipp::uas("uas_answer.xml")
        .arg("-t")
        .arg("t1")
        .within(Duration::from_secs(40));
    let sipp = uas.spawn();
    let dns = DnsStub::start(vec![
        srv("_sip._tcp.trunk.test.", 10, dead_port, "a.trunk.test."),
        srv(
            "_sip._tcp.trunk.test.",
            20,
            uas.addr().port(),
            "b.trunk.test.",
        ),
        a("a.trunk.test."),
        a("b.trunk.test."),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    // `;transport=tcp`: the `_sip._tcp` SRV (RFC 3263 section 4.1). The
    // ring timeout (10 s) ends the call long before a Timer B (32 s) would
    // move it on: only the refused connect can.
    let agent = dns_agent(&dns, "sip:trunk.test;transport=tcp", "", "10s");
    let started = std::time::Instant::now();
    let id = place(&agent);
    agent.wait_for(
        "the second (TCP) target to answer at once after the first refused the connection",
        Duration::from_secs(8),
        || {
            let v = agent.get_json(&format!("/api/calls/{id}"));
            matches!(v["state"].as_str(), Some("answered" | "active")).then_some(())
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    answered_then_hung_up(
        &agent,
        &id,
        sipp,
        "sipp over TCP to answer after the first target's refused connect",
    );
    assert!(dns.asked("_sip._tcp.trunk.test.", RecordType::SRV));
}
