//! A listener's `authorization` policies, compiled into `authz` match
//! tables: patterns parsed, names lowercased, DENY and ALLOW apart, every
//! problem located at its field.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use super::Validator;
use crate::authz::{Authorization, Condition, Operation, Pattern, Policy, Rule, Source, Values};
use crate::config::raw::{RawAuthzRule, RawAuthzSource, RawPolicy};

/// What a pattern may hold: an `*` only as its first or last byte.
fn pattern_ok(v: &str) -> bool {
    let inner = v.trim_start_matches('*').trim_end_matches('*');
    !v.is_empty() && !inner.contains('*') && (v == "*" || v.matches('*').count() <= 1)
}

impl Validator {
    pub(super) fn authorization(
        &mut self,
        raw: &[Spanned<RawPolicy>],
        path: &str,
    ) -> Option<Authorization> {
        if raw.is_empty() {
            return None;
        }
        let mut out = Authorization::default();
        let mut names = HashSet::new();
        for (i, p) in raw.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let name = match &p.value.name {
                Some(n) => {
                    self.name(n, &format!("{at}.name"));
                    if !names.insert(n.value.clone()) {
                        self.err(
                            &n.referenced,
                            format!("{at}.name"),
                            format!("`{}` names another policy of this listener", n.value),
                        );
                    }
                    n.value.clone()
                }
                None => {
                    self.err(
                        &p.referenced,
                        format!("{at}.name"),
                        "missing: a policy needs a name (it labels logs)",
                    );
                    String::new()
                }
            };
            let deny = match p.value.action.as_ref().map(|a| (a.value.as_str(), a)) {
                None | Some(("allow", _)) => false,
                Some(("deny", _)) => true,
                Some((other, a)) => {
                    self.err(
                        &a.referenced,
                        format!("{at}.action"),
                        format!("unknown action `{other}`: use allow or deny"),
                    );
                    false
                }
            };
            let rules = p
                .value
                .rules
                .iter()
                .enumerate()
                .map(|(j, r)| self.authz_rule(&r.value, &format!("{at}.rules[{j}]")))
                .collect();
            let policy = Policy { name, rules };
            if deny {
                out.deny.push(policy);
            } else {
                out.allow.push(policy);
            }
        }
        Some(out)
    }

    /// Who sent a request: in a policy's `from`, and a route's `source`.
    pub(super) fn source(&mut self, f: &RawAuthzSource, p: &str) -> Source {
        Source {
            principals: self.values(
                &f.principals,
                &f.not_principals,
                p,
                "principals",
                crate::authz::principal_pattern,
            ),
            namespaces: self.values(
                &f.namespaces,
                &f.not_namespaces,
                p,
                "namespaces",
                Pattern::parse,
            ),
        }
    }

    fn authz_rule(&mut self, r: &RawAuthzRule, at: &str) -> Rule {
        let from = r
            .from
            .iter()
            .enumerate()
            .map(|(k, f)| self.source(&f.value, &format!("{at}.from[{k}]")))
            .collect();
        let to =
            r.to.iter()
                .enumerate()
                .map(|(k, t)| {
                    let p = format!("{at}.to[{k}]");
                    Operation {
                        methods: self.values(
                            &t.value.methods,
                            &t.value.not_methods,
                            &p,
                            "methods",
                            crate::authz::method_pattern,
                        ),
                        paths: self.paths(&t.value.paths, &t.value.not_paths, &p),
                        ports: self.ports(&t.value.ports, &t.value.not_ports, &p),
                    }
                })
                .collect();
        let when = r
            .when
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let p = format!("{at}.when[{k}]");
                self.header_name(&c.value.header, &format!("{p}.header"));
                Condition {
                    header: crate::authz::header_name(&c.value.header.value),
                    values: self.values(
                        &c.value.values,
                        &c.value.not_values,
                        &p,
                        "values",
                        Pattern::parse,
                    ),
                }
            })
            .collect();
        Rule { from, to, when }
    }

    fn values(
        &mut self,
        yes: &[Spanned<String>],
        no: &[Spanned<String>],
        at: &str,
        field: &str,
        pattern: impl Fn(&str) -> Pattern,
    ) -> Values {
        let mut one = |v: &Spanned<String>, f: &str, i: usize| {
            if !pattern_ok(&v.value) {
                self.err(
                    &v.referenced,
                    format!("{at}.{f}[{i}]"),
                    format!(
                        "`{}`: a value is exact, `prefix*`, `*suffix` or `*`",
                        v.value
                    ),
                );
            }
            pattern(&v.value)
        };
        let yes = yes
            .iter()
            .enumerate()
            .map(|(i, v)| one(v, field, i))
            .collect();
        let not = format!("not_{field}");
        let no = no
            .iter()
            .enumerate()
            .map(|(i, v)| one(v, &not, i))
            .collect();
        Values { yes, no }
    }

    /// Ports: exact numbers, as Istio writes them.
    fn ports(&mut self, yes: &[Spanned<String>], no: &[Spanned<String>], at: &str) -> Values {
        for (f, list) in [("ports", yes), ("not_ports", no)] {
            for (i, v) in list.iter().enumerate() {
                if !v.value.parse::<u16>().is_ok_and(|p| p > 0) {
                    self.err(
                        &v.referenced,
                        format!("{at}.{f}[{i}]"),
                        format!("`{}` is not a port (1 to 65535)", v.value),
                    );
                }
            }
        }
        let exact = |v: &str| Pattern::Exact(v.as_bytes().into());
        self.values(yes, no, at, "ports", exact)
    }

    /// Paths are matched normalised: a pattern that is not itself normal
    /// (`/a/../b`, `//x`) could never match, so it is an error.
    fn paths(&mut self, yes: &[Spanned<String>], no: &[Spanned<String>], at: &str) -> Values {
        for (f, list) in [("paths", yes), ("not_paths", no)] {
            for (i, v) in list.iter().enumerate() {
                let ok = crate::authz::path::pattern_is_normal(&v.value);
                if !v.value.starts_with('/') && !v.value.starts_with('*') {
                    self.err(
                        &v.referenced,
                        format!("{at}.{f}[{i}]"),
                        format!(
                            "`{}`: a path starts with `/` (or `*` for a suffix)",
                            v.value
                        ),
                    );
                } else if !ok {
                    self.err(
                        &v.referenced,
                        format!("{at}.{f}[{i}]"),
                        format!(
                            "`{}` is not a normalised path (requests are matched after `.`, `..`, `//` and escapes are resolved), so it would never match",
                            v.value
                        ),
                    );
                }
            }
        }
        self.values(yes, no, at, "paths", Pattern::parse)
    }
}
