//! `ringmeshctl`: the operator's command line for the control plane.
//!
//! Exit codes: 0 done, 1 refused (invalid resources, not found; `auth
//! check`: denied), 2 usage or connection errors. Errors go to stderr;
//! results to stdout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ringmesh_proto::v1 as pb;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "ringmeshctl",
    version,
    about = "Operate a ringmesh control plane"
)]
struct Cli {
    /// The control plane's address.
    #[arg(
        long,
        global = true,
        env = "RINGMESH_CONTROL",
        default_value = "127.0.0.1:15010"
    )]
    server: String,
    /// Bootstrap token (as given to ringmesh-control).
    #[arg(long, global = true, env = "RINGMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA certificates the control plane's certificate chains to,
    /// for an https:// --server (ringmesh-control --tls-cert).
    #[arg(long, global = true, env = "RINGMESH_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create or update resources from files; all or nothing.
    Apply {
        /// A resource file or a directory of them (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Validate against what is in force; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create or replace a resource made from files (`create secret tls`).
    Create {
        #[command(subcommand)]
        what: CreateCmd,
    },
    /// Delete a resource that `apply` created.
    Delete {
        /// service, httproute, grpcroute, tcproute, gateway, secret, configmap,
        /// backendtlspolicy, authorizationpolicy, peerauthentication,
        /// telemetry or trafficpolicy; NAME
        /// is `name`, or `name.namespace` outside the default namespace.
        kind: String,
        name: String,
    },
    /// List services, routes, gateways, secrets, configmaps,
    /// backendtlspolicies, authorizationpolicies, peerauthentications,
    /// telemetries, trafficpolicies or proxies.
    Get {
        /// services, routes, grpcroutes, tcproutes, gateways, secrets,
        /// configmaps, backendtlspolicies, authorizationpolicies,
        /// peerauthentications (pa), telemetries, trafficpolicies (tp) or
        /// proxies.
        what: String,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Each proxy: connected, version sent and ACKed, its workload
    /// identity (the SPIFFE ID of the last certificate the CA issued it)
    /// and that certificate's expiry (RFC 3339, "expired" when past), last
    /// error.
    Status {
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Traffic per Service or per caller -> callee edge over the control
    /// plane's window (ringmesh-control --window), from the proxies'
    /// reports: success rate (non-5xx), requests per second, latency
    /// percentiles (interpolated within the proxies' histogram buckets:
    /// exact to a bucket's width), and mTLS.
    Stat {
        /// services (each Service's inbound traffic, summed over its
        /// proxies), edges (caller -> callee, from the callers' proxies) or
        /// endpoints (each endpoint of a Service as its callers see it,
        /// with outlier ejections and health).
        #[arg(value_enum, default_value = "services")]
        what: StatWhat,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
        /// Print again every SECONDS (default 5) until Ctrl-C; with -o
        /// json or yaml, one document per print (json: one line each).
        #[arg(
            short = 'w',
            long,
            value_name = "SECONDS",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "5",
            value_parser = clap::value_parser!(u64).range(1..=3600)
        )]
        watch: Option<u64>,
    },
    /// Authorization: would a request be allowed?
    Auth {
        #[command(subcommand)]
        what: AuthCmd,
    },
    /// Check resource files offline, with the same messages as the server.
    Validate {
        /// A resource file or a directory of them (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuthCmd {
    /// Judge a request from one Service to another by the
    /// AuthorizationPolicies and PeerAuthentications in force, with the
    /// code the proxies enforce them with; prints allow or deny and the
    /// policy that decided. Exit code 0: allowed, 1: denied (as `kubectl
    /// auth can-i`).
    Check {
        /// The calling Service (`web`, `web.shop`) or a SPIFFE ID;
        /// without it, a caller with no workload certificate.
        #[arg(long)]
        from: Option<String>,
        /// The Service called.
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// As sent: it is normalised as the proxy does (`..`, `//`, escapes).
        #[arg(long, default_value = "/")]
        path: String,
        /// A request header, `name=value` (repeatable).
        #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
        headers: Vec<String>,
        /// The workload port called, for policies with `ports`.
        #[arg(long)]
        port: Option<u16>,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Subcommand)]
enum CreateCmd {
    /// A Secret.
    Secret {
        #[command(subcommand)]
        kind: SecretCmd,
    },
}

#[derive(Subcommand)]
enum SecretCmd {
    /// A `kubernetes.io/tls` Secret from a PEM chain and key, as
    /// `kubectl create secret tls` makes one; an existing one of that name
    /// is replaced (a certificate rotation).
    Tls {
        name: String,
        /// The certificate chain, PEM, leaf first.
        #[arg(long)]
        cert: PathBuf,
        /// Its private key, PEM.
        #[arg(long)]
        key: PathBuf,
        /// Validate against what is in force; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatWhat {
    #[value(alias = "service", alias = "svc")]
    Services,
    #[value(alias = "edge")]
    Edges,
    /// Each Service's endpoints as its callers' proxies see them:
    /// traffic, failures, outlier ejections and health.
    #[value(alias = "endpoint", alias = "ep")]
    Endpoints,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Yaml,
    Json,
}

/// A failed command: what to print and the exit code.
struct Failure(u8, String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Validate { files } => validate(files),
        _ => remote(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(code)
        }
    }
}

/// Every `*.yaml` / `*.yml` under the given paths (directories one level).
fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    for p in paths {
        let mut files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .map_err(|e| Failure(2, format!("ringmeshctl: {}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_yaml(f))
                .collect()
        } else {
            vec![p.clone()]
        };
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| Failure(2, format!("ringmeshctl: {}: {e}", f.display())))?;
            out.push((f.display().to_string(), text));
        }
    }
    Ok(out)
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
}

