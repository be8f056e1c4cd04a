//! Which targets a run starts: the scenario's, narrowed by `--targets`,
//! plus the baseline build when `--baseline-bin` is given.
//!
//! The baseline exists to show that a change does not regress: the old and
//! the new ringmesh measured in the same run, alternating, because numbers
//! from different runs on a shared machine do not compare. So giving
//! `--baseline-bin` always runs it (a run without it would silently lose
//! the comparison asked for), and naming `baseline` without a binary is an
//! error, not a skipped target.
//!
//! `ringmesh-telemetry` (ringmesh with an access log and tracing on) is
//! run when the scenario or `--targets` names it: naming it in
//! `--targets` adds it right after `ringmesh` even to a scenario that does
//! not list it, so `peers.toml` measures the cost of telemetry without
//! every run of it paying for one more target (and one more peak in its
//! calibration).

use std::path::{Path, PathBuf};

use super::targets::TargetKind;

/// The targets to run, in order.
///
/// `scenario` is the scenario's list, `only` the `--targets` value,
/// `baseline` whether `--baseline-bin` was given. With a baseline the
/// target is added right after `ringmesh` (at the end without ringmesh)
/// unless the list already names it, where it stays.
pub fn targets(
    scenario: &[TargetKind],
    only: Option<&str>,
    baseline: bool,
) -> Result<Vec<TargetKind>, String> {
    let mut targets = scenario.to_vec();
    let mut named_in = None;
    if targets.contains(&TargetKind::Baseline) {
        named_in = Some("the scenario's targets");
    }
    if let Some(list) = only {
        let want: Vec<TargetKind> = list
            .split(',')
            .map(|t| t.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--targets: {e}"))?;
        targets.retain(|t| want.contains(t));
        named_in = want.contains(&TargetKind::Baseline).then_some("--targets");
        let telemetry = TargetKind::RingmeshTelemetry;
        if want.contains(&telemetry) && !targets.contains(&telemetry) {
            targets.insert(after_ringmesh(&targets), telemetry);
        }
    }
    match named_in {
        Some(place) if !baseline => {
            return Err(format!(
                "target \"baseline\" (in {place}) needs --baseline-bin PATH: the ringmesh-proxy build to compare against"
            ));
        }
        _ => {}
    }
    if baseline && !targets.contains(&TargetKind::Baseline) {
        targets.insert(after_ringmesh(&targets), TargetKind::Baseline);
    }
    Ok(targets)
}

/// Right after `ringmesh`, or at the end without it.
fn after_ringmesh(targets: &[TargetKind]) -> usize {
    targets
        .iter()
        .position(|t| *t == TargetKind::Ringmesh)
        .map_or(targets.len(), |i| i + 1)
}

/// The `--baseline-bin` path, checked to be a file and made absolute so
/// the report says exactly which build ran.
pub fn baseline_bin(path: &Path) -> Result<PathBuf, String> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| format!("--baseline-bin {}: {e}", path.display()))?;
    if !abs.is_file() {
        return Err(format!(
            "--baseline-bin {}: not a file (expected a ringmesh-proxy binary)",
            path.display()
        ));
    }
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetKind::*;

    const PEERS: [TargetKind; 4] = [Direct, Ringmesh, Nginx, Haproxy];

    #[test]
    fn without_a_baseline_nothing_changes() {
        assert_eq!(targets(&PEERS, None, false).unwrap(), PEERS);
        assert_eq!(
            targets(&PEERS, Some("nginx, ringmesh"), false).unwrap(),
            [Ringmesh, Nginx],
            "--targets narrows, the scenario's order stays"
        );
        let err = targets(&PEERS, Some("ringmesh,ngnix"), false).unwrap_err();
        assert!(
            err.starts_with("--targets: unknown target \"ngnix\" (did you mean \"nginx\"?)"),
            "{err}"
        );
    }

    #[test]
    fn a_baseline_runs_right_after_ringmesh() {
        assert_eq!(
            targets(&PEERS, None, true).unwrap(),
            [Direct, Ringmesh, Baseline, Nginx, Haproxy]
        );
        // Whatever --targets keeps, the baseline asked for is run.
        assert_eq!(
            targets(&PEERS, Some("ringmesh,nginx"), true).unwrap(),
            [Ringmesh, Baseline, Nginx]
        );
        // Without ringmesh it goes last.
        assert_eq!(
            targets(&PEERS, Some("direct"), true).unwrap(),
            [Direct, Baseline]
        );
    }

    #[test]
    fn a_named_baseline_keeps_its_place_and_needs_a_binary() {
        let listed = [Baseline, Direct, Ringmesh];
        assert_eq!(targets(&listed, None, true).unwrap(), listed);
        assert_eq!(
            targets(&PEERS, Some("ringmesh,baseline"), true).unwrap(),
            [Ringmesh, Baseline]
        );
        let err = targets(&listed, None, false).unwrap_err();
        assert_eq!(
            err,
            "target \"baseline\" (in the scenario's targets) needs --baseline-bin PATH: the ringmesh-proxy build to compare against"
        );
        let err = targets(&PEERS, Some("ringmesh,baseline"), false).unwrap_err();
        assert!(err.contains("(in --targets) needs --baseline-bin"), "{err}");
        // Narrowed away by --targets: nothing to run, nothing missing.
        assert_eq!(
            targets(&listed, Some("ringmesh"), false).unwrap(),
            [Ringmesh]
        );
        assert!("basline"
            .parse::<TargetKind>()
            .unwrap_err()
            .contains("did you mean \"baseline\""));
    }

    #[test]
    fn telemetry_joins_when_targets_names_it() {
        // peers.toml does not list it: --targets adds it after ringmesh.
        assert_eq!(
            targets(&PEERS, Some("direct,ringmesh,ringmesh-telemetry"), false).unwrap(),
            [Direct, Ringmesh, RingmeshTelemetry]
        );
        // Without --targets naming it, nothing changes.
        assert_eq!(targets(&PEERS, None, false).unwrap(), PEERS);
        assert_eq!(
            targets(&PEERS, Some("ringmesh-telemetry"), false).unwrap(),
            [RingmeshTelemetry]
        );
        // With a baseline too: both after ringmesh.
        assert_eq!(
            targets(&PEERS, Some("ringmesh,ringmesh-telemetry"), true).unwrap(),
            [Ringmesh, Baseline, RingmeshTelemetry]
        );
        // A scenario that lists it keeps its place.
        let listed = [RingmeshTelemetry, Direct, Ringmesh];
        assert_eq!(targets(&listed, None, false).unwrap(), listed);
        assert_eq!(
            targets(&listed, Some("ringmesh,ringmesh-telemetry"), false).unwrap(),
            [RingmeshTelemetry, Ringmesh]
        );
        assert!("ringmesh-telemetri"
            .parse::<TargetKind>()
            .unwrap_err()
            .contains("did you mean \"ringmesh-telemetry\""));
    }

    #[test]
    fn the_baseline_binary_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("ringmesh-proxy");
        std::fs::write(&bin, "").unwrap();
        let rel = dir.path().join(".").join("ringmesh-proxy");
        assert_eq!(
            baseline_bin(&rel).unwrap(),
            std::fs::canonicalize(&bin).unwrap()
        );
        let err = baseline_bin(&dir.path().join("nope")).unwrap_err();
        assert!(
            err.starts_with("--baseline-bin ") && err.contains("nope"),
            "{err}"
        );
        let err = baseline_bin(dir.path()).unwrap_err();
        assert!(err.contains("not a file"), "{err}");
    }
}
