//! A throw-away PostgreSQL cluster for tests: `initdb` into a temp dir,
//! `postgres` on a free loopback port (its unix socket in the temp dir
//! too), databases made on demand, everything stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI does)
//! the cluster runs as the `postgres` user the Debian package creates,
//! through `setpriv` (which execs, so the child is the postmaster itself).
//! Otherwise it runs as the current user.
//!
//! [`PgCluster::start`] answers `None`, after printing why on stderr, when
//! the PostgreSQL binaries are missing (`apt-get install postgresql`;
//! `scripts/test` installs it) or when running as root without a
//! `postgres` user; tests then skip, loudly.
//!
//! Authentication is `trust` on loopback: the URLs carry no password.
//!
//! A test binary whose many tests each want a database shares one cluster
//! ([`PgCluster::shared`]): it is started once, on a thread that lives as
//! long as the process, and stopped and removed when the process exits
//! (an `atexit` handler; and the server gets SIGINT as its parent-death
//! signal, so a test process killed outright does not leave it running).

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates.
const SUPERUSER: &str = "postgres";

/// A running throw-away cluster. Dropping it stops the server and removes
/// its files.
#[derive(Debug)]
pub struct PgCluster {
    /// Holds the data directory and the socket directory.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `Some((uid, gid))` when the server runs as another user.
    run_as: Option<(u32, u32)>,
    server: Option<Child>,
}

/// Where `initdb` and `postgres` are: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

/// The uid and gid of `user`, from `id`.
fn ids_of(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !o.status.success() {
            return None;
        }
        String::from_utf8(o.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl PgCluster {
    /// Makes and starts a cluster, or explains on stderr why it cannot
    /// and answers `None` (the caller skips its test). Panics when the
    /// binaries are there but the cluster does not come up: that is a
    /// failure, not a reason to skip.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = bin_dir() else {
            eprintln!(
                "\n*** SKIPPED: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, \
                 PG_BIN unset): `apt-get install postgresql`; scripts/test installs it ***\n"
            );
            return None;
        };
        let run_as = if is_root() {
            match ids_of(SUPERUSER) {
                Some(ids) => Some(ids),
                None => {
                    eprintln!(
                        "\n*** SKIPPED: running as root and there is no `postgres` user to run \
                         the PostgreSQL server as (postgres refuses root) ***\n"
                    );
                    return None;
                }
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("callbridge-pg-")
            .tempdir()
            .expect("temp dir for the PostgreSQL cluster");
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            run_as,
            server: None,
        };
        cluster.init();
        // A port picked free can be taken before the server binds it:
        // try a few.
        for _ in 0..5 {
            cluster.port = free_port().expect("a free loopback port");
            if cluster.try_run() {
                return Some(cluster);
            }
        }
        panic!(
            "PostgreSQL did not start; its log: {}",
            std::fs::read_to_string(cluster.log_path()).unwrap_or_default()
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for one of the cluster's binaries, as the server's user,
    /// stopped (SIGINT) when the thread that started it ends.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = Command::new("setpriv");
        if let Some((uid, gid)) = self.run_as {
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups");
        }
        c.args(["--pdeathsig", "INT", "--"]).arg(path);
        c
    }

    fn init(&self) {
        for d in [self.data_dir(), self.socket_dir()] {
            std::fs::create_dir(&d).expect("cluster directory");
        }
        if let Some((uid, gid)) = self.run_as {
            for p in [
                self.dir.path().to_path_buf(),
                self.data_dir(),
                self.socket_dir(),
            ] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server on `self.port`; true once it accepts connections.
    fn try_run(&mut self) -> bool {
        let log = std::fs::File::create(self.log_path()).expect("cluster log");
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid)).expect("chown the log");
        }
        let mut server = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // A throw-away cluster: durability is not what is tested.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run postgres");
        // Readiness wait (not a timing assertion): the server needs a
        // moment to replay nothing and open its socket.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return false;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                self.server = Some(server);
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.kill();
        let _ = server.wait();
        false
    }

    /// The cluster every test of this process shares (each test makes its
    /// own database with [`PgCluster::create_database`]), or `None` as
    /// [`PgCluster::start`]. Stopped and removed when the process exits.
    pub fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceLock<Option<&'static PgCluster>> = OnceLock::new();
        *SHARED.get_or_init(|| {
            // Started on a thread that never ends: the server's
            // parent-death signal fires when the starting thread ends.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("pg-cluster".into())
                .spawn(move || {
                    let started = std::panic::catch_unwind(PgCluster::start);
                    let cluster = match started {
                        Ok(Some(c)) => Some(&*Box::leak(Box::new(c))),
                        Ok(None) | Err(_) => None,
                    };
                    if let Some(c) = cluster
                        && let Some(server) = &c.server
                    {
                        *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((server.id(), c.dir.path().to_path_buf()));
                        // SAFETY: registers a plain `extern "C" fn` with no
                        // arguments, as atexit(3) requires.
                        #[allow(unsafe_code, reason = "atexit(3): stop the shared server")]
                        unsafe {
                            libc::atexit(stop_shared_at_exit);
                        }
                    }
                    let _ = tx.send(cluster);
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawn the cluster thread");
            rx.recv().ok().flatten()
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir_path(&self) -> PathBuf {
        self.socket_dir()
    }

    /// Creates a fresh database (a unique name when `name` is `None`) and
    /// answers its `postgres://` URL (user `postgres`, no password).
    pub fn create_database(&self, name: Option<&str>) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = name.map_or_else(
            || {
                format!(
                    "t{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                )
            },
            str::to_owned,
        );
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, &name])
            .stdin(Stdio::null())
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory (for tests that look at the server's files).
    pub fn data_dir_path(&self) -> &Path {
        self.dir.path()
    }
}

/// The shared cluster's server pid and directory, for [`stop_shared_at_exit`].
static AT_EXIT: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

extern "C" fn stop_shared_at_exit() {
    let taken = AT_EXIT.lock().ok().and_then(|mut g| g.take());
    if let Some((pid, dir)) = taken {
        stop_server(pid, || {
            !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid)
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Whether `pid` has exited and waits to be reaped.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// SIGINT (PostgreSQL's "fast" shutdown: disconnect clients, stop at
/// once) to `pid`, then up to 10 s for `gone`, then SIGKILL.
fn stop_server(pid: u32, mut gone: impl FnMut() -> bool) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if gone() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            stop_server(server.id(), || matches!(server.try_wait(), Ok(Some(_))));
            let _ = server.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_makes_databases_and_is_gone_after_drop() {
        let Some(pg) = PgCluster::start() else {
            return;
        };
        let url = pg.create_database(None);
        assert!(url.starts_with("postgres://postgres@127.0.0.1:"));
        let again = pg.create_database(None);
        assert_ne!(url, again);
        let port = pg.port();
        let data = pg.data_dir_path().to_path_buf();
        drop(pg);
        assert!(!data.exists(), "the cluster's files were removed");
        // Nothing listens on its port any more.
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }
}
