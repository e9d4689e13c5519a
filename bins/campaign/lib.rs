//! `campaign`: the outbound dialer. Manages campaigns, leads and the
//! do-not-call list in the CRM store, and `campaign run` (the cron entry
//! point) dials a campaign's due leads through the agent's HTTP API.
//!
//! Exit status: 0 done or nothing to do, 1 errors, 2 bad usage or
//! configuration.
//!
//! The binary (`main.rs`) only calls [`main`]; the end-to-end tests' copy
//! of the binary (`tests/bin/campaign.rs`) calls it too, so the tests
//! always run the code of this build.
#![deny(missing_docs)]

mod admin;
mod agent_config;
mod cli;
mod csv_cell;
mod db;
mod error;
mod parse;
mod report;
mod run;

use std::ffi::OsString;
use std::process::ExitCode;

use callbridge_crm_store::{CampaignStatus, NodeId, OpenOptions, StoreAt, StoreUrl};
use clap::Parser;
use jiff::Timestamp;

use cli::{Cli, Cmd};
use error::{CampaignError, Result};

/// The `campaign` command: parses `args` (the program name first, as in
/// [`std::env::args_os`]) and runs what it asks for; the exit status of
/// the process.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAMPAIGN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campaign: {e}");
            e.exit_code()
        }
    }
}

/// Where the store is: `--store-url`, else `--db`, else the agent's
/// configuration (`--config`).
fn store_at(cli: &Cli) -> Result<StoreAt> {
    let url = match (&cli.store_url, &cli.db, &cli.config) {
        (Some(u), _, _) => StoreUrl::parse(u).map_err(|e| CampaignError::Usage(e.to_string()))?,
        (None, Some(p), _) => StoreUrl::sqlite(p),
        (None, None, Some(config)) => agent_config::store_url(config)?,
        (None, None, None) => {
            return Err(CampaignError::Usage(
                "no store: give --config AGENT_TOML (the agent's configuration), --db PATH or \
                 set CALLBRIDGE_STORE_DATABASE (the agent's [store] database), or --store-url / \
                 CALLBRIDGE_STORE_URL (its store.url)"
                    .into(),
            ));
        }
    };
    let node = cli
        .node
        .as_deref()
        .map(NodeId::new)
        .transpose()
        .map_err(|_| {
            CampaignError::Usage("--node: 1 to 64 ASCII letters, digits, '.', '-' or '_'".into())
        })?;
    Ok(StoreAt {
        url,
        options: OpenOptions {
            node,
            ..OpenOptions::default()
        },
    })
}

fn dispatch(cli: &Cli) -> Result<()> {
    let at = store_at(cli)?;
    if let Cmd::Run(args) = &cli.cmd {
        return run::main(&at, args);
    }
    let mut store = at.open()?;
    let now = Timestamp::now();
    match &cli.cmd {
        Cmd::Create(a) => admin::create(&mut store, a, now),
        Cmd::Update(a) => admin::update(&mut store, a, now),
        Cmd::List => admin::list(&store),
        Cmd::Show { name } => admin::show(&store, name),
        Cmd::Import { name, file } => admin::import(&mut store, name, file, now),
        Cmd::Dnc { cmd } => admin::dnc(&mut store, cmd, now),
        Cmd::Pause { name } => admin::set_status(&mut store, name, CampaignStatus::Paused, now),
        Cmd::Resume { name } => admin::set_status(&mut store, name, CampaignStatus::Active, now),
        Cmd::Report(a) => {
            let mut rows = report::rows(&store, a)?;
            if a.format == cli::Format::Table && !a.show_numbers {
                report::mask_numbers(&mut rows);
            }
            report::write(&rows, a.format, &mut std::io::stdout().lock())
        }
        Cmd::Run(_) => Ok(()),
    }
}
