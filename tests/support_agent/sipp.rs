//! Running sipp (Debian package sip-tester) with the scenarios in
//! `tests/sipp/agent/`. Every run is bounded (`-timeout` plus a kill), runs
//! on 127.0.0.1, and a background sipp is killed when its guard drops.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::{free_udp_port, wait_child};

/// Media port bases for sipp (its RTP echo socket and rtp_stream sockets
/// are searched upward from there).
static NEXT_MEDIA: AtomicU16 = AtomicU16::new(30_000);

/// An even media port base for sipp's `-mp` whose four ports (audio and
/// video RTP/RTCP, which sipp binds at start) are free right now; sipp's
/// rtp_stream sockets are searched upward from there. Another process may
/// still take one before sipp binds it, which is why `Sipp::run` retries a
/// run that failed to bind before making any call.
fn free_media_base() -> u16 {
    for _ in 0..200 {
        let base = NEXT_MEDIA.fetch_add(20, Ordering::SeqCst);
        if base > 32_000 {
            NEXT_MEDIA.store(30_000, Ordering::SeqCst);
            continue;
        }
        let free = (base..base + 4).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free UDP port block for sipp's media in 46000..59000");
}

/// The sipp binary; a missing sipp fails the test with the way to get it.
pub fn sipp_bin() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("sipp"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "sipp not found on PATH: install the Debian package sip-tester \
             (apt-get install sip-tester; scripts/test installs it)"
        ),
    }
}

/// A scenario file under tests/sipp/agent/.
pub fn scenario(name: &str) -> String {
    format!("{}/sipp/agent/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The committed speech clip (espeak-ng, 8 kHz mu-law WAV) sipp plays.
pub fn speech_clip() -> String {
    scenario("hello-pcmu.wav")
}

/// A sipp invocation being put together.
#[derive(Debug, Clone)]
pub struct Sipp {
    args: Vec<String>,
    /// sipp's own SIP port.
    pub port: u16,
    /// Kill after this long.
    pub limit: Duration,
}

/// What a finished sipp run left.
#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl SippRun {
    /// Panics with sipp's output unless it exited 0 (every call succeeded).
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "sipp ({what}) failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            tail(&self.stdout, 6000),
            tail(&self.stderr, 4000)
        );
    }

    /// The "Successful call" total from sipp's final statistics screen.
    pub fn successful_calls(&self) -> Option<u64> {
        stat(&self.stdout, "Successful call")
    }

    /// How many `code` responses the scenario's step counted (sipp's
    /// message screen, `  481 <----------  1 ...`), summed over the steps
    /// that expect that code.
    pub fn responses(&self, code: u16) -> u64 {
        let screen = self
            .stdout
            .rsplit("Messages  Retrans")
            .next()
            .unwrap_or_default();
        screen
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{code} <")))
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
            .sum()
    }

    /// The "Failed call" total from sipp's final statistics screen.
    pub fn failed_calls(&self) -> Option<u64> {
        stat(&self.stdout, "Failed call")
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut from = s.len().saturating_sub(n);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}

/// The cumulative column of a line of sipp's statistics screen.
fn stat(screen: &str, label: &str) -> Option<u64> {
    screen
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(label))?
        .split('|')
        .nth(2)?
        .trim()
        .parse()
        .ok()
}

impl Sipp {
    /// sipp as a UAC running `scenario_name` toward `target`, one call.
    pub fn uac(scenario_name: &str, target: SocketAddr) -> Sipp {
        let mut s = Sipp::base(scenario_name);
        s.args.push(target.to_string());
        s
    }

    /// sipp as a UAS on its own port running `scenario_name`.
    pub fn uas(scenario_name: &str) -> Sipp {
        Sipp::base(scenario_name)
    }

    fn base(scenario_name: &str) -> Sipp {
        let port = free_udp_port();
        let media = free_media_base();
        let args = [
            "-sf",
            &scenario(scenario_name),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &media.to_string(),
            "-nostdin",
            "-timeout_error",
        ]
        .map(String::from)
        .to_vec();
        Sipp {
            args,
            port,
            limit: Duration::from_secs(60),
        }
    }

