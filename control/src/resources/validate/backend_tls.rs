//! BackendTLSPolicy: which Services' endpoints speak TLS, the CAs their
//! certificates must chain to, the name they must carry, and (ringmesh's
//! option) the client certificate to present.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// The one `options` key: the Gateway API's place for what it does not
/// standardise.
const CLIENT_CERTIFICATE_OPTION: &str = "ringmesh.io/client-certificate";

impl Checker {
    pub(super) fn backend_tls(
        &mut self,
        doc: &Doc,
        p: &RawBackendTlsPolicy,
        at: &str,
        name: String,
        known: &Resources,
        taken: &mut BTreeMap<String, String>,
    ) -> Option<BackendTls> {
        let errors = self.errors.len();
        let spec = &p.spec;
        if spec.target_refs.is_empty() {
            self.err(
                doc,
                &p.kind.referenced,
                format!("{at}.spec.targetRefs"),
                "name at least one Service whose endpoints speak TLS",
            );
        }
        let mut targets = Vec::new();
        for (i, r) in spec.target_refs.iter().enumerate() {
            let path = format!("{at}.spec.targetRefs[{i}]");
            if !self.ref_kind(doc, r, &path, &["Service"], false) {
                continue;
            }
            let target = &r.value.name;
            let Some(q) = self.reference(
                doc,
                target,
                &format!("{path}.name"),
                "Service",
                known.services.keys(),
            ) else {
                continue;
            };
            let here = format!(
                "{at} ({}:{})",
                doc.file,
                doc.offset + target.referenced.line()
            );
            if let Some(first) = taken.get(&q) {
                self.err(
                    doc,
                    &target.referenced,
                    format!("{path}.name"),
                    format!(
                        "Service `{}` already has a backend TLS policy: {first}",
                        target.value
                    ),
                );
                continue;
            }
            taken.insert(q.clone(), here);
            if !targets.contains(&q) {
                targets.push(q);
            }
        }
        let validation = self.backend_validation(doc, p, at, known);
        let mut client_certificate = None;
        for (k, v) in &spec.options {
            let path = format!("{at}.spec.options[\"{k}\"]");
            if k != CLIENT_CERTIFICATE_OPTION {
                let hint = did_you_mean(k, &[CLIENT_CERTIFICATE_OPTION]);
                self.err(
                    doc,
                    &v.referenced,
                    path,
                    format!("unknown option `{k}`{hint}; known: {CLIENT_CERTIFICATE_OPTION}"),
                );
                continue;
            }
            if let Some(q) = self.reference(doc, v, &path, "Secret", known.secrets.keys()) {
                client_certificate = Some(q);
            }
        }
        let (ca, hostname) = validation?;
        (self.errors.len() == errors).then(|| BackendTls {
            name,
            targets,
            ca,
            hostname,
            client_certificate,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + p.kind.referenced.line(),
            },
        })
    }

    /// `validation`: exactly one of `caCertificateRefs` and
    /// `wellKnownCACertificates`, and the `hostname`.
    fn backend_validation(
        &mut self,
        doc: &Doc,
        p: &RawBackendTlsPolicy,
        at: &str,
        known: &Resources,
    ) -> Option<(BackendCa, String)> {
        let path = format!("{at}.spec.validation");
        let Some(v) = &p.spec.validation else {
            self.err(
                doc,
                &p.kind.referenced,
                path,
                "missing: the CAs to trust (`caCertificateRefs` or `wellKnownCACertificates`) and the `hostname` to verify",
            );
            return None;
        };
        let refs = v
            .value
            .ca_certificate_refs
            .as_ref()
            .filter(|r| !r.is_empty());
        let ca = match (refs, &v.value.well_known_ca_certificates) {
            (Some(_), Some(w)) => {
                self.err(
                    doc,
                    &w.referenced,
                    format!("{path}.wellKnownCACertificates"),
                    "give `caCertificateRefs` or `wellKnownCACertificates`, not both",
                );
                None
            }
            (None, None) => {
                self.err(
                    doc,
                    &v.referenced,
                    format!("{path}.caCertificateRefs"),
                    "missing: the CAs to trust, `caCertificateRefs` (ConfigMaps with `ca.crt`) or `wellKnownCACertificates: System`",
                );
                None
            }
            (None, Some(w)) if w.value == "System" => Some(BackendCa::System),
            (None, Some(w)) => {
                let hint = did_you_mean(&w.value, &["System"]);
                self.err(
                    doc,
                    &w.referenced,
                    format!("{path}.wellKnownCACertificates"),
                    format!(
                        "`{}`{hint}: the only set is `System` (the proxy machine's trusted roots)",
                        w.value
                    ),
                );
                None
            }
            (Some(refs), None) => {
                self.ca_refs(doc, refs, &format!("{path}.caCertificateRefs"), known)
            }
        };
        let hostname = match &v.value.hostname {
            Some(h) => self.hostname(doc, h, &format!("{path}.hostname"), false),
            None => {
                self.err(
                    doc,
                    &v.referenced,
                    format!("{path}.hostname"),
                    "missing: the name sent in SNI and verified in the backend's certificate",
                );
                None
            }
        };
        Some((ca?, hostname?))
    }

    fn ca_refs(
        &mut self,
        doc: &Doc,
        refs: &[Spanned<RawObjectRef>],
        path: &str,
        known: &Resources,
    ) -> Option<BackendCa> {
        let errors = self.errors.len();
        let mut out = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if !self.ref_kind(doc, r, &p, &["ConfigMap", "Secret"], false) {
                continue;
            }
            let name = &r.value.name;
            let np = format!("{p}.name");
            match r
                .value
                .kind
                .as_ref()
                .map_or("ConfigMap", |k| k.value.as_str())
            {
                "Secret" => {
                    let Some(q) = self.reference(doc, name, &np, "Secret", known.secrets.keys())
                    else {
                        continue;
                    };
                    if known.secrets.get(&q).is_some_and(|s| s.ca.is_none()) {
                        self.err(
                            doc,
                            &name.referenced,
                            np,
                            format!("Secret/{} has no `ca.crt`", name.value),
                        );
                        continue;
                    }
                    out.push(CaRef::Secret(q));
                }
                _ => {
                    if let Some(q) =
                        self.reference(doc, name, &np, "ConfigMap", known.config_maps.keys())
                    {
                        out.push(CaRef::ConfigMap(q));
                    }
                }
            }
        }
        (self.errors.len() == errors).then_some(BackendCa::Refs(out))
    }
}
