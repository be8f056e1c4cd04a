//! What a comparison produces: every run, and per step and target the
//! medians over repetitions with ratios against the best proxy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::load::LoadReport;

/// Machine-readable result of one `compare` invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub cpus: CpuPlan,
    pub repetitions: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub targets: Vec<TargetInfo>,
    pub calibration: Option<Calibration>,
    pub steps: Vec<StepInfo>,
    pub runs: Vec<Run>,
    pub summary: Vec<StepSummary>,
    pub interrupted: bool,
    /// The proxies terminated TLS (a `tls = true` scenario).
    #[serde(default)]
    pub tls: bool,
    /// The proxies served HTTP or relayed opaque TCP (`mode = "tcp"`).
    #[serde(default)]
    pub mode: super::scenario::Mode,
    /// What the load spoke to the targets (`client = "h2"`).
    #[serde(default)]
    pub client: super::scenario::Proto,
    /// One proxy per target, or a mesh pair (`topology = "pair"`).
    #[serde(default)]
    pub topology: super::scenario::Topology,
    /// What each run of `ringmesh-telemetry` logged and exported, beside
    /// what it served: did telemetry really run at 100%.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telemetry: Vec<TelemetryCount>,
    /// Upstream endpoints behind each proxy (`endpoints` > 1: a
    /// resilience scenario, each proxy restarted for every step).
    #[serde(default = "one")]
    pub endpoints: usize,
}

fn one() -> usize {
    1
}

/// One `ringmesh-telemetry` run (a repetition: the target started, ran
/// every step, was stopped): what it served, what it logged and what the
/// sink received, counted once it had exited (so its last batches are in).
/// In a pair, both proxies summed (two spans and lines per request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryCount {
    pub repetition: usize,
    pub target: String,
    /// HTTP requests the proxy served, from its `/metrics`
    /// (`ringmesh_requests_total`, read at the end of the run): warm-ups,
    /// readiness probes and idle steps' requests included, so every one
    /// should have a span and a log line.
    pub proxy_requests: Option<u64>,
    /// Client connections it accepted (`ringmesh_downstream_connections_total`):
    /// what a TCP relay logs a line for.
    pub proxy_connections: Option<u64>,
    /// Requests in the load's measured windows (warm-ups not included).
    pub load_requests: u64,
    /// Spans the harness's OTLP sink received from it; None without
    /// tracing (TCP scenarios).
    pub spans_received: Option<u64>,
    /// Lines in its access log file(s).
    pub access_log_lines: u64,
    /// `ringmesh_spans_exported_total`.
    pub spans_exported: Option<u64>,
    /// `ringmesh_spans_dropped_total`, every reason.
    pub spans_dropped: Option<u64>,
    /// `ringmesh_access_log_dropped_total`, every reason.
    pub access_log_dropped: Option<u64>,
}

/// Sum of every series of the metric family `name` in a Prometheus text
/// exposition; None when it has no series.
pub fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The family itself, not one whose name merely starts with it.
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0) += v as u64;
        }
    }
    found
}

/// What telemetry costs in one step: `ringmesh-telemetry` against
/// `ringmesh`, from their medians in this run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TelemetryCost {
    /// CPU µs per request without and with telemetry.
    pub cpu_off_us: Option<f64>,
    pub cpu_on_us: Option<f64>,
    /// with - without, µs per request.
    pub cpu_delta_us: Option<f64>,
    /// The same as a percentage of without.
    pub cpu_delta_pct: Option<f64>,
    /// p99 with ÷ p99 without.
    pub p99_ratio: Option<f64>,
    /// req/s with ÷ req/s without (what a closed-loop step gives up).
    pub rps_ratio: Option<f64>,
}

