//! End-to-end test support: runs the real `agent` binary on loopback with a
//! temporary configuration, database and recordings directory, and talks to
//! it over its HTTP API and with sipp.
//!
//! Every wait is bounded; the agent and every sipp process are killed when
//! their guard drops (also while a test panics), and a panicking test gets
//! the agent's stderr tail printed so the failure explains itself.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../bin/paths.rs"]
pub mod bins;
pub mod checks;
pub mod dns;
pub mod http;
pub mod media;
pub mod metrics;
#[path = "../common/process.rs"]
pub mod process;
pub mod raw_sip;
pub mod sipp;
pub mod tools;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use callbridge_crm_store::{Session, SessionFilter, Store};
use serde_json::Value;

pub use http::Resp;
pub use metrics::Metrics;

/// How long the agent may take to print its `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The stderr kept per agent (the tail, when a run logs more).
const STDERR_CAP: usize = 4 << 20;

/// RTP port blocks for the agents of one test binary: each agent gets its
/// own block; a busy port is skipped by the agent's pool, so another
/// process squatting on one costs nothing. The blocks sit below Linux's
/// ephemeral range (32768-60999): a test socket bound to port 0 never
/// lands inside an agent's range, where a spray of that range would reach
/// it (an attacker socket once received its own spray and was counted as
/// served).
static NEXT_RTP: AtomicU16 = AtomicU16::new(21_000);
const RTP_BLOCK: u16 = 240;

/// The path of the agent binary under test.
pub fn agent_bin() -> &'static str {
    bins::AGENT
}

/// A UDP port free at the time of asking (on 127.0.0.1).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// Makes `cmd`'s process get SIGKILL when the thread that spawned it (the
/// test) goes away, so an agent or sipp never outlives a test binary that
/// was itself killed (a panicking test already kills them in `Drop`).
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    #[allow(unsafe_code, reason = "pre_exec runs prctl, async-signal-safe")]
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe,
    // and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Which model the agent talks to.
#[derive(Debug, Clone)]
pub enum Model {
    /// The built-in mock model (`provider = "mock"`).
    Mock,
    /// `provider = "gemini"` at this endpoint (a mock server in the test
    /// process), with a fake `GEMINI_API_KEY`.
    Gemini { endpoint: String },
    /// `provider = "gpt-live"` at this endpoint (a mock server in the test
    /// process), with a fake `OPENAI_API_KEY`, delegating tools to
    /// `delegation_model` when given.
    GptLive {
        endpoint: String,
        delegation_model: Option<String>,
    },
}

/// What a test changes in the agent's configuration.
#[derive(Debug, Clone)]
pub struct Opts {
    pub model: Model,
    /// `calls.on_model_failure`.
    pub on_model_failure: &'static str,
    /// `outbound.target`.
    pub outbound_target: Option<SocketAddr>,
    /// `[sip.trunk]`: registrar `sip:<addr>` and username (the password
    /// goes in `env` as CALLBRIDGE_SIP_TRUNK_PASSWORD).
    pub trunk: Option<(SocketAddr, &'static str)>,
    /// `sip.allowed_peers`.
    pub allowed_peers: Vec<&'static str>,
    /// `calls.drain_timeout`.
    pub drain_timeout: &'static str,
    /// `calls.no_speech_timeout`.
    pub no_speech_timeout: &'static str,
    /// `calls.max_concurrent`.
    pub max_concurrent: u32,
    /// `log.level`.
    pub log_level: &'static str,
    /// Extra environment for the agent.
    pub env: Vec<(String, String)>,
    /// Extra lines in `[sip]` (e.g. `tcp_bind = "127.0.0.1:0"`).
    pub sip_extra: String,
    /// Text appended to the configuration (`[routing]`, `[[profiles]]`).
    pub extra_toml: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            model: Model::Mock,
            on_model_failure: "answer-then-hangup",
            outbound_target: None,
            trunk: None,
            allowed_peers: vec!["127.0.0.1/32"],
            drain_timeout: "2s",
            no_speech_timeout: "20s",
            max_concurrent: 40,
            log_level: "info",
            env: Vec::new(),
            sip_extra: String::new(),
            extra_toml: String::new(),
        }
    }
}

