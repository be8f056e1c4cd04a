//! The Markdown report: what ranks proxies on this machine first, then
//! every step in full.

use std::fmt::Write;

use super::results::{
    telemetry_cost, MetricFn, Metrics, Report, StepSummary, TargetInfo, TelemetryCount,
};
use super::scenario::{StepKind, Topology};

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn rps(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// A share as a percentage: `99.985%`.
fn pct(x: f64) -> String {
    format!("{:.3}%", x * 100.0)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// One progress line for a finished run.
pub fn one_line(m: &Metrics, kind: &StepKind) -> String {
    let cpu = m
        .proxy_cpu_us_per_req
        .map(|c| format!(", {c:.2} us CPU/req"))
        .unwrap_or_default();
    match kind {
        StepKind::Idle { .. } => format!("{} KiB per idle connection", opt(m.idle_kib_per_conn, 2)),
        _ => format!(
            "{} req/s, p50 {} ms, p99 {} ms, {} errors{}{cpu}",
            rps(m.rps),
            ms(m.p50_us),
            ms(m.p99_us),
            m.errors,
            match m.success_rate {
                Some(r) if m.errors > 0 => format!(" ({} succeeded)", pct(r)),
                _ => String::new(),
            }
        ),
    }
}

pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {} — {}\n", r.scenario, r.date);
    if !r.description.is_empty() {
        let _ = writeln!(out, "{}\n", r.description.trim());
    }
    let _ = writeln!(
        out,
        "{} CPUs, Linux {}. Proxies on CPUs {:?}, upstream on {:?}, load on {:?}. Medians of {} alternating repetitions; {}s warm-up and {}s measured per step.{}\n",
        r.machine.cpus,
        r.machine.kernel,
        r.cpus.proxy,
        r.cpus.upstream,
        r.cpus.load,
        r.repetitions,
        r.warmup_s,
        r.duration_s,
        if r.interrupted { " **Interrupted: partial results.**" } else { "" }
    );
    let _ = writeln!(out, "`{}`\n", r.command);
    if r.tls {
        let _ = writeln!(
            out,
            "**TLS:** every proxy terminates TLS on its listener (a certificate made for this run, ECDSA P-256); the upstream behind it is plain HTTP. The load never resumes a session, so a new connection is a full handshake.\n"
        );
    }
    if r.mode == super::scenario::Mode::Tcp {
        let _ = writeln!(
            out,
            "**TCP (L4):** every proxy relays opaque TCP: each client connection gets an upstream connection of its own and the bytes pass unparsed (no X-Forwarded-For, no upstream keep-alive pool). The load speaks HTTP/1.1 through the relay to the same plain upstream; `direct` is the upstream alone.\n"
        );
    }
    if r.client == super::scenario::Proto::H2 {
        let _ = writeln!(
            out,
            "**HTTP/2:** the load speaks HTTP/2 to every target ({}); each step says what the proxies speak to the upstream: HTTP/1.1 to the plain upstream, or HTTP/2 (h2c) to the one that also serves gRPC. `direct` is the HTTP/2 upstream alone.\n",
            if r.tls { "h2 by ALPN over TLS" } else { "h2c with prior knowledge" }
        );
    }
    let pairs = r.topology == Topology::Pair;
    if pairs {
        pair_preamble(&mut out, r);
    }
    let endpoints = r.endpoints > 1;
    if endpoints {
        resilience(&mut out, r);
    } else {
        headline(&mut out, r);
    }
    telemetry(&mut out, r);
    for (s, info) in r.summary.iter().zip(&r.steps) {
        let _ = writeln!(out, "## {} — {}\n", s.step, info.about);
        step_table(&mut out, s, &info.kind, pairs, endpoints);
        for line in &info.not_run {
            let _ = writeln!(out, "- **{line}**");
        }
        if !info.not_run.is_empty() {
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out, "## Targets\n");
    for t in &r.targets {
        let hop = match t.hop.is_empty() {
            true => String::new(),
            false => format!("; hop: {}", t.hop),
        };
        let _ = writeln!(
            out,
            "- **{}** ({}): {}{hop}",
            t.name,
            t.status,
            if t.detail.is_empty() {
                "–"
            } else {
                &t.detail
            }
        );
    }
    if let Some(line) = negotiated(r) {
        let _ = writeln!(out, "\n{line}");
    }
    if let Some(c) = &r.calibration {
        let peaks: Vec<String> = c
            .peak_rps
            .iter()
            .map(|(t, v)| format!("{t} {}", rps(*v)))
            .collect();
        let _ = writeln!(
            out,
            "\nCalibration (closed-loop peak): {}; fixed rates are fractions of {} req/s.",
            peaks.join(", "),
            rps(c.basis_rps)
        );
    }
    out
}

/// What each target's TLS handshakes agreed on, from the first run that
/// says (None for plain runs).
fn negotiated(r: &Report) -> Option<String> {
    let mut parts = Vec::new();
    for t in &r.targets {
        let tls = r
            .runs
            .iter()
            .filter(|run| run.target == t.name)
            .filter_map(|run| run.load.as_ref()?.tls.as_ref())
            .find(|tls| !tls.version.is_empty());
        if let Some(tls) = tls {
            parts.push(format!(
                "{} {} {} {}",
                t.name, tls.version, tls.cipher_suite, tls.key_exchange
            ));
        }
    }
    (!parts.is_empty()).then(|| format!("TLS negotiated: {}.", parts.join("; ")))
}

/// A headline column: title, step index, the metric, lower is better,
/// and how to print it.
struct Column {
    title: String,
    /// Its name on the ringmesh-vs-baseline line (None: not on it).
    short: Option<&'static str>,
    step: usize,
    get: MetricFn,
    lower_is_better: bool,
    show: fn(f64) -> String,
}

/// The measures that still rank proxies when closed-loop throughput is
/// capped by the machine: CPU per request and tail latency at a fixed rate,
/// pipelined throughput, memory per idle connection.
fn headline(out: &mut String, r: &Report) {
    let cols = match r.topology {
        Topology::Pair => pair_columns(r),
        Topology::Single => columns(r),
    };
    if cols.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Headline\n");
    table(out, r, &cols);
    let _ = writeln!(
        out,
        "\nRatios (×) are against the best proxy in each column (1.00× = best; `direct` is no proxy: the floor).\n"
    );
    if r.topology == Topology::Pair {
        if let Some(line) = direct_floor(r) {
            let _ = writeln!(out, "{line}\n");
        }
    }
    if let Some(line) = vs_baseline(r, &cols) {
        let _ = writeln!(out, "{line}\n");
    }
}

/// A scenario with several endpoints: two headline tables, latency with
/// every endpoint healthy or one slowed, and the share of requests that
/// succeeded with one failing.
fn resilience(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "**Resilience:** every proxy balances {} test upstreams (ringmesh `lb: peak_ewma`, `ringmesh-rr` `lb: round_robin`, nginx `least_conn`, HAProxy `balance leastconn`); in a step with a fault the last of them is slow or failing. Each proxy starts fresh for every step. Steps marked *defaults* run each proxy's own behaviour on failures; *retry* steps tell every proxy to retry a failed try once on another endpoint and to leave a failing endpoint out for about 10 s (docs/benchmarks.md lists each one's exact config). Success = requests answered below 400 ÷ requests due in the window.\n",
        r.endpoints
    );
    let latency: Vec<Column> = r
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind != "idle" && !s.fault.as_ref().is_some_and(|f| f.fails()))
        .flat_map(|(i, s)| {
            let at = fault_title(s);
            [
                ("p50", (|m: &Metrics| Some(m.p50_us)) as MetricFn),
                ("p99", |m| Some(m.p99_us)),
                ("p99.9", |m| Some(m.p999_us)),
            ]
            .map(|(p, get)| Column {
                title: format!("{p} ms, {at}"),
                short: None,
                step: i,
                get,
                lower_is_better: true,
                show: ms,
            })
        })
        .collect();
    let failing: Vec<Column> = r
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.fault.as_ref().is_some_and(|f| f.fails()))
        .map(|(i, s)| Column {
            title: format!("success, {}", fault_title(s)),
            short: None,
            step: i,
            get: |m| m.success_rate,
            lower_is_better: false,
            show: pct,
        })
        .collect();
    if !latency.is_empty() {
        let _ = writeln!(out, "## Latency, every endpoint healthy or one slow\n");
        table(out, r, &latency);
        let _ = writeln!(out);
    }
    if !failing.is_empty() {
        let _ = writeln!(out, "## Success rate, one endpoint failing\n");
        table(out, r, &failing);
        let _ = writeln!(out);
    }
    if !(latency.is_empty() && failing.is_empty()) {
        let _ = writeln!(
            out,
            "Ratios (×) are against the best proxy in each column (1.00× = best). The step tables below have every percentile, errors and CPU per request.\n"
        );
    }
}

