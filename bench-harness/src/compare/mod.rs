//! `ringmesh-bench compare`: one scenario, several targets, same cores.
//!
//! The upstream starts once. Then, per repetition, every target in turn
//! (A B C A B C ...) is started fresh, runs every step of the scenario,
//! and is stopped; so slow drift on a shared machine (thermal, neighbours)
//! spreads over all targets instead of favouring the one that ran first.
//! Medians over repetitions are compared as ratios to the best proxy.
//! With `--baseline-bin`, a second ringmesh build runs as one more target,
//! so a change is judged against the build before it in the same run.
//! With `tls = true` in the scenario, every proxy terminates TLS ([`tls`]).
//! With `mode = "tcp"`, every proxy relays opaque TCP to the same plain
//! HTTP upstream, and the load speaks HTTP through the relay as usual.
//! With `topology = "pair"`, every proxy target is a mesh hop: two of its
//! processes, A then B, with mTLS between them ([`pair`]).
//! Target `ringmesh-telemetry` is ringmesh with an access log and tracing
//! at 100% to an OTLP sink this process runs ([`sink`]); after each of its
//! runs the spans received and the log lines written are recorded beside
//! the requests it served.
//! With `endpoints = N` (N > 1), the proxies balance N test upstreams and a
//! step may slow or fail the last one (`fault`), with each proxy's
//! defaults or told to retry (`retry`): every proxy target then starts
//! fresh for each step, configured for it ([`targets::Balanced`]).

pub mod measure;
pub mod pair;
pub mod render;
pub mod results;
pub mod scenario;
pub mod select;
pub mod sink;
pub mod svg;
pub mod targets;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pair::{MeshFiles, Role};
use results::{Calibration, CpuPlan, Machine, Report, Run, StepInfo, TargetInfo, TelemetryCount};
use scenario::{Fault, Mode, Proto, Rate, Scenario, Step, StepKind, Topology};
use sink::SpanSink;
use targets::{RingmeshBins, TargetKind};
use tls::TlsRun;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Scenario file, e.g. perf/scenarios/peers.toml (a result .json with --render).
    pub scenario: PathBuf,
    /// Directory for <scenario>-<date>.json, .md and .svg.
    #[arg(long, default_value = "perf/results")]
    pub out: PathBuf,
    /// Run only these of the scenario's targets (comma-separated).
    #[arg(long)]
    pub targets: Option<String>,
    /// Override the scenario's repetitions.
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Override the scenario's measured time per step.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// The ringmesh-proxy binary (default: next to this one).
    #[arg(long)]
    pub ringmesh_bin: Option<PathBuf>,
    /// A second ringmesh-proxy build (e.g. the commit before a change),
    /// run as target `baseline` right after `ringmesh`, with the same
    /// config and CPUs, alternating in every repetition.
    #[arg(long, value_name = "PATH")]
    pub baseline_bin: Option<PathBuf>,
    /// Check the scenario file and exit.
    #[arg(long)]
    pub check: bool,
    /// Re-render the .md and .svg of an existing result JSON (the
    /// positional argument) instead of running anything.
    #[arg(long)]
    pub render: bool,
}

