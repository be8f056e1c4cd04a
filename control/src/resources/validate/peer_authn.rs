//! PeerAuthentication, as Istio writes it (`security.istio.io/v1`): the
//! mTLS mode (STRICT, PERMISSIVE, or UNSET to inherit) of one Service's
//! sidecars or of every Service of a namespace.
//!
//! ringmesh has no workload labels: a sidecar belongs to the Service it
//! registered for. So the one selector read is `matchLabels: { app:
//! <Service name> }`, the label Istio's own samples give a Service's
//! pods; any other label is an error at it. Istio resolves several
//! policies for one workload (or several namespace-wide ones) by age;
//! ringmesh has no creation times, so it refuses the second instead.

use std::collections::BTreeMap;

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// The label that selects a Service's sidecars.
const APP_LABEL: &str = "app";

const MODES: [&str; 4] = ["STRICT", "PERMISSIVE", "UNSET", "DISABLE"];

impl Checker {
    /// `taken`: who already claimed a Service (qualified name) or a
    /// namespace (`namespace <ns>`), and where.
    pub(super) fn peer_authentication(
        &mut self,
        doc: &Doc,
        p: &RawPeerAuthentication,
        at: &str,
        name: String,
        known: &Resources,
        taken: &mut BTreeMap<String, String>,
    ) -> Option<PeerAuthn> {
        let errors = self.errors.len();
        let spec = &p.spec;
        self.unsupported(
            doc,
            &spec.port_level_mtls,
            &format!("{at}.spec.portLevelMtls"),
            ": a sidecar's inbound listener has one mode for all its traffic",
        );
        let service = spec
            .selector
            .as_ref()
            .and_then(|s| self.peer_authn_selector(doc, s, at, known));
        let mode = spec
            .mtls
            .as_ref()
            .and_then(|m| m.value.mode.as_ref())
            .and_then(|m| self.mtls_mode(doc, m, &format!("{at}.spec.mtls.mode")));
        if self.errors.len() != errors {
            return None;
        }
        let here = format!(
            "{}:{}",
            doc.file,
            doc.offset + p.metadata.name.referenced.line()
        );
        let (key, clash) = match &service {
            Some(s) => (
                s.clone(),
                format!("Service `{s}` is already selected by a PeerAuthentication"),
            ),
            None => (
                format!("namespace {}", doc.ns),
                format!(
                    "namespace `{}` already has a namespace-wide PeerAuthentication",
                    doc.ns
                ),
            ),
        };
        if let Some(first) = taken.get(&key) {
            self.err(
                doc,
                &p.metadata.name.referenced,
                format!("{at}.metadata.name"),
                format!("{clash}, at {first}: Istio would apply the older one; ringmesh has no creation times, so keep one"),
            );
            return None;
        }
        taken.insert(key, here);
        Some(PeerAuthn {
            name,
            namespace: doc.ns.clone(),
            service,
            mode,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + p.kind.referenced.line(),
            },
        })
    }

    /// `selector.matchLabels`: exactly `app: <Service name>`, a Service of
    /// the policy's namespace.
    pub(super) fn peer_authn_selector(
        &mut self,
        doc: &Doc,
        s: &S<RawWorkloadSelector>,
        at: &str,
        known: &Resources,
    ) -> Option<String> {
        let path = format!("{at}.spec.selector");
        let labels = s.value.match_labels.as_ref().filter(|l| !l.is_empty());
        let Some(labels) = labels else {
            self.err(
                doc,
                &s.referenced,
                format!("{path}.matchLabels"),
                format!("empty: write `matchLabels: {{ {APP_LABEL}: <Service name> }}` to select a Service's sidecars, or leave `selector` out for every Service of the namespace"),
            );
            return None;
        };
        let mut service = None;
        for (k, v) in labels {
            let path = format!("{path}.matchLabels[\"{k}\"]");
            if k != APP_LABEL {
                let hint = did_you_mean(k, &[APP_LABEL]);
                self.err(
                    doc,
                    &v.referenced,
                    path,
                    format!("label `{k}` is not supported yet{hint}: ringmesh has no workload labels; `{APP_LABEL}: <Service name>` selects the sidecars registered for that Service"),
                );
                continue;
            }
            service = self.reference(doc, v, &path, "Service", known.services.keys());
        }
        service
    }

    /// `mtls.mode`: None for UNSET.
    fn mtls_mode(&mut self, doc: &Doc, m: &S<String>, path: &str) -> Option<MtlsMode> {
        match m.value.as_str() {
            "STRICT" => Some(MtlsMode::Strict),
            "PERMISSIVE" => Some(MtlsMode::Permissive),
            "UNSET" => None,
            "DISABLE" => {
                self.err(
                    doc,
                    &m.referenced,
                    path,
                    "`DISABLE` is not supported yet: a sidecar's inbound listener always accepts the mesh's mTLS; PERMISSIVE also accepts plaintext",
                );
                None
            }
            other => {
                let hint = did_you_mean(&other.to_ascii_uppercase(), &MODES);
                self.err(
                    doc,
                    &m.referenced,
                    path,
                    format!("unknown mode `{other}`{hint}: use STRICT, PERMISSIVE or UNSET"),
                );
                None
            }
        }
    }
}