/// How a resilience headline names a step: `slow (+50ms, defaults)`.
fn fault_title(s: &super::results::StepInfo) -> String {
    let policy = if s.retry { "retry" } else { "defaults" };
    match &s.fault {
        Some(f) => format!("{} ({}, {policy})", s.name, f.label()),
        None => format!("{} ({policy})", s.name),
    }
}

/// One headline table: a row per target that ran, a cell per column.
fn table(out: &mut String, r: &Report, cols: &[Column]) {
    let titles: Vec<&str> = cols.iter().map(|c| c.title.as_str()).collect();
    let _ = writeln!(out, "| target | {} |", titles.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(cols.len()));
    let names: Vec<&str> = r
        .targets
        .iter()
        .filter(|t| t.status != "skipped")
        .map(|t| t.name.as_str())
        .collect();
    for name in names {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| cell(&r.summary[c.step], c, name))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
}

/// The headline's columns, each from the first step that measures it.
fn columns(r: &Report) -> Vec<Column> {
    let find = |pred: &dyn Fn(&super::results::StepInfo) -> bool| r.steps.iter().position(pred);
    let mut cols: Vec<Column> = Vec::new();
    let col = |title: String,
               short: Option<&'static str>,
               step: usize,
               get: MetricFn,
               lower_is_better: bool,
               show: fn(f64) -> String| Column {
        title,
        short,
        step,
        get,
        lower_is_better,
        show,
    };
    if let Some(i) = find(&|s| s.kind == "rate") {
        let at = rps(r.steps[i].rate.unwrap_or(0.0));
        cols.push(col(
            format!("CPU µs/req @ {at} req/s"),
            Some("CPU µs/req"),
            i,
            |m| m.proxy_cpu_us_per_req,
            true,
            |v| format!("{v:.2}"),
        ));
        cols.push(col(
            format!("p99 ms @ {at} req/s"),
            Some("p99"),
            i,
            |m| Some(m.p99_us),
            true,
            ms,
        ));
    }
    if let Some(i) = find(&|s| s.kind == "closed" && s.pipeline > 1) {
        let s = &r.steps[i];
        cols.push(col(
            format!("pipelined req/s ({}×{})", s.connections, s.pipeline),
            Some("pipelined req/s"),
            i,
            |m| Some(m.rps),
            false,
            rps,
        ));
    }
    if let Some(i) = find(&|s| s.kind == "closed" && s.new_connection) {
        let s = &r.steps[i];
        let bounded = if r.summary[i].bounded_by_machine {
            ", machine-bound"
        } else {
            ""
        };
        let (rate, rate_short, cpu, cpu_short) = if r.tls {
            (
                "full handshakes/s",
                "handshakes/s",
                "CPU µs per handshake + request",
                "CPU µs/handshake",
            )
        } else {
            (
                "new connections/s",
                "new conn/s",
                "CPU µs per connection + request",
                "CPU µs/conn",
            )
        };
        cols.push(col(
            format!("{rate} (c={}{bounded})", s.connections),
            Some(rate_short),
            i,
            |m| Some(m.rps),
            false,
            rps,
        ));
        cols.push(col(
            cpu.to_string(),
            Some(cpu_short),
            i,
            |m| m.proxy_cpu_us_per_req,
            true,
            |v| format!("{v:.1}"),
        ));
    }
    if let Some(i) = find(&|s| s.kind == "idle") {
        let tls = if r.tls { " TLS" } else { "" };
        cols.push(col(
            format!("KiB per idle{tls} conn ({})", r.steps[i].connections),
            Some("KiB per idle conn"),
            i,
            |m| m.idle_kib_per_conn,
            true,
            |v| format!("{v:.2}"),
        ));
    }
    if let Some(i) = find(&|s| s.kind == "closed" && s.pipeline == 1 && !s.new_connection) {
        let bounded = if r.summary[i].bounded_by_machine {
            ", machine-bound"
        } else {
            ""
        };
        cols.push(col(
            format!("closed-loop req/s (c={}{bounded})", r.steps[i].connections),
            None,
            i,
            |m| Some(m.rps),
            false,
            rps,
        ));
    }
    cols
}

