//! The `agent` binary's command line and process contract, run for real
//! (`bins::AGENT`): `--help`, `check-config` on good and bad files
//! (exit status 2 and messages naming key, value and expectation),
//! environment overrides, `user add`, `run` (the single `ready` line,
//! SIGTERM drain and exit 0, the second signal marking live calls
//! interrupted), and a call through a mock Gemini at log level trace whose
//! output must never contain the API key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use callbridge_crm_store::{Role, SessionState, Store};
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ids::{SeqNo, Ssrc};
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaEvent, MediaStream};
use callbridge_sip::driver::{Driver, DriverConfig, Handle};
use callbridge_sip::random::os_rng;
use callbridge_sip::sdp::{self, LocalMedia};
use callbridge_sip::ua::{self, CallRef, Event, Originate};
use callbridge_sip::{NameAddr, Uri};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

#[path = "bin/paths.rs"]
mod bins;

const AGENT: &str = bins::AGENT;
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A configuration for a loopback agent in `dir`; `model` is the body of
/// the `[model]` section; `rtp` the first of 40 RTP ports.
fn config(dir: &Path, model: &str, rtp: u16) -> PathBuf {
    let text = format!(
        "[sip]\nbind = \"127.0.0.1:0\"\nallowed_peers = [\"127.0.0.1/32\"]\n\
         [rtp]\nport_min = {rtp}\nport_max = {}\n\
         [calls]\nmax_concurrent = 4\ndrain_timeout = \"20s\"\n\
         [model]\n{model}\n\
         [store]\ndatabase = \"agent.db\"\nrecordings_dir = \"rec\"\n\
         [http]\nbind = \"127.0.0.1:0\"\n",
        rtp + 39
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary to completion with `env` (model keys removed unless given).
fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = std::process::Command::new(AGENT);
    c.args(args)
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_works_for_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check-config", "--help"],
        vec!["demo", "--help"],
        vec!["user", "--help"],
        vec!["user", "add", "--help"],
    ] {
        let out = agent(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text_of(&out.stdout).contains("Usage: agent"), "{args:?}");
    }
    let out = agent(&["--help"], &[]);
    assert!(text_of(&out.stdout).contains("CALLBRIDGE_<SECTION>_<KEY>"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(agent(&["fly"], &[]).status.code(), Some(2));
    assert_eq!(agent(&["user", "add", "ann"], &[]).status.code(), Some(2));
    assert_eq!(agent(&["run", "--bogus"], &[]).status.code(), Some(2));
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40000);
    let out = agent(&["check-config", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out.stderr));
    let so = text_of(&out.stdout);
    assert!(so.contains("OK") && so.contains("model mock"), "{so}");
}

#[test]
fn check_config_accepts_the_example_file_given_its_key() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent.example.toml");
    let out = agent(
        &["check-config", "--config", example],
        &[("GEMINI_API_KEY", "k")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out.stderr));
    let out = agent(&["check-config", "--config", example], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text_of(&out.stderr).contains("GEMINI_API_KEY is not set"),
        "{}",
        text_of(&out.stderr)
    );
}

