//! Kamailio for the end-to-end tests: the shipped configuration
//! (`deploy/kamailio/kamailio.cfg`) with its site values substituted,
//! started in the foreground on loopback and stopped when its guard drops;
//! and a hand-written UAC that follows a proxy's Record-Route, to time
//! call setup with and without Kamailio in the path.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support_agent::raw_sip::{RawCall, header, status};
use crate::support_agent::{die_with_parent, free_udp_port};

/// The kamailio binary (Debian package `kamailio`), if installed.
pub fn kamailio_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|p| p.join("kamailio"))
        .find(|p| p.is_file())
}

/// The shipped configuration file.
pub fn shipped_config() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kamailio/kamailio.cfg"
    ))
}

/// `cfg` with the value of each `#!substdef "!NAME!value!g"` line named
/// in `values` replaced. Panics when a name is missing: the shipped file
/// and this test must stay in step.
pub fn substitute(cfg: &str, values: &[(&str, String)]) -> String {
    let mut out = cfg.to_owned();
    for (name, value) in values {
        let prefix = format!("#!substdef \"!{name}!");
        let line = out
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("kamailio.cfg has no {prefix} line"))
            .to_owned();
        out = out.replace(&line, &format!("{prefix}{value}!g\""));
    }
    out
}

/// A running Kamailio; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Kamailio {
    child: Option<Child>,
    /// Its SIP address (UDP).
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

/// Probe and failover timings for a test run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `ds_ping_interval`, seconds.
    pub ping_interval_s: u32,
    /// `fr_timer`: no answer at all to a request, ms.
    pub fr_timer_ms: u32,
    /// `fr_inv_timer`: no final answer after a provisional one, ms.
    pub fr_inv_timer_ms: u32,
}

impl Kamailio {
    /// Starts Kamailio with the shipped configuration, dispatching to
    /// `agents` (set 1), and waits until it answers OPTIONS.
    pub fn start(bin: &std::path::Path, agents: &[SocketAddr], t: Timing) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let list: String = agents.iter().map(|a| format!("1 sip:{a} 0 0\n")).collect();
        let list_path = dir.path().join("dispatcher.list");
        std::fs::write(&list_path, list).unwrap();
        let shipped = std::fs::read_to_string(shipped_config()).unwrap();
        let cfg = substitute(
            &shipped,
            &[
                ("CB_LISTEN", format!("udp:{addr}")),
                ("CB_DISPATCHER_LIST", list_path.display().to_string()),
                ("CB_PING_INTERVAL", t.ping_interval_s.to_string()),
                ("CB_FR_TIMER", t.fr_timer_ms.to_string()),
                ("CB_FR_INV_TIMER", t.fr_inv_timer_ms.to_string()),
            ],
        );
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-DD")
            .arg("-E")
            .arg("-f")
            .arg(&cfg_path)
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-m")
            .arg("64")
            .arg("-M")
            .arg("8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawn kamailio");
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let k = Kamailio {
            child: Some(child),
            addr,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while options(addr, Duration::from_millis(300)) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS within 15 s; its log:\n{}",
                k.log()
            );
        }
        k
    }

    /// Everything Kamailio logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// How much it has logged so far (for [`Kamailio::wait_log`]).
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits until its log, from byte `from` on, has a line containing
    /// `what` and `also`.
    pub fn wait_log(&self, from: usize, what: &str, also: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log
                .get(from..)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(what) && l.contains(also))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no kamailio log line with {what:?} and {also:?} within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- kamailio log ----\n{}\n---- end ----", self.log());
        }
    }
}

/// Sends one out-of-dialog OPTIONS to `to`; its status, if any came
/// within `within`.
pub fn options(to: SocketAddr, within: Duration) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let branch = format!("z9hG4bK-probe-{}", me.port());
    let msg = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
         From: <sip:probe@{me}>;tag=p{port}\r\nTo: <sip:{to}>\r\n\
         Call-ID: probe-{port}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        port = me.port()
    );
    sock.send_to(msg.as_bytes(), to).unwrap();
    let resp = RawCall::response_on(&sock, &branch, within, false)?;
    status(&resp)
}

/// One whole call (INVITE, 200, ACK, BYE, 200) to `to` (an agent, or a
/// proxy in front of it) following the 200's Record-Route and Contact;
/// returns the time from sending the INVITE to receiving its 200, or
/// why the call did not happen (no answer, or not 200).
pub fn timed_call(to: SocketAddr, within: Duration) -> Result<Duration, String> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let call_id = format!("timed-{}-{}@127.0.0.1", std::process::id(), me.port());
    let sdp = format!(
        "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        rtp.local_addr().unwrap().port()
    );
    let request = |method: &str, uri: &str, to_tag: &str, route: &str, cseq: u32, body: &str| {
        let branch = format!("z9hG4bK-timed-{method}-{}-{cseq}", me.port());
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let msg = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n{route}\
             From: <sip:+15550100999@{me}>;tag=t{port}\r\nTo: <sip:+15550100123@{to}>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@{me}>\r\n\
             Max-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            port = me.port()
        );
        (msg, branch)
    };
    let (invite, branch) = request("INVITE", &format!("sip:+15550100123@{to}"), "", "", 1, &sdp);
    let t0 = Instant::now();
    // RFC 3261 Timer A: resend until something answers.
    let mut wait = Duration::from_millis(500);
    let first = loop {
        sock.send_to(invite.as_bytes(), to).unwrap();
        if let Some(r) = RawCall::response_on(&sock, &branch, wait, true) {
            break r;
        }
        if t0.elapsed() >= within {
            return Err("no answer to the INVITE".to_owned());
        }
        wait = (wait * 2).min(Duration::from_secs(4));
    };
    let ok = if status(&first).is_some_and(|c| c >= 200) {
        first
    } else {
        RawCall::response_on(&sock, &branch, within, false)
            .ok_or_else(|| "no final answer to the INVITE".to_owned())?
    };
    let setup = t0.elapsed();
    if status(&ok) != Some(200) {
        return Err(format!(
            "INVITE answered: {}",
            ok.lines().next().unwrap_or_default()
        ));
    }
    let tag = header(&ok, "To")
        .and_then(|t| t.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .expect("a To tag")
        .to_owned();
    let contact = header(&ok, "Contact")
        .map(|c| {
            c.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or(c)
                .to_owned()
        })
        .expect("a Contact");
    // One proxy: the route set is its one Record-Route.
    let route = header(&ok, "Record-Route")
        .map(|rr| format!("Route: {rr}\r\n"))
        .unwrap_or_default();
    let to_tag = format!(";tag={tag}");
    let (ack, _) = request("ACK", &contact, &to_tag, &route, 1, "");
    sock.send_to(ack.as_bytes(), to).unwrap();
    let (bye, bye_branch) = request("BYE", &contact, &to_tag, &route, 2, "");
    sock.send_to(bye.as_bytes(), to).unwrap();
    let done =
        crate::support_agent::raw_sip::RawCall::response_on(&sock, &bye_branch, within, false);
    assert_eq!(
        done.as_deref().and_then(status),
        Some(200),
        "BYE answered: {done:?}"
    );
    Ok(setup)
}

/// The median of `v` (sorted in place; zero when empty).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
