//! End-to-end: SIP over TLS with SRTP (SDES) between the real `agent` and
//! baresip (Debian's `baresip-core`), both ways (issue 20): baresip calls
//! the agent's TLS listener, and the agent calls baresip through
//! `POST /api/calls` toward a `sips:` `outbound.target`. baresip runs with
//! `mediaenc=srtp-mand` and `rtp.srtp = "require"` on the agent, so no
//! plain RTP can pass. Each call connects, both directions carry audio
//! (the RMS of baresip's received-audio dump and of the caller channel of
//! the agent's recording), and a raw packet capture on loopback shows that
//! no RTP payload to or from the agent is G.711 plaintext (the agent's
//! silence frames would be 160 equal bytes; encrypted ones never are).
//! The certificate is made here by rcgen. Everything on loopback.
//!
//! baresip is installed by `scripts/test`; without it these tests print
//! why and pass without running (the only skip). The capture needs a raw
//! socket (root, as in CI); without one the capture check is skipped with
//! a message and the rest runs.

mod support_agent;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbridge_api::CallAccepted;
use callbridge_crm_store::EndReason;
use serde_json::json;
use support_agent::checks::wav_channel_rms;
use support_agent::{Agent, Opts, die_with_parent, free_udp_port};

fn have_baresip() -> bool {
    let ok = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!(
            "SKIPPED: baresip is not installed (scripts/test installs Debian's baresip-core)"
        );
    }
    ok
}

/// One certificate for 127.0.0.1 that both sides present and trust:
/// (cert.pem, key.pem, cert+key.pem for baresip).
fn make_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let both = dir.join("both.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        &both,
        format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem()),
    )
    .unwrap();
    (cert, key, both)
}

/// What baresip says when it calls, 8 kHz mono: three quiet seconds (the
/// agent greets; speech over it would barge in), then a loud 440 Hz tone.
fn tone(path: &Path) {
    write_tone(path, 160_000, |i| i >= 24_000);
}

/// What baresip says when it is called: a "hello?" (one loud second of
/// 440 Hz after half a quiet one), then quiet, so the callee's turn ends
/// and the model (the mock: a reply clip to every caller turn) answers
/// it; outbound calls are callee-first.
fn hello(path: &Path) {
    write_tone(path, 80_000, |i| (4_000..12_000).contains(&i));
}