/// The cost of telemetry from the medians without (`off`) and with (`on`).
pub fn telemetry_cost(off: &Metrics, on: &Metrics) -> TelemetryCost {
    let ratio = |a: f64, b: f64| (b > 0.0 && a.is_finite()).then(|| a / b);
    let (cpu_off, cpu_on) = (off.proxy_cpu_us_per_req, on.proxy_cpu_us_per_req);
    let delta = cpu_off.zip(cpu_on).map(|(a, b)| b - a);
    TelemetryCost {
        cpu_off_us: cpu_off,
        cpu_on_us: cpu_on,
        cpu_delta_us: delta,
        cpu_delta_pct: delta
            .zip(cpu_off)
            .and_then(|(d, a)| ratio(d, a))
            .map(|r| r * 100.0),
        p99_ratio: ratio(on.p99_us, off.p99_us),
        rps_ratio: ratio(on.rps, off.rps),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuPlan {
    pub proxy: Vec<usize>,
    pub upstream: Vec<usize>,
    pub load: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    pub name: String,
    /// "ok", "skipped" (not installed) or "failed" (would not start).
    pub status: String,
    /// Version when ok, the reason (and install command) otherwise.
    pub detail: String,
    /// In a pair scenario, what its proxies speak to each other.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hop: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    /// Closed-loop req/s of each proxy.
    pub peak_rps: BTreeMap<String, f64>,
    /// The lowest of those: fractions of it set the fixed rates.
    pub basis_rps: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepInfo {
    pub name: String,
    pub kind: String,
    /// One line a person reads: "closed loop, 10 connections, 16 pipelined".
    pub about: String,
    pub connections: usize,
    pub rate: Option<f64>,
    pub pipeline: usize,
    /// A closed loop with a new connection per request.
    #[serde(default)]
    pub new_connection: bool,
    /// Targets left out of this step, each with why (`nginx: not
    /// supported: ...`).
    #[serde(default)]
    pub not_run: Vec<String>,
    /// What the last of several endpoints did wrong in this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<super::scenario::Fault>,
    /// The proxies were told to retry on another endpoint and leave a
    /// failing one out (`retry = true`); else their defaults.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
}

/// One step against one target in one repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub repetition: usize,
    pub target: String,
    pub step: String,
    pub metrics: Metrics,
    pub load: Option<LoadReport>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    pub errors: u64,
    /// The target's CPU time (all threads and processes) per response.
    pub proxy_cpu_us_per_req: Option<f64>,
    /// The target's peak resident memory so far, KiB.
    pub proxy_peak_rss_kib: Option<u64>,
    /// Share of the load generator's CPUs busy during the window (0..1).
    pub load_cpu_busy: f64,
    /// Resident memory per idle keep-alive connection, KiB.
    pub idle_kib_per_conn: Option<f64>,
    /// p50 minus `direct`'s p50 in the same step and repetition: the
    /// latency this target adds ([`added_over_direct`]).
    #[serde(default)]
    pub added_p50_us: Option<f64>,
    /// The same for p99.
    #[serde(default)]
    pub added_p99_us: Option<f64>,
    /// A mesh pair's connections from A to B at the end of the window:
    /// how the hop carries the requests (1 per core: multiplexed).
    #[serde(default)]
    pub hop_connections: Option<u64>,
    /// Share of the requests due in the window that got a status below
    /// 400: answered ÷ (answered + failed to connect, timed out, reset,
    /// ...); a 5xx counts as a failure. None for idle steps.
    #[serde(default)]
    pub success_rate: Option<f64>,
}

/// Requests that succeeded ÷ requests sent, from a load report (None
/// when nothing was sent).
pub fn success_rate(r: &LoadReport) -> Option<f64> {
    let sent = r.ok + r.errors.total();
    (sent > 0).then(|| r.ok as f64 / sent as f64)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSummary {
    pub step: String,
    /// The metric the ratio column compares.
    pub key: String,
    pub lower_is_better: bool,
    /// Closed loop with the generator's CPUs saturated: the machine, not
    /// the proxy, set the peak.
    pub bounded_by_machine: bool,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub target: String,
    pub runs: usize,
    pub median: Metrics,
    /// key metric / best proxy's key metric (1.00 = the best).
    pub ratio: Option<f64>,
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Metric-by-metric medians.
pub fn median_metrics(runs: &[&Metrics]) -> Metrics {
    let m =
        |f: &dyn Fn(&Metrics) -> f64| median(runs.iter().map(|r| f(r)).collect()).unwrap_or(0.0);
    let opt =
        |f: &dyn Fn(&Metrics) -> Option<f64>| median(runs.iter().filter_map(|r| f(r)).collect());
    Metrics {
        rps: m(&|r| r.rps),
        p50_us: m(&|r| r.p50_us),
        p90_us: m(&|r| r.p90_us),
        p99_us: m(&|r| r.p99_us),
        p999_us: m(&|r| r.p999_us),
        p9999_us: m(&|r| r.p9999_us),
        max_us: m(&|r| r.max_us),
        errors: m(&|r| r.errors as f64) as u64,
        proxy_cpu_us_per_req: opt(&|r| r.proxy_cpu_us_per_req),
        proxy_peak_rss_kib: opt(&|r| r.proxy_peak_rss_kib.map(|k| k as f64)).map(|k| k as u64),
        load_cpu_busy: m(&|r| r.load_cpu_busy),
        idle_kib_per_conn: opt(&|r| r.idle_kib_per_conn),
        added_p50_us: opt(&|r| r.added_p50_us),
        added_p99_us: opt(&|r| r.added_p99_us),
        hop_connections: opt(&|r| r.hop_connections.map(|c| c as f64)).map(|c| c as u64),
        success_rate: opt(&|r| r.success_rate),
    }
}

/// Set each proxy run's added latency: its p50 and p99 minus those of
/// `direct` in the same step of the same repetition (so both saw the same
/// minute of this machine); medians over repetitions follow in
/// [`summarize`]. Runs without a `direct` twin (idle steps, `--targets`
/// without direct) keep None.
pub fn added_over_direct(runs: &mut [Run]) {
    let direct: Vec<(usize, String, Metrics)> = runs
        .iter()
        .filter(|r| r.target == "direct")
        .map(|r| (r.repetition, r.step.clone(), r.metrics))
        .collect();
    for r in runs.iter_mut().filter(|r| r.target != "direct") {
        let twin = direct
            .iter()
            .find(|(rep, step, _)| *rep == r.repetition && *step == r.step);
        if let Some((_, _, d)) = twin {
            r.metrics.added_p50_us = Some(r.metrics.p50_us - d.p50_us);
            r.metrics.added_p99_us = Some(r.metrics.p99_us - d.p99_us);
        }
    }
}

pub type MetricFn = fn(&Metrics) -> Option<f64>;

/// The metric that ranks targets in a step of this kind.
pub fn key_metric(kind: &str) -> (&'static str, bool, MetricFn) {
    match kind {
        "rate" => ("proxy_cpu_us_per_req", true, |m| m.proxy_cpu_us_per_req),
        "idle" => ("idle_kib_per_conn", true, |m| m.idle_kib_per_conn),
        _ => ("rps", false, |m| Some(m.rps)),
    }
}

/// The metric that ranks targets in a step: with one endpoint slowed,
/// p99; with one failing, the share of requests that succeeded; else by
/// the step's kind ([`key_metric`]).
pub fn step_key(step: &StepInfo) -> (&'static str, bool, MetricFn) {
    match &step.fault {
        Some(f) if f.fails() => ("success_rate", false, |m| m.success_rate),
        Some(_) => ("p99_us", true, |m| Some(m.p99_us)),
        None => key_metric(&step.kind),
    }
}

/// Medians per (step, target), in step order then target order.
pub fn summarize(steps: &[StepInfo], targets: &[String], runs: &[Run]) -> Vec<StepSummary> {
    steps
        .iter()
        .map(|step| {
            let (key, lower, get) = step_key(step);
            let mut rows: Vec<Row> = targets
                .iter()
                .filter_map(|t| {
                    let mine: Vec<&Metrics> = runs
                        .iter()
                        .filter(|r| r.step == step.name && &r.target == t)
                        .map(|r| &r.metrics)
                        .collect();
                    (!mine.is_empty()).then(|| Row {
                        target: t.clone(),
                        runs: mine.len(),
                        median: median_metrics(&mine),
                        ratio: None,
                    })
                })
                .collect();
            let best = rows
                .iter()
                .filter(|r| r.target != "direct")
                .filter_map(|r| get(&r.median))
                .filter(|v| *v > 0.0)
                .reduce(|a, b| if (a < b) == lower { a } else { b });
            if let Some(best) = best {
                for r in &mut rows {
                    r.ratio = get(&r.median).map(|v| v / best);
                }
            }
            let bounded =
                step.kind == "closed" && rows.iter().any(|r| r.median.load_cpu_busy >= 0.95);
            StepSummary {
                step: step.name.clone(),
                key: key.into(),
                lower_is_better: lower,
                bounded_by_machine: bounded,
                rows,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_cost_is_the_difference_and_its_share() {
        let off = Metrics {
            rps: 20_000.0,
            p99_us: 800.0,
            proxy_cpu_us_per_req: Some(20.0),
            ..Metrics::default()
        };
        let on = Metrics {
            rps: 19_000.0,
            p99_us: 1000.0,
            proxy_cpu_us_per_req: Some(23.0),
            ..Metrics::default()
        };
        let c = telemetry_cost(&off, &on);
        assert_eq!(c.cpu_off_us, Some(20.0));
        assert_eq!(c.cpu_on_us, Some(23.0));
        assert_eq!(c.cpu_delta_us, Some(3.0));
        assert_eq!(c.cpu_delta_pct, Some(15.0));
        assert_eq!(c.p99_ratio, Some(1.25));
        assert_eq!(c.rps_ratio, Some(0.95));
        // Cheaper with telemetry (noise): a negative cost, not hidden.
        let c = telemetry_cost(&on, &off);
        assert_eq!(c.cpu_delta_us, Some(-3.0));
        assert!((c.cpu_delta_pct.unwrap() + 300.0 / 23.0).abs() < 1e-9);
        // No CPU reading (or a zero one) gives no cost, not a division by 0.
        let none = Metrics::default();
        let c = telemetry_cost(&none, &on);
        assert_eq!((c.cpu_delta_us, c.cpu_delta_pct), (None, None));
        assert_eq!((c.p99_ratio, c.rps_ratio), (None, None));
        let zero = Metrics {
            proxy_cpu_us_per_req: Some(0.0),
            ..Metrics::default()
        };
        let c = telemetry_cost(&zero, &on);
        assert_eq!((c.cpu_delta_us, c.cpu_delta_pct), (Some(23.0), None));
    }

    #[test]
    fn metric_families_are_summed_over_their_series() {
        let text = "\
# HELP ringmesh_requests_total Requests.
# TYPE ringmesh_requests_total counter
ringmesh_requests_total{listener=\"main\",route=\"\",class=\"2xx\"} 1200
ringmesh_requests_total{listener=\"main\",route=\"\",class=\"5xx\"} 3
ringmesh_requests_total_other 99
ringmesh_spans_exported_total 1203
ringmesh_spans_dropped_total{reason=\"buffer_full\"} 0
ringmesh_spans_dropped_total{reason=\"export_failed\"} 7
";
        assert_eq!(metric_sum(text, "ringmesh_requests_total"), Some(1203));
        assert_eq!(
            metric_sum(text, "ringmesh_spans_exported_total"),
            Some(1203)
        );
        assert_eq!(metric_sum(text, "ringmesh_spans_dropped_total"), Some(7));
        assert_eq!(metric_sum(text, "ringmesh_access_log_lines_total"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![f64::NAN, 1.0]), Some(1.0));
    }

    fn run(target: &str, step: &str, rps: f64, cpu: Option<f64>) -> Run {
        Run {
            repetition: 0,
            target: target.into(),
            step: step.into(),
            metrics: Metrics {
                rps,
                proxy_cpu_us_per_req: cpu,
                load_cpu_busy: 0.5,
                ..Metrics::default()
            },
            load: None,
        }
    }

    #[test]
    fn added_latency_is_against_direct_in_the_same_repetition() {
        let at = |target: &str, step: &str, rep: usize, p50: f64, p99: f64| Run {
            repetition: rep,
            metrics: Metrics {
                p50_us: p50,
                p99_us: p99,
                ..Metrics::default()
            },
            ..run(target, step, 1.0, None)
        };
        let mut runs = vec![
            at("direct", "r", 0, 100.0, 300.0),
            at("pair", "r", 0, 250.0, 900.0),
            at("direct", "r", 1, 200.0, 400.0),
            at("pair", "r", 1, 300.0, 1400.0),
            at("pair", "r", 2, 300.0, 1400.0),
            at("pair", "other", 0, 300.0, 1400.0),
        ];
        added_over_direct(&mut runs);
        let added: Vec<(Option<f64>, Option<f64>)> = runs
            .iter()
            .map(|r| (r.metrics.added_p50_us, r.metrics.added_p99_us))
            .collect();
        assert_eq!(
            added,
            [
                (None, None),
                (Some(150.0), Some(600.0)),
                (None, None),
                (Some(100.0), Some(1000.0)),
                (None, None), // no direct run in repetition 2
                (None, None), // nor in that step
            ]
        );
        let m = median_metrics(&[&runs[1].metrics, &runs[3].metrics, &runs[4].metrics]);
        assert_eq!(m.added_p50_us, Some(125.0), "median of those that have one");
    }

    #[test]
    fn ratios_against_the_best_proxy() {
        let steps = vec![
            StepInfo {
                name: "peak".into(),
                kind: "closed".into(),
                about: String::new(),
                connections: 1,
                rate: None,
                pipeline: 1,
                new_connection: false,
                not_run: Vec::new(),
                fault: None,
                retry: false,
            },
            StepInfo {
                name: "half".into(),
                kind: "rate".into(),
                about: String::new(),
                connections: 1,
                rate: Some(1.0),
                pipeline: 1,
                new_connection: false,
                not_run: Vec::new(),
                fault: None,
                retry: false,
            },
        ];
        let targets: Vec<String> = ["direct", "a", "b"].map(String::from).to_vec();
        let runs = vec![
            run("direct", "peak", 300.0, None),
            run("a", "peak", 100.0, None),
            run("a", "peak", 120.0, None),
            run("a", "peak", 110.0, None),
            run("b", "peak", 200.0, None),
            run("a", "half", 50.0, Some(20.0)),
            run("b", "half", 50.0, Some(25.0)),
        ];
        let s = summarize(&steps, &targets, &runs);
        // Peak: higher is better; direct is not a peer, b is the best proxy.
        let peak = &s[0];
        assert_eq!(peak.key, "rps");
        assert_eq!(peak.rows[1].median.rps, 110.0);
        assert_eq!(peak.rows[1].runs, 3);
        assert_eq!(peak.rows[1].ratio, Some(0.55));
        assert_eq!(peak.rows[2].ratio, Some(1.0));
        assert_eq!(peak.rows[0].ratio, Some(1.5));
        // Rate: CPU per request, lower is better; a is the best.
        let half = &s[1];
        assert!(half.lower_is_better);
        assert_eq!(half.rows.len(), 2, "direct did not run this step");
        assert_eq!(half.rows[0].ratio, Some(1.0));
        assert_eq!(half.rows[1].ratio, Some(1.25));
        assert!(!peak.bounded_by_machine);
    }
}
