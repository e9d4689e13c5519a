//! The command line (clap): every subcommand and its options.

use std::path::PathBuf;
use std::time::Duration;

use callbridge_api::TlsRoots;
use callbridge_crm_store::Weekdays;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse;

/// The campaign dialer: manage outbound campaigns and dial their leads
/// through the callbridge agent.
#[derive(Debug, Parser)]
#[command(name = "campaign", version)]
pub struct Cli {
    /// The CRM store (SQLite file), the one the agent writes to.
    #[arg(long, global = true, env = "CALLBRIDGE_STORE_DATABASE")]
    pub db: Option<PathBuf>,
    /// The CRM store as a URL, instead of --db: a path, `sqlite:PATH`, or
    /// `postgres://USER@HOST:PORT/DATABASE` (the agent's `store.url`; the
    /// password from CALLBRIDGE_STORE_PASSWORD, else PGPASSWORD).
    #[arg(
        long,
        global = true,
        env = "CALLBRIDGE_STORE_URL",
        conflicts_with = "db"
    )]
    pub store_url: Option<String>,
    /// The agent's configuration file (agent.toml): the store is its
    /// `[store]` url or database (relative paths against the file's
    /// directory). --db and --store-url (or their variables) win over it.
    #[arg(long, global = true, value_name = "AGENT_TOML")]
    pub config: Option<PathBuf>,
    /// This dialer's node id on a shared store (recorded on its claims;
    /// its start-up recovery releases only its own). Default: the host
    /// name.
    #[arg(long, global = true, env = "CALLBRIDGE_STORE_NODE")]
    pub node: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a campaign (active unless --paused).
    Create(CreateArgs),
    /// Change a campaign's settings (only the options given).
    Update(UpdateArgs),
    /// List the campaigns.
    List,
    /// Show a campaign's settings and funnel.
    Show {
        /// The campaign.
        name: String,
    },
    /// Import leads from CSV (header row; `phone` required, E.164; `name`,
    /// `time_zone` optional; other columns become the lead's fields).
    /// Nothing is imported unless every row is good.
    Import {
        /// The campaign.
        name: String,
        /// The CSV file.
        file: PathBuf,
    },
    /// The do-not-call list (global, every campaign).
    Dnc {
        /// add, remove or list.
        #[command(subcommand)]
        cmd: DncCmd,
    },
    /// Dial the campaign's due leads through the agent (the cron entry point).
    Run(RunArgs),
    /// One row per call: lead, outcome, duration, end reason, summary, recording.
    Report(ReportArgs),
    /// Stop handing out leads (a running `run` stops claiming).
    Pause {
        /// The campaign.
        name: String,
    },
    /// Hand out leads again.
    Resume {
        /// The campaign.
        name: String,
    },
}

/// `campaign dnc ...`.
#[derive(Debug, Subcommand)]
pub enum DncCmd {
    /// Put a number on the list (its pending and retry leads become do-not-call).
    Add {
        /// E.164 number.
        number: String,
        /// Why (keep personal data out).
        #[arg(long, default_value = "operator")]
        reason: String,
    },
    /// Take a number off the list.
    Remove {
        /// E.164 number.
        number: String,
    },
    /// List the numbers (masked, `+141******00`, unless --show-numbers).
    List {
        /// Print the numbers whole.
        #[arg(long)]
        show_numbers: bool,
    },
}

