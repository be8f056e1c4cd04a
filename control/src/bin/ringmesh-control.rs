//! `ringmesh-control`: the control plane server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ringmesh-control",
    version,
    about = "ringmesh control plane: mesh resources in, proxy configs out"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the discovery API over a watched directory of resources.
    Serve {
        /// Directory of resource files (*.yaml), watched for changes.
        #[arg(long)]
        resources: PathBuf,
        /// gRPC address proxies connect to.
        #[arg(long, default_value = "127.0.0.1:15010")]
        listen: SocketAddr,
        /// Bootstrap token proxies must present.
        #[arg(long, env = "RINGMESH_TOKEN", hide_env_values = true)]
        token: String,
        /// How often the resource directory is checked for changes.
        #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
        poll: std::time::Duration,
        /// The trust domain of the mesh's identities (SPIFFE IDs).
        #[arg(long, default_value = ringmesh_control::compile::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// The CA that signs identities: its certificate chain (issuing
        /// certificate first, root last), PEM. Without it a CA is generated
        /// at start (valid a year, not persisted: proxies must fetch new
        /// certificates after a restart).
        #[arg(long, requires = "ca_key")]
        ca_cert: Option<PathBuf>,
        /// The CA's private key, PEM.
        #[arg(long, requires = "ca_cert")]
        ca_key: Option<PathBuf>,
        /// How long an issued identity certificate is valid; proxies renew
        /// at half of it.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        svid_lifetime: std::time::Duration,
        /// Extra CA certificates (PEM) proxies trust for their peers,
        /// besides the CA's root. For a root rotation: start with the new
        /// CA in --ca-cert/--ca-key and the old root here, so that proxies
        /// holding certificates of either are trusted until the old ones
        /// have been renewed; then drop it.
        #[arg(long, value_name = "FILE")]
        trust_bundle: Option<PathBuf>,
        /// After a start, how long proxies that reconnect running a config
        /// keep it before they get a new one: long enough for every proxy
        /// to be back (their reconnect backoff is at most 10 s), so that
        /// none is sent a config missing the endpoints of sidecars that
        /// have not reconnected yet.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        resync_grace: std::time::Duration,
        /// What `ringmeshctl stat` looks back over: rates and latency
        /// percentiles come from the proxies' reports received in it (a
        /// proxy needs two there; they report every --stats-interval).
        #[arg(long, default_value = "30s", value_parser = parse_window)]
        window: std::time::Duration,
        /// Serve TLS with this certificate chain (PEM, leaf first; its
        /// names are the ones proxies reach the control plane by). Proxies
        /// then use https://... with --control-plane-ca. Without it the
        /// discovery stream, which carries inline keys, is plaintext.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The key of --tls-cert, PEM.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

/// The serving certificate and key, checked before anything starts: PEM,
/// a key that is the leaf's, every certificate within its validity.
fn serving_tls(cert: &Path, key: &Path) -> Result<(String, String), String> {
    let read = |p: &Path, what: &str| {
        std::fs::read_to_string(p).map_err(|e| format!("{what} {}: {e}", p.display()))
    };
    let (cert_pem, key_pem) = (read(cert, "--tls-cert")?, read(key, "--tls-key")?);
    let chain = ringmesh_pki::pem::certificates(cert_pem.as_bytes())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    ringmesh_pki::check::validity(&chain, std::time::SystemTime::now())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    let private = ringmesh_pki::pem::private_key(key_pem.as_bytes())
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    ringmesh_pki::check::certified_key(chain, private, &provider).map_err(|e| {
        let why = match e {
            ringmesh_pki::check::KeyError::Mismatch => "not the key of --tls-cert".to_string(),
            ringmesh_pki::check::KeyError::Unusable(why) => why,
        };
        format!("--tls-key {}: {why}", key.display())
    })?;
    Ok((cert_pem, key_pem))
}

/// The CA from files, or a generated one.
fn load_ca(
    trust_domain: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<ringmesh_pki::ca::Ca, String> {
    let now = std::time::SystemTime::now();
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain =
                std::fs::read(&cert).map_err(|e| format!("--ca-cert {}: {e}", cert.display()))?;
            let key_pem =
                std::fs::read(&key).map_err(|e| format!("--ca-key {}: {e}", key.display()))?;
            ringmesh_pki::ca::Ca::from_pem(trust_domain, &chain, &key_pem, now)
                .map_err(|e| format!("--ca-cert {}: {e}", cert.display()))
        }
        _ => {
            let year = std::time::Duration::from_secs(365 * 24 * 3600);
            let ca = ringmesh_pki::ca::Ca::generate(trust_domain, year, now)
                .map_err(|e| format!("generating a CA: {e}"))?;
            tracing::warn!(
                trust_domain,
                "no --ca-cert: generated a CA for this run (not persisted)"
            );
            Ok(ca)
        }
    }
}

/// `--window`: a duration from 1 s to 1 h.
fn parse_window(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(3600) {
        return Err("the window is from 1s to 1h".into());
    }
    Ok(d)
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let Cmd::Serve {
        resources,
        listen,
        token,
        poll,
        trust_domain,
        ca_cert,
        ca_key,
        svid_lifetime,
        trust_bundle,
        resync_grace,
        tls_cert,
        tls_key,
        window,
    } = Cli::parse().cmd;
    if token.len() < 16 {
        eprintln!("ringmesh-control: error: --token must be at least 16 characters");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringmesh-control: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ca = match load_ca(&trust_domain, ca_cert, ca_key) {
        Ok(ca) => std::sync::Arc::new(ca),
        Err(e) => {
            eprintln!("ringmesh-control: error: {e}");
            return ExitCode::from(2);
        }
    };
    let trust_bundle = match trust_bundle
        .map(|p| {
            std::fs::read_to_string(&p).map_err(|e| format!("--trust-bundle {}: {e}", p.display()))
        })
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ringmesh-control: error: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => match serving_tls(&cert, &key) {
            Ok(pair) => Some(pair),
            Err(e) => {
                eprintln!("ringmesh-control: error: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let opts = ringmesh_control::server::ServeOptions {
        resources,
        listen,
        token,
        poll,
        ca,
        svid_lifetime,
        trust_bundle,
        resync_grace,
        tls,
        window,
    };
    let shutdown = async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    };
    let result = rt.block_on(ringmesh_control::server::serve(
        opts,
        |a| tracing::info!(address = %a, "discovery listening"),
        shutdown,
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmesh-control: error: {e}");
            ExitCode::from(2)
        }
    }
}
