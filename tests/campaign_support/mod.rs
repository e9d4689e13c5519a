//! Shared helpers of the campaign dialer's end-to-end tests: a temporary
//! store, the `campaign` binary run as cron would run it (no terminal), the
//! fake agent, and checks computed from the store's timestamps.
#![allow(dead_code, reason = "each test file uses a different subset")]

#[path = "../bin/paths.rs"]
pub mod bins;
pub mod fake_agent;
#[path = "../common/process.rs"]
pub mod process;
pub mod real;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub use process::{show, wait_bounded};

use callbridge_crm_store::{
    ApiToken, Campaign, Lead, LeadFilter, LeadId, OpenOptions, PersonName, Role, Session,
    SessionFilter, Store,
};

/// A temporary directory holding the store (and the lock files), or a
/// PostgreSQL database ([`Env::on_postgres`]).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    /// The store's URL: `sqlite:<db>`, or a PostgreSQL database's.
    pub url: String,
    /// The token of user `dialer` (agent-operator), which owns the
    /// campaigns `campaign` creates.
    pub token: String,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("crm.sqlite");
        let url = format!("sqlite:{}", db.display());
        Self::with(dir, db, url)
    }

    /// The same on a fresh database of this process's throw-away
    /// PostgreSQL cluster; `None` (the test skips, loudly) when
    /// PostgreSQL is not installed.
    pub fn on_postgres() -> Option<Self> {
        let pg = callbridge_test_support::postgres::PgCluster::shared()?;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("unused.sqlite");
        Some(Self::with(dir, db, pg.create_database(None)))
    }

    fn with(dir: tempfile::TempDir, db: PathBuf, url: String) -> Self {
        // Create the schema once, before processes race to, and the user.
        let mut store = Store::open_url(&url, &OpenOptions::default()).unwrap();
        let token = ApiToken::generate().unwrap();
        store
            .create_user(
                &PersonName::new("dialer").unwrap(),
                Role::AgentOperator,
                &token,
                jiff::Timestamp::now(),
            )
            .unwrap();
        Env {
            dir,
            db,
            url,
            token: token.expose(),
        }
    }

    /// The `campaign` command with the store and the fake agent's token in
    /// its environment, output captured (not a terminal).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bins::CAMPAIGN);
        if self.url.starts_with("postgres") {
            c.env("CALLBRIDGE_STORE_URL", &self.url)
                .env_remove("CALLBRIDGE_STORE_DATABASE");
        } else {
            c.env("CALLBRIDGE_STORE_DATABASE", &self.db)
                .env_remove("CALLBRIDGE_STORE_URL");
        }
        c.args(args)
            .env("CALLBRIDGE_TOKEN", &self.token)
            .env_remove("CALLBRIDGE_AGENT_URL")
            .env_remove("CALLBRIDGE_CAMPAIGN_LOCK_DIR")
            .stdin(Stdio::null());
        c
    }

    /// Runs `campaign ARGS` to completion (bounded by `limit`).
    pub fn run_for(&self, args: &[&str], limit: Duration) -> Output {
        let child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_bounded(child, limit)
    }

    /// Runs `campaign ARGS` (at most 60 s).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_for(args, Duration::from_secs(60))
    }

    /// Runs and asserts exit status 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "campaign {args:?} failed: {}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file in the temporary directory.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Creates an active campaign with `extra` options and imports `n`
    /// leads numbered `+1555010NNNN`.
    pub fn campaign(&self, name: &str, n: u32, extra: &[&str]) -> Campaign {
        let prompt = self.file("prompt.txt", "You call to confirm an appointment.");
        let mut args = vec![
            "create",
            name,
            "--prompt-file",
            prompt.to_str().unwrap(),
            "--greeting",
            "Hello, this is Example Ltd.",
            "--owner",
            "dialer",
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
        let mut csv = String::from("phone,name,account\n");
        for i in 0..n {
            csv.push_str(&format!("{},Lead {i},A{i}\n", number(i)));
        }
        let f = self.file(&format!("{name}.csv"), &csv);
        self.ok(&["import", name, f.to_str().unwrap()]);
        self.store().find_campaign(name).unwrap().unwrap()
    }

    pub fn store(&self) -> Store {
        Store::open_url(&self.url, &OpenOptions::default()).unwrap()
    }

    pub fn leads(&self, c: &Campaign) -> Vec<Lead> {
        self.store()
            .list_leads(c.id, LeadFilter::default(), None, 10_000)
            .unwrap()
    }

    /// Every session of the campaign, oldest first.
    pub fn sessions(&self, c: &Campaign) -> Vec<Session> {
        let f = SessionFilter {
            campaign: Some(c.id),
            ..SessionFilter::default()
        };
        let mut v = self.store().list_sessions(&f, 1000, None).unwrap().items;
        v.reverse();
        v
    }
}

