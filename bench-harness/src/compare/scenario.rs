//! Scenario files (`perf/scenarios/*.toml`): parsed into checked types at
//! the edge, every problem reported with the file and the field.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::targets::TargetKind;

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub targets: Vec<TargetKind>,
    pub repetitions: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub cpus: Cpus,
    pub upstream: UpstreamSpec,
    pub calibrate: Option<Calibrate>,
    pub steps: Vec<Step>,
    /// Every proxy terminates TLS on its listener (certificates made per
    /// run); the upstream behind it stays plain HTTP.
    pub tls: bool,
    /// What the proxies do with a connection: serve HTTP, or relay it as
    /// opaque TCP (`mode = "tcp"`).
    pub mode: Mode,
    /// What the load speaks to the proxies (`client = "h2"`: h2c with
    /// prior knowledge, or h2 by ALPN with `tls`).
    pub client: Proto,
    /// One proxy per target, or a mesh hop: two proxies talking mTLS
    /// (`topology = "pair"`, [`super::pair`]).
    pub topology: Topology,
    /// Upstream endpoints behind every proxy (`endpoints = 3`): each a
    /// test upstream of its own, balanced by each proxy's load-aware
    /// balancer. With more than one, a step may slow or fail one of them
    /// ([`Step::fault`]), and each proxy target starts fresh for every
    /// step (its config depends on the step).
    pub endpoints: usize,
}

impl Scenario {
    /// Several endpoints: each step gets a fresh proxy configured for it.
    pub fn per_step_targets(&self) -> bool {
        self.endpoints > 1
    }
}

/// What one endpoint (the last) does wrong during a step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Adds this latency (`"50ms"`, or a `"1ms..5ms"` range) to every
    /// response.
    Latency(String),
    /// Answers every request with this status (500..599).
    Status(u16),
    /// Refuses connections: its port is bound but not listening.
    Refuse,
}

impl Fault {
    /// A short name for tables: `+50ms`, `503`, `refused`.
    pub fn label(&self) -> String {
        match self {
            Fault::Latency(l) => format!("+{l}"),
            Fault::Status(s) => s.to_string(),
            Fault::Refuse => "refused".into(),
        }
    }

    /// The endpoint fails requests (as opposed to slowing them down).
    pub fn fails(&self) -> bool {
        !matches!(self, Fault::Latency(_))
    }
}

/// A scenario's `topology`: what stands between the load and the upstream
/// for each proxy target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One proxy: load -> proxy -> upstream.
    #[default]
    Single,
    /// The mesh hop: load -> proxy A (plaintext HTTP/1.1 listener, the
    /// client's sidecar) -> mTLS -> proxy B (the server's sidecar) ->
    /// upstream, both proxies on the proxy CPUs.
    Pair,
}

/// An HTTP version, as a scenario names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    H1,
    H2,
}

/// A scenario's `mode`: how every proxy target handles its listener's
/// connections. The load speaks HTTP/1.1 either way, so every step kind
/// means the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An HTTP proxy: requests parsed, routed, upstream connections pooled.
    #[default]
    Http,
    /// An L4 relay: each client connection gets an upstream connection of
    /// its own and the bytes go through unparsed.
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpus {
    pub proxy: Vec<usize>,
    pub upstream: Vec<usize>,
    pub load: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub workers: usize,
    pub body_size: usize,
    pub latency: Option<String>,
}

/// Measures each target's closed-loop peak before the repetitions; steps
/// with `peak_fraction` run at that fraction of the lowest proxy's peak,
/// the same rate for every target.
#[derive(Debug, Clone)]
pub struct Calibrate {
    pub connections: usize,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub connections: usize,
    pub threads: usize,
    pub path: String,
    pub method: String,
    pub body_size: usize,
    /// What the proxies speak to the upstream in this step: the plain
    /// HTTP/1.1 upstream, or the one serving h2c (`upstream = "h2"`).
    pub upstream: Proto,
    /// HTTP/2 streams per connection (1 over HTTP/1.1).
    pub streams: usize,
    /// gRPC Echo.Unary calls with this many payload bytes (HTTP/2 both
    /// ways), instead of `method` and `path`.
    pub grpc: Option<usize>,
    /// What the last of several endpoints does wrong in this step.
    pub fault: Option<Fault>,
    /// Every proxy retries a failed try once on another endpoint and takes
    /// a failing endpoint out for a while (passive health); without it,
    /// each proxy's defaults (`targets.rs` says exactly what each gets).
    pub retry: bool,
}

/// Where the proxies send a plain (not gRPC) request meant for the
/// HTTP/2 upstream: its path under this prefix.
pub const H2_UPSTREAM_PREFIX: &str = "/h2";

