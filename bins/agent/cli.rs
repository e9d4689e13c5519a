//! The command line (clap): `run`, `check-config`, `demo`, `user add`,
//! `user list`, `user revoke`, `user rotate`, `store check`, `store backup`.
//! Usage errors exit with status 2 (clap's own), as do configuration errors.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where the configuration file is, unless `--config` says otherwise.
const DEFAULT_CONFIG: &str = "agent.toml";

/// callbridge call server: connects SIP/RTP phone calls to realtime voice
/// models, records them and writes every call to the SQLite CRM store.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about, long_about = None, after_help = ENV_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const ENV_HELP: &str = "\
Every configuration key can be overridden by an environment variable
CALLBRIDGE_<SECTION>_<KEY> (e.g. CALLBRIDGE_SIP_BIND, CALLBRIDGE_SIP_TRUNK_USERNAME).
Secrets come only from the environment: GEMINI_API_KEY, OPENAI_API_KEY,
CALLBRIDGE_SIP_TRUNK_PASSWORD. See agent.example.toml for every key.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the call server: SIP, RTP, the model bridge and the HTTP API.
    ///
    /// Prints one line `ready sip=<ip:port> http=<ip:port>` on stdout once
    /// everything is up; logs go to stderr. SIGTERM/SIGINT drain calls
    /// (up to calls.drain_timeout) and exit 0; a second signal exits at once.
    Run(ConfigArg),
    /// Validate a configuration file (and the environment) without starting.
    ///
    /// Also checks that the user running it (or `--user NAME`) can create
    /// and write the recordings, spool and database directories and read
    /// the files the agent reads, and that none of those it writes is on
    /// a read-only file system. Exits 0 and prints a summary when valid;
    /// exits 2 with a message naming the key, the value and what was
    /// expected otherwise.
    CheckConfig(CheckArgs),
    /// The first command to try: a complete call on loopback, no keys, no network.
    ///
    /// Starts the agent in-process with the built-in mock model, a temporary
    /// database and recordings directory, calls it from a built-in SIP
    /// caller that plays a recorded sentence, waits for the reply, hangs up,
    /// then prints the call as the store has it.
    Demo(DemoArgs),
    /// Manage API users.
    #[command(subcommand)]
    User(UserCommand),
    /// Check or back up the CRM store (safe while the agent runs).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Delete stored calls (safe while the agent runs).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Print (or write) everything stored about one phone number as JSON:
    /// its calls with transcripts and events, its leads and its
    /// do-not-call entry. For a caller's request for their data.
    Export(ExportArgs),
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every key with its effective value and where it came from
    /// (file, environment variable or default), and which secret
    /// variables are set (never their values). Exits 0 when the
    /// configuration is valid, 2 otherwise (the problems follow the
    /// listing on stderr).
    Show(ConfigArg),
}

/// `session` subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Delete one call: its session row, transcript, events and recording
    /// file. A call in progress is refused. Exits 0 when deleted, 1 when
    /// there is no such session or the store refused, 2 on bad usage.
    Delete(SessionDelete),
}

/// `session delete` arguments.
#[derive(Debug, Args)]
pub struct SessionDelete {
    /// The session id (UUID), as the API and the console show it.
    pub id: String,
    #[command(flatten)]
    /// The configuration (for the store).
    pub file: ConfigArg,
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The number, E.164 (`+4930123456`).
    #[arg(long, value_name = "+E164")]
    pub phone: String,
    /// Write the JSON to this new file (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// The configuration (for the store).
    pub file: ConfigArg,
}

/// `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check the database and the recordings without changing anything.
    ///
    /// Reports the file's integrity (PRAGMA integrity_check), its schema
    /// version against this build's, recordings not linked to a session,
    /// orphan and missing recordings, stale WAV headers and the journal
    /// backlog. Exits 0 when all is well, 1 on any problem.
    Check(ConfigArg),
    /// Copy the database to PATH with SQLite's online backup API.
    ///
    /// Consistent while the agent and the dialer write; PATH must not
    /// exist; the copy is checked before it gets its name and is private
    /// (0600). Exits 0 when written, 1 otherwise.
    Backup(BackupArgs),
}