/// `create secret tls`: the files as a Secret document, base64 in `data`
/// as Kubernetes writes it (any bytes are safe in YAML that way). The
/// first element names it in error messages.
fn tls_secret(name: &str, cert: &Path, key: &Path) -> Result<(String, String), Failure> {
    use base64::Engine;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| Failure(2, format!("ringmeshctl: {}: {e}", p.display())))
    };
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let text = format!(
        "kind: Secret\nmetadata: {{ name: {name:?} }}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(read(cert)?),
        b64(read(key)?)
    );
    Ok((
        format!(
            "(secret {name} from {} and {})",
            cert.display(),
            key.display()
        ),
        text,
    ))
}

fn validate(paths: &[PathBuf]) -> Result<(), Failure> {
    let files = read_inputs(paths)?;
    match ringmesh_control::resources::parse(&files) {
        Ok(r) => {
            // The later kinds are counted only when there are some, so
            // the line reads as before for a mesh without them.
            let mut tls = String::new();
            for (n, what) in [
                (r.grpc_routes.len(), "gRPC routes"),
                (r.tcp_routes.len(), "TCP routes"),
                (r.secrets.len(), "secrets"),
                (r.config_maps.len(), "config maps"),
                (r.backend_tls.len(), "backend TLS policies"),
                (r.authz.len(), "authorization policies"),
                (r.peer_authn.len(), "peer authentications"),
                (r.telemetry.len(), "telemetries"),
                (r.traffic_policies.len(), "traffic policies"),
            ] {
                if n > 0 {
                    tls.push_str(&format!(", {n} {what}"));
                }
            }
            println!(
                "valid: {} services, {} HTTP routes, {} gateways{tls} in {} files",
                r.services.len(),
                r.routes.len(),
                r.gateways.len(),
                files.len()
            );
            Ok(())
        }
        Err(e) => Err(Failure(
            1,
            format!("{e}\nringmeshctl: {} errors; nothing applied", e.0.len()),
        )),
    }
}

