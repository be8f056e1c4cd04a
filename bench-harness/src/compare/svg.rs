//! The chart: per step, latency percentiles per target (log scale) beside
//! the step's ranking metric as bars. Plain SVG, no script, no fonts to
//! fetch: it opens in any browser or image viewer.

use std::fmt::Write;

use super::results::{step_key, Metrics, Report, StepInfo, StepSummary};
use crate::hist::LABELS;

const W: f64 = 1000.0;
const ROW: f64 = 270.0;
const TOP: f64 = 70.0;
/// Idle steps have no latency panel, only bars.
const IDLE_ROW: f64 = 130.0;

fn color(target: &str) -> &'static str {
    match target {
        "direct" => "#9e9e9e",
        "ringmesh" => "#e4572e",
        // The build before: ringmesh's hue, paler.
        "baseline" => "#f4a582",
        // ringmesh with an access log and tracing: ringmesh's hue, darker.
        "ringmesh-telemetry" => "#9c2f12",
        "nginx" => "#2e86ab",
        "haproxy" => "#76b041",
        "envoy" => "#8e44ad",
        // ringmesh with round robin: ringmesh's hue, greyed.
        "ringmesh-rr" => "#b07a6a",
        _ => "#444444",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn chart(r: &Report) -> String {
    let row_h = |kind: &str| if kind == "idle" { IDLE_ROW } else { ROW };
    let h = TOP + r.steps.iter().map(|s| row_h(&s.kind)).sum::<f64>() + 20.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="20" y="28" font-size="18" font-weight="bold">{} — {}</text>"#,
        esc(&r.scenario),
        esc(&r.date)
    );
    let _ = writeln!(
        o,
        r##"<text x="20" y="48" fill="#555">medians of {} alternating runs · proxies on CPUs {:?}, upstream {:?}, load {:?} · {} CPUs, Linux {}</text>"##,
        r.repetitions,
        r.cpus.proxy,
        r.cpus.upstream,
        r.cpus.load,
        r.machine.cpus,
        esc(&r.machine.kernel)
    );
    // Legend.
    let mut x = W - 20.0;
    for t in r.targets.iter().filter(|t| t.status == "ok").rev() {
        x -= 14.0 + 8.0 * t.name.len() as f64;
        let _ = writeln!(
            o,
            r#"<rect x="{x}" y="18" width="10" height="10" fill="{}"/><text x="{}" y="27">{}</text>"#,
            color(&t.name),
            x + 13.0,
            esc(&t.name)
        );
    }
    let mut y = TOP;
    for (s, info) in r.summary.iter().zip(&r.steps) {
        let _ = writeln!(
            o,
            r##"<text x="20" y="{}" font-size="14" font-weight="bold">{} <tspan font-weight="normal" fill="#555">{}</tspan></text>"##,
            y + 14.0,
            esc(&s.step),
            esc(&info.about)
        );
        if info.kind != "idle" {
            percentiles(&mut o, s, 60.0, y + 30.0, 520.0, ROW - 70.0);
        }
        bars(
            &mut o,
            s,
            info,
            640.0,
            y + 30.0,
            330.0,
            row_h(&info.kind) - 70.0,
        );
        y += row_h(&info.kind);
    }
    o.push_str("</svg>\n");
    o
}

/// Latency percentiles as lines, log-scale y in milliseconds.
fn percentiles(o: &mut String, s: &StepSummary, x0: f64, y0: f64, w: f64, h: f64) {
    let labels = LABELS;
    let vals: Vec<f64> = s
        .rows
        .iter()
        .flat_map(|r| r.median.latencies())
        .filter(|v| *v > 0.0)
        .collect();
    if vals.is_empty() {
        return;
    }
    let lo = vals
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        .log10()
        .floor();
    let hi = vals
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(10.0)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let yof = |us: f64| y0 + h - (us.max(1.0).log10() - lo) / (hi - lo) * h;
    let xof = |i: usize| x0 + 20.0 + i as f64 * (w - 40.0) / (labels.len() - 1) as f64;
    let _ = writeln!(
        o,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>"##
    );
    let mut e = lo;
    while e <= hi {
        let us = 10f64.powf(e);
        let y = yof(us);
        let label = if us >= 1000.0 {
            format!("{} ms", us / 1000.0)
        } else {
            format!("{us} µs")
        };
        let _ = writeln!(
            o,
            r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end" fill="#555">{label}</text>"##,
            x0 + w,
            x0 - 4.0,
            y + 4.0
        );
        e += 1.0;
    }
    for (i, l) in labels.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{l}</text>"##,
            xof(i),
            y0 + h + 16.0
        );
    }
    for row in &s.rows {
        let pts: Vec<String> = row
            .median
            .latencies()
            .iter()
            .enumerate()
            .map(|(i, us)| format!("{:.1},{:.1}", xof(i), yof(*us)))
            .collect();
        let c = color(&row.target);
        let _ = writeln!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(o, r#"<circle cx="{px}" cy="{py}" r="3" fill="{c}"/>"#);
        }
    }
    let _ = writeln!(
        o,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#555">latency percentiles (log scale)</text>"##,
        x0 + w,
        y0 - 4.0
    );
}