pub fn did_you_mean(word: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

pub fn main(args: CompareArgs) -> Result<ExitCode, String> {
    if args.render {
        return rerender(&args.scenario);
    }
    let mut sc = scenario::load(&args.scenario)?;
    if let Some(r) = args.repetitions {
        sc.repetitions = r.max(1);
    }
    if let Some(d) = args.duration {
        sc.duration = d;
    }
    sc.targets = select::targets(
        &sc.targets,
        args.targets.as_deref(),
        args.baseline_bin.is_some(),
    )?;
    let baseline = args
        .baseline_bin
        .as_deref()
        .map(select::baseline_bin)
        .transpose()?;
    if args.check {
        eprintln!(
            "{}: ok ({} targets, {} steps)",
            args.scenario.display(),
            sc.targets.len(),
            sc.steps.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let bins = RingmeshBins {
        current: args
            .ringmesh_bin
            .clone()
            .unwrap_or_else(|| me.with_file_name("ringmesh-proxy")),
        baseline,
    };
    let report = run(&sc, &me, &bins, &stop)?;
    let written = write_outputs(&report, &args.out)?;
    println!("{}", render::markdown(&report));
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    Ok(if report.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn rerender(json: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a compare result: {e}", json.display()))?;
    for (ext, body) in [
        ("md", render::markdown(&report)),
        ("svg", svg::chart(&report)),
    ] {
        let path = json.with_extension(ext);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a scenario; `bench` is the ringmesh-bench binary (for load and
/// upstream processes).
pub fn run(
    sc: &Scenario,
    bench: &Path,
    bins: &RingmeshBins,
    stop: &AtomicBool,
) -> Result<Report, String> {
    raise_fd_limit();
    let dir = Workdir::new()?;
    let tls = if sc.tls {
        Some(TlsRun::new(&dir.0.join("tls"))?)
    } else {
        None
    };
    let pairs = sc.topology == Topology::Pair;
    let mesh = match pairs {
        true => Some(pair::generate(&dir.0.join("mesh"))?),
        false => None,
    };
    let mut infos = Vec::new();
    let mut runnable = Vec::new();
    // Two ringmesh builds usually print the same version: then the report
    // tells them apart by path.
    let two_builds = sc.targets.contains(&TargetKind::Baseline);
    let h2_upstream = sc.steps.iter().any(|s| s.upstream == Proto::H2);
    let h2 = sc.client == Proto::H2 || h2_upstream;
    for &t in &sc.targets {
        let located = match (pairs, pair::supports(t)) {
            (true, Err(why)) => Err(why.to_string()),
            _ => targets::supports_endpoints(t, sc.endpoints)
                .map_err(str::to_string)
                .and_then(|()| t.locate_for(bins, sc.mode, h2)),
        };
        let hop = match pairs {
            true => pair::hop(t).to_string(),
            false => String::new(),
        };
        match located {
            Ok(bin) => {
                let detail = bin.as_deref().map_or_else(String::new, |b| {
                    let version = t.version(b);
                    let ringmesh = t.is_ringmesh();
                    if !(ringmesh && two_builds) {
                        return version;
                    }
                    let path = std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf());
                    if version.is_empty() {
                        path.display().to_string()
                    } else {
                        format!("{version} ({})", path.display())
                    }
                });
                infos.push(TargetInfo {
                    name: t.to_string(),
                    status: "ok".into(),
                    detail,
                    hop,
                });
                runnable.push((t, bin));
            }
            Err(why) => {
                eprintln!("skipping {t}: {why}");
                infos.push(TargetInfo {
                    name: t.to_string(),
                    status: "skipped".into(),
                    detail: why,
                    hop,
                });
            }
        }
    }
    let upstream = start_upstream(sc, bench, &dir.0, None, false)?;
    // Several endpoints: the first is `upstream`, the others start here,
    // and one faulty endpoint per fault the steps name.
    let endpoints = match sc.endpoints {
        0 | 1 => None,
        _ => Some(Endpoints::start(sc, bench, &dir.0, upstream.addr)?),
    };
    if let Some(e) = &endpoints {
        eprintln!("{}", e.describe());
    }
    // The HTTP/2 upstream: behind the proxies for steps with upstream =
    // "h2" (and gRPC), and what `direct` talks to when the load speaks h2.
    let has_direct = runnable.iter().any(|(k, _)| !k.is_proxy());
    let upstream_h2 = match h2_upstream || (sc.client == Proto::H2 && has_direct) {
        true => Some(start_upstream(sc, bench, &dir.0, None, true)?),
        false => None,
    };
    eprintln!(
        "upstream on {}{} (CPUs {:?}); targets on CPUs {:?}; load on CPUs {:?}{}",
        upstream.addr,
        upstream_h2
            .as_ref()
            .map_or_else(String::new, |u| format!(", h2c upstream on {}", u.addr)),
        sc.cpus.upstream,
        sc.cpus.proxy,
        sc.cpus.load,
        if tls.is_some() {
            "; proxies terminate TLS"
        } else if sc.mode == Mode::Tcp {
            "; proxies relay opaque TCP"
        } else if pairs {
            "; each proxy target is a mesh pair, A -> mTLS -> B, both on those CPUs"
        } else {
            ""
        }
    );
    // Over TLS, `direct` talks to a second upstream that serves TLS itself
    // with the same certificate: the floor under a TLS proxy, as the plain
    // upstream is under a plain one.
    let direct_tls = match &tls {
        Some(t) if has_direct => {
            let up = start_upstream(sc, bench, &dir.0, Some(&t.files), sc.client == Proto::H2)?;
            if let Some(i) = infos.iter_mut().find(|i| i.name == "direct") {
                i.detail = format!(
                    "TLS served by the test upstream itself (rustls, the same certificate) on {}: the floor, not a proxy",
                    up.addr
                );
            }
            Some(up)
        }
        _ => None,
    };
    // The collector `ringmesh-telemetry` exports spans to (HTTP only: a
    // TCP relay logs connections but makes no spans), in this process,
    // pinned beside the upstream.
    let telemetry = runnable
        .iter()
        .any(|(t, _)| *t == TargetKind::RingmeshTelemetry);
    let sink = match telemetry && sc.mode == Mode::Http {
        true => Some(SpanSink::start(&sc.cpus.upstream)?),
        false => None,
    };
    if let Some(s) = &sink {
        eprintln!(
            "OTLP sink for ringmesh-telemetry on {} (CPUs {:?})",
            s.addr, sc.cpus.upstream
        );
    }
    let max_conns = sc.steps.iter().map(|s| s.connections).max().unwrap_or(0);
    let ctx = Ctx {
        sc,
        bench,
        dir: &dir.0,
        upstream: upstream.addr,
        upstream_h2: upstream_h2.as_ref().filter(|_| h2_upstream).map(|u| u.addr),
        direct: match (&direct_tls, &upstream_h2) {
            (Some(d), _) => d.addr,
            (None, Some(u)) if sc.client == Proto::H2 => u.addr,
            _ => upstream.addr,
        },
        tls: tls.as_ref(),
        mesh: mesh.as_ref(),
        max_conns,
        sink: sink.as_ref(),
        endpoints: endpoints.as_ref(),
    };

    let calibration = match &sc.calibrate {
        Some(c)
            if sc.steps.iter().any(|s| {
                matches!(
                    s.kind,
                    StepKind::Rate {
                        rate: Rate::OfPeak(_),
                        ..
                    }
                )
            }) =>
        {
            Some(calibrate(&ctx, &runnable, c, &mut infos)?)
        }
        _ => None,
    };
    let steps: Vec<(Step, Option<f64>)> = sc
        .steps
        .iter()
        .map(|s| {
            let rate = match s.kind {
                StepKind::Rate {
                    rate: Rate::Fixed(r),
                    ..
                } => Some(r),
                StepKind::Rate {
                    rate: Rate::OfPeak(f),
                    ..
                } => calibration.as_ref().map(|c| (c.basis_rps * f).round()),
                _ => None,
            };
            (s.clone(), rate)
        })
        .collect();

    let mut runs = Vec::new();
    let mut telemetry_counts = Vec::new();
    let idle_steps = steps
        .iter()
        .filter(|(s, _)| matches!(s.kind, StepKind::Idle { .. }))
        .count();
    let direct = runnable.iter().filter(|(t, _)| !t.is_proxy()).count();
    let unsupported = runnable
        .iter()
        .flat_map(|(t, _)| {
            steps
                .iter()
                .filter(|(s, _)| targets::supports(*t, s).is_err())
        })
        .count();
    let total = sc.repetitions * (runnable.len() * steps.len() - direct * idle_steps - unsupported);
    let started = Instant::now();
    'reps: for rep in 0..sc.repetitions {
        for (t, bin) in &runnable {
            if stop.load(Ordering::Relaxed) {
                break 'reps;
            }
            if infos
                .iter()
                .any(|i| i.name == t.to_string() && i.status != "ok")
            {
                continue;
            }
            // Started once for all steps, or (several endpoints) afresh
            // for each step below.
            let per_step = sc.per_step_targets();
            let mut target = match per_step {
                true => None,
                false => match ctx.start(*t, bin.as_deref(), None) {
                    Ok(target) => Some(target),
                    Err(e) => {
                        eprintln!("{t} failed to start: {e}");
                        mark_failed(&mut infos, *t, e);
                        continue;
                    }
                },
            };
            let first_run = runs.len();
            for (step, rate) in &steps {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if !t.is_proxy() && matches!(step.kind, StepKind::Idle { .. }) {
                    continue; // no process of its own to weigh
                }
                if targets::supports(*t, step).is_err() {
                    continue; // said under the step in the report
                }
                let n = runs.len() + 1;
                if per_step {
                    drop(target.take()); // the last step's, stopped
                    match ctx.start(*t, bin.as_deref(), Some(step)) {
                        Ok(fresh) => target = Some(fresh),
                        Err(e) => {
                            eprintln!("[{n}/{total}] {t} {} failed to start: {e}", step.name);
                            mark_failed(&mut infos, *t, format!("step {}: {e}", step.name));
                            break;
                        }
                    }
                }
                let Some(running) = target.as_ref() else {
                    break;
                };
                let res = ctx.step(running, step, *rate);
                match res {
                    Ok(run) => {
                        eprintln!(
                            "[{n}/{total} {:.0}s] rep {}/{} {t:<8} {:<12} {}",
                            started.elapsed().as_secs_f64(),
                            rep + 1,
                            sc.repetitions,
                            step.name,
                            render::one_line(&run.metrics, &step.kind)
                        );
                        runs.push(Run {
                            repetition: rep,
                            target: t.to_string(),
                            step: step.name.clone(),
                            metrics: run.metrics,
                            load: run.load,
                        });
                    }
                    Err(e) => {
                        eprintln!("[{n}/{total}] {t} {}: {e}", step.name);
                        mark_failed(&mut infos, *t, format!("step {}: {e}", step.name));
                        break;
                    }
                }
            }
            if let (TargetKind::RingmeshTelemetry, Some(target)) = (*t, target) {
                let load_requests = runs[first_run..]
                    .iter()
                    .filter_map(|r: &Run| r.load.as_ref())
                    .map(|l| l.requests)
                    .sum();
                let count = ctx.count_telemetry(target, rep, load_requests);
                eprintln!("{}", render::telemetry_line(&count));
                telemetry_counts.push(count);
            }
            if stop.load(Ordering::Relaxed) {
                break 'reps;
            }
        }
    }
    let step_infos: Vec<StepInfo> = steps
        .iter()
        .map(|(s, r)| {
            let mut info = step_info(s, *r, sc.tls, sc.mode);
            if sc.endpoints > 1 {
                info.about.push_str(&endpoints_about(s, sc.endpoints));
            }
            info.not_run = runnable
                .iter()
                .filter_map(|(t, _)| {
                    targets::supports(*t, s)
                        .err()
                        .map(|why| format!("{t}: {why}"))
                })
                .collect();
            info
        })
        .collect();
    results::added_over_direct(&mut runs);
    let names: Vec<String> = runnable.iter().map(|(t, _)| t.to_string()).collect();
    let summary = results::summarize(&step_infos, &names, &runs);
    Ok(Report {
        scenario: sc.name.clone(),
        description: sc.description.clone(),
        date: today(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        },
        cpus: CpuPlan {
            proxy: sc.cpus.proxy.clone(),
            upstream: sc.cpus.upstream.clone(),
            load: sc.cpus.load.clone(),
        },
        repetitions: sc.repetitions,
        warmup_s: sc.warmup.as_secs_f64(),
        duration_s: sc.duration.as_secs_f64(),
        targets: infos,
        calibration,
        steps: step_infos,
        runs,
        summary,
        interrupted: stop.load(Ordering::Relaxed),
        tls: sc.tls,
        mode: sc.mode,
        client: sc.client,
        topology: sc.topology,
        telemetry: telemetry_counts,
        endpoints: sc.endpoints,
    })
}

/// What a step of a scenario with several endpoints does to them and
/// asks of the proxies, for its title.
fn endpoints_about(s: &Step, n: usize) -> String {
    let fault = match &s.fault {
        None => format!(", {n} healthy endpoints"),
        Some(Fault::Latency(l)) => format!(", {n} endpoints, one adds {l} to every response"),
        Some(Fault::Status(c)) => format!(", {n} endpoints, one answers {c} to everything"),
        Some(Fault::Refuse) => format!(", {n} endpoints, one refuses connections"),
    };
    let policy = match s.retry {
        true => ", proxies told to retry on another endpoint and leave a failing one out",
        false => ", each proxy's defaults",
    };
    format!("{fault}{policy}")
}

fn mark_failed(infos: &mut [TargetInfo], t: TargetKind, why: String) {
    if let Some(i) = infos.iter_mut().find(|i| i.name == t.to_string()) {
        i.status = "failed".into();
        i.detail = why;
    }
}

fn step_info(s: &Step, rate: Option<f64>, tls: bool, mode: Mode) -> StepInfo {
    let (kind, about, pipeline) = match &s.kind {
        StepKind::Closed {
            pipeline,
            new_connection,
        } => {
            let mut a = format!("closed loop, {} connections", s.connections);
            if *pipeline > 1 {
                a.push_str(&format!(", {pipeline} pipelined"));
            }
            if *new_connection {
                a.push_str(", new connection per request");
            }
            ("closed", a, *pipeline)
        }
        StepKind::Rate { new_connection, .. } => {
            let conns = match new_connection {
                true => format!("a new connection per request, {} slots", s.connections),
                false => format!("{} connections", s.connections),
            };
            (
                "rate",
                format!("open loop at {:.0} req/s, {conns}", rate.unwrap_or(0.0)),
                1,
            )
        }
        StepKind::Idle { hold } => (
            "idle",
            format!(
                "{} idle keep-alive connections held {:?}",
                s.connections, hold
            ),
            1,
        ),
    };
    let mut about = about;
    if tls {
        about.push_str(", TLS");
        if matches!(
            s.kind,
            StepKind::Closed {
                new_connection: true,
                ..
            }
        ) {
            about.push_str(" (a full handshake per request)");
        }
    }
    if mode == Mode::Tcp {
        about.push_str(", relayed as opaque TCP");
        if matches!(
            s.kind,
            StepKind::Closed {
                new_connection: true,
                ..
            }
        ) {
            about.push_str(" (a new upstream connection per request)");
        }
    }
    match (s.streams, s.grpc, s.upstream) {
        (_, Some(payload), _) => about.push_str(&format!(
            ", gRPC Echo.Unary ({payload} B payload), HTTP/2 to the upstream"
        )),
        (_, None, Proto::H2) => about.push_str(", HTTP/2 to the upstream"),
        _ => {}
    }
    if s.streams > 1 {
        about.push_str(&format!(", {} streams per connection", s.streams));
    }
    if s.body_size > 0 {
        about.push_str(&format!(", {} B request bodies", s.body_size));
    }
    if s.path != "/" {
        about.push_str(&format!(", {}", s.path));
    }
    StepInfo {
        name: s.name.clone(),
        kind: kind.into(),
        about,
        connections: s.connections,
        rate,
        pipeline,
        new_connection: matches!(
            s.kind,
            StepKind::Closed {
                new_connection: true,
                ..
            } | StepKind::Rate {
                new_connection: true,
                ..
            }
        ),
        not_run: Vec::new(),
        fault: s.fault.clone(),
        retry: s.retry,
    }
}

struct Ctx<'a> {
    sc: &'a Scenario,
    bench: &'a Path,
    dir: &'a Path,
    /// Where the proxies send requests (always plain HTTP).
    upstream: SocketAddr,
    /// Where they send HTTP/2 (steps with upstream = "h2", gRPC).
    upstream_h2: Option<SocketAddr>,
    /// Where `direct` sends the load: the upstream, or over TLS the one
    /// that serves TLS.
    direct: SocketAddr,
    tls: Option<&'a TlsRun>,
    /// The SVIDs of a pair scenario: every proxy target is then two
    /// processes, A and B ([`pair`]).
    mesh: Option<&'a MeshFiles>,
    max_conns: usize,
    /// Where `ringmesh-telemetry` sends its spans (HTTP scenarios with it).
    sink: Option<&'a SpanSink>,
    /// Several endpoints (`endpoints` > 1): healthy and faulty ones.
    endpoints: Option<&'a Endpoints>,
}

/// The endpoints of a scenario with several: `healthy` (the first is the
/// scenario's upstream, also `direct`'s) and one faulty endpoint per
/// fault a step names, all started once. A step's proxies get the first
/// N-1 healthy ones and, in the last place, its faulty one (or the last
/// healthy one when the step has no fault).
struct Endpoints {
    healthy: Vec<SocketAddr>,
    faulty: Vec<(Fault, SocketAddr)>,
    /// The other healthy upstreams and the faulty ones (the first healthy
    /// one is the run's `upstream`, stopped by its owner).
    _processes: Vec<Running>,
    /// A refusing endpoint's socket: bound, never listening, so a connect
    /// gets RST and no one else takes the port while the run lasts.
    _refusing: Option<socket2::Socket>,
}

impl Endpoints {
    fn start(
        sc: &Scenario,
        bench: &Path,
        dir: &Path,
        first: SocketAddr,
    ) -> Result<Endpoints, String> {
        let mut healthy = vec![first];
        let mut processes = Vec::new();
        for i in 1..sc.endpoints {
            let up = start_endpoint(sc, bench, dir, &format!("endpoint-{i}"), None)?;
            healthy.push(up.addr);
            processes.push(up);
        }
        let mut faulty: Vec<(Fault, SocketAddr)> = Vec::new();
        let mut refusing = None;
        for f in sc.steps.iter().filter_map(|s| s.fault.as_ref()) {
            if faulty.iter().any(|(g, _)| g == f) {
                continue;
            }
            let addr = match f {
                Fault::Refuse => {
                    let (sock, addr) = refusing_socket()?;
                    refusing = Some(sock);
                    addr
                }
                _ => {
                    let name = format!("endpoint-faulty-{}", faulty.len());
                    let up = start_endpoint(sc, bench, dir, &name, Some(f))?;
                    let addr = up.addr;
                    processes.push(up);
                    addr
                }
            };
            faulty.push((f.clone(), addr));
        }
        Ok(Endpoints {
            healthy,
            faulty,
            _processes: processes,
            _refusing: refusing,
        })
    }

    /// The endpoints the proxies get for `step` (None: calibration, all
    /// healthy).
    fn for_step(&self, step: Option<&Step>) -> Vec<SocketAddr> {
        let mut list = self.healthy.clone();
        let fault = step.and_then(|s| s.fault.as_ref());
        if let Some((_, addr)) = fault.and_then(|f| self.faulty.iter().find(|(g, _)| g == f)) {
            if let Some(last) = list.last_mut() {
                *last = *addr;
            }
        }
        list
    }

    fn describe(&self) -> String {
        let faulty: Vec<String> = self
            .faulty
            .iter()
            .map(|(f, a)| format!("{} on {a}", f.label()))
            .collect();
        format!(
            "endpoints: healthy on {:?}{}",
            self.healthy,
            match faulty.is_empty() {
                true => String::new(),
                false => format!(
                    "; faulty (in the last one's place in its steps): {}",
                    faulty.join(", ")
                ),
            }
        )
    }
}

/// A loopback port that refuses connections: bound, not listening.
fn refusing_socket() -> Result<(socket2::Socket, SocketAddr), String> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .map_err(|e| format!("refusing endpoint: {e}"))?;
    let addr = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("refusing endpoint: no address")?;
    Ok((sock, addr))
}

struct StepRun {
    metrics: results::Metrics,
    load: Option<crate::load::LoadReport>,
}

impl Ctx<'_> {
    /// Start `t`; with several endpoints, configured for `step` (its
    /// faulty endpoint and retry policy).
    fn start(
        &self,
        t: TargetKind,
        bin: Option<&Path>,
        step: Option<&Step>,
    ) -> Result<Running, String> {
        let Some(bin) = bin else {
            return Ok(Running {
                addr: self.direct,
                children: Vec::new(),
                hop: None,
                telemetry: None,
            });
        };
        let dir = self.dir.join(t.to_string());
        let spans_before = self.sink.map_or(0, SpanSink::spans);
        let Some(files) = self.mesh else {
            let endpoints = self.endpoints.map(|e| e.for_step(step));
            let balanced = endpoints.as_deref().map(|e| targets::Balanced {
                endpoints: e,
                retry: step.is_some_and(|s| s.retry),
            });
            let (child, listen, watch) = self.spawn(t, bin, &dir, self.upstream, None, balanced)?;
            let mut running = Running {
                addr: listen,
                children: vec![child],
                hop: None,
                telemetry: watch.map(|w| w.started(spans_before)),
            };
            self.ready(&mut running, &[dir.join("log.txt")])?;
            return Ok(running);
        };
        // A mesh pair: B first, listening before A starts; then A, ready
        // once a request through A and B gets its 2xx from the upstream.
        // A is stopped first (children in order).
        let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
        let (b, b_addr, b_watch) = self.spawn(
            t,
            bin,
            &b_dir,
            self.upstream,
            Some(Role::Server(files)),
            None,
        )?;
        let mut running = Running {
            addr: b_addr,
            children: vec![b],
            hop: None,
            telemetry: b_watch.map(|w| w.started(spans_before)),
        };
        let logs = [a_dir.join("log.txt"), b_dir.join("log.txt")];
        wait_listening(b_addr, &mut running.children[0], Duration::from_secs(15))
            .map_err(|e| with_logs(format!("proxy B: {e}"), &logs[1..]))?;
        let (a, a_addr, a_watch) =
            self.spawn(t, bin, &a_dir, b_addr, Some(Role::Client(files)), None)?;
        if let (Some(all), Some(a)) = (running.telemetry.as_mut(), a_watch) {
            all.admins.insert(0, a.admin);
            all.access_logs.insert(0, a.access_log);
        }
        running.children.insert(0, a);
        running.addr = a_addr;
        running.hop = Some(b_addr);
        self.ready(&mut running, &logs)?;
        Ok(running)
    }

    /// Start one proxy process of `t` with a config of its own in `dir`,
    /// forwarding to `upstream`; the child, its listener's address and,
    /// for `ringmesh-telemetry`, where to read what its telemetry did.
    fn spawn(
        &self,
        t: TargetKind,
        bin: &Path,
        dir: &Path,
        upstream: SocketAddr,
        mesh: Option<Role>,
        balanced: Option<targets::Balanced>,
    ) -> Result<(Child, SocketAddr, Option<ProcessTelemetry>), String> {
        let (listen, admin) = (free_port()?, free_port()?);
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        // A fresh log per run (the directory is the target's in every
        // repetition, and the proxy appends).
        let telemetry = (t == TargetKind::RingmeshTelemetry).then(|| targets::Telemetry {
            access_log: dir.join("access.log"),
            collector: self.sink.map(|s| s.addr),
        });
        if let Some(tel) = &telemetry {
            match std::fs::remove_file(&tel.access_log) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("{}: {e}", tel.access_log.display()))
                }
                _ => {}
            }
        }
        let watch = telemetry.as_ref().map(|tel| ProcessTelemetry {
            admin,
            access_log: tel.access_log.clone(),
        });
        // B serves its SVID; A and single proxies the scenario's TLS, if any.
        let tls = match mesh {
            Some(Role::Server(f)) => Some(&f.server),
            Some(Role::Client(_)) => None,
            None => self.tls.map(|t| &t.files),
        };
        let setup = targets::Setup {
            upstream,
            listen,
            admin,
            cpus: &self.sc.cpus.proxy,
            dir,
            max_connections: self.max_conns,
            fd_limit: rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .maximum
                .unwrap_or(1 << 20),
            tls,
            mode: self.sc.mode,
            client: self.sc.client,
            upstream_h2: self.upstream_h2,
            mesh,
            telemetry,
            balanced,
        };
        let cmd = targets::command(t, bin, &setup).map_err(|e| e.to_string())?;
        let child = targets::spawn_pinned(cmd, &self.sc.cpus.proxy, &dir.join("log.txt"))
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        Ok((child, listen, watch))
    }

    /// After a `ringmesh-telemetry` run: let the cores' sweep (every
    /// second) hand over their last partial buffers, read the proxies'
    /// `/metrics`, stop them (they flush on the way out), then count the
    /// spans the sink got from them and the lines in their logs.
    fn count_telemetry(
        &self,
        mut target: Running,
        repetition: usize,
        load_requests: u64,
    ) -> TelemetryCount {
        let Some(watch) = target.telemetry.take() else {
            return TelemetryCount::default();
        };
        std::thread::sleep(TELEMETRY_SETTLE);
        let mut scrapes = Vec::new();
        for admin in &watch.admins {
            match scrape_metrics(*admin) {
                Ok(text) => scrapes.push(text),
                Err(e) => eprintln!("ringmesh-telemetry: /metrics on {admin}: {e}"),
            }
        }
        let sum = |name: &str| -> Option<u64> {
            (scrapes.len() == watch.admins.len())
                .then(|| {
                    scrapes
                        .iter()
                        .map(|t| results::metric_sum(t, name))
                        .sum::<Option<u64>>()
                })
                .flatten()
        };
        let counted = TelemetryCount {
            repetition,
            target: TargetKind::RingmeshTelemetry.to_string(),
            proxy_requests: sum("ringmesh_requests_total"),
            proxy_connections: sum("ringmesh_downstream_connections_total"),
            load_requests,
            spans_received: None,
            access_log_lines: 0,
            spans_exported: sum("ringmesh_spans_exported_total"),
            spans_dropped: sum("ringmesh_spans_dropped_total"),
            access_log_dropped: sum("ringmesh_access_log_dropped_total"),
        };
        drop(target); // stopped: SIGINT, and its last batches go out
        TelemetryCount {
            spans_received: self.sink.map(|s| s.spans() - watch.spans_before),
            access_log_lines: watch.access_logs.iter().map(|p| count_lines(p)).sum(),
            ..counted
        }
    }

    /// Wait until a request through `running` (its first process) is
    /// answered; on failure, the error ends with each of `logs`' tail.
    fn ready(&self, running: &mut Running, logs: &[PathBuf]) -> Result<(), String> {
        let client = self.tls.map(|t| &t.client);
        targets::wait_ready(
            running.addr,
            client,
            self.sc.client == Proto::H2,
            Duration::from_secs(15),
            running.children.first_mut(),
        )
        .map_err(|e| with_logs(e, logs))
    }

    fn step(&self, target: &Running, step: &Step, rate: Option<f64>) -> Result<StepRun, String> {
        let t = measure::Target {
            addr: target.addr,
            pids: target.pids(),
            tls: self.tls,
            hop: target.hop,
        };
        match step.kind {
            StepKind::Idle { hold } => Ok(StepRun {
                metrics: measure::idle_step(&t, step.connections, hold)?,
                load: None,
            }),
            _ => {
                let (metrics, load) =
                    measure::load_step(self.bench, self.sc, step, &t, rate, self.sc.duration)?;
                Ok(StepRun {
                    metrics,
                    load: Some(load),
                })
            }
        }
    }
}