/// The fake key the tests give the agent when it talks to a mock Gemini;
/// the logs must never show it.
pub const FAKE_GEMINI_KEY: &str = "AIzaFAKE-e2e-key-do-not-log-0123456789";

/// The fake key the tests give the agent when it talks to a mock GPT-Live.
pub const FAKE_OPENAI_KEY: &str = "sk-FAKE-e2e-key-do-not-log-0123456789";

fn render_config(o: &Opts, dir: &Path, rtp: (u16, u16)) -> String {
    let peers = o
        .allowed_peers
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let (provider, endpoint) = match &o.model {
        Model::Mock => ("mock", String::new()),
        Model::Gemini { endpoint } => ("gemini", format!("endpoint = \"{endpoint}\"\n")),
        Model::GptLive {
            endpoint,
            delegation_model,
        } => (
            "gpt-live",
            match delegation_model {
                Some(m) => format!("endpoint = \"{endpoint}\"\ndelegation_model = \"{m}\"\n"),
                None => format!("endpoint = \"{endpoint}\"\n"),
            },
        ),
    };
    let outbound = match o.outbound_target {
        Some(t) => format!("[outbound]\ntarget = \"{t}\"\nfrom = \"+15550100000\"\n"),
        None => "[outbound]\nfrom = \"+15550100000\"\n".to_string(),
    };
    let trunk = match o.trunk {
        Some((registrar, user)) => format!(
            "[sip.trunk]\nregistrar = \"sip:{registrar}\"\nusername = \"{user}\"\n\
             register_expires = \"10m\"\n"
        ),
        None => String::new(),
    };
    format!(
        r#"# written by tests/support_agent
[sip]
bind = "127.0.0.1:0"
public_addr = "127.0.0.1"
allowed_peers = [{peers}]
reject_unlisted = "forbidden"
{sip_extra}
{trunk}
[rtp]
port_min = {rtp_min}
port_max = {rtp_max}

[calls]
max_concurrent = {max}
no_speech_timeout = "{no_speech}"
max_duration = "2m"
ring_timeout = "10s"
rtp_inactivity = "15s"
drain_timeout = "{drain}"
on_model_failure = "{omf}"

{outbound}
[model]
provider = "{provider}"
{endpoint}model = "e2e-model"
voice = "Puck"
system_prompt = "You are the end-to-end test agent."
greeting = "Greet the caller."
tools = true
setup_timeout = "5s"

[store]
database = "{db}"
recordings_dir = "{rec}"

[http]
bind = "127.0.0.1:0"

[log]
format = "text"
level = "{level}"
{extra_toml}
"#,
        rtp_min = rtp.0,
        rtp_max = rtp.1,
        max = o.max_concurrent,
        no_speech = o.no_speech_timeout,
        drain = o.drain_timeout,
        omf = o.on_model_failure,
        db = dir.join("crm.db").display(),
        rec = dir.join("recordings").display(),
        level = o.log_level,
        sip_extra = o.sip_extra,
        extra_toml = o.extra_toml,
    )
}