fn remote(cli: &Cli) -> Result<(), Failure> {
    let token = cli.token.clone().ok_or_else(|| {
        Failure(
            2,
            "ringmeshctl: --token (or RINGMESH_TOKEN) is required".into(),
        )
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(2, format!("ringmeshctl: {e}")))?;
    rt.block_on(async {
        let endpoint = if cli.server.contains("://") {
            cli.server.clone()
        } else {
            format!("http://{}", cli.server)
        };
        let mut target = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| Failure(2, format!("ringmeshctl: {endpoint}: {e}")))?;
        match (&cli.ca, endpoint.starts_with("https://")) {
            (Some(ca), true) => {
                let pem = std::fs::read_to_string(ca)
                    .map_err(|e| Failure(2, format!("ringmeshctl: --ca {}: {e}", ca.display())))?;
                let tls = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem));
                target = target
                    .tls_config(tls)
                    .map_err(|e| Failure(2, format!("ringmeshctl: --ca: {e}")))?;
            }
            (None, true) => {
                return Err(Failure(
                    2,
                    format!(
                        "ringmeshctl: {endpoint}: give the CA its certificate chains to (--ca)"
                    ),
                ))
            }
            (Some(_), false) => {
                return Err(Failure(
                    2,
                    format!("ringmeshctl: --ca is for an https:// --server, not {endpoint}"),
                ))
            }
            (None, false) => {}
        }
        let channel = target.connect().await.map_err(|e| {
            Failure(
                2,
                format!("ringmeshctl: cannot reach the control plane at {endpoint}: {e}"),
            )
        })?;
        let auth: tonic::metadata::MetadataValue<_> =
            format!("Bearer {token}").parse().map_err(|_| {
                Failure(
                    2,
                    "ringmeshctl: the token is not a valid header value".into(),
                )
            })?;
        let mut client = pb::operator_client::OperatorClient::with_interceptor(
            channel,
            move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", auth.clone());
                Ok(req)
            },
        );
        let rpc_failure = |s: tonic::Status| {
            let code = match s.code() {
                tonic::Code::InvalidArgument | tonic::Code::NotFound => 1,
                _ => 2,
            };
            Failure(code, s.message().to_string())
        };
        match &cli.cmd {
            Cmd::Apply { files, dry_run } => {
                let files = read_inputs(files)?
                    .into_iter()
                    .map(|(name, content)| pb::ResourceFile { name, content })
                    .collect();
                let resp = client
                    .apply(pb::ApplyRequest {
                        files,
                        dry_run: *dry_run,
                    })
                    .await
                    .map_err(rpc_failure)?;
                for line in resp.into_inner().results {
                    println!("{line}");
                }
            }
            Cmd::Create {
                what:
                    CreateCmd::Secret {
                        kind:
                            SecretCmd::Tls {
                                name,
                                cert,
                                key,
                                dry_run,
                            },
                    },
            } => {
                let (name, content) = tls_secret(name, cert, key)?;
                let resp = client
                    .apply(pb::ApplyRequest {
                        files: vec![pb::ResourceFile { name, content }],
                        dry_run: *dry_run,
                    })
                    .await
                    .map_err(rpc_failure)?;
                for line in resp.into_inner().results {
                    println!("{line}");
                }
            }
            Cmd::Delete { kind, name } => {
                let resp = client
                    .delete(pb::DeleteRequest {
                        kind: kind.clone(),
                        name: name.clone(),
                    })
                    .await
                    .map_err(rpc_failure)?;
                println!("{}", resp.into_inner().result);
            }
            Cmd::Get { what, output } if matches!(what.as_str(), "proxies" | "proxy") => {
                let resp = client
                    .status(pb::StatusRequest {})
                    .await
                    .map_err(rpc_failure)?
                    .into_inner();
                print_proxies(&resp, *output, false)?;
            }
            Cmd::Get { what, output } => {
                let resp = client
                    .get(pb::GetRequest { kind: what.clone() })
                    .await
                    .map_err(rpc_failure)?
                    .into_inner();
                print_resources(&resp.resources, *output)?;
            }
            Cmd::Status { output } => {
                let resp = client
                    .status(pb::StatusRequest {})
                    .await
                    .map_err(rpc_failure)?
                    .into_inner();
                print_proxies(&resp, *output, true)?;
            }
            Cmd::Stat {
                what,
                output,
                watch,
            } => {
                let Some(every) = watch else {
                    let resp = client
                        .stat(pb::StatRequest {})
                        .await
                        .map_err(rpc_failure)?
                        .into_inner();
                    return print_stat(&resp, *what, *output, false);
                };
                let every = std::time::Duration::from_secs(*every);
                let mut first = true;
                loop {
                    let resp = client
                        .stat(pb::StatRequest {})
                        .await
                        .map_err(rpc_failure)?
                        .into_inner();
                    if !first && matches!(output, Output::Table) {
                        println!();
                    }
                    first = false;
                    print_stat(&resp, *what, *output, true)?;
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = tokio::signal::ctrl_c() => break,
                    }
                }
            }
            Cmd::Auth {
                what:
                    AuthCmd::Check {
                        from,
                        to,
                        method,
                        path,
                        headers,
                        port,
                        output,
                    },
            } => {
                let headers = headers
                    .iter()
                    .map(|h| match h.split_once('=') {
                        Some((n, v)) if !n.is_empty() => Ok((n.to_string(), v.to_string())),
                        _ => Err(Failure(
                            2,
                            format!("ringmeshctl: --header `{h}`: write it NAME=VALUE"),
                        )),
                    })
                    .collect::<Result<_, _>>()?;
                let resp = client
                    .auth_check(pb::AuthCheckRequest {
                        from: from.clone().unwrap_or_default(),
                        to: to.clone(),
                        method: method.clone(),
                        path: path.clone(),
                        headers,
                        port: port.map_or(0, u32::from),
                    })
                    .await
                    .map_err(rpc_failure)?
                    .into_inner();
                print_verdict(&resp, *output)?;
                if !resp.allowed {
                    return Err(Failure(1, String::new()));
                }
            }
            Cmd::Validate { .. } => {}
        }
        Ok(())
    })
}

