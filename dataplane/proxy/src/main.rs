//! `ringmesh-proxy`: the data plane binary. Only wiring: parse the command
//! line, load the config, run the server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::{agent, config, server};

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

    #[command(flatten)]
    control: ControlArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Dynamic mode: listeners, routes and clusters come from ringmesh-control;
/// `--config`, if given, supplies only `runtime` and `admin`.
#[derive(clap::Args)]
struct ControlArgs {
    /// ringmesh-control's discovery address, e.g. 127.0.0.1:15010, or
    /// https://control.mesh:15010 when it serves TLS (then with
    /// --control-plane-ca).
    #[arg(long, value_name = "ADDR")]
    control_plane: Option<String>,
    /// PEM CA certificates the control plane's TLS certificate must chain
    /// to (an https:// --control-plane).
    #[arg(long, value_name = "FILE", requires = "control_plane")]
    control_plane_ca: Option<std::path::PathBuf>,
    /// This proxy's unique id.
    #[arg(long, requires = "control_plane")]
    node: Option<String>,
    /// The Service this sidecar fronts, or the Gateway this proxy is.
    #[arg(long, requires = "control_plane")]
    service: Option<String>,
    /// sidecar or gateway.
    #[arg(long, default_value = "sidecar")]
    role: String,
    /// Sidecar: where the local workload listens.
    #[arg(long, value_name = "ADDR")]
    workload: Option<String>,
    /// Sidecar: where other proxies reach this one.
    #[arg(long, value_name = "ADDR")]
    inbound: Option<String>,
    /// Sidecar: where the local workload sends outbound calls.
    #[arg(long, value_name = "ADDR")]
    outbound: Option<String>,
    /// How often traffic counters are reported to the control plane
    /// (for `ringmeshctl stat`), e.g. 10s, 1s.
    #[arg(long, default_value = "10s", value_parser = parse_interval, requires = "control_plane")]
    stats_interval: std::time::Duration,
    /// Bootstrap token for the control plane.
    #[arg(long, env = "RINGMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
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

    if let Some(cp) = cli.control.control_plane.clone() {
        return dynamic(&cli, cp);
    }
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
            let source = server::Source::File(cli.config.clone());
            match server::run(
                std::sync::Arc::new(config),
                source,
                std::sync::mpsc::channel(),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringmesh-proxy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Run from the control plane: start the agent, wait for the first
/// snapshot, then serve it like a file config.
fn dynamic(cli: &Cli, endpoint: String) -> ExitCode {
    let c = &cli.control;
    let fail = |msg: String| {
        eprintln!("ringmesh-proxy: {msg}");
        ExitCode::from(2)
    };
    let (Some(node), Some(service)) = (c.node.clone(), c.service.clone()) else {
        return fail("--control-plane needs --node and --service".into());
    };
    let Some(token) = c.token.clone() else {
        return fail("--control-plane needs --token (or RINGMESH_TOKEN)".into());
    };
    let role = match c.role.as_str() {
        "sidecar" => pb::Role::Sidecar,
        "gateway" => pb::Role::Gateway,
        other => return fail(format!("--role must be sidecar or gateway, not `{other}`")),
    };
    let (runtime, admin) = match bootstrap(cli.config.as_deref()) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let endpoint = if endpoint.contains("://") {
        endpoint
    } else {
        format!("http://{endpoint}")
    };
    let ca = match &c.control_plane_ca {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(pem) => Some(pem),
            Err(e) => return fail(format!("--control-plane-ca {}: {e}", p.display())),
        },
        None => None,
    };
    let control = match agent::ControlPlane::new(endpoint, ca) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let stats = std::sync::Arc::new(ringmesh_proxy::report::StatsSource::default());
    let opts = agent::AgentOptions {
        control,
        token,
        node: pb::Node {
            id: node,
            service,
            role: role as i32,
            workload_address: c.workload.clone().unwrap_or_default(),
            inbound_address: c.inbound.clone().unwrap_or_default(),
            outbound_address: c.outbound.clone().unwrap_or_default(),
        },
        runtime,
        admin,
        stats_interval: c.stats_interval,
        stats: stats.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<server::Event>();
    if let Err(e) = agent::spawn(opts, tx.clone()) {
        return fail(format!("cannot start the control agent: {e}"));
    }
    tracing::info!("waiting for the first snapshot from the control plane");
    let first = loop {
        match rx.recv() {
            Ok(server::Event::Snapshot(s)) => break s,
            Ok(server::Event::Signal(_)) => continue,
            Err(_) => return fail("the control agent stopped".into()),
        }
    };
    let (config, version) = (first.config.clone(), first.version.clone());
    let _ = first.reply.send(Ok(()));
    match server::run(
        config,
        server::Source::ControlPlane { version, stats },
        (tx, rx),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmesh-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--stats-interval`: from 100 ms to 1 h.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(3600) {
        return Err("the interval is from 100ms to 1h".into());
    }
    Ok(d)
}

/// `runtime` and `admin` from a bootstrap file (listeners and clusters in
/// it are ignored: they come from the control plane).
fn bootstrap(
    path: Option<&std::path::Path>,
) -> Result<(Option<pb::Runtime>, Option<pb::Admin>), String> {
    let Some(path) = path else {
        return Ok((None, None));
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let raw: config::raw::RawConfig =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let wire = config::proto::from_raw(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((wire.runtime, wire.admin))
}