#[test]
fn check_config_refuses_bad_files_with_key_value_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[sip]\nbind = \"abc\"\n",
            "sip.bind = \"abc\": expected ip:port",
        ),
        ("[sip]\nbnd = \"1.2.3.4:5\"\n", "unknown key sip.bnd"),
        (
            "[calls]\nmax_concurrent = \"lots\"\n",
            "calls.max_concurrent = \"lots\": expected an integer",
        ),
        (
            "[sip]\nbind = \"127.0.0.1:0\"\n[calls]\nmax_duration = \"ages\"\n",
            "calls.max_duration = \"ages\": expected a duration",
        ),
        (
            "[sip]\nbind = \"127.0.0.1:0\"\n[model]\nprovider = \"mock\"\nvoice = 3\n",
            "model.voice = 3: expected a string",
        ),
        ("[sip\n", "not valid TOML"),
    ];
    for (body, message) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, body).unwrap();
        let out = agent(&["check-config", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = text_of(&out.stderr);
        assert!(err.contains(message), "{body}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = agent(
        &["check-config", "--config", "/nonexistent/agent.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text_of(&out.stderr).contains("cannot read /nonexistent/agent.toml"));
}

#[test]
fn check_config_reports_every_bad_key_at_once_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[sip]\nbind = \"abc\"\n[calls]\nmax_duration = \"ages\"\n[model]\nprovider = \"mock\"\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let out = agent(
        &["check-config", "--config", file],
        &[("CALLBRIDGE_RTP_LATCH", "any")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text_of(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per error: {err}");
    assert!(lines.iter().all(|l| l.starts_with("agent: ")), "{err}");
    assert!(
        err.contains("sip.bind = \"abc\": expected ip:port")
            && err.contains(&format!("(in {file})")),
        "{err}"
    );
    assert!(
        err.contains("calls.max_duration = \"ages\": expected a duration"),
        "{err}"
    );
    assert!(
        err.contains("rtp.latch (from CALLBRIDGE_RTP_LATCH) = \"any\""),
        "{err}"
    );
}

#[test]
fn environment_overrides_keys_and_is_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40000);
    let cfg = cfg.to_str().unwrap();
    let out = agent(
        &["check-config", "--config", cfg],
        &[
            ("CALLBRIDGE_HTTP_BIND", "127.0.0.1:9911"),
            ("CALLBRIDGE_MODEL_PROVIDER", "openai"),
            ("OPENAI_API_KEY", "k"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out.stderr));
    let so = text_of(&out.stdout);
    assert!(
        so.contains("http 127.0.0.1:9911") && so.contains("model openai"),
        "{so}"
    );
    let out = agent(
        &["check-config", "--config", cfg],
        &[("CALLBRIDGE_SIP_BIND", "nowhere")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text_of(&out.stderr)
            .contains("sip.bind (from CALLBRIDGE_SIP_BIND) = \"nowhere\": expected ip:port"),
        "{}",
        text_of(&out.stderr)
    );
    let out = agent(
        &["check-config", "--config", cfg],
        &[("CALLBRIDGE_CALLS_MAX_CONCURENT", "3")],
    );
    assert_eq!(out.status.code(), Some(2), "a misspelt variable is refused");
    let out = agent(&["check-config", "--list-env", "--config", cfg], &[]);
    assert!(text_of(&out.stdout).contains("CALLBRIDGE_SIP_TRUNK_USERNAME\tsip.trunk.username"));
    let misspelt = agent(
        &["check-config", "--config", cfg],
        &[("CALLBRIDGE_CALLS_MAX_CONCURENT", "3")],
    );
    assert!(
        text_of(&misspelt.stderr).contains("`agent check-config --list-env` lists them"),
        "the hint names --list-env: {}",
        text_of(&misspelt.stderr)
    );
}

#[test]
fn list_env_needs_no_valid_config_and_names_the_secrets() {
    // No file at all, and a gemini provider without its key in the
    // environment: the list is what an operator reads to fix that.
    let out = agent(
        &[
            "check-config",
            "--list-env",
            "--config",
            "/nonexistent/agent.toml",
        ],
        &[("CALLBRIDGE_MODEL_PROVIDER", "gemini")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out.stderr));
    let text = text_of(&out.stdout);
    assert!(text.contains("CALLBRIDGE_SIP_BIND\tsip.bind"), "{text}");
    for secret in [
        "GEMINI_API_KEY",
        "OPENAI_API_KEY",
        "CALLBRIDGE_SIP_TRUNK_PASSWORD",
        "TWILIO_AUTH_TOKEN",
        "VONAGE_PRIVATE_KEY",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{secret}\t"))),
            "{secret} missing: {text}"
        );
    }
}

#[test]
fn user_add_prints_only_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40000);
    let out = agent(
        &[
            "user",
            "add",
            "Ann Operator",
            "--role",
            "agent-operator",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out.stderr));
    let so = text_of(&out.stdout);
    assert_eq!(so.lines().count(), 1, "one line: {so}");
    let token = so.trim();
    assert!(token.starts_with("cbt_"), "{token}");
    let store = Store::open(dir.path().join("agent.db")).unwrap();
    let user = store.verify_token(token, jiff::Timestamp::now()).unwrap();
    assert_eq!(user.role, Role::AgentOperator);
    assert_eq!(user.name.as_str(), "Ann Operator");
    let out = agent(
        &[
            "user",
            "add",
            "x",
            "--role",
            "boss",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text_of(&out.stderr)
            .contains("--role = \"boss\": expected one of admin, agent-operator, viewer"),
        "{}",
        text_of(&out.stderr)
    );
}

/// A started `agent run` and its addresses.
struct Running {
    child: Child,
    stdout: BufReader<tokio::process::ChildStdout>,
    sip: SocketAddr,
    http: SocketAddr,
}

async fn start(cfg: &Path, env: &[(&str, &str)]) -> Running {
    let mut c = Command::new(AGENT);
    c.args(["run", "--config", cfg.to_str().unwrap()])
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line))
        .await
        .expect("ready within 20 s")
        .unwrap();
    let rest = line
        .trim()
        .strip_prefix("ready sip=")
        .unwrap_or_else(|| panic!("ready line, got {line:?}"));
    let (sip, http) = rest.split_once(" http=").unwrap();
    Running {
        child,
        stdout,
        sip: sip.parse().unwrap(),
        http: http.parse().unwrap(),
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig)
    };
}