/// `stat services -o json`: one per Service (field names are stable).
#[derive(Serialize)]
struct ServiceStatRow {
    name: String,
    /// Connected proxies registered for it, and those with data in the
    /// window.
    proxies: u32,
    reporting: u32,
    /// Its proxies' inbound listeners take mTLS.
    meshed: bool,
    #[serde(flatten)]
    traffic: TrafficRow,
    /// Share of the requests that came over mTLS (0..1).
    mtls_share: Option<f64>,
}

/// `stat edges -o json`.
#[derive(Serialize)]
struct EdgeStatRow {
    from: String,
    to: String,
    mtls: bool,
    #[serde(flatten)]
    traffic: TrafficRow,
}

/// `stat endpoints -o json`.
#[derive(Serialize)]
struct EndpointStatRow {
    service: String,
    address: String,
    requests: u64,
    errors: u64,
    /// Tries that did not fail, 0..1; null without tries.
    success_rate: Option<f64>,
    rps: f64,
    /// Proxies that reported it, and of them those with a worker that
    /// has it ejected now, and those whose health checks fail it now.
    proxies: u32,
    ejected_by: u32,
    unhealthy_by: u32,
    /// Ejections in the window, all proxies and workers.
    ejections: u64,
}

/// Unset (null) where there is no data in the window.
#[derive(Serialize, Default)]
struct TrafficRow {
    requests: u64,
    failures: u64,
    /// Non-5xx over all, 0..1.
    success_rate: Option<f64>,
    rps: Option<f64>,
    latency_ms_p50: Option<f64>,
    latency_ms_p95: Option<f64>,
    latency_ms_p99: Option<f64>,
    /// How much of the window the numbers cover (the longest time
    /// between a proxy's two reports in it).
    seconds: f64,
}

