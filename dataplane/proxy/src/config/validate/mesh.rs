//! `mesh`: the workload identity, and the listeners and clusters that
//! speak mTLS with it to the mesh's other proxies.
//!
//! The identity comes from files (`mesh.identity`, as a SPIRE agent writes
//! them) or from the control plane's CA (`tls::mesh::IdentitySource`). A
//! config is validated again whenever the issued certificate changes, so
//! its TLS settings always carry the certificate in force; without one,
//! mesh listeners and clusters refuse mTLS rather than fall back to
//! plaintext.

use std::str::FromStr;
use std::sync::Arc;

use serde_saphyr::Location;

use super::Validator;
use crate::config::model::{mesh_transport_key, MeshMode};
use crate::config::raw::{RawCluster, RawConfig, RawListener, RawMesh};
use crate::tls::certs;
use crate::tls::client::ClientTls;
use crate::tls::mesh::{self, IdentitySource, Svid};
use crate::tls::server::ServerTls;

impl Validator {
    /// The workload identity for the config's mesh listeners and clusters.
    pub(super) fn identity(&mut self, raw: &RawConfig) -> Option<Arc<Svid>> {
        let first_user = first_mesh_user(raw);
        let (mesh_at, m) = match &raw.mesh {
            Some(m) => (m.referenced, Some(&m.value)),
            None => (Location::UNKNOWN, None),
        };
        let errors = self.errors.len();
        let extra = m.and_then(|m| self.trust_bundle(m, &mesh_at));
        if let Some(c) = m.and_then(|m| m.identity.as_ref()) {
            let (key, _) = self.certificate(c, "mesh.identity")?;
            let Some(roots) = extra else {
                if self.errors.len() == errors {
                    self.err(
                        &c.referenced,
                        "mesh.trust_bundle",
                        "required with `mesh.identity`: the CA certificates peers' identities chain to",
                    );
                }
                return None;
            };
            return match Svid::new(key, roots) {
                Ok(svid) => Some(Arc::new(svid)),
                Err(e) => {
                    self.err(&c.referenced, "mesh.identity.cert", e);
                    None
                }
            };
        }
        match (&self.identity, first_user) {
            (_, None) => None,
            (IdentitySource::Files, Some((at, path))) => {
                self.err(
                    &at,
                    path,
                    "needs a workload identity: set `mesh.identity` (certificate and key files) \
                     or run under a control plane (`--control-plane`), whose CA issues one",
                );
                None
            }
            (IdentitySource::Issued(None), Some(_)) => None,
            (IdentitySource::Issued(Some(issued)), Some(_)) => {
                let mut roots = extra.unwrap_or_else(rustls::RootCertStore::empty);
                roots.add_parsable_certificates(issued.bundle.iter().cloned());
                match Svid::new(issued.key.clone(), roots) {
                    Ok(svid) => Some(Arc::new(svid)),
                    Err(e) => {
                        self.err(&mesh_at, "mesh", format!("the issued identity: {e}"));
                        None
                    }
                }
            }
        }
    }

    fn trust_bundle(&mut self, m: &RawMesh, at: &Location) -> Option<rustls::RootCertStore> {
        let src = self.pem(
            &m.trust_bundle,
            &m.trust_bundle_pem,
            at,
            "mesh",
            "trust_bundle",
            false,
        )?;
        match certs::roots(&src) {
            Ok(r) => Some(r),
            Err(e) => {
                let at = m
                    .trust_bundle
                    .as_ref()
                    .or(m.trust_bundle_pem.as_ref())
                    .map_or(*at, |s| s.referenced);
                self.err(&at, "mesh.trust_bundle", e);
                None
            }
        }
    }

