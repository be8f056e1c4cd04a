//! Telemetry, as Istio writes it (`telemetry.istio.io/v1`): the access
//! log and the tracing of one Service's sidecars (`selector`), of
//! Gateways (`targetRefs`), or of every workload of a namespace.
//!
//! Istio's entries name providers defined in its MeshConfig. ringmesh has
//! no MeshConfig, so an entry says where its output goes itself, in
//! ringmesh's extension fields: `accessLogging[].file: { path, format }`
//! and `tracing[].collector`. Istio's built-in `envoy` access log
//! provider (stdout, Envoy's text format) is the one provider name read.
//! Istio's `filter.expression` is CEL; its common form `response.code >=
//! N` is read, and ringmesh's `filter.minStatus` says the same plainly.
//!
//! Resolution is Istio's: a Telemetry that targets a workload overrides
//! its namespace's namespace-wide one field by field (a field it leaves
//! out is inherited). As with PeerAuthentication, one of each per
//! Service, Gateway or namespace; there is no root namespace.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Location;

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc, GATEWAY_API};

/// Istio's default MeshConfig access log provider: stdout, text.
const ENVOY_PROVIDER: &str = "envoy";

/// A section that names no destination and must inherit one from its
/// namespace's namespace-wide Telemetry: checked once all are read.
pub(super) struct Inherits {
    doc: Doc,
    at: Location,
    path: String,
    namespace: String,
    section: Section,
}

enum Section {
    AccessLog(AccessLogging),
    Tracing(TracingPolicy),
}