fn traffic_row(t: Option<&pb::TrafficStats>) -> TrafficRow {
    let Some(t) = t else {
        return TrafficRow::default();
    };
    TrafficRow {
        requests: t.requests,
        failures: t.failures,
        success_rate: success_rate(t.requests, t.failures),
        rps: Some(t.rps),
        latency_ms_p50: t.latency_p50_ms,
        latency_ms_p95: t.latency_p95_ms,
        latency_ms_p99: t.latency_p99_ms,
        seconds: t.seconds,
    }
}

/// Requests that did not fail, 0..1; `None` without requests.
fn success_rate(requests: u64, failed: u64) -> Option<f64> {
    (requests > 0).then(|| (requests - failed.min(requests)) as f64 / requests as f64)
}

/// A share as a table cell: `99.50%`, or `-` without data.
fn percent(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0))
}

fn print_stat(
    resp: &pb::StatResponse,
    what: StatWhat,
    output: Output,
    watching: bool,
) -> Result<(), Failure> {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}ms"));
    let rps = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let cells = |t: &TrafficRow| {
        vec![
            percent(t.success_rate),
            rps(t.rps),
            ms(t.latency_ms_p50),
            ms(t.latency_ms_p95),
            ms(t.latency_ms_p99),
        ]
    };
    let header = [
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
    ];
    match what {
        StatWhat::Services => {
            let rows: Vec<ServiceStatRow> = resp
                .services
                .iter()
                .map(|s| ServiceStatRow {
                    name: s.name.clone(),
                    proxies: s.proxies,
                    reporting: s.reporting,
                    meshed: s.meshed,
                    traffic: traffic_row(s.stats.as_ref()),
                    mtls_share: s
                        .stats
                        .as_ref()
                        .filter(|t| t.requests > 0)
                        .map(|t| t.mtls_requests.min(t.requests) as f64 / t.requests as f64),
                })
                .collect();
            if emit_stat(&rows, output, watching)? {
                return Ok(());
            }
            let body = rows
                .iter()
                .map(|r| {
                    let mut c = vec![
                        r.name.clone(),
                        format!("{}/{}", r.reporting, r.proxies),
                        percent(r.mtls_share),
                    ];
                    c.extend(cells(&r.traffic));
                    c
                })
                .collect();
            let mut h = vec!["NAME", "MESHED", "MTLS"];
            h.extend(header);
            table(&h, body);
        }
        StatWhat::Edges => {
            let rows: Vec<EdgeStatRow> = resp
                .edges
                .iter()
                .map(|e| EdgeStatRow {
                    from: e.from.clone(),
                    to: e.to.clone(),
                    mtls: e.mtls,
                    traffic: traffic_row(e.stats.as_ref()),
                })
                .collect();
            if emit_stat(&rows, output, watching)? {
                return Ok(());
            }
            let body = rows
                .iter()
                .map(|r| {
                    let mut c = vec![
                        r.from.clone(),
                        r.to.clone(),
                        if r.mtls { "yes" } else { "no" }.to_string(),
                    ];
                    c.extend(cells(&r.traffic));
                    c
                })
                .collect();
            let mut h = vec!["FROM", "TO", "MTLS"];
            h.extend(header);
            table(&h, body);
            if rows.is_empty() && matches!(output, Output::Table) {
                println!(
                    "(no edge had requests in the last {}s)",
                    resp.window_seconds
                );
            }
        }
        StatWhat::Endpoints => print_endpoints(resp, output, watching)?,
    }
    Ok(())
}