/// `store backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to create.
    pub path: PathBuf,
    #[command(flatten)]
    /// The configuration (for store.database).
    pub file: ConfigArg,
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The TOML configuration file (see agent.example.toml).
    #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// `check-config` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    /// The file.
    pub file: ConfigArg,
    /// List every environment variable instead: the ones that override a
    /// key and the secret ones (names only). Needs no valid configuration.
    #[arg(long)]
    pub list_env: bool,
    /// Check the directories and files as this user (the service's, such
    /// as `callbridge`) instead of the one running the check: the kernel
    /// is asked in a child process with that user's ids and groups, so
    /// ACLs count. Needs root unless NAME is the user running it.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the temporary directory (database and recording) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// After the call, keep the agent up on loopback and print an admin
    /// token for its API, until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Which model protocol the call runs over, each against its built-in
    /// mock on loopback (keyless): `gemini` (Gemini Live, the default),
    /// `gpt-live` (OpenAI GPT-Live) or `openai` (OpenAI Realtime).
    #[arg(long, value_enum, default_value_t = DemoProvider::Gemini)]
    pub provider: DemoProvider,
}

/// The protocol of `agent demo`'s mock model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoProvider {
    /// Gemini Live (the agent's `provider = "mock"`).
    Gemini,
    /// OpenAI GPT-Live.
    #[value(name = "gpt-live")]
    GptLive,
    /// OpenAI Realtime.
    #[value(name = "openai")]
    OpenAi,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an API user and print its bearer token (once, on stdout, alone).
    ///
    /// Names are unique, not empty, without control characters or
    /// surrounding spaces, and not all digits.
    Add(UserAdd),
    /// List the users: id, name, role, token state (active, expired,
    /// revoked), when the token was issued, when it expires, its last use.
    List(UserList),
    /// Revoke a user: their token stops working at once. The user stays
    /// (campaigns and calls keep their owner); `rotate` re-enables it.
    Revoke(UserRef),
    /// Give a user a new token (printed once, on stdout, alone); the old
    /// one stops working at once. Re-enables a revoked user.
    Rotate(UserRotate),
}

/// `--expires DURATION`.
#[derive(Debug, Args)]
pub struct Expires {
    /// The token stops working this long from now (e.g. 90d, 12h, 30m;
    /// at most 3650d). Default: never.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
}

/// `user add` arguments.
#[derive(Debug, Args)]
pub struct UserAdd {
    /// The user's name.
    pub name: String,
    /// admin, agent-operator or viewer.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    #[command(flatten)]
    /// When the token expires.
    pub expires: Expires,
    #[command(flatten)]
    /// The configuration (for store.database).
    pub file: ConfigArg,
}

/// `user list` arguments.
#[derive(Debug, Args)]
pub struct UserList {
    /// One JSON object per user instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    /// The configuration (for store.database).
    pub file: ConfigArg,
}

/// A user named by name or id.
#[derive(Debug, Args)]
pub struct UserRef {
    /// The user's name, or its id (as `user list` shows).
    #[arg(value_name = "NAME|ID")]
    pub user: String,
    #[command(flatten)]
    /// The configuration (for store.database).
    pub file: ConfigArg,
}

/// `user rotate` arguments.
#[derive(Debug, Args)]
pub struct UserRotate {
    #[command(flatten)]
    /// The user.
    pub user: UserRef,
    #[command(flatten)]
    /// When the new token expires.
    pub expires: Expires,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_parse() {
        let c = Cli::try_parse_from(["agent", "run", "--config", "a.toml"]).unwrap();
        assert!(
            matches!(c.command, Command::Run(ConfigArg { ref config }) if config == &PathBuf::from("a.toml"))
        );
        let c = Cli::try_parse_from(["agent", "user", "add", "ann", "--role", "viewer"]).unwrap();
        match c.command {
            Command::User(UserCommand::Add(u)) => {
                assert_eq!((u.name.as_str(), u.role.as_str()), ("ann", "viewer"));
                assert_eq!(u.file.config, PathBuf::from(DEFAULT_CONFIG));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["agent", "user", "add", "ann"]).is_err(),
            "role is required"
        );
        let c = Cli::try_parse_from(["agent", "user", "rotate", "7", "--expires", "90d"]).unwrap();
        match c.command {
            Command::User(UserCommand::Rotate(r)) => {
                assert_eq!(
                    (r.user.user.as_str(), r.expires.expires.as_deref()),
                    ("7", Some("90d"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["agent", "user", "revoke"]).is_err());
        assert!(Cli::try_parse_from(["agent", "fly"]).is_err());
        let c =
            Cli::try_parse_from(["agent", "store", "backup", "/b/crm.db", "-c", "a.toml"]).unwrap();
        match c.command {
            Command::Store(StoreCommand::Backup(b)) => {
                assert_eq!(b.path, PathBuf::from("/b/crm.db"));
                assert_eq!(b.file.config, PathBuf::from("a.toml"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Cli::try_parse_from(["agent", "store", "check"])
                .unwrap()
                .command,
            Command::Store(StoreCommand::Check(_))
        ));
        assert!(
            Cli::try_parse_from(["agent", "store", "backup"]).is_err(),
            "PATH is required"
        );
    }
}
