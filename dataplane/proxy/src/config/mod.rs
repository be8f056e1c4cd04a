//! Configuration: `proxy.yaml` in, a validated immutable `Config` out.
//!
//! `raw` mirrors the file, `validate` checks all of it and reports every
//! error with its place, `model` is what the proxy runs on. Configs pushed
//! by the control plane (`ringmesh.v1.ProxyConfig`) are converted to `raw`
//! by `proto` and go through the same validation.

pub mod model;
pub mod proto;
pub mod raw;
mod validate;

use std::fmt;
use std::path::Path;

pub use model::Config;

/// The example config, built into the binary so `ringmesh-proxy` runs with
/// no file at all.
pub const EXAMPLE: &str = include_str!("../../../../examples/proxy.yaml");

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: u64,
    pub column: u64,
    /// Field path such as `listeners[0].routes[2].cluster`; empty when the
    /// YAML itself is malformed.
    pub path: String,
    pub message: String,
}

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // Line 0: the error is about the file as a whole (unreadable).
            match e.line {
                0 => write!(f, "{}: ", self.file)?,
                line => write!(f, "{}:{}:{}: ", self.file, line, e.column)?,
            }
            if !e.path.is_empty() {
                write!(f, "{}: ", e.path)?;
            }
            write!(f, "{}", e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: name.clone(),
        errors: vec![ConfigError {
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    // Certificate paths in the file are relative to its directory.
    validate::parse(&text, &name, path.parent())
}

/// Validate config text; `file` names it in errors; relative paths in it
/// are relative to the working directory.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    validate::parse(text, file, None)
}

/// Validate a raw config (e.g. converted from a pushed snapshot); `source`
/// names it in errors; `identity` is where its workload identity comes
/// from (`mesh`).
pub fn validate(
    raw: &raw::RawConfig,
    source: &str,
    identity: crate::tls::mesh::IdentitySource,
) -> Result<Config, ConfigErrors> {
    validate::validate(raw, source, None, identity)
}

#[cfg(test)]
mod tests;