/// The test numbers: `+1555010` and four digits.
pub fn number(i: u32) -> String {
    format!("+1555010{i:04}")
}

/// Which test number this is.
pub fn index_of(number: &str) -> u32 {
    number[number.len() - 4..].parse().unwrap()
}

/// The most sessions live at once, from their created/ended timestamps.
pub fn max_overlap(sessions: &[Session]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for s in sessions {
        edges.push((s.created_at.as_millisecond(), 1));
        let end = s.ended_at.map_or(i64::MAX, |t| t.as_millisecond());
        edges.push((end, -1));
    }
    // At equal times an end comes before a start (the slot was free).
    edges.sort();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// The smallest gap between two consecutive call starts.
pub fn min_start_gap(sessions: &[Session]) -> Duration {
    let mut starts: Vec<i64> = sessions
        .iter()
        .map(|s| s.created_at.as_millisecond())
        .collect();
    starts.sort();
    starts
        .windows(2)
        .map(|w| Duration::from_millis((w[1] - w[0]) as u64))
        .min()
        .unwrap_or(Duration::MAX)
}

/// Asserts the call starts respect a pacing of one per `period` as seen
/// from the store's `created_at`, which the agent stamps some time after
/// the dialer's POST (up to `slack` later under load): any `k + 1`
/// consecutive starts span at least `k` periods less `slack`. Jitter does
/// not add up this way, while a burst (no pacing) fails.
pub fn assert_paced(sessions: &[Session], period: Duration, slack: Duration) {
    let mut starts: Vec<i64> = sessions
        .iter()
        .map(|s| s.created_at.as_millisecond())
        .collect();
    starts.sort();
    let (p, slack) = (period.as_millis() as i64, slack.as_millis() as i64);
    for (i, &a) in starts.iter().enumerate() {
        for (k, &b) in starts[i + 1..].iter().enumerate().take(20) {
            let k = k as i64 + 1;
            let least = k * p - slack;
            assert!(
                b - a >= least,
                "starts {i} and {} are {} ms apart, under {least} ms (one call per {p} ms, {slack} ms slack)",
                i + k as usize,
                b - a
            );
        }
    }
}

/// Calls per minute from the first start to the last end.
pub fn calls_per_minute(sessions: &[Session]) -> f64 {
    let first = sessions.iter().map(|s| s.created_at).min().unwrap();
    let last = sessions.iter().filter_map(|s| s.ended_at).max().unwrap();
    let secs = first.duration_until(last).as_secs_f64();
    sessions.len() as f64 * 60.0 / secs
}

/// Sessions per lead.
pub fn sessions_per_lead(sessions: &[Session]) -> std::collections::HashMap<LeadId, u32> {
    let mut m = std::collections::HashMap::new();
    for s in sessions {
        *m.entry(s.lead.expect("every campaign session names its lead"))
            .or_default() += 1;
    }
    m
}

/// Waits until `f` holds (polling every 20 ms), at most `limit`.
pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The store file's directory.
pub fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap()
}