/// What a pair report says before its headline: the path, where the
/// processes ran, how added latency is computed, and each pair's hop.
fn pair_preamble(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "**Mesh hop:** each proxy target is a pair of its own processes, the sidecars of two workloads: load → A (plaintext HTTP/1.1 listener) → mTLS → B (client certificate required) → upstream (plain HTTP/1.1). Both run on CPUs {:?}, as many workers each as CPUs there; CPU µs per request and peak RSS are summed over A and B. `direct` is load → upstream. **Added** p50/p99 is a pair's percentile minus `direct`'s in the same step of the same repetition, then the median over repetitions. SVIDs are made for the run (one CA, ECDSA P-256, a SPIFFE ID as the only URI SAN; B's also has a DNS name for the peers that verify only names). \"A→B conns\" in the step tables counts the connections A held to B at the end of each window.\n",
        r.cpus.proxy
    );
    let hops: Vec<&TargetInfo> = r
        .targets
        .iter()
        .filter(|t| t.status != "skipped" && !t.hop.is_empty() && t.name != "direct")
        .collect();
    if hops.is_empty() {
        return;
    }
    let _ = writeln!(out, "On the hop between A and B:\n");
    for t in hops {
        let _ = writeln!(out, "- **{}**: {}", t.name, t.hop);
    }
    let _ = writeln!(out);
}

/// A pair report's headline: per fixed-rate step, the latency each pair
/// adds over `direct` and its CPU per request; then the closed-loop
/// columns, then the pair's peak memory.
fn pair_columns(r: &Report) -> Vec<Column> {
    let mut cols = Vec::new();
    for (i, s) in r.steps.iter().enumerate().filter(|(_, s)| s.kind == "rate") {
        let at = format!(
            "@ {} req/s{}",
            rps(s.rate.unwrap_or(0.0)),
            if s.new_connection { ", new conn" } else { "" }
        );
        let first = cols.is_empty();
        let short = |name: &'static str| first.then_some(name);
        cols.push(Column {
            title: format!("added p50 ms {at}"),
            short: short("added p50"),
            step: i,
            get: |m| m.added_p50_us,
            lower_is_better: true,
            show: ms,
        });
        cols.push(Column {
            title: format!("added p99 ms {at}"),
            short: short("added p99"),
            step: i,
            get: |m| m.added_p99_us,
            lower_is_better: true,
            show: ms,
        });
        cols.push(Column {
            title: format!("CPU µs/req (A+B) {at}"),
            short: short("CPU µs/req"),
            step: i,
            get: |m| m.proxy_cpu_us_per_req,
            lower_is_better: true,
            show: |v| format!("{v:.1}"),
        });
    }
    cols.extend(
        columns(r)
            .into_iter()
            .filter(|c| r.steps[c.step].kind != "rate"),
    );
    // VmHWM only grows while a target runs its steps: the last step's
    // reading is the peak over all of them.
    if let Some(i) = r.steps.iter().rposition(|s| s.kind != "idle") {
        cols.push(Column {
            title: "peak RSS MiB (A+B)".into(),
            short: Some("peak RSS"),
            step: i,
            get: |m| m.proxy_peak_rss_kib.map(|k| k as f64),
            lower_is_better: true,
            show: |k| format!("{:.1}", k / 1024.0),
        });
    }
    cols
}

