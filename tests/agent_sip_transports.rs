//! End-to-end: SIP over TCP and TLS on the real `agent` binary (issue 20).
//! sipp calls over TCP (`-t t1`) with speech both ways; a raw SIP caller
//! over TLS (the Debian sip-tester build has no TLS: `sipp -v` lists
//! SCTP, PCAP and RTPSTREAM only) on tokio-rustls with a certificate made
//! here by rcgen, verified against it, hears the agent's greeting; hostile
//! TCP peers (an endless header, a huge Content-Length, none at all, a
//! peer holding a message half-sent) lose their own connection while a
//! call goes on; connections past `sip.max_connections_per_ip` are
//! refused. Everything on loopback.

mod support_agent;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::{EndReason, SessionState};
use callbridge_sip::Limits;
use callbridge_sip::stream::{Frame, StreamFramer};
use support_agent::checks::wav_channel_rms;
use support_agent::media::RtpTap;
use support_agent::raw_sip::{header, status};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tcp_agent(extra: &str) -> Agent {
    Agent::start(Opts {
        sip_extra: format!("tcp_bind = \"127.0.0.1:0\"\n{extra}"),
        ..Opts::default()
    })
}

#[test]
fn a_sipp_call_over_tcp_carries_speech_both_ways() {
    let agent = tcp_agent("");
    let tcp = agent
        .sip_tcp
        .expect("the ready line names the TCP listener");
    let tap = RtpTap::start(Duration::from_secs(20));
    let run = Sipp::uac("uac_speak_tapped.xml", tcp)
        .arg("-t")
        .arg("t1")
        .key("tap", tap.port.to_string())
        .pause_ms(3500)
        .within(Duration::from_secs(30))
        .run();
    run.assert_ok("inbound call over TCP");
    let voiced = tap.finish().iter().filter(|h| h.rms > 300.0).count();
    assert!(
        voiced >= 25,
        "only {voiced} voiced packets: no greeting heard"
    );
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    let rec = s.recording_path.clone().expect("a recording");
    let (caller, agent_side) = wav_channel_rms(&rec);
    println!("TCP call recording rms: caller {caller:.0}, agent {agent_side:.0}");
    assert!(caller > 100.0, "caller channel silent (rms {caller:.0})");
    assert!(
        agent_side > 100.0,
        "agent channel silent (rms {agent_side:.0})"
    );
}

/// A certificate for 127.0.0.1 in `dir`: (cert.pem, key.pem, the DER).
fn make_cert(dir: &Path) -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join("sip-cert.pem");
    let key = dir.join("sip-key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (
        cert.display().to_string(),
        key.display().to_string(),
        ck.cert.der().to_vec(),
    )
}

