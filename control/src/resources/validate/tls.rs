//! TLS resources: Secrets and ConfigMaps holding certificate material,
//! and Gateway listeners that terminate TLS (BackendTLSPolicies, which
//! originate it, are in `backend_tls`). Certificates are checked here
//! (`certs`), so a proxy never gets one it would refuse; messages name
//! the field, never key bytes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use base64::Engine;
use serde_saphyr::{Location, Spanned};

use super::super::certs::{self, PairError};
use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// The keys a `kubernetes.io/tls` Secret may hold.
const SECRET_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// One entry of a Secret's or ConfigMap's data, decoded.
struct Entry {
    path: String,
    at: Location,
    text: String,
}

impl Checker {
    pub(super) fn secret(
        &mut self,
        doc: &Doc,
        s: &RawSecret,
        at: &str,
        name: &str,
    ) -> Option<TlsSecret> {
        match &s.secret_type {
            None => self.err(
                doc,
                &s.kind.referenced,
                format!("{at}.type"),
                "missing: `type: kubernetes.io/tls` (the only type of Secret ringmesh reads)",
            ),
            Some(t) if t.value != "kubernetes.io/tls" => self.err(
                doc,
                &t.referenced,
                format!("{at}.type"),
                format!(
                    "`{}`: ringmesh reads only `kubernetes.io/tls` Secrets (a certificate chain and its key)",
                    t.value
                ),
            ),
            Some(_) => {}
        }
        // Every key given, with its text when that could be read.
        let mut entries: BTreeMap<String, Option<Entry>> = BTreeMap::new();
        if let Some(data) = &s.data {
            for (k, v) in &data.value {
                let path = format!("{at}.data[\"{k}\"]");
                let text = self.base64_pem(doc, v, &path);
                entries.insert(
                    k.clone(),
                    text.map(|text| Entry {
                        path,
                        at: v.referenced,
                        text,
                    }),
                );
            }
        }
        if let Some(data) = &s.string_data {
            for (k, v) in &data.value {
                let path = format!("{at}.stringData[\"{k}\"]");
                if entries.contains_key(k) {
                    self.err(
                        doc,
                        &v.referenced,
                        &path,
                        format!("`{k}` is given in both `data` and `stringData`: keep one"),
                    );
                    continue;
                }
                entries.insert(
                    k.clone(),
                    Some(Entry {
                        path,
                        at: v.referenced,
                        text: v.value.clone(),
                    }),
                );
            }
        }
        let unknown: Vec<(String, String, Location)> = entries
            .iter()
            .filter(|(k, _)| !SECRET_KEYS.contains(&k.as_str()))
            .filter_map(|(k, e)| e.as_ref().map(|e| (k.clone(), e.path.clone(), e.at)))
            .collect();
        for (k, path, loc) in unknown {
            let hint = did_you_mean(&k, &SECRET_KEYS);
            self.err(
                doc,
                &loc,
                path,
                format!(
                    "unknown key `{k}`{hint}; a kubernetes.io/tls Secret holds {}",
                    SECRET_KEYS.join(", ")
                ),
            );
        }
        let data_at = s
            .string_data
            .as_ref()
            .or(s.data.as_ref())
            .map_or(s.kind.referenced, |d| d.referenced);
        for (key, what) in [
            ("tls.crt", "the certificate chain, leaf first"),
            ("tls.key", "the private key"),
        ] {
            if !entries.contains_key(key) {
                self.err(
                    doc,
                    &data_at,
                    format!("{at}.stringData[\"{key}\"]"),
                    format!("missing: `{key}`, {what} (PEM in `stringData`, base64 in `data`)"),
                );
            }
        }
        let entry = |k: &str| entries.get(k).and_then(Option::as_ref);
        let ca = entry("ca.crt").and_then(|e| self.ca_entry(doc, e));
        let (Some(crt), Some(key)) = (entry("tls.crt"), entry("tls.key")) else {
            return None;
        };
        let pair = match certs::key_pair(&crt.text, &key.text, SystemTime::now()) {
            Ok(p) => p,
            Err(PairError::Cert(m)) => {
                self.err(doc, &crt.at, &crt.path, m);
                return None;
            }
            Err(PairError::Key(m)) => {
                self.err(doc, &key.at, &key.path, m);
                return None;
            }
        };
        Some(TlsSecret {
            name: name.to_string(),
            pair,
            ca,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + s.kind.referenced.line(),
            },
        })
    }

    /// A `data` value: base64 of PEM text.
    fn base64_pem(&mut self, doc: &Doc, v: &Spanned<String>, path: &str) -> Option<String> {
        let compact: String = v
            .value
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        if decoded.is_none() {
            self.err(
                doc,
                &v.referenced,
                path,
                "not base64 of PEM text (Kubernetes `data` is base64; PEM as it is goes in `stringData`)",
            );
        }
        decoded
    }

    fn ca_entry(&mut self, doc: &Doc, e: &Entry) -> Option<CaBundle> {
        match certs::ca_bundle(&e.text) {
            Ok((pem, count)) => Some(CaBundle { pem, count }),
            Err(m) => {
                self.err(doc, &e.at, &e.path, m);
                None
            }
        }
    }

    pub(super) fn config_map(
        &mut self,
        doc: &Doc,
        c: &RawConfigMap,
        at: &str,
        name: &str,
    ) -> Option<ConfigMap> {
        let mut ca = None;
        if let Some(data) = &c.data {
            for (k, v) in &data.value {
                let path = format!("{at}.data[\"{k}\"]");
                if k != "ca.crt" {
                    let hint = did_you_mean(k, &["ca.crt"]);
                    self.err(
                        doc,
                        &v.referenced,
                        path,
                        format!("unknown key `{k}`{hint}; a ConfigMap here holds a CA bundle in `ca.crt`"),
                    );
                    continue;
                }
                let e = Entry {
                    path,
                    at: v.referenced,
                    text: v.value.clone(),
                };
                ca = self.ca_entry(doc, &e);
            }
        }
        if !c
            .data
            .as_ref()
            .is_some_and(|d| d.value.contains_key("ca.crt"))
        {
            let where_ = c.data.as_ref().map_or(c.kind.referenced, |d| d.referenced);
            self.err(
                doc,
                &where_,
                format!("{at}.data[\"ca.crt\"]"),
                "missing: `ca.crt`, a PEM bundle of CA certificates",
            );
            return None;
        }
        Some(ConfigMap {
            name: name.to_string(),
            ca: ca?,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + c.kind.referenced.line(),
            },
        })
    }

    /// A listener's `hostname` and `tls` for its protocol (None: not
    /// known, an error said why): (hostname, tls).
    pub(super) fn listener_tls(
        &mut self,
        doc: &Doc,
        l: &Spanned<RawGatewayListener>,
        protocol: Option<ListenerProtocol>,
        path: &str,
        known: &Resources,
    ) -> (Option<String>, Option<ListenerTls>) {
        let raw = &l.value;
        let hostname = raw
            .hostname
            .as_ref()
            .and_then(|h| self.hostname(doc, h, &format!("{path}.hostname"), true));
        let https = match protocol {
            None => return (hostname, None),
            Some(ListenerProtocol::Tcp) => {
                if let Some(h) = &raw.hostname {
                    self.err(
                        doc,
                        &h.referenced,
                        format!("{path}.hostname"),
                        "a TCP listener has no host name to match: leave `hostname` out",
                    );
                }
                if let Some(t) = &raw.tls {
                    self.err(
                        doc,
                        &t.referenced,
                        format!("{path}.tls"),
                        "`tls` is for `protocol: HTTPS` listeners (TLS passthrough is not supported yet)",
                    );
                }
                return (None, None);
            }
            Some(ListenerProtocol::Http) => false,
            Some(ListenerProtocol::Https) => true,
        };
        let tls = match (&raw.tls, https) {
            (None, false) => None,
            (Some(t), false) => {
                self.err(
                    doc,
                    &t.referenced,
                    format!("{path}.tls"),
                    "`tls` is for `protocol: HTTPS` listeners",
                );
                None
            }
            (None, true) => {
                let at = raw.protocol.as_ref().map_or(l.referenced, |p| p.referenced);
                self.err(
                    doc,
                    &at,
                    format!("{path}.tls"),
                    "missing: an HTTPS listener needs `tls.certificateRefs`, the Secrets it presents",
                );
                None
            }
            (Some(t), true) => {
                self.gateway_tls(doc, t, hostname.as_deref(), &format!("{path}.tls"), known)
            }
        };
        (hostname, tls)
    }

    fn gateway_tls(
        &mut self,
        doc: &Doc,
        t: &Spanned<RawGatewayTls>,
        hostname: Option<&str>,
        path: &str,
        known: &Resources,
    ) -> Option<ListenerTls> {
        let errors = self.errors.len();
        match t.value.mode.as_ref().map(|m| (m.value.as_str(), m)) {
            None | Some(("Terminate", _)) => {}
            Some(("Passthrough", m)) => self.err(
                doc,
                &m.referenced,
                format!("{path}.mode"),
                "`Passthrough` is not supported yet: a ringmesh gateway terminates TLS (mode: Terminate)",
            ),
            Some((other, m)) => {
                let hint = did_you_mean(other, &["Terminate", "Passthrough"]);
                self.err(
                    doc,
                    &m.referenced,
                    format!("{path}.mode"),
                    format!("unknown mode `{other}`{hint}: use Terminate"),
                );
            }
        }
        if t.value.certificate_refs.is_empty() {
            self.err(
                doc,
                &t.referenced,
                format!("{path}.certificateRefs"),
                "name at least one Secret (type kubernetes.io/tls) for the listener to present",
            );
        }
        self.unsupported(
            doc,
            &t.value.options,
            &format!("{path}.options"),
            ": the proxy's TLS settings are its defaults",
        );
        self.unsupported(
            doc,
            &t.value.frontend_validation,
            &format!("{path}.frontendValidation"),
            ": client certificates are not asked for on a Gateway listener",
        );
        let mut certificates = Vec::new();
        for (i, r) in t.value.certificate_refs.iter().enumerate() {
            let p = format!("{path}.certificateRefs[{i}]");
            if !self.ref_kind(doc, r, &p, &["Secret"], true) {
                continue;
            }
            let name = &r.value.name;
            let Some(q) = self.reference_in(
                doc,
                name,
                r.value.namespace.as_ref(),
                &format!("{p}.name"),
                "Secret",
                known.secrets.keys(),
            ) else {
                continue;
            };
            let Some(secret) = known.secrets.get(&q) else {
                continue;
            };
            let leaf = &secret.pair.leaf;
            match hostname {
                Some(h) if !certs::covers(leaf, h) => self.err(
                    doc,
                    &name.referenced,
                    format!("{p}.name"),
                    format!(
                        "the certificate in Secret/{} does not cover the listener's hostname `{h}` (it names {}): clients would refuse it",
                        name.value,
                        names_or_none(&leaf.dns_names)
                    ),
                ),
                None if i > 0 && leaf.dns_names.is_empty() => self.err(
                    doc,
                    &name.referenced,
                    format!("{p}.name"),
                    format!(
                        "the certificate in Secret/{} names no DNS name, so no client could select it: only the first certificate (the default) may, or set the listener's `hostname`",
                        name.value
                    ),
                ),
                _ => {}
            }
            certificates.push(q);
        }
        (self.errors.len() == errors).then_some(ListenerTls { certificates })
    }

    /// `group` (`""` when given) and `kind` (one of `kinds`; the first is
    /// the default) of a reference, and its `namespace` where `namespaced`
    /// (the Gateway API has it there).
    pub(super) fn ref_kind(
        &mut self,
        doc: &Doc,
        r: &Spanned<RawObjectRef>,
        path: &str,
        kinds: &[&str],
        namespaced: bool,
    ) -> bool {
        let mut ok = true;
        if let Some(ns) = &r.value.namespace {
            if namespaced {
                self.name(doc, ns, &format!("{path}.namespace"));
            } else {
                self.err(
                    doc,
                    &ns.referenced,
                    format!("{path}.namespace"),
                    "this reference is to the referring resource's own namespace (the Gateway API has no `namespace` here)",
                );
                ok = false;
            }
        }
        if let Some(g) = r.value.group.as_ref().filter(|g| !g.value.is_empty()) {
            self.err(
                doc,
                &g.referenced,
                format!("{path}.group"),
                format!(
                    "`{}`: only core objects are referenced here (group \"\")",
                    g.value
                ),
            );
            ok = false;
        }
        if let Some(k) = r
            .value
            .kind
            .as_ref()
            .filter(|k| !kinds.contains(&k.value.as_str()))
        {
            let hint = did_you_mean(&k.value, kinds);
            self.err(
                doc,
                &k.referenced,
                format!("{path}.kind"),
                format!(
                    "`{}`{hint}: this reference names a {}",
                    k.value,
                    kinds.join(" or ")
                ),
            );
            ok = false;
        }
        ok
    }

    /// A host name as the Gateway API writes one: lowercase DNS labels,
    /// with `*.` in front for a wildcard where `wildcard` allows; not an IP.
    pub(super) fn hostname(
        &mut self,
        doc: &Doc,
        h: &Spanned<String>,
        path: &str,
        wildcard: bool,
    ) -> Option<String> {
        let v = h.value.as_str();
        let bare = match v.strip_prefix("*.") {
            Some(rest) if wildcard => rest,
            _ => v,
        };
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let problem = if v.parse::<std::net::IpAddr>().is_ok() {
            Some("an IP address is not a host name here")
        } else if bare.len() > 253 || !bare.split('.').all(label_ok) {
            Some(if wildcard {
                "not a host name: lowercase DNS labels (letters, digits, '-') joined by '.', optionally after `*.`"
            } else {
                "not a host name: lowercase DNS labels (letters, digits, '-') joined by '.'"
            })
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.err(doc, &h.referenced, path, format!("`{v}`: {p}"));
                None
            }
            None => Some(v.to_string()),
        }
    }

    /// Listeners sharing an address become one proxy listener: they must
    /// share a protocol and differ in hostname, and a certificate of the
    /// one without a hostname must not take over another's hostnames.
    pub(super) fn shared_addresses(
        &mut self,
        doc: &Doc,
        raw: &[Spanned<RawGatewayListener>],
        built: &[(usize, GatewayListener)],
        at: &str,
        known: &Resources,
    ) {
        let mut first: BTreeMap<SocketAddr, (ListenerProtocol, &str)> = BTreeMap::new();
        let mut served: BTreeMap<(SocketAddr, Option<&str>), &str> = BTreeMap::new();
        for (i, l) in built {
            let path = format!("{at}.spec.listeners[{i}]");
            let r = &raw[*i].value;
            let at_l = r
                .address
                .as_ref()
                .map(|a| a.referenced)
                .or(r.port.as_ref().map(|p| p.referenced))
                .unwrap_or(raw[*i].referenced);
            let Some(&(lead, lead_name)) = first.get(&l.address) else {
                first.insert(l.address, (l.protocol, &l.name));
                served.insert((l.address, l.hostname.as_deref()), &l.name);
                continue;
            };
            if lead != l.protocol {
                let at_p = r.protocol.as_ref().map_or(at_l, |p| p.referenced);
                self.err(
                    doc,
                    &at_p,
                    format!("{path}.protocol"),
                    format!(
                        "listener `{lead_name}` on {} is {}: listeners that share an address share a protocol",
                        l.address,
                        protocol_name(lead)
                    ),
                );
                continue;
            }
            if lead == ListenerProtocol::Tcp {
                self.err(
                    doc,
                    &at_l,
                    format!("{path}.port"),
                    format!(
                        "listener `{lead_name}` is on {} already: TCP listeners cannot share an address (nothing in a TCP connection tells them apart)",
                        l.address
                    ),
                );
                continue;
            }
            if let Some(other) = served.insert((l.address, l.hostname.as_deref()), &l.name) {
                let at_h = r.hostname.as_ref().map_or(at_l, |h| h.referenced);
                let what = l
                    .hostname
                    .as_deref()
                    .map_or("every hostname".to_string(), |h| format!("`{h}`"));
                self.err(
                    doc,
                    &at_h,
                    format!("{path}.hostname"),
                    format!(
                        "listener `{other}` already serves {what} on {}: listeners that share an address need different hostnames",
                        l.address
                    ),
                );
            }
        }
        // The catch-all listener's certificates answer for the names they
        // hold except those more specific listeners serve (the Gateway
        // API's "most specific listener wins"); one left with none would
        // claim them anyway (the proxy reads no names as "the leaf's").
        for (i, l) in built.iter().filter(|(_, l)| l.hostname.is_none()) {
            let Some(tls) = &l.tls else { continue };
            let claimed: Vec<&str> = built
                .iter()
                .filter(|(_, o)| o.address == l.address)
                .filter_map(|(_, o)| o.hostname.as_deref())
                .collect();
            for (j, name) in tls.certificates.iter().enumerate() {
                let Some(secret) = known.secrets.get(name) else {
                    continue;
                };
                let names = &secret.pair.leaf.dns_names;
                if !names.is_empty() && names.iter().all(|n| claimed.contains(&n.as_str())) {
                    let r = &raw[*i].value;
                    let at_ref = r
                        .tls
                        .as_ref()
                        .and_then(|t| t.value.certificate_refs.get(j))
                        .map_or(r.name.referenced, |c| c.value.name.referenced);
                    self.err(
                        doc,
                        &at_ref,
                        format!("{at}.spec.listeners[{i}].tls.certificateRefs[{j}].name"),
                        format!(
                            "every name of the certificate in Secret/{name} ({}) is the hostname of another listener on {}, which serves it with its own certificate: this one would take those names over",
                            names.join(", "),
                            l.address
                        ),
                    );
                }
            }
        }
    }
}

fn protocol_name(p: ListenerProtocol) -> &'static str {
    match p {
        ListenerProtocol::Http => "HTTP",
        ListenerProtocol::Https => "HTTPS",
        ListenerProtocol::Tcp => "TCP",
    }
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no DNS name".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