/// `direct`'s own percentiles in each fixed-rate step: what the added
/// latencies are added to.
fn direct_floor(r: &Report) -> Option<String> {
    let parts: Vec<String> = r
        .summary
        .iter()
        .zip(&r.steps)
        .filter(|(_, info)| info.kind == "rate")
        .filter_map(|(s, info)| {
            let d = s.rows.iter().find(|row| row.target == "direct")?;
            Some(format!(
                "p50 {} / p99 {} ms @ {} req/s{}",
                ms(d.median.p50_us),
                ms(d.median.p99_us),
                rps(info.rate.unwrap_or(0.0)),
                if info.new_connection {
                    " (new conn)"
                } else {
                    ""
                }
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "`direct` (load → upstream, the floor): {}.",
            parts.join("; ")
        )
    })
}

/// When a baseline build ran beside ringmesh: each headline measure as
/// ringmesh ÷ baseline, from this run's medians (so both saw the same
/// machine), "–" where either has no value.
fn vs_baseline(r: &Report, cols: &[Column]) -> Option<String> {
    let ran = |name: &str| {
        r.targets
            .iter()
            .any(|t| t.name == name && t.status != "skipped")
    };
    if !ran("ringmesh") || !ran("baseline") {
        return None;
    }
    let parts: Vec<String> = cols
        .iter()
        .filter_map(|c| {
            let short = c.short?;
            let s = &r.summary[c.step];
            let value = |t: &str| {
                s.rows
                    .iter()
                    .find(|row| row.target == t)
                    .and_then(|row| (c.get)(&row.median))
            };
            let ratio = match (value("ringmesh"), value("baseline")) {
                (Some(new), Some(old)) if old > 0.0 => format!("{:.2}×", new / old),
                _ => "–".into(),
            };
            Some(format!("{short} {ratio}"))
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "**ringmesh vs baseline:** {} (ringmesh ÷ baseline, medians of this run; below 1.00× is better for CPU, p99 and memory, above 1.00× for req/s).",
        parts.join(", ")
    ))
}

/// One progress line for a finished `ringmesh-telemetry` run.
pub fn telemetry_line(c: &TelemetryCount) -> String {
    let n = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
    format!(
        "rep {} {}: {} requests served ({} connections), {} spans received, {} access-log lines; dropped: {} spans, {} log lines",
        c.repetition + 1,
        c.target,
        n(c.proxy_requests),
        n(c.proxy_connections),
        c.spans_received.map_or("no tracing (TCP)".into(), |v| v.to_string()),
        c.access_log_lines,
        n(c.spans_dropped),
        n(c.access_log_dropped),
    )
}

/// When `ringmesh-telemetry` ran: what telemetry costs per step against
/// `ringmesh` (when both ran), and per run what it served, logged and
/// exported, so a reader sees it really ran at 100%.
fn telemetry(out: &mut String, r: &Report) {
    let ran = |name: &str| {
        r.targets
            .iter()
            .any(|t| t.name == name && t.status != "skipped")
    };
    let on = "ringmesh-telemetry";
    if !ran(on) {
        return;
    }
    let _ = writeln!(
        out,
        "## Telemetry cost
"
    );
    let tracing = match r.mode {
        super::scenario::Mode::Tcp => "an access log per relayed connection (TCP: no spans)",
        super::scenario::Mode::Http => "an access log (JSON) and tracing at 100% (OTLP/gRPC to a sink in the harness, on the upstream's CPUs)",
    };
    let pair = match r.topology {
        Topology::Pair => " In a pair, both A and B log and trace.",
        Topology::Single => "",
    };
    let _ = writeln!(
        out,
        "`{on}` is the `ringmesh` build and config plus {tracing}.{pair}
"
    );
    if ran("ringmesh") {
        let _ = writeln!(
            out,
            "| step | CPU µs/req off | CPU µs/req on | cost µs/req | cost % | p99 ms off → on | p99 ratio | req/s ratio |
|---|---|---|---|---|---|---|---|"
        );
        for (s, info) in r.summary.iter().zip(&r.steps) {
            if info.kind == "idle" {
                continue;
            }
            let median = |t: &str| s.rows.iter().find(|row| row.target == t).map(|r| r.median);
            let (Some(off), Some(on)) = (median("ringmesh"), median(on)) else {
                continue;
            };
            let c = telemetry_cost(&off, &on);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} → {} | {} | {} |",
                s.step,
                opt(c.cpu_off_us, 2),
                opt(c.cpu_on_us, 2),
                c.cpu_delta_us.map_or("–".into(), |d| format!("{d:+.2}")),
                c.cpu_delta_pct.map_or("–".into(), |p| format!("{p:+.1}%")),
                ms(off.p99_us),
                ms(on.p99_us),
                c.p99_ratio.map_or("–".into(), |x| format!("{x:.2}×")),
                c.rps_ratio.map_or("–".into(), |x| format!("{x:.2}×")),
            );
        }
        let _ = writeln!(
            out,
            "
Off: `ringmesh`; on: `{on}`; medians of this run. Cost = on − off (CPU of the proxy's process tree per response). Only fixed-rate steps compare at the same load; in closed-loop steps the req/s ratio is what telemetry gives up.
"
        );
    }
    if r.telemetry.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Per run (counted after the proxy exited; requests served and drops from its `/metrics`, warm-ups, probes and idle connections included):

| repetition | requests served | connections | requests in measured windows | spans received | access-log lines | spans dropped | log lines dropped |
|---|---|---|---|---|---|---|---|"
    );
    let n = |v: Option<u64>| v.map_or("–".into(), |v| v.to_string());
    for c in &r.telemetry {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.repetition + 1,
            n(c.proxy_requests),
            n(c.proxy_connections),
            c.load_requests,
            n(c.spans_received),
            c.access_log_lines,
            n(c.spans_dropped),
            n(c.access_log_dropped),
        );
    }
    let _ = writeln!(out);
}

/// A target's value in a column, with its ratio to the best proxy's.
fn cell(s: &StepSummary, c: &Column, name: &str) -> String {
    let value = |t: &str| {
        s.rows
            .iter()
            .find(|row| row.target == t)
            .and_then(|row| (c.get)(&row.median))
    };
    let Some(v) = value(name) else {
        return "–".into();
    };
    let best = s
        .rows
        .iter()
        .filter(|row| row.target != "direct")
        .filter_map(|row| (c.get)(&row.median))
        .filter(|v| *v > 0.0)
        .reduce(|a, b| if (a < b) == c.lower_is_better { a } else { b });
    match best {
        Some(best) if name != "direct" => format!("{} ({:.2}×)", (c.show)(v), v / best),
        _ => (c.show)(v),
    }
}