/// A running `agent run`; killed when dropped.
pub struct Agent {
    child: Option<Child>,
    /// The SIP address from the `ready` line.
    pub sip: SocketAddr,
    /// The HTTP address from the `ready` line.
    pub http: SocketAddr,
    /// The SIP TCP listener from the `ready` line (`sip.tcp_bind`).
    pub sip_tcp: Option<SocketAddr>,
    /// The SIP TLS listener from the `ready` line (`sip.tls_bind`).
    pub sip_tls: Option<SocketAddr>,
    /// An admin token (`agent user add`).
    pub token: String,
    /// The configuration file.
    pub config: PathBuf,
    /// The SQLite database.
    pub db: PathBuf,
    /// The recordings directory.
    pub recordings: PathBuf,
    /// The configured RTP port range (`rtp.port_min`, `rtp.port_max`).
    pub rtp_ports: (u16, u16),
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout_extra: mpsc::Receiver<String>,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

fn command(o: &Opts) -> Command {
    let mut cmd = Command::new(agent_bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CALLBRIDGE_") || k == "GEMINI_API_KEY" || k == "OPENAI_API_KEY" {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    die_with_parent(&mut cmd);
    for (k, v) in &o.env {
        cmd.env(k, v);
    }
    match o.model {
        Model::Gemini { .. } => {
            cmd.env("GEMINI_API_KEY", FAKE_GEMINI_KEY);
        }
        Model::GptLive { .. } => {
            cmd.env("OPENAI_API_KEY", FAKE_OPENAI_KEY);
        }
        Model::Mock => {}
    }
    cmd
}

/// Runs `agent ARGS` to completion (bounded) and returns its output.
pub fn run_agent_cmd(args: &[&str], o: &Opts, within: Duration) -> std::process::Output {
    let mut child = command(o)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let status = wait_child(&mut child, within)
        .unwrap_or_else(|| panic!("agent {args:?} did not finish within {within:?}"));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// Waits up to `within` for `child`; kills it and returns `None` if it is
/// still running then.
pub fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses `ready sip=<addr> http=<addr>` (with `sip_tcp=` and `sip_tls=`
/// after them when those listeners are on: see [`parse_ready_streams`]).
pub fn parse_ready(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut it = line.trim().split(' ');
    if it.next()? != "ready" {
        return None;
    }
    let sip = it.next()?.strip_prefix("sip=")?.parse().ok()?;
    let http = it.next()?.strip_prefix("http=")?.parse().ok()?;
    if it.any(|t| !t.starts_with("sip_tcp=") && !t.starts_with("sip_tls=")) {
        return None;
    }
    Some((sip, http))
}

/// The `sip_tcp=` and `sip_tls=` addresses of a `ready` line.
pub fn parse_ready_streams(line: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let find = |key: &str| {
        line.split(' ')
            .find_map(|t| t.strip_prefix(key)?.parse().ok())
    };
    (find("sip_tcp="), find("sip_tls="))
}

impl Agent {
    /// Writes the configuration, creates an admin token, starts `agent run`
    /// and waits for its `ready` line.
    pub fn start(o: Opts) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let lo = NEXT_RTP.fetch_add(RTP_BLOCK, Ordering::SeqCst);
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            render_config(&o, dir.path(), (lo, lo + RTP_BLOCK - 2)),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("recordings")).unwrap();
        let cfg = config.to_str().unwrap();

        // A restart on a store that has the user already (a test that
        // restarts the agent on its database) gets it a new token.
        let mut out = run_agent_cmd(
            &[
                "user",
                "add",
                "e2e-admin",
                "--role",
                "admin",
                "--config",
                cfg,
            ],
            &o,
            Duration::from_secs(20),
        );
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("exists already")
        {
            out = run_agent_cmd(
                &["user", "rotate", "e2e-admin", "--config", cfg],
                &o,
                Duration::from_secs(20),
            );
        }
        assert!(
            out.status.success(),
            "agent user add failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            token.starts_with("cbt_") && !token.contains('\n'),
            "agent user add must print one token line, got {token:?}"
        );

        let mut child = command(&o)
            .args(["run", "--config", cfg])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent run");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = sink.lock().unwrap();
                    s.extend_from_slice(&buf[..n]);
                    if s.len() > STDERR_CAP {
                        let cut = s.len() - STDERR_CAP / 2;
                        s.drain(..cut);
                    }
                }
            });
        }
        let rx = process::stdout_lines(&mut child);
        let first = rx.recv_timeout(READY_TIMEOUT);
        let mut agent = Agent {
            child: Some(child),
            sip: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            sip_tcp: None,
            sip_tls: None,
            token,
            db: dir.path().join("crm.db"),
            recordings: dir.path().join("recordings"),
            rtp_ports: (lo, lo + RTP_BLOCK - 2),
            config,
            stderr,
            stdout_extra: rx,
            dir,
        };
        let line = match first {
            Ok(l) => l,
            Err(_) => {
                let status = agent.child.as_mut().unwrap().try_wait().ok().flatten();
                panic!(
                    "agent printed no ready line within {READY_TIMEOUT:?} (exit: {status:?})\n\
                     stderr:\n{}",
                    agent.stderr_tail(8000)
                );
            }
        };
        let Some((sip, http)) = parse_ready(&line) else {
            panic!(
                "the agent's first stdout line must be `ready sip=.. http=..`, got {line:?}\n\
                 stderr:\n{}",
                agent.stderr_tail(8000)
            );
        };
        agent.sip = sip;
        agent.http = http;
        (agent.sip_tcp, agent.sip_tls) = parse_ready_streams(&line);
        agent
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// All stderr so far (lossy UTF-8).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The last `n` bytes of stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        let s = self.stderr.lock().unwrap();
        let from = s.len().saturating_sub(n);
        String::from_utf8_lossy(&s[from..]).into_owned()
    }

    /// Lines the agent printed on stdout after `ready` (the contract says
    /// none).
    pub fn extra_stdout(&self) -> Vec<String> {
        self.stdout_extra.try_iter().collect()
    }

    /// A request with the admin token.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let body = body.map(|b| b.to_string());
        http::request(self.http, method, path, Some(&self.token), body.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.stderr_tail(4000)))
    }

    /// `GET path` (admin token), expecting 200 and JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.request("GET", path, None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// `GET /api/health`.
    pub fn health(&self) -> Value {
        let r = http::request(self.http, "GET", "/api/health", None, None).unwrap();
        assert_eq!(r.status, 200, "health: {}", r.text());
        r.json()
    }

    /// `GET /metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        let r = http::request(self.http, "GET", "/metrics", None, None).unwrap();
        assert_eq!(r.status, 200, "metrics: {}", r.text());
        Metrics::parse(&r.text())
    }

    /// Waits until health shows no active session and the live-resource
    /// gauges (call tasks, media sockets, model sessions and connections)
    /// are 0; panics with the last figures after `within`.
    pub fn wait_idle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let h = self.health();
            let m = self.metrics();
            let active = h["active_sessions"].as_u64();
            let gauges = [
                "callbridge_active_calls",
                "callbridge_call_tasks",
                "callbridge_media_sockets",
                "callbridge_model_sessions",
                "callbridge_model_connections",
            ]
            .map(|g| (g, m.value(g)));
            let idle = active == Some(0) && gauges.iter().all(|(_, v)| *v == Some(0.0));
            if idle {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "agent not idle after {within:?}: active_sessions={active:?} gauges={gauges:?}\n\
                     health={h}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `f` every 50 ms until it returns `Some`, up to `within`.
    pub fn wait_for<T>(&self, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {within:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens the agent's database (WAL: reading while it runs is fine).
    pub fn store(&self) -> Store {
        Store::open(&self.db).expect("open the agent's store")
    }

    /// Every session in the store, newest first.
    pub fn sessions(&self) -> Vec<Session> {
        let store = self.store();
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_sessions(&SessionFilter::default(), 500, cursor)
                .unwrap();
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// Waits until `n` sessions exist and all are terminal; returns them.
    pub fn wait_sessions_terminal(&self, n: usize, within: Duration) -> Vec<Session> {
        let deadline = Instant::now() + within;
        loop {
            let all = self.sessions();
            if all.len() >= n && all.iter().all(|s| s.state.is_terminal()) {
                return all;
            }
            if Instant::now() >= deadline {
                let states: Vec<_> = all.iter().map(|s| s.state.as_str()).collect();
                panic!("wanted {n} terminal sessions within {within:?}, have {states:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Sends the signal `sig` ("TERM", "INT") to the agent with kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(st.success(), "kill -s {sig} {}", self.pid());
    }

    /// Waits for the agent to exit on its own (after a signal).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        match wait_child(child, within) {
            Some(st) => st,
            None => panic!(
                "agent did not exit within {within:?}\nstderr:\n{}",
                self.stderr_tail(8000)
            ),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- agent stderr (tail) ----\n{}\n---- end of agent stderr ----",
                self.stderr_tail(12_000)
            );
        }
    }
}
