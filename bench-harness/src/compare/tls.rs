//! A scenario with `tls = true`: every proxy terminates TLS on its
//! listener with a certificate made for this run, and everything that
//! talks to a target (the load, readiness probes, the idle step) speaks
//! TLS and trusts that run's CA. The upstream behind the proxies stays
//! plain HTTP, so a TLS step differs from its plain twin by the
//! termination alone.

use std::path::Path;

use crate::tls::{self, CertFiles, ClientTls, DEFAULT_SNI};

/// One run's certificates and the client that trusts them.
pub struct TlsRun {
    pub files: CertFiles,
    /// For probes and the idle step (the load processes build their own
    /// from the same CA). Never resumes: each connection is a full
    /// handshake, as in the load.
    pub client: ClientTls,
}

impl TlsRun {
    /// Make the certificates under `dir` (the run's scratch directory,
    /// removed at the end).
    pub fn new(dir: &Path) -> Result<TlsRun, String> {
        let files = tls::generate(dir).map_err(|e| format!("TLS certificates: {e}"))?;
        let client = ClientTls::from_ca_file(&files.ca, DEFAULT_SNI, false)?;
        Ok(TlsRun { files, client })
    }

    /// What `ringmesh-bench load` needs to speak TLS to a target.
    pub fn load_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--tls-ca".into(),
            self.files.ca.display().to_string(),
            "--sni".into(),
            DEFAULT_SNI.into(),
        ]
    }
}