/// Reads the agent's stderr until it contains `needle` or `within` has
/// passed; returns what was read (`finish` returns the rest).
async fn stderr_until(r: &mut Running, needle: &str, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let pipe = r.child.stderr.as_mut().unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&bytes).contains(needle) {
        match tokio::time::timeout_at(deadline, pipe.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits for the exit; returns (status, rest of stdout, stderr).
async fn finish(mut r: Running) -> (Option<i32>, String, String) {
    let mut err = String::new();
    let mut stderr = r.child.stderr.take().unwrap();
    let mut out = String::new();
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        let (a, b, s) = tokio::join!(
            r.stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err),
            r.child.wait()
        );
        a.unwrap();
        b.unwrap();
        s.unwrap()
    })
    .await
    .expect("agent exits within 30 s");
    (status.code(), out, err)
}

/// A plain HTTP/1.1 GET; returns the whole response.
async fn get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("HTTP answer within 5 s")
        .unwrap();
    out
}

/// A one-call SIP caller with an RTP peer.
struct Caller {
    sip: Handle,
    events: tokio::sync::mpsc::Receiver<Event>,
    _pool: PortPool,
    _engine: callbridge_rtp::engine::MediaEngine,
    media: MediaStream,
    call: Option<CallRef>,
}

impl Caller {
    async fn dial(agent: SocketAddr, rtp: std::ops::RangeInclusive<u16>) -> Caller {
        let cfg = DriverConfig::new(
            SocketAddr::new(LOCAL, 0),
            ua::Config::new(SocketAddr::new(LOCAL, 0)),
        );
        let (driver, sip, events) = Driver::bind(cfg, os_rng()).await.unwrap();
        tokio::spawn(async move {
            let _ = driver.run(std::future::pending::<()>()).await;
        });
        let pool = PortPool::new(PortPoolConfig {
            bind_ip: LOCAL,
            range: rtp,
            rtcp: false,
        })
        .unwrap();
        let engine = callbridge_rtp::engine::MediaEngine::new(
            callbridge_rtp::engine::EngineConfig::default(),
            std::sync::Arc::new(callbridge_rtp::clock::SystemClock),
        )
        .unwrap();
        let media = MediaStream::open(
            &engine,
            &pool,
            MediaConfig::new(Law::MuLaw, None, Ssrc(9), SeqNo(1), 0),
        )
        .unwrap();
        let local = LocalMedia::new(LOCAL, media.local_addr().port());
        let offer = sdp::make_offer(&local, sdp::Direction::SendRecv).to_bytes();
        let call = sip
            .originate(Originate {
                to: Uri::parse(&Bytes::from(format!("sip:agent@{agent}"))).unwrap(),
                from: NameAddr::new(
                    Uri::parse(&Bytes::from_static(b"sip:+15550002222@127.0.0.1")).unwrap(),
                ),
                target: agent,
                offer,
                credentials: None,
                extra_headers: Vec::new(),
            })
            .await
            .unwrap();
        let mut c = Caller {
            sip,
            events,
            _pool: pool,
            _engine: engine,
            media,
            call: Some(call),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ev = tokio::time::timeout_at(deadline, c.events.recv())
                .await
                .expect("answered within 10 s");
            match ev {
                Some(Event::Answered { answer, .. }) => {
                    let a = sdp::Session::parse(&answer).unwrap();
                    let port = a.media.first().unwrap().port;
                    c.media.set_remote(Some(SocketAddr::new(agent.ip(), port)));
                    return c;
                }
                Some(Event::Failed { outcome, .. }) => panic!("call failed: {outcome:?}"),
                _ => {}
            }
        }
    }