fn calibrate(
    ctx: &Ctx,
    runnable: &[(TargetKind, Option<PathBuf>)],
    c: &scenario::Calibrate,
    infos: &mut [TargetInfo],
) -> Result<Calibration, String> {
    // Plain requests to the HTTP/1.1 upstream, in the scenario's client
    // protocol (one stream per connection over HTTP/2).
    let step = Step::closed("calibrate", c.connections);
    let mut peak = std::collections::BTreeMap::new();
    let mut failed = Vec::new();
    let proxies: Vec<_> = runnable.iter().filter(|(t, _)| t.is_proxy()).collect();
    let list: Vec<_> = if proxies.is_empty() {
        runnable.iter().collect()
    } else {
        proxies
    };
    for (t, bin) in list {
        let target = match ctx.start(*t, bin.as_deref(), None) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{t} failed to start: {e}");
                failed.push(format!("{t} failed to start: {e}"));
                mark_failed(infos, *t, e);
                continue;
            }
        };
        let mt = measure::Target {
            addr: target.addr,
            pids: target.pids(),
            tls: ctx.tls,
            hop: target.hop,
        };
        let (m, _) = measure::load_step(ctx.bench, ctx.sc, &step, &mt, None, c.duration)?;
        eprintln!(
            "calibrate {t}: {:.0} req/s closed loop, {} connections",
            m.rps, c.connections
        );
        peak.insert(t.to_string(), m.rps);
    }
    let basis = peak.values().copied().fold(f64::INFINITY, f64::min);
    if !basis.is_finite() || basis <= 0.0 {
        let mut why = String::from("calibration measured no throughput on any target");
        for f in failed {
            why.push_str("\n  ");
            why.push_str(&f.replace('\n', "\n    "));
        }
        return Err(why);
    }
    Ok(Calibration {
        peak_rps: peak,
        basis_rps: basis,
    })
}