/// Campaign settings given on the command line; absent ones keep their
/// value (update) or default (create).
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// A file holding the model's system prompt for this campaign.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// What the model says first when the lead answers.
    #[arg(long)]
    pub greeting: Option<String>,
    /// The calling window in the lead's local time, HH:MM-HH:MM (an end
    /// before the start runs overnight). Default 00:00-24:00.
    #[arg(long, value_parser = parse::window)]
    pub window: Option<(u16, u16)>,
    /// The days the window applies to: mon-fri, sat,sun, all. Default all.
    #[arg(long, value_parser = parse::days)]
    pub days: Option<Weekdays>,
    /// IANA time zone for leads without their own. Default UTC.
    #[arg(long)]
    pub tz: Option<String>,
    /// Dials per lead. Default 3.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Most calls live at once. Default 1.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Most new calls per minute: 10/min, 1/s, 120/h. Default 10/min.
    #[arg(long, value_parser = parse::rate)]
    pub rate: Option<u32>,
    /// Delay before redialling after busy. Default 10m.
    #[arg(long, value_parser = parse::duration)]
    pub retry_busy: Option<Duration>,
    /// Delay before redialling after no answer. Default 1h.
    #[arg(long, value_parser = parse::duration)]
    pub retry_no_answer: Option<Duration>,
    /// Delay before redialling after a failed call. Default 30m.
    #[arg(long, value_parser = parse::duration)]
    pub retry_failed: Option<Duration>,
    /// Delay before redialling after voicemail. Default 4h.
    #[arg(long, value_parser = parse::duration)]
    pub retry_voicemail: Option<Duration>,
    /// Model provider recorded with the campaign. Default gemini.
    #[arg(long)]
    pub provider: Option<String>,
    /// Model voice.
    #[arg(long)]
    pub voice: Option<String>,
    /// The user (`agent user add NAME`) that owns the campaign. The agent
    /// lets an agent-operator token dial and follow only the calls of
    /// campaigns its user owns (an admin token dials any campaign).
    #[arg(long)]
    pub owner: Option<String>,
    /// The agent's routing profile this campaign's calls take (its
    /// `[[profiles]]`, issue 23): prompt, greeting, voice, tools. With
    /// it, `--prompt-file` is optional (a prompt given still replaces the
    /// profile's).
    #[arg(long)]
    pub profile: Option<String>,
}

/// `campaign create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique campaign name.
    pub name: String,
    /// Settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Create it paused (`campaign resume` starts it).
    #[arg(long)]
    pub paused: bool,
}

/// `campaign update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The campaign.
    pub name: String,
    /// A new name.
    #[arg(long)]
    pub rename: Option<String>,
    /// Settings to change.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// `campaign run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The campaign.
    pub name: String,
    /// The agent's HTTP API. Repeat it (or give a comma-separated list)
    /// for several agents: calls go to them in turn, skipping one that
    /// answers 503 or cannot be reached.
    #[arg(
        long,
        env = "CALLBRIDGE_AGENT_URL",
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    pub agent: Vec<String>,
    /// Which certificate authorities an `https://` agent URL is checked
    /// against: `system` (the operating system's trust store) or `bundled`
    /// (the Mozilla roots built into the binary). The agent's own
    /// `tls.roots` reads the same variable. A plain `http://` agent (the
    /// default, on loopback) needs neither.
    #[arg(long, env = "CALLBRIDGE_TLS_ROOTS", default_value = "system")]
    pub tls_roots: TlsRoots,
    /// The environment variable holding the API token (role agent-operator
    /// or admin; `agent user add`).
    #[arg(long, default_value = "CALLBRIDGE_TOKEN")]
    pub token_env: String,
    /// Stop claiming new leads after this long (calls in progress finish).
    #[arg(long, value_parser = parse::duration)]
    pub max_duration: Option<Duration>,
    /// Print which leads would be dialled now and why others are skipped.
    #[arg(long)]
    pub dry_run: bool,
    /// How long the agent may be unreachable or at capacity (503) before
    /// the run gives up with exit status 1.
    #[arg(long, default_value = "5m", value_parser = parse::duration)]
    pub agent_wait: Duration,
    /// How often a live call's status is asked for.
    #[arg(long, default_value = "1s", value_parser = parse::duration)]
    pub poll: Duration,
    /// Where the per-campaign lock file lives. Default: the store's directory.
    #[arg(long, env = "CALLBRIDGE_CAMPAIGN_LOCK_DIR")]
    pub lock_dir: Option<PathBuf>,
    /// Caller id to present (E.164); the agent's `outbound.from` when absent.
    #[arg(long)]
    pub from: Option<String>,
    /// Answering-machine detection on every call of this run (the agent's
    /// `[amd]` settings decide what a machine gets). A machine the agent
    /// hung up on is a `voicemail` outcome (redialled after
    /// `--retry-voicemail`); a voicemail left counts as done.
    #[arg(long)]
    pub amd: bool,
    /// With `--amd`: a voicemail left is a `voicemail` outcome too (the
    /// lead is called again after `--retry-voicemail`), not done.
    #[arg(long, requires = "amd")]
    pub retry_after_voicemail_left: bool,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a person.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// `campaign report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The campaign.
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Only calls started at or after this time (RFC 3339, like
    /// 2026-11-22T08:00:00Z).
    #[arg(long)]
    pub since: Option<jiff::Timestamp>,
    /// Show phone numbers whole in the table (masked by default, as in
    /// the run lines; CSV and JSON, exports for other systems, always
    /// carry them whole).
    #[arg(long)]
    pub show_numbers: bool,
}