    /// Waits (bounded) until a frame louder than speech arrives.
    async fn hear_speech(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.media.recv()).await {
            if let MediaEvent::Audio { pcm, .. } = ev {
                let e: f64 = pcm.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 160.0;
                if e.sqrt() > 300.0 {
                    return true;
                }
            }
        }
        false
    }

    async fn hang_up(mut self) {
        if let Some(call) = self.call.take() {
            let _ = self.sip.hangup(call).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = self.events.recv().await {
                if matches!(ev, Event::Ended { .. } | Event::Failed { .. }) {
                    break;
                }
            }
        })
        .await;
        self.media.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_one_ready_line_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40100);
    let r = start(&cfg, &[]).await;
    assert!(r.sip.ip().is_loopback() && r.sip.port() != 0);
    assert!(r.http.ip().is_loopback() && r.http.port() != 0);
    // The HTTP socket is accepting.
    tokio::net::TcpStream::connect(r.http).await.unwrap();
    signal(&r.child, libc::SIGTERM);
    let (code, out, err) = finish(r).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.is_empty(),
        "nothing after the ready line on stdout: {out:?}"
    );
    assert!(dir.path().join("agent.db").exists());
    assert!(dir.path().join("rec").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_live_call_and_a_second_signal_marks_it_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40200);
    // Graceful: the call is ended with BYE after the drain, exit 0.
    let r = start(&cfg, &[("CALLBRIDGE_CALLS_DRAIN_TIMEOUT", "1s")]).await;
    let mut caller = Caller::dial(r.sip, 40260..=40279).await;
    assert!(caller.hear_speech().await, "greeting heard");
    signal(&r.child, libc::SIGTERM);
    let (code, _, err) = finish(r).await;
    assert_eq!(code, Some(0), "{err}");
    caller.hang_up().await;
    let store = Store::open(dir.path().join("agent.db")).unwrap();
    let sessions = store
        .list_sessions(&Default::default(), 10, None)
        .unwrap()
        .items;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].state, SessionState::Ended, "{:?}", sessions[0]);
    drop(store);
    // Impatient: a second signal during the drain exits at once.
    let r = start(&cfg, &[("CALLBRIDGE_CALLS_DRAIN_TIMEOUT", "30s")]).await;
    let mut caller = Caller::dial(r.sip, 40280..=40299).await;
    assert!(caller.hear_speech().await, "greeting heard");
    let health = get(r.http, "/api/health").await;
    assert!(health.contains("\"admitting\":true"), "{health}");
    signal(&r.child, libc::SIGTERM);
    // Draining: HTTP still answers, and says no calls are admitted (the
    // signal is handled asynchronously: wait for it, bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let health = loop {
        let health = get(r.http, "/api/health").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        if health.contains("\"admitting\":false") || tokio::time::Instant::now() >= deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(health.contains("\"admitting\":false"), "{health}");
    signal(&r.child, libc::SIGINT);
    let started = std::time::Instant::now();
    let (code, _, err) = finish(r).await;
    assert_eq!(code, Some(130), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "exits at once");
    caller.hang_up().await;
    let store = Store::open(dir.path().join("agent.db")).unwrap();
    let sessions = store
        .list_sessions(&Default::default(), 10, None)
        .unwrap()
        .items;
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .any(|s| s.state == SessionState::Interrupted),
        "{sessions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_reaches_stdout_or_stderr_at_log_level_trace() {
    const KEY: &str = "AIzaFAKE-callbridge-secret-7f3a9c2e";
    let mock = MockGemini::start(GeminiScript {
        expect_api_key: Some(KEY.into()),
        ..GeminiScript::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = format!("provider = \"gemini\"\nendpoint = \"{}\"", mock.url());
    let cfg = config(dir.path(), &model, 40300);
    let r = start(
        &cfg,
        &[("GEMINI_API_KEY", KEY), ("CALLBRIDGE_LOG_LEVEL", "trace")],
    )
    .await;
    let mut caller = Caller::dial(r.sip, 40360..=40379).await;
    let greeted = caller.hear_speech().await;
    caller.hang_up().await;
    signal(&r.child, libc::SIGTERM);
    let (code, out, err) = finish(r).await;
    assert_eq!(code, Some(0));
    let stats = mock.stats();
    assert!(
        stats.setups >= 1,
        "the key was sent and accepted: {stats:?}"
    );
    mock.assert_no_violations();
    assert!(
        err.contains("TRACE"),
        "the run logged at trace ({} bytes of stderr)",
        err.len()
    );
    assert!(!out.contains(KEY), "key on stdout");
    assert!(!err.contains(KEY), "key on stderr");
    assert!(!err.contains("7f3a9c2e"), "part of the key on stderr");
    assert!(greeted, "greeting heard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_trunk_gets_a_register_from_the_sip_socket() {
    let registrar = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = registrar.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40400);
    let trunk = format!(
        "[sip.trunk]\nregistrar = \"sip:{addr}\"\nusername = \"cb-trunk-user\"\nregister_expires = \"2m\"\n"
    );
    let text = std::fs::read_to_string(&cfg).unwrap() + &trunk;
    std::fs::write(&cfg, text).unwrap();
    let out = agent(&["check-config", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "the trunk needs its password");
    assert!(text_of(&out.stderr).contains("CALLBRIDGE_SIP_TRUNK_PASSWORD is not set"));
    let mut r = start(
        &cfg,
        &[("CALLBRIDGE_SIP_TRUNK_PASSWORD", "pw-never-logged")],
    )
    .await;
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(15), registrar.recv_from(&mut buf))
        .await
        .expect("REGISTER within 15 s")
        .unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.starts_with(&format!("REGISTER sip:{addr} SIP/2.0")),
        "{msg}"
    );
    assert!(
        msg.contains("sip:cb-trunk-user@127.0.0.1"),
        "address of record: {msg}"
    );
    assert!(msg.to_ascii_lowercase().contains("expires: 120"), "{msg}");
    assert_eq!(from, r.sip, "sent from the agent's SIP socket");
    // Accept it: a 200 OK echoing the request's dialog headers.
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for line in msg.split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "contact" => ok += &format!("{line}\r\n"),
            "to" => ok += &format!("{line};tag=reg1\r\n"),
            _ => {}
        }
    }
    ok += "Expires: 120\r\nContent-Length: 0\r\n\r\n";
    registrar.send_to(ok.as_bytes(), from).await.unwrap();
    // The agent logs the registration once it has handled the 200: wait
    // for that line (bounded) instead of a fixed pause before the signal.
    let logged = stderr_until(&mut r, "registered with the trunk", Duration::from_secs(15)).await;
    signal(&r.child, libc::SIGTERM);
    let (code, _, rest) = finish(r).await;
    let err = logged + &rest;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("registered with the trunk"), "{err}");
    assert!(!err.contains("pw-never-logged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_recovers_sessions_a_killed_agent_left_live() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40500);
    let mut r = start(&cfg, &[]).await;
    let mut caller = Caller::dial(r.sip, 40560..=40579).await;
    assert!(caller.hear_speech().await, "greeting heard");
    signal(&r.child, libc::SIGKILL);
    r.child.wait().await.unwrap();
    caller.hang_up().await;
    let live = |s: &callbridge_crm_store::Session| !s.state.is_terminal();
    let store = Store::open(dir.path().join("agent.db")).unwrap();
    let before = store
        .list_sessions(&Default::default(), 10, None)
        .unwrap()
        .items;
    assert!(before.iter().all(live) && before.len() == 1, "{before:?}");
    drop(store);
    let r = start(&cfg, &[]).await;
    let store = Store::open(dir.path().join("agent.db")).unwrap();
    let after = store
        .list_sessions(&Default::default(), 10, None)
        .unwrap()
        .items;
    assert_eq!(after[0].state, SessionState::Interrupted, "{after:?}");
    signal(&r.child, libc::SIGTERM);
    let (code, _, err) = finish(r).await;
    assert_eq!(code, Some(0));
    assert!(err.contains("crash recovery"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_http_port_fails_start_up_with_status_2_and_no_ready_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40600);
    let bind = format!("127.0.0.1:{port}");
    let out = agent(
        &["run", "--config", cfg.to_str().unwrap()],
        &[("CALLBRIDGE_HTTP_BIND", bind.as_str())],
    );
    // An address that cannot be bound is the operator's to fix, like the
    // rest of the configuration: 2, as documented.
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no ready line");
    let err = text_of(&out.stderr);
    assert!(err.contains(&format!("http.bind {bind}")), "{err}");
}

#[test]
fn a_taken_sip_port_fails_start_up_with_status_2_naming_sip_bind() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"mock\"", 40800);
    let out = agent(
        &["run", "--config", cfg.to_str().unwrap()],
        &[("CALLBRIDGE_SIP_BIND", bind.as_str())],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no ready line");
    let err = text_of(&out.stderr);
    assert!(err.contains(&format!("sip.bind {bind}")), "{err}");
}
