//! The processes the load tool runs: the mock model (this same binary as
//! `callbridge-load mock-model`) and the agent (`agent run --config F`),
//! each announced by its `ready ...` line on stdout; plus a tiny HTTP/1.1
//! GET for `/metrics` and `/api/health`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

/// A child process and the rest of its stdout.
#[derive(Debug)]
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its stdout after the ready line.
    pub stdout: Lines<BufReader<ChildStdout>>,
    /// Its ready line.
    pub ready: String,
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// Starts `cmd` and waits (bounded) for its first stdout line, which must
/// start with `ready`.
pub async fn spawn_ready(mut cmd: Command, what: &str) -> Result<Proc, String> {
    cmd.stdout(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("{what}: no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| format!("{what}: no ready line within 60 s"))?
        .map_err(|e| format!("{what}: reading stdout: {e}"))?
        .ok_or_else(|| format!("{what}: exited before its ready line"))?;
    if !line.starts_with("ready") {
        return Err(format!("{what}: expected a ready line, got {line:?}"));
    }
    Ok(Proc {
        child,
        stdout: lines,
        ready: line,
    })
}

/// The value of `key=` in a ready line.
pub fn ready_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// How a child ended: its exit code, or the signal that ended it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Exit {
    /// Exit code.
    pub code: Option<i32>,
    /// Terminating signal.
    pub signal: Option<i32>,
    /// It had already exited before we asked it to.
    pub before_sigterm: bool,
}

/// Sends SIGTERM (through kill(1)) and waits up to `within` for the exit;
/// kills it after that.
pub async fn terminate(child: &mut Child, within: Duration) -> Exit {
    use std::os::unix::process::ExitStatusExt as _;
    let status = |st: std::process::ExitStatus, before: bool| Exit {
        code: st.code(),
        signal: st.signal(),
        before_sigterm: before,
    };
    if let Ok(Some(st)) = child.try_wait() {
        return status(st, true);
    }
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    match tokio::time::timeout(within, child.wait()).await {
        Ok(Ok(st)) => status(st, false),
        _ => {
            let _ = child.kill().await;
            Exit::default()
        }
    }
}

/// The agent's configuration for a load run, in `dir`.
pub fn write_agent_config(
    dir: &Path,
    endpoint: &str,
    max_calls: usize,
    rtp: (u16, u16),
    rtp_inactivity: &str,
    engine_threads: usize,
) -> std::io::Result<PathBuf> {
    let path = dir.join("agent.toml");
    let text = format!(
        r#"[sip]
bind = "127.0.0.1:0"
public_addr = "127.0.0.1"
allowed_peers = ["127.0.0.1/32"]

[rtp]
port_min = {lo}
port_max = {hi}

[media]
engine_threads = {engine_threads}

[calls]
max_concurrent = {max_calls}
no_speech_timeout = "60s"
model_reply_timeout = "2s"
max_duration = "10m"
rtp_inactivity = "{rtp_inactivity}"
drain_timeout = "5s"
on_model_failure = "answer-then-hangup"

[model]
provider = "gemini"
endpoint = "{endpoint}"
model = "mock-model"
voice = "Puck"
system_prompt = "load test"
greeting = "Greet the caller."
tools = false
setup_timeout = "3s"

[store]
database = "{db}"
recordings_dir = "{rec}"

[http]
bind = "127.0.0.1:0"

[log]
format = "text"
level = "warn"
"#,
        lo = rtp.0,
        hi = rtp.1,
        db = dir.join("crm.db").display(),
        rec = dir.join("recordings").display(),
    );
    callbridge_files::create_dir_all(&dir.join("recordings"), callbridge_files::Access::Owner)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `GET path` on `addr`; the body of a 200 response.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("no header end in the response")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")));
        }
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Ok(dechunk(body));
        }
        Ok(body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| format!("GET {path}: timed out"))?
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The sum of every sample of metric `name` (all label sets) in a
/// Prometheus text exposition; `None` when absent.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labelled_name_picks_its_series_and_a_bare_name_sums_them() {
        let page = "# TYPE callbridge_calls_refused_total counter\n\
                    callbridge_calls_refused_total{reason=\"store\"} 2\n\
                    callbridge_calls_refused_total{reason=\"overload\"} 5\n";
        assert_eq!(metric(page, "callbridge_calls_refused_total"), Some(7.0));
        assert_eq!(
            metric(page, "callbridge_calls_refused_total{reason=\"overload\"}"),
            Some(5.0)
        );
    }

    #[test]
    fn ready_fields_are_found_by_key() {
        let l = "ready sip=127.0.0.1:5060 http=127.0.0.1:8080";
        assert_eq!(ready_field(l, "sip"), Some("127.0.0.1:5060"));
        assert_eq!(ready_field(l, "http"), Some("127.0.0.1:8080"));
        assert_eq!(ready_field(l, "ws"), None);
    }

    #[test]
    fn metrics_sum_over_labels_and_skip_prefixes() {
        let t = "# HELP x\ncallbridge_active_calls 3\ncallbridge_active_calls_peak 9\n\
                 callbridge_calls_ended_total{direction=\"inbound\",reason=\"caller-hangup\"} 4\n\
                 callbridge_calls_ended_total{direction=\"inbound\",reason=\"rtp-timeout\"} 2\n";
        assert_eq!(metric(t, "callbridge_active_calls"), Some(3.0));
        assert_eq!(metric(t, "callbridge_calls_ended_total"), Some(6.0));
        assert_eq!(metric(t, "callbridge_media_sockets"), None);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