/// The step's ranking metric as one bar per target, value on the bar.
fn bars(o: &mut String, s: &StepSummary, info: &StepInfo, x0: f64, y0: f64, w: f64, h: f64) {
    let (key, _, get) = step_key(info);
    let title = match (key, info.kind.as_str()) {
        ("success_rate", _) => "% of requests that succeeded (higher is better)",
        ("p99_us", _) => "p99 ms (lower is better)",
        (_, "rate") => "target CPU µs per request (lower is better)",
        (_, "idle") => "KiB per idle connection (lower is better)",
        _ => "requests/s (higher is better)",
    };
    // Shown as a percentage and in ms, as the tables do.
    let scale = match key {
        "success_rate" => 100.0,
        "p99_us" => 0.001,
        _ => 1.0,
    };
    let get = move |m: &Metrics| get(m).map(|v| v * scale);
    let _ = writeln!(
        o,
        r##"<text x="{x0}" y="{}" fill="#555">{title}{}</text>"##,
        y0 - 4.0,
        if s.bounded_by_machine {
            " · machine-bound"
        } else {
            ""
        }
    );
    let rows: Vec<(&str, f64)> = s
        .rows
        .iter()
        .filter_map(|r| get(&r.median).map(|v| (r.target.as_str(), v)))
        .collect();
    // Scaled to the proxies: `direct` can be 10× faster and would flatten
    // the bars that matter; it is drawn cut off, and marked, when it exceeds.
    let proxies = rows
        .iter()
        .filter(|r| r.0 != "direct")
        .map(|r| r.1)
        .fold(0.0, f64::max);
    let max = if proxies > 0.0 {
        proxies
    } else {
        rows.iter().map(|r| r.1).fold(0.0, f64::max)
    };
    if rows.is_empty() || max <= 0.0 {
        let _ = writeln!(
            o,
            r##"<text x="{x0}" y="{}" fill="#999">no data</text>"##,
            y0 + 20.0
        );
        return;
    }
    let bh = (h / rows.len() as f64).min(40.0) - 8.0;
    for (i, (t, v)) in rows.iter().enumerate() {
        let y = y0 + i as f64 * (bh + 8.0);
        let off_scale = *v > max * 1.15;
        let bw = (w - 140.0) * (v / max).min(1.15);
        let mut label = if *v >= 10_000.0 {
            format!("{:.1}k", v / 1000.0)
        } else {
            format!("{v:.2}")
        };
        // An off-scale bar carries its value inside, right-aligned, so the
        // label never runs off the picture.
        let (lx, anchor, fill) = if off_scale {
            label.push_str(" ›");
            (x0 + 66.0 + bw, "end", "white")
        } else {
            (x0 + 74.0 + bw, "start", "black")
        };
        let _ = writeln!(
            o,
            r#"<text x="{x0}" y="{}">{}</text><rect x="{}" y="{y}" width="{bw:.1}" height="{bh}" fill="{}"/><text x="{lx}" y="{}" text-anchor="{anchor}" fill="{fill}">{label}</text>"#,
            y + bh / 2.0 + 4.0,
            esc(t),
            x0 + 70.0,
            color(t),
            y + bh / 2.0 + 4.0
        );
    }
}

impl Metrics {
    /// Latencies in the order of [`LABELS`], microseconds.
    fn latencies(&self) -> [f64; 6] {
        [
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.p9999_us,
            self.max_us,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_draws_every_step_and_target() {
        let svg = chart(&crate::compare::render::tests::report());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Two latency panels (rate, closed) with one line per target each.
        assert_eq!(svg.matches("<polyline").count(), 2 * 3);
        // direct's 500k req/s is far above the proxies' 70k: cut off, marked.
        assert!(svg.contains(">500.0k ›<"), "{svg}");
        assert!(svg.contains("fill=\"black\">70.0k<"), "{svg}");
        // Idle bars, lower is better.
        assert!(svg.contains("KiB per idle connection (lower is better)"));
        // Every opened element is closed or self-closed: a cheap
        // well-formedness check.
        for tag in ["text", "svg", "tspan"] {
            assert_eq!(
                svg.matches(&format!("<{tag}")).count(),
                svg.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn the_baseline_has_its_own_colour_and_legend() {
        let svg = chart(&crate::compare::render::tests::with_baseline());
        assert!(svg.contains(">baseline</text>"), "{svg}");
        assert!(svg.contains("fill=\"#f4a582\""), "{svg}");
        assert!(svg.contains("stroke=\"#f4a582\""), "{svg}");
    }
}