fn sdp(rtp_port: u16) -> String {
    format!(
        "v=0\r\no=tls 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// A request of the raw TLS caller's dialog.
fn request(
    method: &str,
    cseq: u32,
    to_tag: &str,
    me: SocketAddr,
    agent: SocketAddr,
    body: &str,
) -> String {
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    format!(
        "{method} sips:+15550100123@{agent} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {me};branch=z9hG4bK-tls-{method}-{cseq};rport\r\n\
         From: <sips:+15550100999@{me}>;tag=tlscaller\r\n\
         To: <sips:+15550100123@{agent}>{to_tag}\r\n\
         Call-ID: e2e-tls-{port}@127.0.0.1\r\nCSeq: {cseq} {cseq_method}\r\n\
         Contact: <sips:caller@{me}>\r\nMax-Forwards: 70\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        port = me.port(),
        len = body.len(),
    )
}

/// The next final response (skipping provisionals) on the TLS stream.
async fn final_response<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    framer: &mut StreamFramer,
) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(frame) = framer.poll().unwrap() {
            if let Frame::Message(m) = frame {
                let text = String::from_utf8_lossy(&m).into_owned();
                if status(&text).is_some_and(|c| c >= 200) {
                    return text;
                }
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(n > 0, "the agent closed the TLS connection");
        framer.push(&buf[..n]).unwrap();
    }
}

#[test]
fn a_call_over_tls_is_verified_answered_with_a_sips_contact_and_carries_the_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = make_cert(dir.path());
    let agent = Agent::start(Opts {
        sip_extra: format!(
            "tls_bind = \"127.0.0.1:0\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"
        ),
        ..Opts::default()
    });
    let tls = agent
        .sip_tls
        .expect("the ready line names the TLS listener");
    let tap = RtpTap::start(Duration::from_secs(20));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ok, bye_ok) = rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(tls).await.unwrap();
        let me = tcp.local_addr().unwrap();
        let name = rustls::pki_types::ServerName::from(tls.ip());
        let mut s = connector
            .connect(name, tcp)
            .await
            .expect("the agent's certificate verifies");
        let mut framer = StreamFramer::new(Limits::default());
        let invite = request("INVITE", 1, "", me, tls, &sdp(tap.port));
        s.write_all(invite.as_bytes()).await.unwrap();
        let ok = final_response(&mut s, &mut framer).await;
        assert_eq!(status(&ok), Some(200), "{ok}");
        let tag = header(&ok, "To")
            .and_then(|t| t.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
            .map(|t| format!(";tag={t}"))
            .expect("a To tag");
        s.write_all(request("ACK", 1, &tag, me, tls, "").as_bytes())
            .await
            .unwrap();
        // A keep-alive ping in the middle of the call gets its pong.
        tokio::time::sleep(Duration::from_secs(3)).await;
        s.write_all(b"\r\n\r\n").await.unwrap();
        s.write_all(request("BYE", 2, &tag, me, tls, "").as_bytes())
            .await
            .unwrap();
        let bye_ok = final_response(&mut s, &mut framer).await;
        (ok, bye_ok)
    });
    assert_eq!(status(&bye_ok), Some(200), "{bye_ok}");
    let contact = header(&ok, "Contact").unwrap();
    assert!(contact.contains("sips:127.0.0.1:"), "{contact}");
    assert!(
        header(&ok, "Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{ok}"
    );
    let voiced = tap.finish().iter().filter(|h| h.rms > 300.0).count();
    assert!(
        voiced >= 25,
        "only {voiced} voiced packets: no greeting heard over the TLS call"
    );
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    let (_, agent_side) = wav_channel_rms(&s.recording_path.clone().expect("a recording"));
    assert!(
        agent_side > 100.0,
        "agent channel silent (rms {agent_side:.0})"
    );
    // SIGHUP reloads the certificate; the agent keeps serving.
    agent.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        agent.stderr().contains("SIP TLS certificate reloaded"),
        "{}",
        agent.stderr_tail(2000)
    );
    assert_eq!(agent.health()["active_sessions"], 0);
}

/// Whether the agent closes `s` within 5 s (reading and discarding).
fn closed_by_agent(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// An OPTIONS over a fresh TCP connection gets a 200 on it.
fn options_over_tcp(agent: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(agent).ok()?;
    let me = s.local_addr().ok()?;
    let req = format!(
        "OPTIONS sip:+15550100123@{agent} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bK-opt-{p}\r\n\
         From: <sip:probe@{me}>;tag=p{p}\r\nTo: <sip:+15550100123@{agent}>\r\n\
         Call-ID: e2e-opt-{p}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        p = me.port()
    );
    s.write_all(req.as_bytes()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(Frame::Message(m))) = framer.poll() {
            return Some(String::from_utf8_lossy(&m).into_owned());
        }
        let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
        framer.push(&buf[..n]).ok()?;
    }
}