/// `samples` of a 440 Hz tone at 8 kHz, loud where `loud(i)`, else silent.
fn write_tone(path: &Path, samples: u32, loud: impl Fn(u32) -> bool) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples {
        let t = f64::from(i) / 8000.0;
        let amplitude = if loud(i) { 8000.0 } else { 0.0 };
        w.write_sample((amplitude * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// A running baresip; killed when dropped.
struct Baresip {
    child: Child,
    dir: PathBuf,
    /// Its SIP UDP/TCP port; TLS listens on the next one.
    port: u16,
    /// Its RTP port range (`rtp_ports`).
    rtp: (u16, u16),
}

impl Baresip {
    fn start(
        dir: &Path,
        both_pem: &Path,
        ca: &Path,
        commands: &[String],
        quit_after: u32,
        says: fn(&Path),
    ) -> Baresip {
        let cfg = dir.join("baresip");
        let dumps = dir.join("dumps");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::create_dir_all(&dumps).unwrap();
        let wav = dir.join("says.wav");
        says(&wav);
        // Even, so that the TLS port (port + 1) is free with it.
        let port = loop {
            let p = free_udp_port();
            if p.is_multiple_of(2) && p < 65000 {
                break p;
            }
        };
        let rtp_lo = loop {
            let p = free_udp_port();
            if p.is_multiple_of(2) && p < 65000 && p.abs_diff(port) > 40 {
                break p;
            }
        };
        let rtp = (rtp_lo, rtp_lo + 20);
        std::fs::write(
            cfg.join("config"),
            format!(
                "poll_method epoll\n\
                 net_interface 127.0.0.1\n\
                 sip_listen 127.0.0.1:{port}\n\
                 sip_certificate {both}\n\
                 sip_cafile {ca}\n\
                 audio_player alsa,null\n\
                 audio_alert alsa,null\n\
                 audio_source aufile,{wav}\n\
                 rtcp_mux no\n\
                 rtp_ports {rtp_lo}-{rtp_hi}\n\
                 jitter_buffer_delay 1-10\n\
                 module_path /usr/lib/baresip/modules\n\
                 module g711.so\n\
                 module alsa.so\n\
                 module aufile.so\n\
                 module sndfile.so\n\
                 module srtp.so\n\
                 module_tmp account.so\n\
                 module_app menu.so\n\
                 snd_path {dumps}\n",
                both = both_pem.display(),
                ca = ca.display(),
                wav = wav.display(),
                dumps = dumps.display(),
                rtp_lo = rtp.0,
                rtp_hi = rtp.1,
            ),
        )
        .unwrap();
        std::fs::write(
            cfg.join("accounts"),
            "<sip:+15550100777@127.0.0.1>;regint=0;mediaenc=srtp-mand;answermode=auto;audio_codecs=PCMU\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(&cfg)
            .arg("-t")
            .arg(quit_after.to_string());
        for c in commands {
            cmd.arg("-e").arg(c);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("baresip starts");
        Baresip {
            child,
            dir: dir.to_path_buf(),
            port,
            rtp,
        }
    }

    fn tls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + 1))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Waits for baresip to quit by itself (its `-t`).
    fn wait(&mut self, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }

    /// The RMS of the audio baresip received (its `-dec` dump).
    fn heard_rms(&self) -> f64 {
        let dumps = std::fs::read_dir(self.dir.join("dumps")).unwrap();
        let mut best = 0.0f64;
        for e in dumps.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("-dec.wav") {
                best = best.max(wav_channel_rms(&e.path()).0);
            }
        }
        best
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A captured UDP payload and whether the agent sent it.
type Captured = (bool, Vec<u8>);

/// UDP payloads seen on loopback between the agent's RTP ports and the
/// peer's (other tests' calls on this machine are not mixed in), by a raw
/// `AF_PACKET` socket (needs CAP_NET_RAW).
struct Capture {
    stop: Arc<AtomicBool>,
    payloads: Arc<Mutex<Vec<Captured>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(ports: (u16, u16), peer: (u16, u16)) -> Option<Capture> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
        let fd: OwnedFd = match socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::EthAll,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!(
                    "SKIPPED capture check: no raw socket ({e}); run as root to check the wire"
                );
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let payloads = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (stop.clone(), payloads.clone());
        let thread = std::thread::spawn(move || {
            let tv = nix::sys::time::TimeVal::new(0, 200_000);
            let _ =
                nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv);
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = nix::sys::socket::recv(
                    fd.as_raw_fd(),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                ) else {
                    continue;
                };
                if let Some((from_agent, payload)) = udp_payload(&buf[..n], ports, peer) {
                    p.lock().unwrap().push((from_agent, payload.to_vec()));
                }
            }
        });
        Some(Capture {
            stop,
            payloads,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Vec<(bool, Vec<u8>)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.payloads.lock().unwrap())
    }
}

/// The UDP payload of an Ethernet frame carrying IPv4 UDP between a port
/// in `ports` and one in `peer`, and whether it came from `ports`.
fn udp_payload(frame: &[u8], ports: (u16, u16), peer: (u16, u16)) -> Option<(bool, &[u8])> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let udp = ip.get(ihl..)?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let ours = |p: u16| (ports.0..=ports.1).contains(&p);
    let theirs = |p: u16| (peer.0..=peer.1).contains(&p);
    let from_agent = ours(sport) && theirs(dport);
    if !(from_agent || theirs(sport) && ours(dport)) {
        return None;
    }
    Some((from_agent, udp.get(8..)?))
}

/// Checks the captured RTP: there is some, and no payload is G.711
/// plaintext of silence or a flat frame (encrypted payloads look random).
fn assert_encrypted(payloads: &[(bool, Vec<u8>)], what: &str) {
    let rtp: Vec<&Vec<u8>> = payloads
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.len() >= 12 + 160 && p[0] >> 6 == 2 && (p[1] & 0x7f) == 0)
        .collect();
    for from_agent in [true, false] {
        let n = payloads
            .iter()
            .filter(|(f, p)| *f == from_agent && p.len() >= 172 && p[0] >> 6 == 2)
            .count();
        assert!(
            n >= 50,
            "{what}: only {n} RTP packets captured (from the agent: {from_agent})"
        );
    }
    assert!(
        rtp.len() >= 50,
        "{what}: only {} RTP packets captured",
        rtp.len()
    );
    for p in &rtp {
        let distinct: HashSet<u8> = p[12..172].iter().copied().collect();
        assert!(
            distinct.len() >= 64,
            "{what}: a payload with {} distinct bytes looks like G.711 plaintext: {:02x?}",
            distinct.len(),
            &p[12..44]
        );
    }
    // Every packet carries an SRTP tag: longer than RTP's 172 bytes.
    assert!(
        rtp.iter().all(|p| p.len() > 172),
        "{what}: RTP without an SRTP tag"
    );
}