    /// sipp's SIP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Adds arguments.
    pub fn arg(mut self, a: impl Into<String>) -> Sipp {
        self.args.push(a.into());
        self
    }

    /// Sets `-key name value` (the scenario's `[name]`).
    pub fn key(self, name: &str, value: impl Into<String>) -> Sipp {
        self.arg("-key").arg(name).arg(value)
    }

    /// Total calls, concurrency limit and rate: `-m calls -l limit -r rate`.
    pub fn calls(self, calls: u32, limit: u32, rate_per_s: u32) -> Sipp {
        self.arg("-m")
            .arg(calls.to_string())
            .arg("-l")
            .arg(limit.to_string())
            .arg("-r")
            .arg(rate_per_s.to_string())
    }

    /// The default `<pause/>` length (`-d`).
    pub fn pause_ms(self, ms: u64) -> Sipp {
        self.arg("-d").arg(ms.to_string())
    }

    /// sipp's global timeout and our kill deadline.
    pub fn within(mut self, limit: Duration) -> Sipp {
        self.limit = limit;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(sipp_bin());
        super::die_with_parent(&mut cmd);
        let mut args = self.args.clone();
        if !args.iter().any(|a| a == "-m") {
            args.extend(["-m".into(), "1".into()]);
        }
        // sipp's own timeout a little before our kill.
        let sipp_limit = self
            .limit
            .saturating_sub(Duration::from_secs(2))
            .max(Duration::from_secs(3));
        args.extend(["-timeout".into(), format!("{}s", sipp_limit.as_secs())]);
        cmd.args(args)
            .current_dir(format!("{}/sipp/agent", env!("CARGO_MANIFEST_DIR")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs sipp to completion (bounded by `limit`). A run that could not
    /// bind its sockets (before any call) is retried on fresh ports, twice.
    pub fn run(&self) -> SippRun {
        let mut attempt = self.clone();
        for _ in 0..2 {
            let run = attempt.spawn().finish();
            let bind_failed = !run.status.success()
                && run.stderr.contains("Unable to bind")
                && run.successful_calls().unwrap_or(0) == 0
                && run.failed_calls().unwrap_or(0) == 0;
            if !bind_failed {
                return run;
            }
            eprintln!("sipp could not bind its sockets; retrying on other ports");
            attempt = attempt.reseat();
        }
        attempt.spawn().finish()
    }

    /// The same run with a new SIP port and media base.
    fn reseat(&self) -> Sipp {
        let port = free_udp_port();
        let media = free_media_base();
        let mut args = self.args.clone();
        for i in 0..args.len().saturating_sub(1) {
            match args[i].as_str() {
                "-p" => args[i + 1] = port.to_string(),
                "-mp" => args[i + 1] = media.to_string(),
                _ => {}
            }
        }
        Sipp {
            args,
            port,
            limit: self.limit,
        }
    }

    /// Starts sipp in the background.
    pub fn spawn(&self) -> SippChild {
        let child = self.command().spawn().expect("spawn sipp");
        SippChild {
            child: Some(child),
            limit: self.limit,
        }
    }
}

/// A background sipp; killed when dropped.
pub struct SippChild {
    child: Option<Child>,
    limit: Duration,
}

impl SippChild {
    /// Waits for sipp to finish (killing it at its limit) and collects its
    /// output. sipp writes its screens to stdout in small amounts; the pipe
    /// readers run on threads so a full pipe never blocks it.
    pub fn finish(mut self) -> SippRun {
        let mut child = self.child.take().unwrap();
        let out = reader(child.stdout.take().unwrap());
        let err = reader(child.stderr.take().unwrap());
        let status = wait_child(&mut child, self.limit);
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        match status {
            Some(status) => SippRun {
                status,
                stdout,
                stderr,
            },
            None => panic!(
                "sipp still running after {:?}; killed\nstdout:\n{}\nstderr:\n{}",
                self.limit,
                tail(&stdout, 6000),
                tail(&stderr, 3000)
            ),
        }
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
