//! `ringmeshctl`: the operator's command line for the control plane.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ringmeshctl",
    version,
    about = "Operate a ringmesh control plane"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check resource files offline, with the same messages as the server.
    Validate {
        /// A resource file or a directory of them (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Validate { files } => validate(&files),
    }
}

/// Every `*.yaml` / `*.yml` under the given paths (directories one level).
fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for p in paths {
        let mut files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_yaml(f))
                .collect()
        } else {
            vec![p.clone()]
        };
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            out.push((f.display().to_string(), text));
        }
    }
    Ok(out)
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let files = match read_inputs(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ringmeshctl: error: {e}");
            return ExitCode::from(2);
        }
    };
    match ringmesh_control::resources::parse(&files) {
        Ok(r) => {
            println!(
                "valid: {} services, {} HTTP routes, {} gateways in {} files",
                r.services.len(),
                r.routes.len(),
                r.gateways.len(),
                files.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("ringmeshctl: {} errors; nothing applied", e.0.len());
            ExitCode::from(1)
        }
    }
}