fn print_endpoints(resp: &pb::StatResponse, output: Output, watching: bool) -> Result<(), Failure> {
    let rows: Vec<EndpointStatRow> = resp
        .endpoints
        .iter()
        .map(|e| EndpointStatRow {
            service: e.service.clone(),
            address: e.address.clone(),
            requests: e.requests,
            errors: e.errors,
            success_rate: success_rate(e.requests, e.errors),
            rps: e.rps,
            proxies: e.proxies,
            ejected_by: e.ejected_by,
            unhealthy_by: e.unhealthy_by,
            ejections: e.ejections,
        })
        .collect();
    if emit_stat(&rows, output, watching)? {
        return Ok(());
    }
    let body = rows
        .iter()
        .map(|r| {
            vec![
                r.service.clone(),
                r.address.clone(),
                percent(r.success_rate),
                format!("{:.1}", r.rps),
                format!("{}/{}", r.ejected_by, r.proxies),
                r.ejections.to_string(),
                format!("{}/{}", r.unhealthy_by, r.proxies),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "ENDPOINT",
            "SUCCESS",
            "RPS",
            "EJECTED",
            "EJECTIONS",
            "UNHEALTHY",
        ],
        body,
    );
    if rows.is_empty() && matches!(output, Output::Table) {
        println!(
            "(no proxy reported endpoints in the last {}s)",
            resp.window_seconds
        );
    }
    Ok(())
}

/// As `emit`; while watching, JSON is one line per print.
fn emit_stat<T: Serialize>(rows: &[T], output: Output, watching: bool) -> Result<bool, Failure> {
    match output {
        Output::Json if watching => {
            println!(
                "{}",
                serde_json::to_string(rows).map_err(|e| Failure(2, e.to_string()))?
            );
            Ok(true)
        }
        Output::Yaml if watching => {
            println!("---");
            emit(rows, output)
        }
        _ => emit(rows, output),
    }
}

#[derive(Serialize)]
struct VerdictRow<'a> {
    decision: &'static str,
    policy: Option<&'a str>,
    principal: Option<&'a str>,
    normalized_path: &'a str,
    reason: &'a str,
}

fn print_verdict(v: &pb::AuthCheckResponse, output: Output) -> Result<(), Failure> {
    let decision = if v.allowed { "allow" } else { "deny" };
    let some = |s: &'_ str| -> Option<String> { (!s.is_empty()).then(|| s.to_string()) };
    let (policy, principal) = (some(&v.policy), some(&v.principal));
    let row = VerdictRow {
        decision,
        policy: policy.as_deref(),
        principal: principal.as_deref(),
        normalized_path: &v.normalized_path,
        reason: &v.reason,
    };
    match output {
        Output::Table => {
            println!("{decision}");
            println!("  reason:    {}", v.reason);
            println!("  policy:    {}", policy.as_deref().unwrap_or("-"));
            println!(
                "  principal: {}",
                principal.as_deref().unwrap_or("(unauthenticated)")
            );
            println!("  path:      {}", v.normalized_path);
        }
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&row).map_err(|e| Failure(2, e.to_string()))?
        ),
        Output::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&row).map_err(|e| Failure(2, e.to_string()))?
        ),
    }
    Ok(())
}