impl Checker {
    /// `taken`: who already claimed a Service, a Gateway or a namespace,
    /// and where. `inherits`: sections to check against their namespace's
    /// namespace-wide Telemetry once every Telemetry is read.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn telemetry(
        &mut self,
        doc: &Doc,
        t: &RawTelemetry,
        at: &str,
        name: String,
        known: &Resources,
        taken: &mut BTreeMap<String, String>,
        inherits: &mut Vec<Inherits>,
    ) -> Option<Telemetry> {
        let errors = self.errors.len();
        let spec = &t.spec;
        self.unsupported(
            doc,
            &spec.target_ref,
            &format!("{at}.spec.targetRef"),
            ": use `targetRefs`",
        );
        self.unsupported(
            doc,
            &spec.metrics,
            &format!("{at}.spec.metrics"),
            ": a proxy's metrics are always on (its admin `/metrics`), with fixed labels",
        );
        let mut targets = Vec::new();
        if let Some(s) = &spec.selector {
            targets.extend(
                self.peer_authn_selector(doc, s, at, known)
                    .map(TelemetryTarget::Service),
            );
        }
        if let Some(refs) = &spec.target_refs {
            let path = format!("{at}.spec.targetRefs");
            if let Some(s) = &spec.selector {
                self.err(
                    doc,
                    &s.referenced,
                    format!("{at}.spec.selector"),
                    "give `selector` (a Service's sidecars) or `targetRefs` (Gateways), not both, as in Istio",
                );
            } else if refs.is_empty() {
                self.err(
                    doc,
                    &t.kind.referenced,
                    path.clone(),
                    "empty: name the Gateways, or leave targetRefs out for every workload of the namespace",
                );
            }
            for (i, r) in refs.iter().enumerate() {
                if let Some(g) = self.telemetry_target(doc, r, &format!("{path}[{i}]"), known) {
                    let g = TelemetryTarget::Gateway(g);
                    if !targets.contains(&g) {
                        targets.push(g);
                    }
                }
            }
        }
        let access_logging = self.access_logging(doc, t, at);
        let tracing = self.telemetry_tracing(doc, t, at);
        if self.errors.len() != errors {
            return None;
        }
        // Sections that name no destination inherit one, or are an error.
        let wide = spec.selector.is_none() && spec.target_refs.is_none();
        let mut pending = Vec::new();
        if let Some((a, loc)) = &access_logging {
            if a.disabled != Some(true) && a.sink.is_none() {
                pending.push((loc, "accessLogging[0]", Section::AccessLog(a.clone())));
            }
        }
        if let Some((tr, loc)) = &tracing {
            if tr.disabled != Some(true) && tr.collector.is_none() {
                pending.push((loc, "tracing[0]", Section::Tracing(tr.clone())));
            }
        }
        for (loc, field, section) in pending {
            let path = format!("{at}.spec.{field}");
            if wide {
                let (what, how) = match section {
                    Section::AccessLog(_) => ("file", "`file: { path: /var/log/ringmesh/access.log }` (or `providers: [ { name: envoy } ]` for stdout)"),
                    Section::Tracing(_) => ("collector", "`collector: host:port` (OTLP/gRPC)"),
                };
                self.err(
                    doc,
                    loc,
                    path,
                    format!("no {what}: a namespace-wide Telemetry has nothing to inherit one from; write {how}, or `disabled: true`"),
                );
            } else {
                inherits.push(Inherits {
                    doc: doc.clone(),
                    at: *loc,
                    path,
                    namespace: doc.ns.clone(),
                    section,
                });
            }
        }
        if self.errors.len() != errors {
            return None;
        }
        let here = format!(
            "{}:{}",
            doc.file,
            doc.offset + t.metadata.name.referenced.line()
        );
        let keys: Vec<(String, String)> = if targets.is_empty() {
            if !wide {
                // A selector or targetRefs whose errors were reported.
                return None;
            }
            vec![(
                format!("namespace {}", doc.ns),
                format!(
                    "namespace `{}` already has a namespace-wide Telemetry",
                    doc.ns
                ),
            )]
        } else {
            targets
                .iter()
                .map(|target| match target {
                    TelemetryTarget::Service(s) => (
                        format!("Service {s}"),
                        format!("Service `{s}` is already selected by a Telemetry"),
                    ),
                    TelemetryTarget::Gateway(g) => (
                        format!("Gateway {g}"),
                        format!("Gateway `{g}` is already targeted by a Telemetry"),
                    ),
                })
                .collect()
        };
        for (key, clash) in &keys {
            if let Some(first) = taken.get(key) {
                self.err(
                    doc,
                    &t.metadata.name.referenced,
                    format!("{at}.metadata.name"),
                    format!("{clash}, at {first}: Istio would apply the older one; ringmesh has no creation times, so keep one"),
                );
                return None;
            }
        }
        for (key, _) in keys {
            taken.insert(key, here.clone());
        }
        Some(Telemetry {
            name,
            namespace: doc.ns.clone(),
            targets,
            access_logging: access_logging.map(|(a, _)| a),
            tracing: tracing.map(|(t, _)| t),
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + t.kind.referenced.line(),
            },
        })
    }

    /// After every Telemetry is read: a targeting Telemetry's section
    /// without a destination needs its namespace-wide one to give it.
    /// `broken`: namespaces whose namespace-wide Telemetry had errors
    /// (already reported).
    pub(super) fn telemetry_inherits(
        &mut self,
        inherits: Vec<Inherits>,
        all: &BTreeMap<String, Telemetry>,
        broken: &BTreeSet<String>,
    ) {
        for i in inherits {
            if broken.contains(&i.namespace) {
                continue;
            }
            let wide = all
                .values()
                .find(|t| t.targets.is_empty() && t.namespace == i.namespace);
            let (missing, what, how) = match &i.section {
                Section::AccessLog(a) => {
                    let merged = a.over(wide.and_then(|w| w.access_logging.as_ref()));
                    (
                        merged.disabled != Some(true) && merged.sink.is_none(),
                        "file",
                        "write `file: { path: ... }` here or in it",
                    )
                }
                Section::Tracing(t) => {
                    let merged = t.over(wide.and_then(|w| w.tracing.as_ref()));
                    (
                        merged.disabled != Some(true) && merged.collector.is_none(),
                        "collector",
                        "write `collector: host:port` here or in it",
                    )
                }
            };
            if missing {
                let from = match wide {
                    Some(w) => format!("the namespace-wide Telemetry `{}` gives none", w.name),
                    None => format!(
                        "namespace `{}` has no namespace-wide Telemetry to inherit one from",
                        i.namespace
                    ),
                };
                self.err(&i.doc, &i.at, i.path, format!("no {what}: {from}; {how}"));
            }
        }
    }

    /// A `targetRefs` entry: a Gateway of the Telemetry's namespace.
    fn telemetry_target(
        &mut self,
        doc: &Doc,
        r: &S<RawObjectRef>,
        path: &str,
        known: &Resources,
    ) -> Option<String> {
        let r = &r.value;
        let mut ok = true;
        if let Some(g) = r.group.as_ref().filter(|g| g.value != GATEWAY_API) {
            self.err(
                doc,
                &g.referenced,
                format!("{path}.group"),
                format!("`{}`: a Gateway is in group `{GATEWAY_API}`", g.value),
            );
            ok = false;
        }
        match r.kind.as_ref().map(|k| (k.value.as_str(), k)) {
            Some(("Gateway", _)) => {}
            None => {
                self.err(
                    doc,
                    &r.name.referenced,
                    format!("{path}.kind"),
                    "missing: `kind: Gateway` (a Service's sidecars are selected by `selector: { matchLabels: { app: <name> } }`)",
                );
                ok = false;
            }
            Some(("Service", k)) => {
                self.err(
                    doc,
                    &k.referenced,
                    format!("{path}.kind"),
                    "`Service`: select a Service's sidecars with `selector: { matchLabels: { app: <name> } }`; targetRefs names Gateways",
                );
                ok = false;
            }
            Some((other, k)) => {
                let hint = did_you_mean(other, &["Gateway"]);
                self.err(
                    doc,
                    &k.referenced,
                    format!("{path}.kind"),
                    format!("`{other}`{hint}: targetRefs names Gateways"),
                );
                ok = false;
            }
        }
        self.own_namespace_target(
            doc,
            r,
            path,
            ok,
            "a Telemetry targets Gateways",
            "Gateway",
            known.gateways.keys(),
        )
    }

    /// `accessLogging`: at most one entry; empty is as if not written.
    fn access_logging(
        &mut self,
        doc: &Doc,
        t: &RawTelemetry,
        at: &str,
    ) -> Option<(AccessLogging, Location)> {
        let list = t.spec.access_logging.as_ref()?;
        let path = format!("{at}.spec.accessLogging");
        if let Some(second) = list.get(1) {
            self.err(
                doc,
                &second.referenced,
                format!("{path}[1]"),
                "one entry only: a listener writes one access log",
            );
        }
        let entry = list.first()?;
        let path = format!("{path}[0]");
        let e = &entry.value;
        self.unsupported(
            doc,
            &e.match_,
            &format!("{path}.match"),
            ": an access log covers both a sidecar's inbound and outbound listeners",
        );
        let providers = e.providers.as_ref().filter(|p| !p.is_empty());
        let mut sink = None;
        if let (Some(_), Some(f)) = (providers, &e.file) {
            self.err(
                doc,
                &f.referenced,
                format!("{path}.file"),
                "give `file` (ringmesh's) or `providers`, not both",
            );
        } else if let Some(providers) = providers {
            sink = self.log_provider(doc, providers, &format!("{path}.providers"));
        } else if let Some(f) = &e.file {
            sink = self.log_file(doc, f, &format!("{path}.file"));
        }
        let min_status = e
            .filter
            .as_ref()
            .map(|f| self.log_filter(doc, f, &format!("{path}.filter")));
        let sample_percent = e
            .sample_percent
            .as_ref()
            .and_then(|p| self.share(doc, p, &format!("{path}.samplePercent")));
        Some((
            AccessLogging {
                disabled: e.disabled.as_ref().map(|d| d.value),
                sink,
                min_status,
                sample_percent,
            },
            entry.referenced,
        ))
    }

    /// `providers`: Istio's built-in `envoy` only.
    fn log_provider(
        &mut self,
        doc: &Doc,
        providers: &[S<RawProviderRef>],
        path: &str,
    ) -> Option<LogSink> {
        if let Some(second) = providers.get(1) {
            self.err(
                doc,
                &second.referenced,
                format!("{path}[1]"),
                "one provider only: a listener writes one access log",
            );
            return None;
        }
        let name = &providers.first()?.value.name;
        if name.value == ENVOY_PROVIDER {
            return Some(LogSink {
                path: "-".into(),
                format: "text".into(),
            });
        }
        let hint = did_you_mean(&name.value, &[ENVOY_PROVIDER]);
        self.err(
            doc,
            &name.referenced,
            format!("{path}[0].name"),
            format!("unknown provider `{}`{hint}: ringmesh has no MeshConfig to define providers in; `envoy` is stdout in Envoy's text format, or write ringmesh's `file: {{ path, format }}` instead of `providers`", name.value),
        );
        None
    }

    /// ringmesh's `file: { path, format }`.
    fn log_file(&mut self, doc: &Doc, f: &S<RawLogFile>, path: &str) -> Option<LogSink> {
        let file = match &f.value.path {
            None => {
                self.err(
                    doc,
                    &f.referenced,
                    format!("{path}.path"),
                    "missing: an absolute path on the proxy's machine, or `-` for stdout",
                );
                None
            }
            Some(p) if p.value == "-" => Some(p.value.clone()),
            Some(p) => {
                let v = &p.value;
                let problem = if !v.starts_with('/') {
                    Some("is not absolute: a proxy has no directory a relative path could mean; write an absolute path, or `-` for stdout")
                } else if v.ends_with('/') {
                    Some("names a directory: write the file's path")
                } else if v.chars().any(char::is_control) {
                    Some("has a control character in it")
                } else {
                    None
                };
                match problem {
                    Some(why) => {
                        self.err(
                            doc,
                            &p.referenced,
                            format!("{path}.path"),
                            format!("`{v}` {why}"),
                        );
                        None
                    }
                    None => Some(v.clone()),
                }
            }
        };
        let format = match &f.value.format {
            None => Some("json".to_string()),
            Some(v) if matches!(v.value.as_str(), "json" | "text") || v.value.contains('%') => {
                Some(v.value.clone())
            }
            Some(v) => {
                let hint = did_you_mean(&v.value.to_ascii_lowercase(), &["json", "text"]);
                self.err(
                    doc,
                    &v.referenced,
                    format!("{path}.format"),
                    format!("`{}` is not a format{hint}: use json, text, or a template of Envoy's %OPERATOR%s", v.value),
                );
                None
            }
        };
        Some(LogSink {
            path: file?,
            format: format?,
        })
    }

    /// `filter`: the minimum status (None: every response).
    fn log_filter(&mut self, doc: &Doc, f: &S<RawLogFilter>, path: &str) -> Option<u16> {
        let f = &f.value;
        if let (Some(_), Some(m)) = (&f.expression, &f.min_status) {
            self.err(
                doc,
                &m.referenced,
                format!("{path}.minStatus"),
                "give `expression` or `minStatus`, not both",
            );
            return None;
        }
        if let Some(m) = &f.min_status {
            return self.status(doc, &m.referenced, m.value, &format!("{path}.minStatus"));
        }
        let e = f.expression.as_ref()?;
        let parsed = min_status_of(&e.value);
        match parsed {
            Some(n) => self.status(doc, &e.referenced, n, &format!("{path}.expression")),
            None => {
                self.err(
                    doc,
                    &e.referenced,
                    format!("{path}.expression"),
                    format!("`{}` is not supported yet: the proxy filters by a minimum status; write `response.code >= N`, or ringmesh's `minStatus: N`", e.value),
                );
                None
            }
        }
    }

    fn status(&mut self, doc: &Doc, at: &Location, n: u64, path: &str) -> Option<u16> {
        if (100..=599).contains(&n) {
            return Some(n as u16);
        }
        self.err(
            doc,
            at,
            path,
            format!("`{n}` is not a status code (100 to 599)"),
        );
        None
    }

    pub(super) fn share(&mut self, doc: &Doc, p: &S<f64>, path: &str) -> Option<f64> {
        if p.value.is_finite() && (0.0..=100.0).contains(&p.value) {
            return Some(p.value);
        }
        self.err(
            doc,
            &p.referenced,
            path,
            format!("`{}` is not a percentage from 0 to 100", p.value),
        );
        None
    }

    /// `tracing`: at most one entry; empty is as if not written.
    fn telemetry_tracing(
        &mut self,
        doc: &Doc,
        t: &RawTelemetry,
        at: &str,
    ) -> Option<(TracingPolicy, Location)> {
        let list = t.spec.tracing.as_ref()?;
        let path = format!("{at}.spec.tracing");
        if let Some(second) = list.get(1) {
            self.err(
                doc,
                &second.referenced,
                format!("{path}[1]"),
                "one entry only: a proxy exports its spans to one collector",
            );
        }
        let entry = list.first()?;
        let path = format!("{path}[0]");
        let e = &entry.value;
        for (field, name, why) in [
            (
                &e.disable_span_reporting,
                "disableSpanReporting",
                ": use `disabled: true`, or `randomSamplingPercentage: 0` to keep propagating trace context",
            ),
            (
                &e.custom_tags,
                "customTags",
                ": spans carry the OpenTelemetry HTTP attributes and ringmesh's",
            ),
            (
                &e.match_,
                "match",
                ": a proxy traces every listener's requests",
            ),
            (
                &e.use_request_id_for_trace_sampling,
                "useRequestIdForTraceSampling",
                ": sampling is drawn per new trace",
            ),
        ] {
            self.unsupported(doc, field, &format!("{path}.{name}"), why);
        }
        if let Some(p) = e.providers.as_ref().and_then(|p| p.first()) {
            let n = &p.value.name;
            self.err(
                doc,
                &n.referenced,
                format!("{path}.providers[0].name"),
                format!("provider `{}` is not defined: ringmesh has no MeshConfig to define providers in; write ringmesh's `collector: host:port` (OTLP/gRPC) instead of `providers`", n.value),
            );
        }
        let collector = e
            .collector
            .as_ref()
            .and_then(|c| match collector_problem(&c.value) {
                None => Some(c.value.trim().to_string()),
                Some(why) => {
                    self.err(doc, &c.referenced, format!("{path}.collector"), why);
                    None
                }
            });
        let sampling_percent = e
            .random_sampling_percentage
            .as_ref()
            .and_then(|p| self.share(doc, p, &format!("{path}.randomSamplingPercentage")));
        Some((
            TracingPolicy {
                disabled: e.disabled.as_ref().map(|d| d.value),
                collector,
                sampling_percent,
            },
            entry.referenced,
        ))
    }
}