#[test]
fn hostile_tcp_peers_lose_their_own_connection_while_a_call_goes_on() {
    let agent = tcp_agent("");
    let tcp = agent.sip_tcp.unwrap();
    // A call over TCP runs through all of it.
    let call = Sipp::uac("uac_speak.xml", tcp)
        .arg("-t")
        .arg("t1")
        .pause_ms(4000)
        .within(Duration::from_secs(30))
        .spawn();
    std::thread::sleep(Duration::from_millis(1500));
    // Half a message, held open (slowloris; the 30 s message limit is
    // tested in callbridge-sip's driver tests with a short one).
    let mut slow = TcpStream::connect(tcp).unwrap();
    slow.write_all(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1\r\n")
        .unwrap();
    // An endless header line.
    let mut endless = TcpStream::connect(tcp).unwrap();
    endless
        .write_all(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nSubject: ")
        .unwrap();
    let _ = endless.write_all(&[b'a'; 16 * 1024]);
    assert!(closed_by_agent(&mut endless), "endless header line");
    // A Content-Length far over the limit: closed before any body.
    let mut huge = TcpStream::connect(tcp).unwrap();
    huge.write_all(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
        .unwrap();
    assert!(closed_by_agent(&mut huge), "huge Content-Length");
    // No Content-Length on a stream.
    let mut none = TcpStream::connect(tcp).unwrap();
    none.write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1\r\n\r\n")
        .unwrap();
    assert!(closed_by_agent(&mut none), "no Content-Length");
    // Others are still served, and the call completes.
    let ok = options_over_tcp(tcp).expect("an answer to OPTIONS");
    assert_eq!(status(&ok), Some(200), "{ok}");
    call.finish().assert_ok("call over TCP during the attacks");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    assert_eq!(sessions[0].end_reason, Some(EndReason::CallerHangup));
    drop(slow);
}

#[test]
fn connections_past_the_per_ip_limit_are_refused() {
    let agent = tcp_agent("max_connections_per_ip = 2\n");
    let tcp = agent.sip_tcp.unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(tcp).unwrap();
        // A ping proves the connection is served: the pong comes back.
        s.write_all(b"\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"\r\n");
        held.push(s);
    }
    let mut third = TcpStream::connect(tcp).unwrap();
    let _ = third.write_all(b"\r\n\r\n");
    assert!(
        closed_by_agent(&mut third),
        "a third connection from 127.0.0.1"
    );
    assert!(options_over_tcp(tcp).is_none(), "still at the limit");
    // Closing one frees its slot.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(300));
    let ok = options_over_tcp(tcp).expect("served again below the limit");
    assert_eq!(status(&ok), Some(200), "{ok}");
}

#[test]
fn an_outbound_call_to_a_tcp_target_uri_goes_over_tcp() {
    let uas = Sipp::uas("uas_answer.xml")
        .arg("-t")
        .arg("t1")
        .within(Duration::from_secs(30));
    let sipp = uas.spawn();
    std::thread::sleep(Duration::from_millis(300));
    let agent = Agent::start(Opts {
        env: vec![(
            "CALLBRIDGE_OUTBOUND_TARGET".into(),
            format!("sip:{};transport=tcp", uas.addr()),
        )],
        ..Opts::default()
    });
    let r = agent.request(
        "POST",
        "/api/calls",
        Some(&serde_json::json!({"to": "+15550100777"})),
    );
    assert_eq!(r.status, 202, "POST /api/calls: {}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    agent.wait_for(
        "the callee to answer over TCP",
        Duration::from_secs(10),
        || {
            let v = agent.get_json(&format!("/api/calls/{id}"));
            matches!(v["state"].as_str(), Some("answered" | "active")).then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(800));
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE /api/calls/{id}: {}", r.text());
    // sipp listened on TCP only: the INVITE, ACK and BYE all came over it.
    sipp.finish()
        .assert_ok("a TCP UAS answers, gets our ACK and BYE");
    let v = agent.wait_for("the call to end", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        (v["state"] == "ended").then_some(v)
    });
    assert_eq!(v["outcome"], "completed", "{v}");
}