#[derive(Serialize)]
struct ResourceRow {
    kind: String,
    name: String,
    source: String,
    #[serde(flatten)]
    summary: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ProxyRow {
    node: String,
    service: String,
    role: String,
    connected: bool,
    sent: String,
    acked: String,
    /// SPIFFE ID of the last certificate issued to it; empty before one.
    identity: String,
    /// That certificate's expiry, RFC 3339; empty before one.
    expires: String,
    expired: bool,
    last_error: String,
}

/// A certificate's expiry (unix seconds, 0: none) as RFC 3339, and
/// whether it is past at `now`.
fn expiry(not_after: i64, now: std::time::SystemTime) -> (String, bool) {
    let Ok(secs) = u64::try_from(not_after) else {
        return (String::new(), false);
    };
    if secs == 0 {
        return (String::new(), false);
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    (humantime::format_rfc3339_seconds(at).to_string(), at <= now)
}

fn emit<T: Serialize>(rows: &[T], output: Output) -> Result<bool, Failure> {
    let text = match output {
        Output::Table => return Ok(false),
        Output::Json => {
            serde_json::to_string_pretty(rows).map_err(|e| Failure(2, e.to_string()))?
        }
        Output::Yaml => serde_saphyr::to_string(&rows).map_err(|e| Failure(2, e.to_string()))?,
    };
    println!("{}", text.trim_end());
    Ok(true)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn print_resources(resources: &[pb::Resource], output: Output) -> Result<(), Failure> {
    let rows: Vec<ResourceRow> = resources
        .iter()
        .map(|r| ResourceRow {
            kind: r.kind.clone(),
            name: r.name.clone(),
            source: r.source.clone(),
            summary: r
                .summary
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .collect();
    if emit(&rows, output)? {
        return Ok(());
    }
    let keys: Vec<String> = rows
        .first()
        .map(|r| r.summary.keys().cloned().collect())
        .unwrap_or_default();
    let mut header = vec!["NAME".to_string()];
    header.extend(keys.iter().map(|k| k.to_uppercase()));
    header.push("SOURCE".into());
    let body = rows
        .into_iter()
        .map(|r| {
            let mut cells = vec![r.name];
            cells.extend(
                keys.iter()
                    .map(|k| r.summary.get(k).cloned().unwrap_or_default()),
            );
            cells.push(r.source);
            cells
        })
        .collect();
    table(&header.iter().map(String::as_str).collect::<Vec<_>>(), body);
    Ok(())
}

fn print_proxies(
    s: &pb::StatusResponse,
    output: Output,
    with_rejected: bool,
) -> Result<(), Failure> {
    let now = std::time::SystemTime::now();
    let rows: Vec<ProxyRow> = s
        .proxies
        .iter()
        .map(|p| {
            let (expires, expired) = expiry(p.certificate_not_after, now);
            let node = p.node.clone().unwrap_or_default();
            let last_error = if !p.compile_error.is_empty() {
                p.compile_error.clone()
            } else if !p.nack_version.is_empty() {
                format!("NACK {}: {}", p.nack_version, p.nack_errors.join("; "))
            } else {
                String::new()
            };
            ProxyRow {
                role: match node.role() {
                    pb::Role::Sidecar => "sidecar",
                    pb::Role::Gateway => "gateway",
                    pb::Role::Unspecified => "-",
                }
                .into(),
                node: node.id,
                service: node.service,
                connected: p.connected,
                sent: p.sent_version.clone(),
                acked: p.acked_version.clone(),
                identity: p.spiffe_id.clone(),
                expires,
                expired,
                last_error,
            }
        })
        .collect();
    if !emit(&rows, output)? {
        let body = rows
            .into_iter()
            .map(|r| {
                vec![
                    r.node,
                    r.service,
                    r.role,
                    if r.connected {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    r.sent,
                    r.acked,
                    r.identity,
                    if r.expired {
                        format!("{} (expired)", r.expires)
                    } else {
                        r.expires
                    },
                    r.last_error,
                ]
            })
            .collect();
        table(
            &[
                "NODE",
                "SERVICE",
                "ROLE",
                "CONNECTED",
                "SENT",
                "ACKED",
                "IDENTITY",
                "EXPIRES",
                "LAST ERROR",
            ],
            body,
        );
    }
    if with_rejected && !s.rejected.is_empty() {
        println!(
            "\nrejected resource change (the previous resources stay in force):\n{}",
            s.rejected
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_reads_as_rfc3339_and_says_when_it_is_past() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(
            expiry(1_800_000_060, now),
            ("2027-01-15T08:01:00Z".to_string(), false)
        );
        assert_eq!(
            expiry(1_799_999_940, now),
            ("2027-01-15T07:59:00Z".to_string(), true)
        );
        assert_eq!(expiry(0, now), (String::new(), false), "none issued");
        assert_eq!(expiry(-5, now), (String::new(), false));
    }
}