    /// A listener's `mesh` mode, checked against the settings it replaces.
    pub(super) fn listener_mesh(&mut self, l: &RawListener, path: &str) -> Option<MeshMode> {
        let m = l.mesh.as_ref()?;
        let mode = match m.value.mode.as_ref().map(|v| (v.value.as_str(), v)) {
            None | Some(("permissive", _)) => MeshMode::Permissive,
            Some(("strict", _)) => MeshMode::Strict,
            Some((other, v)) => {
                self.err(
                    &v.referenced,
                    format!("{path}.mesh.mode"),
                    format!("unknown mode `{other}`: use permissive or strict"),
                );
                MeshMode::Permissive
            }
        };
        if let Some(t) = &l.tls {
            self.err(
                &t.referenced,
                format!("{path}.tls"),
                "a `mesh` listener serves the workload certificate: remove `tls`",
            );
        }
        if let (MeshMode::Strict, Some(d)) = (mode, &l.detect) {
            self.err(
                &d.referenced,
                format!("{path}.detect"),
                "a strict `mesh` listener accepts mTLS only: there is nothing to detect",
            );
        }
        if let Some(h) = &l.http2 {
            if h.value.enabled.as_ref().is_some_and(|e| !e.value) {
                self.err(
                    &h.referenced,
                    format!("{path}.http2.enabled"),
                    "proxies of the mesh talk HTTP/2 to each other: a `mesh` listener needs it",
                );
            }
        }
        Some(mode)
    }

    /// The TLS of a mesh listener: the workload certificate, when held.
    pub(super) fn mesh_server_tls(
        &mut self,
        svid: Option<&Arc<Svid>>,
        listener: &str,
        tcp: bool,
        at: &Location,
        path: &str,
    ) -> Option<Arc<ServerTls>> {
        let svid = svid?;
        match mesh::server(svid, listener, super::tls::HANDSHAKE_TIMEOUT, tcp) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => {
                self.err(at, format!("{path}.mesh"), e);
                None
            }
        }
    }

    /// A cluster's `mesh` identity, checked against the settings it
    /// replaces.
    pub(super) fn cluster_mesh(&mut self, c: &RawCluster, path: &str) -> Option<Box<str>> {
        let m = c.mesh.as_ref()?;
        if let Some(t) = &c.tls {
            self.err(
                &t.referenced,
                format!("{path}.tls"),
                "a `mesh` cluster uses the workload certificate: remove `tls`",
            );
        }
        if let Some(p) = &c.protocol {
            self.err(
                &p.referenced,
                format!("{path}.protocol"),
                "a `mesh` cluster speaks HTTP/2 to the proxies it reaches: remove `protocol`",
            );
        }
        let Some(id) = &m.value.identity else {
            self.err(
                &m.referenced,
                format!("{path}.mesh.identity"),
                "required: the SPIFFE ID the endpoints must prove (spiffe://<trust-domain>/...)",
            );
            return None;
        };
        match ringmesh_pki::spiffe::SpiffeId::from_str(&id.value) {
            Ok(parsed) => Some(parsed.as_str().into()),
            Err(e) => {
                self.err(
                    &id.referenced,
                    format!("{path}.mesh.identity"),
                    format!("`{}` is not a SPIFFE ID: {e}", id.value),
                );
                None
            }
        }
    }

    /// The TLS of a mesh cluster, for HTTP (h2) and for opaque TCP, when
    /// the proxy holds a certificate.
    pub(super) fn mesh_client_tls(
        &mut self,
        svid: Option<&Arc<Svid>>,
        expected: &str,
        at: &Location,
        path: &str,
    ) -> Option<(Arc<ClientTls>, Arc<ClientTls>)> {
        let svid = svid?;
        let http = mesh::client(svid, expected, mesh_transport_key(expected), b"h2");
        let tcp_key = mesh_transport_key(&format!("tcp {expected}"));
        let tcp = mesh::client(svid, expected, tcp_key, mesh::TCP_ALPN);
        match (http, tcp) {
            (Ok(http), Ok(tcp)) => Some((Arc::new(http), Arc::new(tcp))),
            (Err(e), _) | (_, Err(e)) => {
                self.err(at, format!("{path}.mesh"), e);
                None
            }
        }
    }
}

/// The first listener or cluster with `mesh`, where a missing identity is
/// reported.
fn first_mesh_user(raw: &RawConfig) -> Option<(Location, String)> {
    let listener = raw.listeners.iter().enumerate().find_map(|(i, l)| {
        let m = l.value.mesh.as_ref()?;
        Some((m.referenced, format!("listeners[{i}].mesh")))
    });
    listener.or_else(|| {
        raw.clusters.iter().enumerate().find_map(|(i, c)| {
            let m = c.value.mesh.as_ref()?;
            Some((m.referenced, format!("clusters[{i}].mesh")))
        })
    })
}