fn srtp_agent(dir: &Path, cert: &Path, key: &Path, outbound: Option<SocketAddr>) -> Agent {
    let mut env = vec![("CALLBRIDGE_RTP_SRTP".to_string(), "require".to_string())];
    if let Some(t) = outbound {
        env.push(("CALLBRIDGE_OUTBOUND_TARGET".into(), format!("sips:{t}")));
    }
    let _ = dir;
    Agent::start(Opts {
        sip_extra: format!(
            "tls_bind = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
            cert.display(),
            key.display(),
            cert.display()
        ),
        env,
        ..Opts::default()
    })
}

#[test]
// baresip dials `sip:...;transport=tls`: the agent's Contact is
// `sip:...;transport=tls` too (RFC 5630 section 3.1.3; a `sips:` Contact
// left baresip 1.0 unable to send its ACK: "Function not implemented").
fn baresip_calls_the_agent_over_tls_with_srtp_and_both_directions_carry_audio() {
    if !have_baresip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, both) = make_cert(dir.path());
    let agent = srtp_agent(dir.path(), &cert, &key, None);
    let tls = agent
        .sip_tls
        .expect("the ready line names the TLS listener");
    let mut bs = Baresip::start(
        dir.path(),
        &both,
        &cert,
        &[format!("/dial sip:+15550100123@{tls};transport=tls")],
        8,
        tone,
    );
    let capture = Capture::start(agent.rtp_ports, bs.rtp);
    bs.wait(Duration::from_secs(20));
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = &sessions[0];
    assert_eq!(
        s.end_reason,
        Some(EndReason::CallerHangup),
        "{s:?}\n{}",
        bs.log()
    );
    let (caller, agent_side) = wav_channel_rms(&s.recording_path.clone().expect("a recording"));
    let heard = bs.heard_rms();
    println!(
        "inbound SRTP call: agent heard rms {caller:.0}, said {agent_side:.0}; baresip heard {heard:.0}"
    );
    assert!(
        caller > 300.0,
        "the agent heard nothing (rms {caller:.0})\n{}",
        bs.log()
    );
    assert!(
        heard > 300.0,
        "baresip heard nothing (rms {heard:.0})\n{}",
        bs.log()
    );
    if let Some(c) = capture {
        assert_encrypted(&c.finish(), "inbound");
    }
    let failed = agent.metrics().value_with(
        "callbridge_rtp_rejected_packets_total",
        &[("reason", "srtp_auth")],
    );
    assert_eq!(failed, 0.0, "packets failed SRTP");
}

#[test]
fn the_agent_calls_baresip_over_tls_with_srtp_through_the_api_and_srtp_flows_both_ways() {
    if !have_baresip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, both) = make_cert(dir.path());
    let mut bs = Baresip::start(dir.path(), &both, &cert, &[], 20, hello);
    std::thread::sleep(Duration::from_millis(800));
    let agent = srtp_agent(dir.path(), &cert, &key, Some(bs.tls()));
    let capture = Capture::start(agent.rtp_ports, bs.rtp);
    let r = agent.request(
        "POST",
        "/api/calls",
        Some(&json!({"to": "+15550100777", "greeting": "Greet the callee."})),
    );
    assert_eq!(r.status, 202, "POST /api/calls: {}", r.text());
    let accepted: CallAccepted = serde_json::from_slice(&r.body).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let r = agent.request("DELETE", &format!("/api/calls/{}", accepted.id), None);
    assert_eq!(r.status, 202, "DELETE: {}\n{}", r.text(), bs.log());
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = &sessions[0];
    assert!(s.answered_at.is_some(), "not answered: {s:?}\n{}", bs.log());
    let (callee, agent_side) = wav_channel_rms(&s.recording_path.clone().expect("a recording"));
    bs.wait(Duration::from_secs(1));
    let heard = bs.heard_rms();
    println!(
        "outbound SRTP call: agent heard rms {callee:.0}, said {agent_side:.0}; baresip heard {heard:.0}"
    );
    assert!(
        callee > 300.0,
        "the agent heard nothing (rms {callee:.0})\n{}",
        bs.log()
    );
    // Outbound calls are callee-first: baresip's "hello?" ends its turn
    // and the mock model answers it with a reply clip, which baresip
    // decrypts and decodes into its dump.
    assert!(
        heard > 300.0,
        "baresip heard nothing (rms {heard:.0})\n{}",
        bs.log()
    );
    let log = bs.log();
    assert!(log.contains("SRTP is Enabled"), "{log}");
    assert!(
        !log.contains("failed to decrypt"),
        "baresip could not decrypt the agent's SRTP\n{log}"
    );
    if let Some(c) = capture {
        assert_encrypted(&c.finish(), "outbound");
    }
}
