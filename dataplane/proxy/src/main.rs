//! `ringmesh-proxy`: the data plane binary. Only wiring: parse the command
//! line, load the config, run the server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringmesh_proxy::{config, server};

#[derive(Parser)]
#[command(
    name = "ringmesh-proxy",
    version,
    about = "ringmesh data plane: thread-per-core io_uring HTTP proxy"
)]
struct Cli {
    /// Config file (YAML). Without it the built-in example config runs.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log filter, e.g. `info`, `debug`, `ringmesh_proxy=debug`.
    #[arg(long, default_value = "info", env = "RINGMESH_LOG")]
    log: String,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file and exit: 0 if valid, 1 with every error listed.
    Validate,
    /// Print the built-in example config.
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();

    let loaded = match &cli.config {
        Some(path) => config::load(path),
        None => config::parse(config::EXAMPLE, "<built-in example>"),
    };
    match cli.command {
        Some(Command::Example) => {
            print!("{}", config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Some(Command::Validate) => match (&cli.config, loaded) {
            (None, _) => {
                eprintln!("ringmesh-proxy validate: --config FILE is required");
                ExitCode::from(2)
            }
            (Some(path), Ok(_)) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            (Some(_), Err(errors)) => {
                eprintln!("{errors}");
                eprintln!("{} error(s)", errors.errors.len());
                ExitCode::FAILURE
            }
        },
        None => {
            let config = match loaded {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("{} error(s); not started", errors.errors.len());
                    return ExitCode::FAILURE;
                }
            };
            match server::run(config, cli.config.clone()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringmesh-proxy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