/// `response.code >= N` or `response.code > N`: the minimum status.
fn min_status_of(expression: &str) -> Option<u64> {
    let rest = expression
        .trim()
        .strip_prefix("response.code")?
        .trim_start();
    let (inclusive, n) = match rest.strip_prefix(">=") {
        Some(n) => (true, n),
        None => (false, rest.strip_prefix('>')?),
    };
    let n: u64 = n.trim().parse().ok()?;
    Some(if inclusive { n } else { n + 1 })
}

/// What is wrong with a collector address, as the proxy reads it:
/// `host:port` or `http://host[:port]` (port 4317 when left out).
fn collector_problem(text: &str) -> Option<String> {
    let text = text.trim();
    if text.starts_with("https://") {
        return Some("collectors over TLS are not supported yet: run the collector (or an agent) on the node and use http://".into());
    }
    let bad = || {
        Some(format!(
            "`{text}` is not a collector address: use host:port or http://host:port"
        ))
    };
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, tail)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                (ip, tail.strip_prefix(':'))
            }
            _ => return bad(),
        },
        None => match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty()
        && (host.parse::<std::net::Ipv6Addr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    if host_ok && port_ok {
        None
    } else {
        bad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_addresses() {
        for ok in [
            "127.0.0.1:4317",
            "http://otel:4318/",
            "otel",
            "otel-collector.observability.svc",
            "[::1]",
            "[::1]:9",
            "http://[::1]:4317",
        ] {
            assert_eq!(collector_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "http://otel:4317/v1/traces",
            "otel:port",
            "otel:0",
            "a b:1",
            "[::1",
            "[nope]:1",
        ] {
            assert!(collector_problem(bad).is_some(), "{bad}");
        }
        assert!(collector_problem("https://otel:4317").is_some_and(|e| e.contains("TLS")));
    }

    #[test]
    fn status_expressions() {
        assert_eq!(min_status_of("response.code >= 400"), Some(400));
        assert_eq!(min_status_of("response.code>=500"), Some(500));
        assert_eq!(min_status_of(" response.code > 499 "), Some(500));
        assert_eq!(min_status_of("response.code == 500"), None);
        assert_eq!(min_status_of("response.code >= 400 && x"), None);
        assert_eq!(min_status_of("connection.mtls"), None);
    }
}