fn step_table(out: &mut String, s: &StepSummary, kind: &str, added: bool, success: bool) {
    if kind == "idle" {
        let _ = writeln!(
            out,
            "| target | KiB per idle connection | ratio | peak RSS MiB |\n|---|---|---|---|"
        );
        for row in &s.rows {
            let m = &row.median;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                row.target,
                opt(m.idle_kib_per_conn, 2),
                opt(row.ratio, 2),
                opt(m.proxy_peak_rss_kib.map(|k| k as f64 / 1024.0), 1)
            );
        }
        let _ = writeln!(out);
        return;
    }
    let better = if s.lower_is_better { "lower" } else { "higher" };
    let (added_head, added_rule) = match added {
        true => (" added p50 ms | added p99 ms | A→B conns |", "---|---|---|"),
        false => ("", ""),
    };
    let (success_head, success_rule) = match success {
        true => (" success |", "---|"),
        false => ("", ""),
    };
    let _ = writeln!(
        out,
        "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms |{added_head} errors |{success_head} CPU µs/req | peak RSS MiB | ratio ({}, {better} is better) |",
        s.key
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|{added_rule}---|{success_rule}---|---|---|"
    );
    for row in &s.rows {
        let m = &row.median;
        let added_cells = match added {
            true => format!(
                " {} | {} | {} |",
                opt(m.added_p50_us.map(|v| v / 1000.0), 3),
                opt(m.added_p99_us.map(|v| v / 1000.0), 3),
                opt(m.hop_connections.map(|c| c as f64), 0)
            ),
            false => String::new(),
        };
        let success_cell = match success {
            true => format!(" {} |", m.success_rate.map_or("–".into(), pct)),
            false => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |{added_cells} {} |{success_cell} {} | {} | {} |",
            row.target,
            rps(m.rps),
            ms(m.p50_us),
            ms(m.p90_us),
            ms(m.p99_us),
            ms(m.p999_us),
            ms(m.p9999_us),
            ms(m.max_us),
            m.errors,
            opt(m.proxy_cpu_us_per_req, 2),
            opt(m.proxy_peak_rss_kib.map(|k| k as f64 / 1024.0), 1),
            opt(row.ratio, 2)
        );
    }
    if s.bounded_by_machine {
        let _ = writeln!(out, "\nBounded by the machine: the load generator's CPUs were ≥95% busy, so this peak measures the box, not the proxy.");
    }
    let _ = writeln!(out);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::results::{summarize, CpuPlan, Machine, Run, StepInfo, TargetInfo};
    use super::*;

    fn run(
        target: &str,
        step: &str,
        rps: f64,
        p99_us: f64,
        cpu: Option<f64>,
        idle: Option<f64>,
    ) -> Run {
        Run {
            repetition: 0,
            target: target.into(),
            step: step.into(),
            metrics: Metrics {
                rps,
                p50_us: p99_us / 4.0,
                p90_us: p99_us / 2.0,
                p99_us,
                p999_us: p99_us * 2.0,
                p9999_us: p99_us * 3.0,
                max_us: p99_us * 4.0,
                proxy_cpu_us_per_req: cpu,
                idle_kib_per_conn: idle,
                load_cpu_busy: if step == "c10" { 0.99 } else { 0.5 },
                ..Metrics::default()
            },
            load: None,
        }
    }

    fn step(name: &str, kind: &str, rate: Option<f64>, pipeline: usize) -> StepInfo {
        StepInfo {
            name: name.into(),
            kind: kind.into(),
            about: format!("about {name}"),
            connections: 10,
            rate,
            pipeline,
            new_connection: false,
            not_run: Vec::new(),
            fault: None,
            retry: false,
        }
    }

    /// A two-proxy report with a rate, a closed and an idle step.
    pub(crate) fn report() -> Report {
        let steps = vec![
            step("half", "rate", Some(20_000.0), 1),
            step("c10", "closed", None, 1),
            step("idle", "idle", None, 1),
        ];
        let runs = vec![
            run("direct", "half", 20_000.0, 300.0, None, None),
            run("ringmesh", "half", 20_000.0, 800.0, Some(18.0), None),
            run("nginx", "half", 20_000.0, 1600.0, Some(20.0), None),
            run("direct", "c10", 500_000.0, 100.0, None, None),
            run("ringmesh", "c10", 70_000.0, 300.0, Some(12.0), None),
            run("nginx", "c10", 66_000.0, 320.0, Some(14.0), None),
            run("ringmesh", "idle", 0.0, 0.0, None, Some(4.0)),
            run("nginx", "idle", 0.0, 0.0, None, Some(0.5)),
        ];
        build(steps, &["direct", "ringmesh", "nginx"], runs)
    }

    /// A report of these runs; `envoy` skipped.
    fn build(steps: Vec<StepInfo>, names: &[&str], runs: Vec<Run>) -> Report {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let summary = summarize(&steps, &names, &runs);
        let targets = names
            .iter()
            .map(|n| TargetInfo {
                name: n.clone(),
                status: "ok".into(),
                detail: String::new(),
                hop: String::new(),
            })
            .chain([TargetInfo {
                name: "envoy".into(),
                status: "skipped".into(),
                detail: "envoy not on PATH".into(),
                hop: String::new(),
            }])
            .collect();
        Report {
            scenario: "t".into(),
            description: "test".into(),
            date: "2026-11-22".into(),
            command: "ringmesh-bench compare t.toml".into(),
            machine: Machine {
                cpus: 2,
                kernel: "6.18".into(),
            },
            cpus: CpuPlan {
                proxy: vec![1],
                upstream: vec![0],
                load: vec![0],
            },
            repetitions: 1,
            warmup_s: 2.0,
            duration_s: 8.0,
            targets,
            calibration: None,
            steps,
            runs,
            summary,
            interrupted: false,
            tls: false,
            mode: Default::default(),
            client: Default::default(),
            topology: Default::default(),
            telemetry: Vec::new(),
            endpoints: 1,
        }
    }

    /// Three endpoints: healthy, one slow, one answering 503 (defaults
    /// and retry).
    pub(crate) fn resilience_report() -> Report {
        use crate::compare::scenario::Fault;
        let mut slow = step("slow", "rate", Some(3000.0), 1);
        slow.fault = Some(Fault::Latency("50ms".into()));
        let mut bad = step("503", "rate", Some(3000.0), 1);
        bad.fault = Some(Fault::Status(503));
        let mut bad_retry = step("503-retry", "rate", Some(3000.0), 1);
        bad_retry.fault = Some(Fault::Status(503));
        bad_retry.retry = true;
        let steps = vec![
            step("healthy", "rate", Some(3000.0), 1),
            slow,
            bad,
            bad_retry,
        ];
        let mut runs = Vec::new();
        for (t, slow_p99, ok, ok_retry) in [
            ("ringmesh", 900.0, 0.999, 1.0),
            ("nginx", 51_000.0, 0.6, 0.99995),
        ] {
            for (st, p99, success) in [
                ("healthy", 800.0, 1.0),
                ("slow", slow_p99, 1.0),
                ("503", 800.0, ok),
                ("503-retry", 800.0, ok_retry),
            ] {
                let mut r = run(t, st, 3000.0, p99, Some(30.0), None);
                r.metrics.success_rate = Some(success);
                runs.push(r);
            }
        }
        let mut r = build(steps, &["ringmesh", "nginx"], runs);
        r.endpoints = 3;
        r
    }

    #[test]
    fn resilience_runs_lead_with_tail_latency_and_success_rate() {
        let md = markdown(&resilience_report());
        assert!(
            md.contains("**Resilience:** every proxy balances 3 test upstreams"),
            "{md}"
        );
        assert!(!md.contains("## Headline"), "{md}");
        let head = "| target | p50 ms, healthy (defaults) | p99 ms, healthy (defaults) | p99.9 ms, healthy (defaults) | p50 ms, slow (+50ms, defaults) | p99 ms, slow (+50ms, defaults) | p99.9 ms, slow (+50ms, defaults) |";
        assert!(md.contains(head), "{md}");
        assert!(
            md.contains("| nginx | 0.200 (1.00×) | 0.800 (1.00×) | 1.600 (1.00×) | 12.750 (56.67×) | 51.000 (56.67×) | 102.000 (56.67×) |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| target | success, 503 (503, defaults) | success, 503-retry (503, retry) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| ringmesh | 99.900% (1.00×) | 100.000% (1.00×) |"),
            "{md}"
        );
        assert!(
            md.contains("| nginx | 60.000% (0.60×) | 99.995% (1.00×) |"),
            "{md}"
        );
        // Step tables gain a success column and rank failing steps by it,
        // the slow one by p99.
        assert!(md.contains("| errors | success | CPU µs/req |"), "{md}");
        assert!(
            md.contains("ratio (success_rate, higher is better)"),
            "{md}"
        );
        assert!(md.contains("ratio (p99_us, lower is better)"), "{md}");
        assert!(md.contains("| 0 | 60.000% | 30.00 |"), "{md}");
        // Single-endpoint reports have none of it.
        let plain = markdown(&report());
        assert!(
            !plain.contains("success") && !plain.contains("Resilience"),
            "{plain}"
        );
        // And it all comes back from the JSON (older JSON: one endpoint).
        let r = resilience_report();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["steps"][2]["fault"], serde_json::json!({"status": 503}));
        assert_eq!(v["steps"][3]["retry"], true);
        assert!(v["steps"][0].get("fault").is_none());
        let back: Report = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(markdown(&back), md);
        let mut old = serde_json::to_value(report()).unwrap();
        old.as_object_mut().unwrap().remove("endpoints");
        assert_eq!(serde_json::from_value::<Report>(old).unwrap().endpoints, 1);
        // The chart ranks them the same way.
        let svg = crate::compare::svg::chart(&r);
        assert!(
            svg.contains("% of requests that succeeded (higher is better)"),
            "{svg}"
        );
        assert!(svg.contains("p99 ms (lower is better)"), "{svg}");
        assert!(svg.contains(">60.00<"), "{svg}");
    }

    #[test]
    fn headline_ranks_each_column_on_its_own_metric() {
        let md = markdown(&report());
        let head = "| target | CPU µs/req @ 20.0k req/s | p99 ms @ 20.0k req/s | KiB per idle conn (10) | closed-loop req/s (c=10, machine-bound) |";
        assert!(md.contains(head), "{md}");
        // ringmesh is best on CPU, p99 and peak; nginx on idle memory.
        assert!(
            md.contains(
                "| ringmesh | 18.00 (1.00×) | 0.800 (1.00×) | 4.00 (8.00×) | 70.0k (1.00×) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| nginx | 20.00 (1.11×) | 1.600 (2.00×) | 0.50 (1.00×) | 66.0k (0.94×) |"),
            "{md}"
        );
        // direct is the floor: values, no ratios; skipped targets are not rows.
        assert!(md.contains("| direct | – | 0.300 | – | 500.0k |"), "{md}");
        assert!(!md.contains("| envoy |"), "{md}");
        assert!(
            md.contains("- **envoy** (skipped): envoy not on PATH"),
            "{md}"
        );
        assert!(md.contains("Bounded by the machine"), "{md}");
    }

    /// A TLS run: keep-alive at a rate, a new connection per request, idle.
    fn tls_report(tls: bool) -> Report {
        let mut hs = step("hs", "closed", None, 1);
        hs.new_connection = true;
        let steps = vec![step("half", "rate", Some(5_000.0), 1), hs];
        let mut runs = vec![
            run("ringmesh", "half", 5_000.0, 800.0, Some(40.0), None),
            run("nginx", "half", 5_000.0, 900.0, Some(50.0), None),
            run("ringmesh", "hs", 3_000.0, 300.0, Some(150.0), None),
            run("nginx", "hs", 2_000.0, 320.0, Some(300.0), None),
        ];
        let negotiated = crate::tls::TlsSummary {
            version: "TLSv1_3".into(),
            cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
            key_exchange: "X25519".into(),
            full_handshakes: 10,
            resumed_handshakes: 0,
        };
        // A load report as older builds wrote it (no handshake errors, no tls).
        let load: crate::load::LoadReport = serde_json::from_value(serde_json::json!({
            "target": "x", "mode": "closed", "connections": 1, "threads": 1, "pipeline": 1,
            "new_connection": true, "request_body_bytes": 0, "rate_target": null,
            "driver": "io_uring", "warmup_s": 1.0, "duration_s": 1.0, "requests": 10, "ok": 10,
            "rps": 10.0, "response_body_bytes": 0,
            "latency": {"count": 10, "min_us": 1.0, "p50_us": 1.0, "p90_us": 1.0, "p99_us": 1.0, "p999_us": 1.0,
                        "p9999_us": 1.0, "max_us": 1.0, "mean_us": 1.0},
            "statuses": {"1xx": 0, "2xx": 10, "3xx": 0, "4xx": 0, "5xx": 0},
            "errors": {"connect": 0, "timeout": 0, "status": 0, "reset": 0, "protocol": 0},
            "generator_cpu": 0.5, "interrupted": false,
        }))
        .unwrap();
        if tls {
            for r in runs.iter_mut().filter(|r| r.step == "hs") {
                r.load = Some(crate::load::LoadReport {
                    tls: Some(negotiated.clone()),
                    ..load.clone()
                });
            }
        }
        let mut r = build(steps, &["ringmesh", "nginx"], runs);
        r.tls = tls;
        r
    }

    #[test]
    fn tls_runs_lead_with_handshakes_and_say_what_was_negotiated() {
        let md = markdown(&tls_report(true));
        assert!(md.contains("**TLS:** every proxy terminates TLS"), "{md}");
        let head = "| target | CPU µs/req @ 5000 req/s | p99 ms @ 5000 req/s | full handshakes/s (c=10) | CPU µs per handshake + request |";
        assert!(md.contains(head), "{md}");
        assert!(
            md.contains("| nginx | 50.00 (1.25×) | 0.900 (1.12×) | 2000 (0.67×) | 300.0 (2.00×) |"),
            "{md}"
        );
        assert!(
            md.contains(
                "TLS negotiated: ringmesh TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519; nginx TLSv1_3"
            ),
            "{md}"
        );
        // The same steps without TLS: new connections, not handshakes, and
        // the new-connection step is not taken for the closed-loop peak.
        let md = markdown(&tls_report(false));
        assert!(
            md.contains("| new connections/s (c=10) | CPU µs per connection + request |"),
            "{md}"
        );
        assert!(
            !md.contains("closed-loop req/s") && !md.contains("TLS"),
            "{md}"
        );
        assert!(!md.contains("TCP (L4)"), "{md}");
    }

    #[test]
    fn tcp_runs_say_the_proxies_relay_tcp() {
        let mut r = tls_report(false);
        r.mode = crate::compare::scenario::Mode::Tcp;
        let md = markdown(&r);
        assert!(
            md.contains("**TCP (L4):** every proxy relays opaque TCP"),
            "{md}"
        );
        assert!(
            md.contains("| new connections/s (c=10) | CPU µs per connection + request |"),
            "{md}"
        );
        // A result from before `mode` reads as HTTP.
        let mut v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["mode"], "tcp");
        v.as_object_mut().unwrap().remove("mode");
        let old: Report = serde_json::from_value(v).unwrap();
        assert_eq!(old.mode, crate::compare::scenario::Mode::Http);
    }

    #[test]
    fn step_tables_carry_every_percentile() {
        let md = markdown(&report());
        let row = "| ringmesh | 20.0k | 0.200 | 0.400 | 0.800 | 1.600 | 2.400 | 3.200 | 0 | 18.00 | – | 1.00 |";
        assert!(md.contains(row), "{md}");
        assert!(md.contains("| nginx | 0.50 | 1.00 | – |"), "{md}");
    }

    /// ringmesh beside the build before it, and nginx.
    pub(crate) fn with_baseline() -> Report {
        let steps = vec![
            step("half", "rate", Some(20_000.0), 1),
            step("pipe", "closed", None, 16),
            step("c10", "closed", None, 1),
            step("idle", "idle", None, 1),
        ];
        let runs = vec![
            run("ringmesh", "half", 20_000.0, 800.0, Some(18.0), None),
            run("baseline", "half", 20_000.0, 1000.0, Some(20.0), None),
            run("nginx", "half", 20_000.0, 1600.0, Some(24.0), None),
            run("ringmesh", "pipe", 100_000.0, 300.0, Some(9.0), None),
            run("baseline", "pipe", 80_000.0, 300.0, Some(11.0), None),
            run("nginx", "pipe", 90_000.0, 300.0, Some(10.0), None),
            run("ringmesh", "c10", 70_000.0, 300.0, Some(12.0), None),
            run("baseline", "c10", 35_000.0, 300.0, Some(12.0), None),
            run("nginx", "c10", 66_000.0, 320.0, Some(14.0), None),
            run("ringmesh", "idle", 0.0, 0.0, None, Some(4.0)),
            run("baseline", "idle", 0.0, 0.0, None, Some(5.0)),
            run("nginx", "idle", 0.0, 0.0, None, Some(0.5)),
        ];
        build(steps, &["ringmesh", "baseline", "nginx"], runs)
    }

    #[test]
    fn ringmesh_against_its_baseline_under_the_headline() {
        let md = markdown(&with_baseline());
        let line = "**ringmesh vs baseline:** CPU µs/req 0.90×, p99 0.80×, pipelined req/s 1.25×, KiB per idle conn 0.80× (ringmesh ÷ baseline, medians of this run;";
        assert!(md.contains(line), "{md}");
        // Under the headline table, before the first step's table.
        let (at, step) = (md.find(line).unwrap(), md.find("## half").unwrap());
        assert!(md.find("## Headline").unwrap() < at && at < step, "{md}");
        // The baseline is a row like any proxy, ranked against the best.
        assert!(
            md.contains("| baseline | 20.00 (1.11×) | 1.000 (1.25×) | 80.0k (0.80×) | 5.00 (10.00×) | 35.0k (0.50×) |"),
            "{md}"
        );
        // No baseline, no line.
        assert!(!markdown(&report()).contains("vs baseline"));
    }

    /// ringmesh with and without telemetry, and what the telemetry runs
    /// counted.
    fn with_telemetry() -> Report {
        let steps = vec![
            step("half", "rate", Some(20_000.0), 1),
            step("c10", "closed", None, 1),
            step("idle", "idle", None, 1),
        ];
        let runs = vec![
            run("direct", "half", 20_000.0, 300.0, None, None),
            run("ringmesh", "half", 20_000.0, 800.0, Some(20.0), None),
            run(
                "ringmesh-telemetry",
                "half",
                20_000.0,
                1000.0,
                Some(23.0),
                None,
            ),
            run("ringmesh", "c10", 70_000.0, 300.0, Some(12.0), None),
            run(
                "ringmesh-telemetry",
                "c10",
                63_000.0,
                330.0,
                Some(13.5),
                None,
            ),
            run("ringmesh", "idle", 0.0, 0.0, None, Some(0.3)),
            run("ringmesh-telemetry", "idle", 0.0, 0.0, None, Some(0.4)),
        ];
        let mut r = build(steps, &["direct", "ringmesh", "ringmesh-telemetry"], runs);
        r.telemetry = vec![TelemetryCount {
            repetition: 0,
            target: "ringmesh-telemetry".into(),
            proxy_requests: Some(1_000_210),
            proxy_connections: Some(242),
            load_requests: 980_000,
            spans_received: Some(1_000_210),
            access_log_lines: 1_000_210,
            spans_exported: Some(1_000_210),
            spans_dropped: Some(0),
            access_log_dropped: Some(0),
        }];
        r
    }

    #[test]
    fn the_cost_of_telemetry_per_step() {
        let md = markdown(&with_telemetry());
        assert!(md.contains("## Telemetry cost\n"), "{md}");
        assert!(
            md.contains("`ringmesh-telemetry` is the `ringmesh` build and config plus an access log (JSON) and tracing at 100%"),
            "{md}"
        );
        let head = "| step | CPU µs/req off | CPU µs/req on | cost µs/req | cost % | p99 ms off → on | p99 ratio | req/s ratio |";
        assert!(md.contains(head), "{md}");
        assert!(
            md.contains(
                "| half | 20.00 | 23.00 | +3.00 | +15.0% | 0.800 → 1.000 | 1.25× | 1.00× |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| c10 | 12.00 | 13.50 | +1.50 | +12.5% | 0.300 → 0.330 | 1.10× | 0.90× |"),
            "{md}"
        );
        assert!(!md.contains("| idle | "), "{md}");
        // Between the headline and the first step's table.
        let at = md.find("## Telemetry cost").unwrap();
        assert!(md.find("## Headline").unwrap() < at && at < md.find("## half").unwrap());
        // What each run served, logged and exported.
        assert!(
            md.contains("| 1 | 1000210 | 242 | 980000 | 1000210 | 1000210 | 0 | 0 |"),
            "{md}"
        );
        // It survives a re-render from the JSON, which carries the counts.
        let r = with_telemetry();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["telemetry"][0]["spans_received"], 1_000_210);
        assert_eq!(v["telemetry"][0]["access_log_lines"], 1_000_210);
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(markdown(&back), md);
        // A report without it says nothing of telemetry, and its JSON has
        // no `telemetry` key (older reports read back as before).
        let plain = report();
        assert!(!markdown(&plain).contains("Telemetry"));
        assert!(serde_json::to_value(&plain)
            .unwrap()
            .get("telemetry")
            .is_none());
        // Without ringmesh beside it: the counts, no cost table.
        let mut alone = with_telemetry();
        alone.targets.retain(|t| t.name != "ringmesh");
        let md = markdown(&alone);
        assert!(md.contains("## Telemetry cost") && !md.contains("| step | CPU µs/req off"));
        assert!(md.contains("| 1 | 1000210 |"), "{md}");
    }

    #[test]
    fn a_missing_measure_is_a_dash_on_the_baseline_line() {
        let mut r = with_baseline();
        r.runs
            .retain(|run| !(run.target == "baseline" && run.step == "idle"));
        let names: Vec<String> = ["ringmesh", "baseline", "nginx"].map(String::from).to_vec();
        r.summary = summarize(&r.steps, &names, &r.runs);
        let md = markdown(&r);
        assert!(
            md.contains("pipelined req/s 1.25×, KiB per idle conn – (ringmesh"),
            "{md}"
        );
    }

    #[test]
    fn the_baseline_line_survives_a_re_render_from_json() {
        let r = with_baseline();
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(markdown(&back), markdown(&r));
        assert_eq!(
            back.runs
                .iter()
                .filter(|run| run.target == "baseline")
                .count(),
            4,
            "every baseline run is kept"
        );
    }

    /// A pair run: two rates (one with new connections), direct beside.
    fn pair_report() -> Report {
        let mut fresh = step("fresh", "rate", Some(500.0), 1);
        fresh.new_connection = true;
        let steps = vec![step("r1k", "rate", Some(1000.0), 1), fresh];
        let mut runs = Vec::new();
        for (t, p99, cpu, rss) in [
            ("direct", 400.0, None, None),
            ("ringmesh", 800.0, Some(60.0), Some(20 * 1024)),
            ("nginx", 1200.0, Some(90.0), Some(10 * 1024)),
        ] {
            for st in ["r1k", "fresh"] {
                let mut r = run(t, st, 1000.0, p99, cpu, None);
                r.metrics.proxy_peak_rss_kib = rss;
                runs.push(r);
            }
        }
        crate::compare::results::added_over_direct(&mut runs);
        let mut r = build(steps, &["direct", "ringmesh", "nginx"], runs);
        r.topology = Topology::Pair;
        for t in &mut r.targets {
            if let Ok(k) = t.name.parse() {
                t.hop = crate::compare::pair::hop(k).into();
            }
        }
        r
    }

    #[test]
    fn pair_runs_lead_with_added_latency_cpu_and_memory_of_both_proxies() {
        let md = markdown(&pair_report());
        assert!(
            md.contains("**Mesh hop:** each proxy target is a pair"),
            "{md}"
        );
        assert!(md.contains("- **ringmesh**: mTLS (rustls), HTTP/2"), "{md}");
        assert!(md.contains("- **nginx**: mTLS (OpenSSL), HTTP/1.1"), "{md}");
        let head = "| target | added p50 ms @ 1000 req/s | added p99 ms @ 1000 req/s | CPU µs/req (A+B) @ 1000 req/s | added p50 ms @ 500 req/s, new conn | added p99 ms @ 500 req/s, new conn | CPU µs/req (A+B) @ 500 req/s, new conn | peak RSS MiB (A+B) |";
        assert!(md.contains(head), "{md}");
        // p50 is p99 / 4 in these runs: ringmesh adds 0.1 and 0.4 ms.
        assert!(
            md.contains("| ringmesh | 0.100 (1.00×) | 0.400 (1.00×) | 60.0 (1.00×) | 0.100 (1.00×) | 0.400 (1.00×) | 60.0 (1.00×) | 20.0 (2.00×) |"),
            "{md}"
        );
        assert!(
            md.contains("| nginx | 0.200 (2.00×) | 0.800 (2.00×) | 90.0 (1.50×) |"),
            "{md}"
        );
        assert!(
            md.contains("| direct | – | – | – | – | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains("`direct` (load → upstream, the floor): p50 0.100 / p99 0.400 ms @ 1000 req/s; p50 0.100 / p99 0.400 ms @ 500 req/s (new conn)."),
            "{md}"
        );
        // Step tables gain the added columns; single-proxy reports do not.
        assert!(
            md.contains("| max ms | added p50 ms | added p99 ms | A→B conns | errors |"),
            "{md}"
        );
        assert!(md.contains("; hop: mTLS (rustls), HTTP/2"), "{md}");
        let single = markdown(&report());
        assert!(
            !single.contains("added p50") && !single.contains("Mesh hop"),
            "{single}"
        );
        // And all of it comes back from the JSON.
        let back: Report =
            serde_json::from_str(&serde_json::to_string(&pair_report()).unwrap()).unwrap();
        assert_eq!(markdown(&back), md);
    }

    #[test]
    fn h2_runs_say_so_and_name_targets_left_out() {
        let mut r = report();
        r.client = crate::compare::scenario::Proto::H2;
        r.steps[1].not_run = vec!["nginx: not supported: nginx (1.22) proxies HTTP/2 to an upstream only as gRPC (grpc_pass); its proxy_pass speaks HTTP/1.x".into()];
        let md = markdown(&r);
        assert!(
            md.contains(
                "**HTTP/2:** the load speaks HTTP/2 to every target (h2c with prior knowledge)"
            ),
            "{md}"
        );
        assert!(
            md.contains("- **nginx: not supported: nginx (1.22) proxies HTTP/2"),
            "{md}"
        );
        // Results from before HTTP/2 read as HTTP/1.1 with every target run.
        let mut v = serde_json::to_value(&r).unwrap();
        v.as_object_mut().unwrap().remove("client");
        v["steps"][1].as_object_mut().unwrap().remove("not_run");
        let old: Report = serde_json::from_value(v).unwrap();
        assert_eq!(old.client, crate::compare::scenario::Proto::H1);
        assert!(old.steps[1].not_run.is_empty());
    }
}
