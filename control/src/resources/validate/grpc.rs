//! GRPCRoutes: HTTP routes whose matches are gRPC services and methods,
//! with retries on gRPC statuses.

use serde_saphyr::{Location, Spanned};

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// The gRPC statuses a retry may name: the proxy's names (what it reads
/// in `grpc-status`), their numbers and the spellings the gRPC docs use.
const RETRIABLE: [(&str, u64); 5] = [
    ("cancelled", 1),
    ("deadline-exceeded", 4),
    ("resource-exhausted", 8),
    ("internal", 13),
    ("unavailable", 14),
];

/// When a rule's retry names no code: a server that is not taking calls
/// (Envoy's and gRPC's own usual choice).
const DEFAULT_RETRY_ON: &str = "unavailable";

impl Checker {
    pub(super) fn grpc_route(
        &mut self,
        doc: &Doc,
        r: &RawGrpcRoute,
        at: &str,
        name: String,
        known: &Resources,
    ) -> HttpRoute {
        let spec = &r.spec;
        let shape = super::route::RouteShape {
            kind: RouteKind::Grpc,
            written_at: &r.kind.referenced,
            parent_refs: &spec.parent_refs,
            hostnames: &spec.hostnames,
        };
        self.route_of(doc, &shape, &spec.rules, at, name, known, Self::grpc_rule)
    }

    fn grpc_rule(
        &mut self,
        doc: &Doc,
        rule: &RawGrpcRule,
        at_rule: &Location,
        path: &str,
        known: &Resources,
    ) -> Rule {
        self.unsupported(doc, &rule.filters, &format!("{path}.filters"), "");
        self.unsupported(
            doc,
            &rule.session_persistence,
            &format!("{path}.sessionPersistence"),
            "",
        );
        // Every match is of gRPC requests only; no match: every one.
        let any = || GrpcMethod {
            service: String::new(),
            method: None,
        };
        let mut matches: Vec<Match> = rule
            .matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mpath = format!("{path}.matches[{i}]");
                Match {
                    path: PathMatch::Prefix("/".into()),
                    method: None,
                    headers: self.header_matches(doc, &m.value.headers, &mpath),
                    grpc: Some(
                        m.value
                            .method
                            .as_ref()
                            .and_then(|g| self.grpc_method(doc, g, &format!("{mpath}.method")))
                            .unwrap_or_else(any),
                    ),
                }
            })
            .collect();
        if matches.is_empty() {
            matches.push(Match {
                path: PathMatch::Prefix("/".into()),
                method: None,
                headers: Vec::new(),
                grpc: Some(any()),
            });
        }
        let backends = self.backend_refs(
            doc,
            &rule.backend_refs,
            at_rule,
            path,
            RouteKind::Grpc,
            known,
        );
        let timeout = rule
            .timeouts
            .as_ref()
            .and_then(|t| self.timeouts(doc, t, path));
        let retry = rule
            .retry
            .as_ref()
            .map(|r| self.grpc_retry(doc, &r.value, path));
        Rule {
            matches,
            backends,
            timeout,
            retry,
            fault: None,
            mirror: None,
            request_headers: Default::default(),
            response_headers: Default::default(),
            redirect: None,
            rewrite: None,
        }
    }

    /// `method: {type, service, method}`. The proxy matches a service, or a
    /// service and method; a method of any service is not supported yet.
    fn grpc_method(
        &mut self,
        doc: &Doc,
        g: &Spanned<RawGrpcMethodMatch>,
        path: &str,
    ) -> Option<GrpcMethod> {
        let raw = &g.value;
        match raw.kind.as_ref().map(|k| (k.value.as_str(), k)) {
            None | Some(("Exact", _)) => {}
            Some(("RegularExpression", k)) => {
                self.err(
                    doc,
                    &k.referenced,
                    format!("{path}.type"),
                    "`RegularExpression` is not supported yet: use Exact",
                );
                return None;
            }
            Some((other, k)) => {
                let hint = did_you_mean(other, &["Exact", "RegularExpression"]);
                self.err(
                    doc,
                    &k.referenced,
                    format!("{path}.type"),
                    format!("unknown method match type `{other}`{hint}: use Exact"),
                );
                return None;
            }
        }
        let token = |s: &str, dots: bool| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
                && !s.starts_with('.')
                && !s.ends_with('.')
        };
        let mut ok = true;
        for (field, v, dots) in [
            ("service", &raw.service, true),
            ("method", &raw.method, false),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !token(&v.value, dots)) {
                self.err(
                    doc,
                    &v.referenced,
                    format!("{path}.{field}"),
                    format!(
                        "`{}` is not a gRPC {field} name (letters, digits, `_`{})",
                        v.value,
                        if dots {
                            ", and `.` between package parts, e.g. helloworld.Greeter"
                        } else {
                            ""
                        }
                    ),
                );
                ok = false;
            }
        }
        match (&raw.service, &raw.method) {
            (None, None) => {
                self.err(
                    doc,
                    &g.referenced,
                    path,
                    "give a `service`, or a `service` and a `method`",
                );
                None
            }
            (None, Some(m)) => {
                self.err(
                    doc,
                    &m.referenced,
                    format!("{path}.service"),
                    "a method of any service is not supported yet: name its `service` too",
                );
                None
            }
            (Some(s), m) => ok.then(|| GrpcMethod {
                service: s.value.clone(),
                method: m.as_ref().map(|m| m.value.clone()),
            }),
        }
    }

    /// `retry`: attempts as on an HTTPRoute, codes as gRPC statuses.
    fn grpc_retry(&mut self, doc: &Doc, r: &RawGrpcRetry, path: &str) -> Retry {
        let mut grpc = Vec::new();
        for (i, c) in r.codes.iter().enumerate() {
            let found = match &c.value {
                RawIntOrString::Int(n) => RETRIABLE.iter().find(|(_, v)| v == n),
                RawIntOrString::String(s) => {
                    let norm = s.to_ascii_lowercase().replace('_', "-");
                    RETRIABLE.iter().find(|(name, _)| *name == norm)
                }
            };
            match found {
                Some((name, _)) => grpc.push(name.to_string()),
                None => {
                    let shown = match &c.value {
                        RawIntOrString::Int(n) => n.to_string(),
                        RawIntOrString::String(s) => s.clone(),
                    };
                    let names: Vec<String> = RETRIABLE
                        .iter()
                        .map(|(n, v)| format!("{n} ({v})"))
                        .collect();
                    let hint = match &c.value {
                        RawIntOrString::String(s) => {
                            let known: Vec<&str> = RETRIABLE.iter().map(|(n, _)| *n).collect();
                            did_you_mean(&s.to_ascii_lowercase().replace('_', "-"), &known)
                        }
                        RawIntOrString::Int(_) => String::new(),
                    };
                    self.err(
                        doc,
                        &c.referenced,
                        format!("{path}.retry.codes[{i}]"),
                        format!(
                            "`{shown}` is not a gRPC status retried{hint}: use {}",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        if grpc.is_empty() {
            grpc.push(DEFAULT_RETRY_ON.to_string());
        }
        let http = RawRetry {
            attempts: Spanned::new(r.attempts.value, r.attempts.referenced, r.attempts.defined),
            codes: Vec::new(),
            backoff: r.backoff.clone(),
        };
        Retry {
            grpc,
            ..self.retry(doc, &http, path)
        }
    }
}