/// A target process, stopped on drop (SIGINT, a fast shutdown for every
/// target: nginx's master takes its workers down, ringmesh skips the drain
/// delay it keeps on SIGTERM; SIGKILL to the tree if it lingers).
struct Running {
    addr: SocketAddr,
    /// None for `direct`, one per proxy, A then B for a mesh pair
    /// (stopped in this order).
    children: Vec<Child>,
    /// A mesh pair's B, where A's connections go.
    hop: Option<SocketAddr>,
    /// `ringmesh-telemetry`: where to read what its telemetry did.
    telemetry: Option<TelemetryWatch>,
}

/// One `ringmesh-telemetry` process's admin address and access log.
struct ProcessTelemetry {
    admin: SocketAddr,
    access_log: PathBuf,
}

impl ProcessTelemetry {
    fn started(self, spans_before: u64) -> TelemetryWatch {
        TelemetryWatch {
            admins: vec![self.admin],
            access_logs: vec![self.access_log],
            spans_before,
        }
    }
}

/// A running `ringmesh-telemetry` target's processes (A then B in a
/// pair) and the sink's span count when it started.
struct TelemetryWatch {
    admins: Vec<SocketAddr>,
    access_logs: Vec<PathBuf>,
    spans_before: u64,
}

/// Longer than the proxy's sweep (1 s), which hands partly filled log and
/// span buffers to their threads.
const TELEMETRY_SETTLE: Duration = Duration::from_millis(1500);

