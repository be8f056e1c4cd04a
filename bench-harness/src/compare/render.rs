//! The Markdown report: what ranks proxies on this machine first, then
//! every step in full.

use std::fmt::Write;

use super::results::{Metrics, Report, StepSummary};
use super::scenario::StepKind;

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
            "{} req/s, p50 {} ms, p99 {} ms, {} errors{cpu}",
            rps(m.rps),
            ms(m.p50_us),
            ms(m.p99_us),
            m.errors
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
    headline(&mut out, r);
    for (s, info) in r.summary.iter().zip(&r.steps) {
        let _ = writeln!(out, "## {} — {}\n", s.step, info.about);
        step_table(&mut out, s, &info.kind);
    }
    let _ = writeln!(out, "## Targets\n");
    for t in &r.targets {
        let _ = writeln!(
            out,
            "- **{}** ({}): {}",
            t.name,
            t.status,
            if t.detail.is_empty() {
                "–"
            } else {
                &t.detail
            }
        );
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

/// The measures that still rank proxies when closed-loop throughput is
/// capped by the machine: CPU per request and tail latency at a fixed rate,
/// pipelined throughput, memory per idle connection.
/// (title, step index, cell text from the step's medians)
type Column = (String, usize, fn(&Metrics) -> String);

fn headline(out: &mut String, r: &Report) {
    let find = |pred: &dyn Fn(&super::results::StepInfo) -> bool| r.steps.iter().position(pred);
    let rate = find(&|s| s.kind == "rate");
    let piped = find(&|s| s.kind == "closed" && s.pipeline > 1);
    let idle = find(&|s| s.kind == "idle");
    let closed = find(&|s| s.kind == "closed" && s.pipeline == 1);
    let mut cols: Vec<Column> = Vec::new();
    if let Some(i) = rate {
        let at = rps(r.steps[i].rate.unwrap_or(0.0));
        cols.push((format!("CPU µs/req @ {at} req/s"), i, |m| {
            opt(m.proxy_cpu_us_per_req, 2)
        }));
        cols.push((format!("p99 ms @ {at} req/s"), i, |m| ms(m.p99_us)));
    }
    if let Some(i) = piped {
        cols.push((format!("pipelined req/s ({})", r.steps[i].name), i, |m| {
            rps(m.rps)
        }));
    }
    if let Some(i) = idle {
        cols.push((
            format!("KiB per idle conn ({})", r.steps[i].connections),
            i,
            |m| opt(m.idle_kib_per_conn, 2),
        ));
    }
    if let Some(i) = closed {
        let bounded = if r.summary[i].bounded_by_machine {
            ", machine-bound"
        } else {
            ""
        };
        cols.push((
            format!("closed-loop req/s ({}{bounded})", r.steps[i].name),
            i,
            |m| rps(m.rps),
        ));
    }
    if cols.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Headline\n");
    let _ = writeln!(
        out,
        "| target | {} |",
        cols.iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
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
            .map(|(_, i, f)| {
                let s = &r.summary[*i];
                let row = s.rows.iter().find(|row| row.target == name);
                match row {
                    Some(row) => {
                        let ratio = row
                            .ratio
                            .filter(|_| name != "direct")
                            .map(|x| format!(" ({x:.2}×)"))
                            .unwrap_or_default();
                        format!("{}{ratio}", f(&row.median))
                    }
                    None => "–".into(),
                }
            })
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\nRatios (×) are against the best proxy in that column's step (1.00× = best; `direct` is no proxy, the floor).\n");
}

fn step_table(out: &mut String, s: &StepSummary, kind: &str) {
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
    let _ = writeln!(
        out,
        "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | errors | CPU µs/req | peak RSS MiB | ratio ({}, {better} is better) |",
        s.key
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &s.rows {
        let m = &row.median;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
