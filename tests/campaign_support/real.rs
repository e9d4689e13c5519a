//! The real thing for the campaign tests: `agent run` (the binary, mock
//! model, on loopback, writing to the test's store) and a sipp UAS playing
//! the called leads (`tests/sipp/campaign/uas_leads.xml`: the number picks
//! answer, 486 busy or never answer). Both are killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Env;

/// A UDP port free at the time of asking.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sipp UAS on 127.0.0.1.
pub struct Sipp {
    child: Child,
    /// Its SIP address.
    pub addr: SocketAddr,
}

fn sipp_path() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("sipp"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "sipp not found on PATH: install the Debian package sip-tester \
             (scripts/test installs it)"
        )
    })
}

/// Whether some process has a UDP socket bound to `port`
/// (`/proc/net/udp`, IPv4: the tests bind 127.0.0.1).
fn udp_port_bound(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&suffix))
        })
    })
}

impl Sipp {
    /// Starts the leads UAS; it stops by itself after `limit`.
    pub fn start(env: &Env, limit: Duration) -> Self {
        let port = free_udp_port();
        let media = free_udp_port();
        let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp/campaign/uas_leads.xml");
        let child = Command::new(sipp_path())
            .args(["-sf", scenario, "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-nostdin", "-trace_err", "-timeout"])
            .arg(format!("{}s", limit.as_secs()))
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The agent must not dial before sipp has bound its SIP port (a
        // loaded machine can take well over the 300 ms this used to
        // sleep): wait for the socket, bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !udp_port_bound(port) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Sipp {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `agent run`.
pub struct Agent {
    child: Child,
    /// Its HTTP API.
    pub http: SocketAddr,
    log: PathBuf,
}

impl Agent {
    /// Starts the agent on loopback with the mock model, writing to the
    /// test's store, dialling out to `target`. `rtp` is the first of 200
    /// RTP ports. Calls answer, play the greeting, and end after 2 s with
    /// no caller speech (sipp sends no audio); an unanswered call is
    /// cancelled after 2 s of ringing.
    pub fn start(env: &Env, target: SocketAddr, rtp: u16) -> Self {
        Self::start_as(env, target, rtp, None)
    }

    /// [`Agent::start`] as node `node` (`store.node`) of a shared store:
    /// its own configuration file (`agent-NODE.toml`), and on PostgreSQL
    /// the env's database (`store.url`).
    pub fn start_as(env: &Env, target: SocketAddr, rtp: u16, node: Option<&str>) -> Self {
        let cfg = match node {
            Some(n) => env.dir.path().join(format!("agent-{n}.toml")),
            None => env.dir.path().join("agent.toml"),
        };
        let store = match node {
            Some(n) if env.url.starts_with("postgres") => {
                format!("url = \"{}\"\nnode = \"{n}\"\n", env.url)
            }
            Some(n) => format!("database = \"{}\"\nnode = \"{n}\"\n", env.db.display()),
            None => format!("database = \"{}\"\n", env.db.display()),
        };
        let text = format!(
            "[sip]\nbind = \"127.0.0.1:0\"\nallowed_peers = [\"127.0.0.1/32\"]\n\
             [rtp]\nport_min = {rtp}\nport_max = {}\n\
             [calls]\nmax_concurrent = 20\nno_speech_timeout = \"2s\"\nring_timeout = \"2s\"\n\
             rtp_inactivity = \"20s\"\nmax_duration = \"30s\"\ndrain_timeout = \"5s\"\n\
             [outbound]\ntarget = \"{target}\"\nfrom = \"+15550100000\"\n\
             [model]\nprovider = \"mock\"\n\
             [store]\n{store}recordings_dir = \"{}\"\n\
             [http]\nbind = \"127.0.0.1:0\"\n\
             [log]\nlevel = \"warn\"\n",
            rtp + 199,
            env.dir.path().join("rec").display(),
        );
        std::fs::write(&cfg, text).unwrap();
        let log = env.dir.path().join(format!(
            "agent{}.log",
            node.map(|n| format!("-{n}")).unwrap_or_default()
        ));
        let mut child = Command::new(super::bins::AGENT)
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env_remove("GEMINI_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let rest = line.trim().strip_prefix("ready sip=").unwrap_or_else(|| {
            panic!(
                "agent ready line, got {line:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let (_, http) = rest.split_once(" http=").unwrap();
        Agent {
            child,
            http: http.parse().unwrap(),
            log,
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `agent user add NAME --role agent-operator`: the printed token.
    pub fn add_operator(&self, env: &Env, name: &str) -> String {
        let out = Command::new(super::bins::AGENT)
            .args(["user", "add", name, "--role", "agent-operator", "--config"])
            .arg(env.dir.path().join("agent.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
