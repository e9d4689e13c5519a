//! `agent`: the callbridge call server. Configuration, wiring, HTTP and
//! process life only; the call logic lives in `callbridge-session`.
//!
//! Modules: `cli` (clap), `settings` (the configuration: file and
//! environment -> validated settings and secrets, and their mapping onto
//! the session manager), `logging`, `run` (start-up, `ready`, signals), `demo`
//! (the README's first command), `users` (`user add|list|revoke|rotate`),
//! `store_cmd` (`store check`, `store backup`, start-up recovery of
//! recordings), `erase` (`session delete`, `export`, recording removal),
//! `retention` (the `[retention]` task), `access` (`check-config`'s
//! file-system checks as the service's user), `service_manager` (systemd's
//! READY/STOPPING/WATCHDOG) and
//! `http` (the API, owned by the HTTP module's authors).
//!
//! The binary (`main.rs`) only calls [`main`]; the end-to-end tests' copy
//! of the binary (`tests/bin/agent.rs`) calls it too, so the tests always
//! run the code of this build.
#![deny(missing_docs)]

mod access;
mod caller;
mod cli;
mod demo;
mod erase;
mod http;
mod logging;
mod retention;
mod run;
mod service_manager;
mod settings;
mod store_cmd;
mod users;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand, SessionCommand, StoreCommand, UserCommand};
use settings::{Secrets, Settings};

/// The process environment (variables that are not valid UTF-8 skipped).
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Settings and secrets, or every error (one per line) to print before
/// exiting 2.
fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<(Settings, Secrets), String> {
    settings::load(path, env).map_err(|e| e.to_string())
}

/// Prints an error message on stderr, each line after `agent: ` (a bad
/// configuration has one line per error).
fn report(message: &str) {
    for line in message.lines() {
        eprintln!("agent: {line}");
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The `agent` command: parses `args` (the program name first, as in
/// [`std::env::args_os`]) and runs what it asks for; the exit status of
/// the process.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // clap exits 2 on usage errors and 0 for --help and --version.
    let cli = Cli::parse_from(args);
    let env = environment();
    match cli.command {
        Command::Run(args) => {
            let (settings, secrets) = match load(&args.config, &env) {
                Ok(s) => s,
                Err(m) => {
                    report(&m);
                    return exit(2);
                }
            };
            logging::init(settings.log_format, &settings.log_level);
            match runtime() {
                Ok(rt) => exit(rt.block_on(run::serve(settings, secrets))),
                Err(e) => {
                    eprintln!("agent: cannot start the async runtime: {e}");
                    exit(1)
                }
            }
        }
        Command::CheckConfig(args) if args.list_env => {
            // Names only, and no configuration needed: this is how an
            // operator finds out what to set before anything is valid.
            println!("# configuration keys (variable, key)");
            for (var, key) in settings::env_keys() {
                println!("{var}\t{key}");
            }
            println!("# secrets (environment only; never in the file)");
            for (var, what) in settings::secrets::SECRET_ENV {
                println!("{var}\t{what}");
            }
            exit(0)
        }
        Command::CheckConfig(args) => match load(&args.file.config, &env) {
            Ok((s, _)) => {
                let who = match &args.user {
                    Some(name) => match access::Who::named(name) {
                        Ok(w) => w,
                        Err(m) => {
                            report(&m);
                            return exit(2);
                        }
                    },
                    None => access::Who::current(),
                };
                let problems = match access::problems(&s, &who) {
                    Ok(p) => p,
                    Err(m) => {
                        report(&m);
                        return exit(2);
                    }
                };
                if !problems.is_empty() {
                    report(&problems.join("\n"));
                    return exit(2);
                }
                println!(
                    "{}: OK (sip {} public {}, http {}, model {} {}, store {}, node {}, recordings {})",
                    args.file.config.display(),
                    s.sip_bind,
                    s.public_ip,
                    s.http_bind,
                    s.provider.name(),
                    s.model,
                    s.store_url,
                    s.node,
                    s.recordings_dir.display()
                );
                exit(0)
            }
            Err(m) => {
                report(&m);
                exit(2)
            }
        },
        Command::Demo(args) => {
            logging::init(logging::LogFormat::Text, "warn");
            match runtime() {
                Ok(rt) => exit(rt.block_on(demo::run(args))),
                Err(e) => {
                    eprintln!("agent: cannot start the async runtime: {e}");
                    exit(1)
                }
            }
        }
        Command::User(UserCommand::Add(args)) => exit(users::add(&args, &env)),
        Command::User(UserCommand::List(args)) => exit(users::list(&args, &env)),
        Command::User(UserCommand::Revoke(args)) => exit(users::revoke(&args, &env)),
        Command::User(UserCommand::Rotate(args)) => exit(users::rotate(&args, &env)),
        Command::Store(StoreCommand::Check(file)) => exit(store_cmd::check(&file, &env)),
        Command::Store(StoreCommand::Backup(args)) => exit(store_cmd::backup(&args, &env)),
        Command::Config(ConfigCommand::Show(args)) => {
            let text = match std::fs::read_to_string(&args.config) {
                Ok(t) => t,
                Err(e) => {
                    report(&format!("cannot read {}: {e}", args.config.display()));
                    return exit(2);
                }
            };
            match settings::listing(&args.config, &text, &env) {
                Ok(listing) => print!("{listing}"),
                Err(e) => {
                    report(&e.to_string());
                    return exit(2);
                }
            }
            match load(&args.config, &env) {
                Ok(_) => exit(0),
                Err(m) => {
                    report(&m);
                    exit(2)
                }
            }
        }
        Command::Session(SessionCommand::Delete(args)) => exit(erase::delete(&args, &env)),
        Command::Export(args) => exit(erase::export(&args, &env)),
    }
}