/// The admin server's `/metrics` (HTTP/1.0: the body unchunked, then the
/// connection closes).
fn scrape_metrics(admin: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: admin\r\n\r\n")?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let text = String::from_utf8_lossy(&all);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP response"))?;
    if !head.starts_with("HTTP/1.") || head.split_ascii_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "answered {:?}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_string())
}

/// Newlines in `path` (0 when it does not exist: nothing was logged).
fn count_lines(path: &Path) -> u64 {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    lines
}

impl Running {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            stop_child(child);
        }
    }
}

/// `why`, followed by the last lines of each log.
fn with_logs(why: String, logs: &[PathBuf]) -> String {
    let mut out = why;
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        out.push_str(&format!("; {} ends:\n{}", log.display(), tail.join("\n")));
    }
    out
}

/// Wait until `addr` accepts a TCP connection; give up at once if
/// `child`, the process that should listen there, exits.
fn wait_listening(addr: SocketAddr, child: &mut Child, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited ({status}) before listening on {addr}"));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not listening on {addr} after {limit:?}"))
}

fn stop_child(child: &mut Child) {
    // Already reaped (it exited on its own): its pid may be another
    // process's by now, so nothing is signalled.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let tree = crate::procfs::tree(child.id());
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in tree {
        if let Some(pid) = rustix::process::Pid::from_raw(p as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = child.wait();
}

/// Start the test upstream: plain HTTP, or serving TLS with `tls`; with
/// `h2`, HTTP/2 too (h2c, or h2 by ALPN).
fn start_upstream(
    sc: &Scenario,
    bench: &Path,
    dir: &Path,
    tls: Option<&crate::tls::CertFiles>,
    h2: bool,
) -> Result<Running, String> {
    start_upstream_as(sc, bench, dir, tls, h2, None)
}

/// One more plain HTTP/1.1 endpoint of a scenario with several, healthy
/// or with `fault` (its latency in place of the scenario's, or its
/// status), logging to `<name>.log`.
fn start_endpoint(
    sc: &Scenario,
    bench: &Path,
    dir: &Path,
    name: &str,
    fault: Option<&Fault>,
) -> Result<Running, String> {
    start_upstream_as(sc, bench, dir, None, false, Some((name, fault)))
}

fn start_upstream_as(
    sc: &Scenario,
    bench: &Path,
    dir: &Path,
    tls: Option<&crate::tls::CertFiles>,
    h2: bool,
    endpoint: Option<(&str, Option<&Fault>)>,
) -> Result<Running, String> {
    let addr = free_port()?;
    let mut cmd = Command::new(bench);
    let cpus = sc
        .cpus
        .upstream
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    cmd.args([
        "upstream",
        "--listen",
        &addr.to_string(),
        "--workers",
        &sc.upstream.workers.to_string(),
        "--cpus",
        &cpus,
    ]);
    cmd.args(["--body-size", &sc.upstream.body_size.to_string()]);
    let fault = endpoint.and_then(|(_, f)| f);
    match (fault, &sc.upstream.latency) {
        (Some(Fault::Latency(l)), _) | (_, Some(l)) => {
            cmd.args(["--latency", l]);
        }
        _ => {}
    }
    if let Some(Fault::Status(code)) = fault {
        cmd.args(["--status", &code.to_string()]);
    }
    if h2 {
        cmd.arg("--h2");
    }
    let endpoint_log = endpoint.map(|(name, _)| format!("{name}.log"));
    let (log, what) = match (tls, h2, &endpoint_log) {
        (_, _, Some(log)) => (log.as_str(), "endpoint"),
        (Some(_), false, _) => ("upstream-tls.log", "TLS upstream"),
        (Some(_), true, _) => ("upstream-tls-h2.log", "TLS upstream (h2)"),
        (None, false, _) => ("upstream.log", "upstream"),
        (None, true, _) => ("upstream-h2.log", "h2 upstream"),
    };
    let client = match tls {
        Some(files) => {
            cmd.arg("--tls-cert").arg(&files.chain);
            cmd.arg("--tls-key").arg(&files.key);
            Some(crate::tls::ClientTls::from_ca_file(
                &files.ca,
                crate::tls::DEFAULT_SNI,
                false,
            )?)
        }
        None => None,
    };
    let child = targets::spawn_pinned(cmd, &sc.cpus.upstream, &dir.join(log))
        .map_err(|e| format!("{what}: {e}"))?;
    let mut running = Running {
        addr,
        children: vec![child],
        hop: None,
        telemetry: None,
    };
    // One that answers 5xx to everything is ready once it listens.
    if let Some(Fault::Status(_)) = fault {
        wait_listening(addr, &mut running.children[0], Duration::from_secs(10))
            .map_err(|e| format!("{what}: {e}"))?;
        return Ok(running);
    }
    targets::wait_ready(
        addr,
        client.as_ref(),
        false,
        Duration::from_secs(10),
        running.children.first_mut(),
    )
    .map_err(|e| format!("{what}: {e}"))?;
    Ok(running)
}

fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// Idle-connection steps need thousands of descriptors, here and in the
/// targets (which inherit the limit).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    );
}

/// A scratch directory for configs and logs, removed at the end.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Result<Workdir, String> {
        let p = std::env::temp_dir().join(format!("ringmesh-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Workdir(p))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Today's date (UTC), YYYY-MM-DD.
pub fn today() -> String {
    humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_string()
}

fn write_outputs(report: &Report, out: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let base = out.join(format!("{}-{}", report.scenario, report.date));
    let files = [
        (
            base.with_extension("json"),
            serde_json::to_string_pretty(report).map_err(|e| e.to_string())?,
        ),
        (base.with_extension("md"), render::markdown(report)),
        (base.with_extension("svg"), svg::chart(report)),
    ];
    let mut written = Vec::new();
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_steps_say_they_are_relayed() {
        let step = Step {
            kind: StepKind::Closed {
                pipeline: 1,
                new_connection: true,
            },
            ..Step::closed("new", 10)
        };
        let tcp = step_info(&step, None, false, Mode::Tcp);
        assert_eq!(
            tcp.about,
            "closed loop, 10 connections, new connection per request, relayed as opaque TCP (a new upstream connection per request)"
        );
        let http = step_info(&step, None, false, Mode::Http);
        assert_eq!(
            http.about,
            "closed loop, 10 connections, new connection per request"
        );
    }
}