impl Step {
    /// The path the load asks for: under [`H2_UPSTREAM_PREFIX`] when the
    /// step's upstream is HTTP/2 (gRPC has its own).
    pub fn load_path(&self) -> String {
        match (self.upstream, self.grpc) {
            (Proto::H2, None) => format!("{H2_UPSTREAM_PREFIX}{}", self.path),
            _ => self.path.clone(),
        }
    }

    /// A step with the defaults a scenario file would give it.
    pub fn closed(name: &str, connections: usize) -> Step {
        Step {
            name: name.into(),
            kind: StepKind::Closed {
                pipeline: 1,
                new_connection: false,
            },
            connections,
            threads: 1,
            path: "/".into(),
            method: "GET".into(),
            body_size: 0,
            upstream: Proto::H1,
            streams: 1,
            grpc: None,
            fault: None,
            retry: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Closed {
        pipeline: usize,
        new_connection: bool,
    },
    /// An open loop at a fixed rate; with `new_connection`, each request
    /// on a connection of its own (connect and close in its latency).
    Rate { rate: Rate, new_connection: bool },
    /// Open `connections` keep-alive connections, one request each, hold
    /// them idle and measure the target's memory.
    Idle { hold: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Fixed(f64),
    OfPeak(f64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    #[serde(default)]
    description: String,
    targets: Vec<String>,
    #[serde(default = "three")]
    repetitions: usize,
    #[serde(default = "two_s")]
    warmup: String,
    #[serde(default = "eight_s")]
    duration: String,
    cpus: RawCpus,
    #[serde(default)]
    upstream: RawUpstream,
    calibrate: Option<RawCalibrate>,
    #[serde(rename = "step")]
    steps: Vec<RawStep>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    client: Proto,
    #[serde(default)]
    topology: Topology,
    #[serde(default = "one")]
    endpoints: usize,
}

fn three() -> usize {
    3
}
fn two_s() -> String {
    "2s".into()
}
fn eight_s() -> String {
    "8s".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCpus {
    proxy: Vec<usize>,
    upstream: Vec<usize>,
    load: Vec<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    workers: Option<usize>,
    #[serde(default)]
    body_size: usize,
    latency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalibrate {
    connections: usize,
    duration: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    #[serde(default = "closed")]
    kind: String,
    connections: usize,
    #[serde(default = "one")]
    threads: usize,
    #[serde(default = "one")]
    pipeline: usize,
    #[serde(default)]
    new_connection: bool,
    rate: Option<f64>,
    peak_fraction: Option<f64>,
    hold: Option<String>,
    #[serde(default = "slash")]
    path: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    body_size: usize,
    upstream: Option<Proto>,
    #[serde(default = "one")]
    streams: usize,
    #[serde(default)]
    grpc: bool,
    grpc_payload: Option<usize>,
    fault: Option<RawFault>,
    #[serde(default)]
    retry: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    latency: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    refuse: bool,
}

/// Payload bytes of a gRPC step's calls unless it says.
const GRPC_PAYLOAD: usize = 64;

fn closed() -> String {
    "closed".into()
}
fn one() -> usize {
    1
}
fn slash() -> String {
    "/".into()
}
fn get() -> String {
    "GET".into()
}

/// Read and check a scenario file.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario");
    parse(&text, stem).map_err(|errs| {
        let file = path.display();
        errs.iter()
            .map(|e| format!("{file}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Parse scenario text; all semantic errors at once, each naming its field.
pub fn parse(text: &str, default_name: &str) -> Result<Scenario, Vec<String>> {
    let raw: RawScenario =
        toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
    let mut errs = Vec::new();
    let dur = |errs: &mut Vec<String>, field: &str, v: &str| match humantime::parse_duration(v) {
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(format!(
                "{field}: {v:?} is not a duration ({e}); write e.g. \"8s\" or \"500ms\""
            ));
            None
        }
    };
    let warmup = dur(&mut errs, "warmup", &raw.warmup);
    let duration = dur(&mut errs, "duration", &raw.duration);
    let calibrate = raw.calibrate.as_ref().map(|c| Calibrate {
        connections: c.connections,
        duration: dur(&mut errs, "calibrate.duration", &c.duration)
            .unwrap_or(Duration::from_secs(3)),
    });
    let mut steps = Vec::new();
    for (i, s) in raw.steps.iter().enumerate() {
        let at = format!("step[{i}] ({})", s.name);
        let hold = s
            .hold
            .as_deref()
            .map(|h| dur(&mut errs, &format!("{at}.hold"), h));
        errs.extend(step_protocols(s, &raw, &at));
        let fault = step_fault(s, raw.endpoints, &at, &mut errs);
        match step(s, hold.flatten(), &at, raw.calibrate.is_some()) {
            Ok(st) => steps.push(Step { fault, ..st }),
            Err(e) => errs.extend(e),
        }
    }
    let mut targets = Vec::new();
    for (i, t) in raw.targets.iter().enumerate() {
        match t.parse::<TargetKind>() {
            Ok(k) if targets.contains(&k) => {
                errs.push(format!("targets[{i}]: {t:?} is listed twice"))
            }
            Ok(k) => targets.push(k),
            Err(e) => errs.push(format!("targets[{i}]: {e}")),
        }
    }
    if targets.is_empty() {
        errs.push("targets: list at least one target".into());
    }
    if steps.is_empty() && raw.steps.is_empty() {
        errs.push("step: a scenario needs at least one [[step]]".into());
    }
    let mut names: Vec<&str> = raw.steps.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        errs.push(format!("step: two steps are named {:?}", w[0]));
    }
    if raw.repetitions == 0 {
        errs.push("repetitions: must be at least 1".into());
    }
    for (field, list) in [
        ("cpus.proxy", &raw.cpus.proxy),
        ("cpus.upstream", &raw.cpus.upstream),
        ("cpus.load", &raw.cpus.load),
    ] {
        if list.is_empty() {
            errs.push(format!("{field}: list at least one CPU"));
        }
        let available = crate::runtime::available_cpus();
        for c in list {
            if !available.contains(c) {
                errs.push(format!(
                    "{field}: CPU {c} is not available here (this process may use {available:?})"
                ));
            }
        }
    }
    if raw.upstream.workers == Some(0) {
        errs.push("upstream.workers: must be at least 1".into());
    }
    if let Some(l) = &raw.upstream.latency {
        if let Err(e) = l.parse::<crate::upstream::AddedLatency>() {
            errs.push(format!("upstream.latency: {e}"));
        }
    }
    if raw.mode == Mode::Tcp && raw.tls {
        errs.push(
            "mode: \"tcp\" with tls = true is not supported yet (a relay in front of TLS, or TLS in front of a relay); drop one"
                .into(),
        );
    }
    if raw.mode == Mode::Tcp && raw.client == Proto::H2 {
        errs.push(
            "client: \"h2\" with mode = \"tcp\" is not supported (a relay passes bytes; the load would speak h2 to the upstream itself)"
                .into(),
        );
    }
    errs.extend(pair_limits(&raw));
    errs.extend(endpoint_limits(&raw));
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Scenario {
        name: raw.name.unwrap_or_else(|| default_name.to_string()),
        description: raw.description,
        targets,
        repetitions: raw.repetitions,
        warmup: warmup.unwrap_or_default(),
        duration: duration.unwrap_or_default(),
        upstream: UpstreamSpec {
            workers: raw.upstream.workers.unwrap_or(raw.cpus.upstream.len()),
            body_size: raw.upstream.body_size,
            latency: raw.upstream.latency,
        },
        cpus: Cpus {
            proxy: raw.cpus.proxy,
            upstream: raw.cpus.upstream,
            load: raw.cpus.load,
        },
        calibrate,
        steps,
        tls: raw.tls,
        mode: raw.mode,
        client: raw.client,
        topology: raw.topology,
        endpoints: raw.endpoints,
    })
}

/// What several endpoints do not combine with yet: each proxy's
/// multi-endpoint config is written for plain HTTP/1.1 on both sides.
fn endpoint_limits(raw: &RawScenario) -> Vec<String> {
    let mut errs = Vec::new();
    if raw.endpoints == 0 {
        errs.push("endpoints: must be at least 1".into());
    }
    if raw.endpoints <= 1 {
        return errs;
    }
    let n = raw.endpoints;
    if raw.tls {
        errs.push(format!(
            "endpoints: {n} endpoints with tls = true is not supported yet"
        ));
    }
    if raw.mode == Mode::Tcp {
        errs.push(format!(
            "endpoints: {n} endpoints with mode = \"tcp\" is not supported yet"
        ));
    }
    if raw.client == Proto::H2 {
        errs.push(format!(
            "endpoints: {n} endpoints with client = \"h2\" is not supported yet"
        ));
    }
    if raw.topology == Topology::Pair {
        errs.push(format!(
            "endpoints: {n} endpoints with topology = \"pair\" is not supported yet"
        ));
    }
    for (i, s) in raw.steps.iter().enumerate() {
        if s.upstream == Some(Proto::H2) || s.grpc {
            errs.push(format!(
                "step[{i}] ({}).upstream: with several endpoints every step goes to the HTTP/1.1 upstreams",
                s.name
            ));
        }
    }
    errs
}

/// A step's `fault` (one of `latency`, `status`, `refuse`) and whether
/// it and `retry` fit the scenario's endpoints.
fn step_fault(s: &RawStep, endpoints: usize, at: &str, errs: &mut Vec<String>) -> Option<Fault> {
    if s.retry && endpoints < 2 {
        errs.push(format!(
            "{at}.retry: retrying on another endpoint needs endpoints = 2 or more"
        ));
    }
    let f = s.fault.as_ref()?;
    let mut set = Vec::new();
    if let Some(l) = &f.latency {
        match l.parse::<crate::upstream::AddedLatency>() {
            Ok(_) => set.push(Fault::Latency(l.clone())),
            Err(e) => errs.push(format!("{at}.fault.latency: {e}")),
        }
    }
    if let Some(code) = f.status {
        match code {
            500..=599 => set.push(Fault::Status(code)),
            _ => errs.push(format!(
                "{at}.fault.status: {code} is not a failure; give 500..599"
            )),
        }
    }
    if f.refuse {
        set.push(Fault::Refuse);
    }
    if endpoints < 2 {
        errs.push(format!(
            "{at}.fault: one endpoint of several is faulty; set endpoints = 2 or more"
        ));
        return None;
    }
    match (f.latency.is_some() as u8) + (f.status.is_some() as u8) + (f.refuse as u8) {
        1 => set.pop(),
        0 => {
            errs.push(format!(
                "{at}.fault: give one of latency = \"50ms\", status = 503, refuse = true"
            ));
            None
        }
        _ => {
            errs.push(format!(
                "{at}.fault: one of latency, status, refuse, not several"
            ));
            None
        }
    }
}

/// What a pair (mesh hop) scenario does not combine with yet: the load
/// speaks plain HTTP/1.1 to proxy A, and B to the plain HTTP/1.1 upstream.
fn pair_limits(raw: &RawScenario) -> Vec<String> {
    let mut errs = Vec::new();
    if raw.topology != Topology::Pair {
        return errs;
    }
    if raw.tls {
        errs.push(
            "tls: a pair's TLS is the mTLS between its proxies; the load speaks plaintext to proxy A (drop tls = true)"
                .into(),
        );
    }
    if raw.mode == Mode::Tcp {
        errs.push("mode: \"tcp\" with topology = \"pair\" is not supported (ringmesh carries only HTTP between mesh proxies yet)".into());
    }
    if raw.client == Proto::H2 {
        errs.push(
            "client: \"h2\" with topology = \"pair\" is not supported yet (proxy A's listener is HTTP/1.1)"
                .into(),
        );
    }
    for (i, s) in raw.steps.iter().enumerate() {
        if s.upstream == Some(Proto::H2) {
            errs.push(format!(
                "step[{i}] ({}).upstream: a pair's proxy B goes to the HTTP/1.1 upstream only",
                s.name
            ));
        }
    }
    errs
}

/// What a step's HTTP versions allow, given the scenario's.
fn step_protocols(s: &RawStep, raw: &RawScenario, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let h2 = raw.client == Proto::H2;
    if !h2 {
        if s.streams > 1 {
            errs.push(format!(
                "{at}.streams: HTTP/2 streams need client = \"h2\" (HTTP/1.1: pipeline)"
            ));
        }
        if s.grpc {
            errs.push(format!("{at}.grpc: gRPC needs client = \"h2\""));
        }
    } else {
        if s.kind == "idle" {
            errs.push(format!(
                "{at}.kind: idle steps with client = \"h2\" are not supported yet"
            ));
        }
        if s.pipeline > 1 {
            errs.push(format!(
                "{at}.pipeline: HTTP/1.1's; over HTTP/2 use streams"
            ));
        }
        if s.new_connection {
            errs.push(format!(
                "{at}.new_connection: not supported with client = \"h2\" yet"
            ));
        }
    }
    if s.streams == 0 {
        errs.push(format!("{at}.streams: must be at least 1"));
    }
    if s.grpc && s.upstream == Some(Proto::H1) {
        errs.push(format!(
            "{at}.upstream: gRPC goes to the HTTP/2 upstream; drop upstream = \"h1\""
        ));
    }
    if s.grpc && (s.body_size > 0 || s.method != "GET" || s.path != "/") {
        errs.push(format!(
            "{at}.grpc: calls Echo.Unary (POST, its own path, grpc_payload bytes); drop method, path and body_size"
        ));
    }
    if s.grpc_payload.is_some() && !s.grpc {
        errs.push(format!("{at}.grpc_payload: applies with grpc = true only"));
    }
    if raw.mode == Mode::Tcp && (s.upstream == Some(Proto::H2) || s.grpc) {
        errs.push(format!(
            "{at}.upstream: a TCP relay goes to the HTTP/1.1 upstream only"
        ));
    }
    errs
}

fn step(
    s: &RawStep,
    hold: Option<Duration>,
    at: &str,
    calibrated: bool,
) -> Result<Step, Vec<String>> {
    let mut errs = Vec::new();
    if s.connections == 0 {
        errs.push(format!("{at}.connections: must be at least 1"));
    }
    if s.threads == 0 {
        errs.push(format!("{at}.threads: must be at least 1"));
    }
    if s.pipeline == 0 {
        errs.push(format!("{at}.pipeline: must be at least 1"));
    }
    let only = |errs: &mut Vec<String>, field: &str, set: bool, kind: &str| {
        if set {
            errs.push(format!("{at}.{field}: applies to kind = \"{kind}\" only"));
        }
    };
    let kind = match s.kind.as_str() {
        "closed" => {
            only(&mut errs, "rate", s.rate.is_some(), "rate");
            only(
                &mut errs,
                "peak_fraction",
                s.peak_fraction.is_some(),
                "rate",
            );
            only(&mut errs, "hold", s.hold.is_some(), "idle");
            if s.pipeline > 1 && s.new_connection {
                errs.push(format!(
                    "{at}: pipeline and new_connection exclude each other"
                ));
            }
            StepKind::Closed {
                pipeline: s.pipeline,
                new_connection: s.new_connection,
            }
        }
        "rate" => {
            only(&mut errs, "pipeline", s.pipeline > 1, "closed");
            only(&mut errs, "hold", s.hold.is_some(), "idle");
            let rate = match (s.rate, s.peak_fraction) {
                (Some(r), None) if r > 0.0 => Rate::Fixed(r),
                (None, Some(f)) if f > 0.0 && f <= 1.0 => {
                    if !calibrated {
                        errs.push(format!(
                            "{at}.peak_fraction: needs a [calibrate] section to measure the peak"
                        ));
                    }
                    Rate::OfPeak(f)
                }
                (Some(_), Some(_)) => {
                    errs.push(format!("{at}: set rate or peak_fraction, not both"));
                    Rate::Fixed(1.0)
                }
                (None, None) => {
                    errs.push(format!(
                        "{at}: kind = \"rate\" needs rate (req/s) or peak_fraction (0..1]"
                    ));
                    Rate::Fixed(1.0)
                }
                (Some(r), None) => {
                    errs.push(format!("{at}.rate: must be above 0, got {r}"));
                    Rate::Fixed(1.0)
                }
                (None, Some(f)) => {
                    errs.push(format!("{at}.peak_fraction: must be in (0, 1], got {f}"));
                    Rate::Fixed(1.0)
                }
            };
            StepKind::Rate {
                rate,
                new_connection: s.new_connection,
            }
        }
        "idle" => {
            only(&mut errs, "rate", s.rate.is_some(), "rate");
            only(&mut errs, "pipeline", s.pipeline > 1, "closed");
            StepKind::Idle {
                hold: hold.unwrap_or(Duration::from_secs(3)),
            }
        }
        other => {
            let hint = super::did_you_mean(other, &["closed", "rate", "idle"]);
            errs.push(format!(
                "{at}.kind: unknown kind {other:?}{hint} (expected closed, rate or idle)"
            ));
            StepKind::Closed {
                pipeline: 1,
                new_connection: false,
            }
        }
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Step {
        name: s.name.clone(),
        kind,
        connections: s.connections,
        threads: s.threads,
        path: s.path.clone(),
        method: s.method.clone(),
        body_size: s.body_size,
        upstream: match s.grpc {
            true => Proto::H2,
            false => s.upstream.unwrap_or_default(),
        },
        streams: s.streams,
        grpc: s.grpc.then(|| s.grpc_payload.unwrap_or(GRPC_PAYLOAD)),
        fault: None,
        retry: s.retry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "test"
targets = ["direct", "ringmesh"]
repetitions = 2
duration = "1s"
cpus = { proxy = [0], upstream = [0], load = [0] }
calibrate = { connections = 4, duration = "1s" }

[[step]]
name = "c10"
connections = 10

[[step]]
name = "half"
kind = "rate"
connections = 8
peak_fraction = 0.5

[[step]]
name = "idle"
kind = "idle"
connections = 100
hold = "2s"
"#;

    #[test]
    fn a_good_scenario() {
        let s = parse(GOOD, "t").unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.targets, vec![TargetKind::Direct, TargetKind::Ringmesh]);
        assert_eq!(s.repetitions, 2);
        assert_eq!(s.warmup, Duration::from_secs(2));
        assert_eq!(
            s.steps[1].kind,
            StepKind::Rate {
                rate: Rate::OfPeak(0.5),
                new_connection: false
            }
        );
        assert_eq!(
            s.steps[2].kind,
            StepKind::Idle {
                hold: Duration::from_secs(2)
            }
        );
        assert_eq!(s.upstream.workers, 1);
        assert!(!s.tls, "plain unless asked");
        let s = parse(&format!("tls = true\n{GOOD}"), "t").unwrap();
        assert!(s.tls);
        let err = parse(&format!("tls = \"yes\"\n{GOOD}"), "t").unwrap_err();
        assert!(err[0].contains("tls"), "{err:?}");
    }

    #[test]
    fn mode_is_http_unless_tcp_is_asked() {
        assert_eq!(parse(GOOD, "t").unwrap().mode, Mode::Http);
        let s = parse(&format!("mode = \"tcp\"\n{GOOD}"), "t").unwrap();
        assert_eq!(s.mode, Mode::Tcp);
        assert_eq!(
            parse(&format!("mode = \"http\"\n{GOOD}"), "t")
                .unwrap()
                .mode,
            Mode::Http
        );
        // An unknown mode names its line and the known ones.
        let err = parse(&format!("mode = \"tpc\"\n{GOOD}"), "t").unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        for want in ["line 1", "mode", "tpc", "`http`", "`tcp`"] {
            assert!(err[0].contains(want), "{want}: {err:?}");
        }
        let err = parse(&format!("mode = 4\n{GOOD}"), "t").unwrap_err();
        assert!(err[0].contains("line 1"), "{err:?}");
        // Not with TLS, for now: said with the rest of the errors.
        let err = parse(
            &format!(
                "mode = \"tcp\"\ntls = true\n{}",
                GOOD.replace("= 2\n", "= 0\n")
            ),
            "t",
        )
        .unwrap_err();
        let all = err.join("\n");
        assert!(
            all.contains("mode: \"tcp\" with tls = true is not supported yet"),
            "{all}"
        );
        assert!(all.contains("repetitions: must be at least 1"), "{all}");
        assert!(parse(&format!("mode = \"http\"\ntls = true\n{GOOD}"), "t").is_ok());
    }

    #[test]
    fn every_error_at_once_with_its_field() {
        let bad = GOOD
            .replace("\"ringmesh\"]", "\"ringmsh\", \"direct\"]")
            .replace("duration = \"1s\"\ncpus", "duration = \"soon\"\ncpus")
            .replace("peak_fraction = 0.5", "peak_fraction = 2.0")
            .replace("kind = \"idle\"", "kind = \"idel\"");
        let errs = parse(&bad, "t").unwrap_err();
        let all = errs.join("\n");
        assert!(
            all.contains("targets[1]: unknown target \"ringmsh\" (did you mean \"ringmesh\"?)"),
            "{all}"
        );
        assert!(
            all.contains("targets[2]: \"direct\" is listed twice"),
            "{all}"
        );
        assert!(
            all.contains("duration: \"soon\" is not a duration"),
            "{all}"
        );
        assert!(
            all.contains("step[1] (half).peak_fraction: must be in (0, 1], got 2"),
            "{all}"
        );
        assert!(
            all.contains("step[2] (idle).kind: unknown kind \"idel\" (did you mean \"idle\"?)"),
            "{all}"
        );
        assert_eq!(errs.len(), 5, "{all}");
    }

    #[test]
    fn syntax_and_unknown_fields_name_the_line() {
        let err = parse(&GOOD.replace("connections = 10", "conections = 10"), "t").unwrap_err();
        assert!(err[0].contains("line 11"), "{err:?}");
        assert!(err[0].contains("conections"), "{err:?}");
        let err = parse("targets = [", "t").unwrap_err();
        assert!(err[0].contains("line 1"), "{err:?}");
    }

    #[test]
    fn peak_fraction_needs_calibration() {
        let err = parse(
            &GOOD.replace("calibrate = { connections = 4, duration = \"1s\" }", ""),
            "t",
        )
        .unwrap_err();
        assert!(
            err.join("\n").contains("needs a [calibrate] section"),
            "{err:?}"
        );
    }

    #[test]
    fn h2_clients_upstreams_and_grpc() {
        let s = parse(GOOD, "t").unwrap();
        assert_eq!(s.client, Proto::H1);
        assert_eq!((s.steps[0].upstream, s.steps[0].streams), (Proto::H1, 1));
        let h2 = r#"
client = "h2"
targets = ["ringmesh", "nginx"]
cpus = { proxy = [0], upstream = [0], load = [0] }
[[step]]
name = "h2-h1"
connections = 4
[[step]]
name = "h2-h2"
connections = 4
upstream = "h2"
path = "/size/10"
[[step]]
name = "grpc"
kind = "rate"
rate = 100
connections = 4
grpc = true
[[step]]
name = "streams"
connections = 1
streams = 100
"#;
        let s = parse(h2, "t").unwrap();
        assert_eq!(s.client, Proto::H2);
        assert_eq!(s.steps[0].load_path(), "/");
        assert_eq!(s.steps[1].upstream, Proto::H2);
        assert_eq!(s.steps[1].load_path(), "/h2/size/10");
        assert_eq!(
            (s.steps[2].upstream, s.steps[2].grpc),
            (Proto::H2, Some(GRPC_PAYLOAD))
        );
        assert_eq!(s.steps[3].streams, 100);
        // What HTTP/1.1 clients cannot do, and what h2 steps cannot yet.
        let errs = parse(&h2.replace("client = \"h2\"", ""), "t")
            .unwrap_err()
            .join("\n");
        assert!(
            errs.contains("step[2] (grpc).grpc: gRPC needs client = \"h2\""),
            "{errs}"
        );
        assert!(
            errs.contains("step[3] (streams).streams: HTTP/2 streams need"),
            "{errs}"
        );
        let errs = parse(
            &format!(
                "{h2}[[step]]\nname = \"idle\"\nkind = \"idle\"\nconnections = 5\n[[step]]\nname = \"g\"\nconnections = 1\ngrpc = true\nupstream = \"h1\"\n"
            ),
            "t",
        )
        .unwrap_err()
        .join("\n");
        assert!(
            errs.contains("idle steps with client = \"h2\" are not supported"),
            "{errs}"
        );
        assert!(
            errs.contains("step[5] (g).upstream: gRPC goes to the HTTP/2 upstream"),
            "{errs}"
        );
        let errs = parse(&format!("mode = \"tcp\"\n{h2}"), "t").unwrap_err();
        assert!(
            errs.join("\n")
                .contains("client: \"h2\" with mode = \"tcp\""),
            "{errs:?}"
        );
    }

    #[test]
    fn pairs_and_new_connections_at_a_fixed_rate() {
        assert_eq!(parse(GOOD, "t").unwrap().topology, Topology::Single);
        let pair = format!(
            "topology = \"pair\"\n{GOOD}[[step]]\nname = \"fresh\"\nkind = \"rate\"\nrate = 500\nconnections = 8\nnew_connection = true\n"
        );
        let s = parse(&pair, "t").unwrap();
        assert_eq!(s.topology, Topology::Pair);
        assert_eq!(
            s.steps[3].kind,
            StepKind::Rate {
                rate: Rate::Fixed(500.0),
                new_connection: true
            }
        );
        // What a pair does not combine with, all said at once.
        let errs = parse(&format!("tls = true\nclient = \"h2\"\n{pair}"), "t")
            .unwrap_err()
            .join("\n");
        assert!(
            errs.contains("tls: a pair's TLS is the mTLS between its proxies"),
            "{errs}"
        );
        assert!(
            errs.contains("client: \"h2\" with topology = \"pair\""),
            "{errs}"
        );
        let errs = parse(&format!("mode = \"tcp\"\n{pair}"), "t")
            .unwrap_err()
            .join("\n");
        assert!(
            errs.contains("mode: \"tcp\" with topology = \"pair\""),
            "{errs}"
        );
        let errs = parse(
            &pair.replace("rate = 500\n", "rate = 500\nupstream = \"h2\"\n"),
            "t",
        )
        .unwrap_err()
        .join("\n");
        assert!(
            errs.contains(
                "step[3] (fresh).upstream: a pair's proxy B goes to the HTTP/1.1 upstream only"
            ),
            "{errs}"
        );
        let errs = parse(&format!("topology = \"pear\"\n{GOOD}"), "t").unwrap_err();
        assert!(
            errs[0].contains("pear") && errs[0].contains("`pair`"),
            "{errs:?}"
        );
    }

    const ENDPOINTS: &str = r#"
targets = ["ringmesh", "ringmesh-rr", "nginx", "haproxy"]
cpus = { proxy = [0], upstream = [0], load = [0] }
endpoints = 3
[[step]]
name = "healthy"
kind = "rate"
rate = 100
connections = 8
[[step]]
name = "slow"
kind = "rate"
rate = 100
connections = 8
fault = { latency = "50ms" }
[[step]]
name = "503-retry"
kind = "rate"
rate = 100
connections = 8
fault = { status = 503 }
retry = true
[[step]]
name = "refused"
kind = "rate"
rate = 100
connections = 8
fault = { refuse = true }
"#;

    #[test]
    fn several_endpoints_and_their_faults() {
        let s = parse(ENDPOINTS, "t").unwrap();
        assert_eq!(s.endpoints, 3);
        assert!(s.per_step_targets());
        assert_eq!(s.targets[1], TargetKind::RingmeshRoundRobin);
        let faults: Vec<_> = s.steps.iter().map(|s| (s.fault.clone(), s.retry)).collect();
        assert_eq!(
            faults,
            [
                (None, false),
                (Some(Fault::Latency("50ms".into())), false),
                (Some(Fault::Status(503)), true),
                (Some(Fault::Refuse), false),
            ]
        );
        assert_eq!(
            s.steps
                .iter()
                .map(|s| s.fault.as_ref().map(Fault::label))
                .collect::<Vec<_>>(),
            [
                None,
                Some("+50ms".into()),
                Some("503".into()),
                Some("refused".into())
            ]
        );
        assert!(!Fault::Latency("1ms".into()).fails() && Fault::Refuse.fails());
        // One endpoint unless asked; then faults and retries make no sense.
        let one = parse(GOOD, "t").unwrap();
        assert_eq!(one.endpoints, 1);
        assert!(!one.per_step_targets() && one.steps.iter().all(|s| s.fault.is_none()));
        let errs = parse(&ENDPOINTS.replace("endpoints = 3\n", ""), "t")
            .unwrap_err()
            .join("\n");
        assert!(
            errs.contains("step[1] (slow).fault: one endpoint of several is faulty; set endpoints = 2 or more"),
            "{errs}"
        );
        assert!(
            errs.contains("step[2] (503-retry).retry: retrying on another endpoint needs endpoints = 2 or more"),
            "{errs}"
        );
        // A fault is one thing, a failing status, a real latency.
        let errs = parse(
            &ENDPOINTS
                .replace("{ latency = \"50ms\" }", "{ latency = \"soon\" }")
                .replace("{ status = 503 }", "{ status = 200 }")
                .replace("{ refuse = true }", "{ refuse = true, status = 503 }"),
            "t",
        )
        .unwrap_err()
        .join("\n");
        for want in [
            "step[1] (slow).fault.latency: bad latency \"soon\"",
            "step[2] (503-retry).fault.status: 200 is not a failure; give 500..599",
            "step[3] (refused).fault: one of latency, status, refuse, not several",
        ] {
            assert!(errs.contains(want), "{want}: {errs}");
        }
        let errs = parse(&ENDPOINTS.replace("{ refuse = true }", "{}"), "t").unwrap_err();
        assert!(errs[0].contains("give one of latency"), "{errs:?}");
        let errs = parse(
            &ENDPOINTS.replace("{ refuse = true }", "{ slow = true }"),
            "t",
        )
        .unwrap_err();
        assert!(errs[0].contains("slow"), "{errs:?}");
        // Not with what the multi-endpoint configs are not written for.
        let errs = parse(&format!("tls = true\nmode = \"tcp\"\n{ENDPOINTS}"), "t")
            .unwrap_err()
            .join("\n");
        assert!(
            errs.contains("endpoints: 3 endpoints with tls = true is not supported yet"),
            "{errs}"
        );
        assert!(
            errs.contains("endpoints: 3 endpoints with mode = \"tcp\""),
            "{errs}"
        );
        let errs = parse(&ENDPOINTS.replace("endpoints = 3", "endpoints = 0"), "t")
            .unwrap_err()
            .join("\n");
        assert!(errs.contains("endpoints: must be at least 1"), "{errs}");
    }

    #[test]
    fn the_resilience_scenario_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../perf/scenarios/resilience.toml");
        // On CPU 0 whatever this machine has (the file says 1 for the proxy).
        let text = std::fs::read_to_string(path).unwrap();
        let s = parse(&text.replace("proxy = [1]", "proxy = [0]"), "resilience").unwrap();
        assert_eq!(s.endpoints, 3);
        assert_eq!(
            s.targets,
            [
                TargetKind::Ringmesh,
                TargetKind::RingmeshRoundRobin,
                TargetKind::Nginx,
                TargetKind::Haproxy
            ]
        );
        assert!(s.steps.iter().all(|st| matches!(
            st.kind,
            StepKind::Rate {
                rate: Rate::Fixed(_),
                ..
            }
        )));
        assert!(s
            .steps
            .iter()
            .any(|st| st.fault == Some(Fault::Latency("50ms".into()))));
        assert!(s
            .steps
            .iter()
            .any(|st| st.fault == Some(Fault::Refuse) && st.retry));
    }

    #[test]
    fn a_scenario_may_name_the_baseline() {
        let s = parse(
            &GOOD.replace("[\"direct\", \"ringmesh\"]", "[\"ringmesh\", \"baseline\"]"),
            "t",
        )
        .unwrap();
        assert_eq!(s.targets, vec![TargetKind::Ringmesh, TargetKind::Baseline]);
        let errs = parse(
            &GOOD.replace(
                "[\"direct\", \"ringmesh\"]",
                "[\"ringmesh\", \"baseline\", \"baseline\"]",
            ),
            "t",
        )
        .unwrap_err();
        assert_eq!(errs, ["targets[2]: \"baseline\" is listed twice"]);
    }
}
