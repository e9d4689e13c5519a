//! `callbridge-load`: load, soak and fault harness for the agent (issue 10).
//!
//! `callbridge-load run` starts the mock model in its own process
//! (`callbridge-load mock-model`), starts the agent (`agent run`) pointed at
//! it, places calls from a built-in SIP+RTP caller (many calls on one tokio
//! runtime, each with its own 20 ms clock), and reports the agent's CPU and
//! memory, the timing of its audio and whether everything it opened was
//! closed again. See docs/PERFORMANCE.md.
//!
//! The binary (`main.rs`) only calls [`main`]; the end-to-end tests' copy
//! of the binary (`tests/bin/load.rs`) calls it too, so the tests always
//! run the code of this build.
#![deny(missing_docs)]

mod call;
mod checks;
mod drive;
mod media;
mod mock;
mod procs;
mod procstat;
mod relay;
mod report;
mod run;
mod rxstamp;
mod stats;
mod uac;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Load, soak and fault harness for the callbridge agent.
#[derive(Debug, Parser)]
#[command(name = "callbridge-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run calls against the agent (started here unless --sip is given).
    Run(Box<run::RunArgs>),
    /// Serve the mock model until stdin closes (used by `run`).
    MockModel(mock::MockArgs),
}

/// The `callbridge-load` command: parses `args` (the program name first,
/// as in [`std::env::args_os`]), runs what it asks for and exits the
/// process with its status.
pub fn main<I, T>(args: I) -> !
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("callbridge-load: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Cmd::MockModel(args) => match mock::main(args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            },
            Cmd::Run(args) => {
                let check = args.targets.check;
                match run::run(*args).await {
                    Ok(report) => {
                        print!("{}", report.table());
                        if check && !report.passed() {
                            eprintln!("callbridge-load: a target was missed");
                            1
                        } else {
                            0
                        }
                    }
                    Err(e) => {
                        eprintln!("callbridge-load: {e}");
                        1
                    }
                }
            }
        }
    });
    std::process::exit(code);
}
