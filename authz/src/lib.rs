//! Authorization: which requests a listener serves, by policies shaped
//! like Istio's AuthorizationPolicy, evaluated on the inbound side before
//! routing.
//!
//! Semantics are Istio's: if any DENY policy matches, the request is
//! denied; otherwise, if the listener has no ALLOW policy it is allowed;
//! otherwise it must match one ALLOW policy. A policy matches when any of
//! its rules does (an ALLOW policy with no rules matches nothing, so it
//! denies everything); a rule matches when its `from`, `to` and `when`
//! all do, each a list of alternatives (empty: anything). Values are
//! exact, `prefix*`, `*suffix` or `*`.
//!
//! The source is the client's identity: the SPIFFE ID in the URI SAN of
//! its TLS client certificate, written as Istio writes principals
//! (`<trust-domain>/ns/<namespace>/sa/<service>`); a client without one
//! is unauthenticated and matches no principal or namespace. The path is
//! normalised first (`path`), so `/orders/../admin` cannot pass for
//! `/orders`. Policies are compiled at config time; evaluating one reads
//! the request in place and allocates nothing (the normalised path goes
//! to a per-core buffer).
//!
//! A crate of its own, with no dependency, because the control plane
//! answers "would this request be allowed?" (`ringmeshctl auth check`)
//! with the very code the proxies enforce, and neither side depends on
//! the other.

pub mod path;

/// The request fields policies read; the proxy's request views and the
/// control plane's hypothetical requests implement it.
pub trait Request {
    /// Uppercase, as sent.
    fn method(&self) -> &[u8];
    /// A header's value; `name` is lowercase.
    fn header(&self, name: &[u8]) -> Option<&[u8]>;
}

/// A value pattern: `exact`, `prefix*`, `*suffix`, or `*` (present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Any,
}

impl Pattern {
    pub fn parse(text: &str) -> Pattern {
        let b = text.as_bytes();
        match (b.first(), b.last()) {
            _ if b == b"*" => Pattern::Any,
            (_, Some(b'*')) => Pattern::Prefix(b[..b.len() - 1].into()),
            (Some(b'*'), _) => Pattern::Suffix(b[1..].into()),
            _ => Pattern::Exact(b.into()),
        }
    }

    fn matches(&self, v: &[u8]) -> bool {
        match self {
            Pattern::Exact(p) => v == &p[..],
            Pattern::Prefix(p) => v.starts_with(p),
            Pattern::Suffix(p) => v.ends_with(p),
            Pattern::Any => true,
        }
    }
}

/// A principal as policies write it (`spiffe://td/ns/x/sa/y` or
/// `td/ns/x/sa/y`), as it is matched: without the scheme.
pub fn bare_principal(written: &str) -> &str {
    written.strip_prefix("spiffe://").unwrap_or(written)
}

/// A principal pattern as it is matched (`bare_principal`).
pub fn principal_pattern(written: &str) -> Pattern {
    Pattern::parse(bare_principal(written))
}

/// A method as policies write it, as it is matched: uppercase.
pub fn method_pattern(written: &str) -> Pattern {
    Pattern::parse(&written.to_ascii_uppercase())
}

/// A header name as policies write it, as it is matched: lowercase.
pub fn header_name(written: &str) -> Box<[u8]> {
    written.to_ascii_lowercase().into_bytes().into()
}

/// Any of `yes` (or none given) and none of `no`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub yes: Vec<Pattern>,
    pub no: Vec<Pattern>,
}

impl Values {
    fn admits(&self, v: Option<&[u8]>) -> bool {
        let yes = self.yes.is_empty() || v.is_some_and(|v| self.yes.iter().any(|p| p.matches(v)));
        let no = v.is_some_and(|v| self.no.iter().any(|p| p.matches(v)));
        yes && !no
    }
}

/// Who sent the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub principals: Values,
    pub namespaces: Values,
}

impl Source {
    /// Whether a caller with `principal` (none: unauthenticated) is one.
    pub fn admits(&self, principal: Option<&[u8]>) -> bool {
        self.principals.admits(principal) && self.namespaces.admits(namespace_of(principal))
    }
}

/// What the request does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operation {
    pub methods: Values,
    pub paths: Values,
    /// The port the request was sent to (the listener's), as decimal
    /// text.
    pub ports: Values,
}

impl Operation {
    /// Whether it reads only what an opaque TCP connection has (its
    /// port), as Istio's TCP-compatible fields.
    fn tcp_compatible(&self) -> bool {
        self.methods.yes.is_empty()
            && self.methods.no.is_empty()
            && self.paths.yes.is_empty()
            && self.paths.no.is_empty()
    }
}

/// A condition on a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Lowercase name.
    pub header: Box<[u8]>,
    pub values: Values,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A listener's policies, DENY and ALLOW apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorization {
    pub deny: Vec<Policy>,
    pub allow: Vec<Policy>,
}

/// What the policies decided, and which one did: its index among the
/// listener's policies, DENY ones first (`Authorization::name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// By this ALLOW policy, or (`None`) because the listener has none.
    Allow(Option<usize>),
    /// By this DENY policy, or (`None`) because no ALLOW policy matched.
    Deny(Option<usize>),
}

/// A request as policies see it.
pub struct Subject<'a, R: ?Sized> {
    pub req: &'a R,
    /// Normalised (`path::normalize`).
    pub path: &'a [u8],
    /// `<trust-domain>/ns/<ns>/sa/<sa>`, when the client presented one.
    pub principal: Option<&'a [u8]>,
    /// The port the request came in on, as decimal text.
    pub port: &'a [u8],
}

impl Rule {
    fn matches<R: Request + ?Sized>(&self, s: &Subject<'_, R>) -> bool {
        let from = self.from.is_empty() || self.from.iter().any(|f| f.admits(s.principal));
        let to = self.to.is_empty()
            || self.to.iter().any(|t| {
                t.methods.admits(Some(s.req.method()))
                    && t.paths.admits(Some(s.path))
                    && t.ports.admits(Some(s.port))
            });
        from && to
            && self
                .when
                .iter()
                .all(|c| c.values.admits(s.req.header(&c.header)))
    }
}

impl Policy {
    fn matches<R: Request + ?Sized>(&self, s: &Subject<'_, R>) -> bool {
        self.rules.iter().any(|r| r.matches(s))
    }
}

impl Rule {
    /// For an opaque TCP connection (`Authorization::decide_connection`).
    fn connection_matches(&self, principal: Option<&[u8]>, port: &[u8], deny: bool) -> bool {
        if !self.source_matches(principal) || !deny && !self.when.is_empty() {
            return false;
        }
        self.to.is_empty()
            || self
                .to
                .iter()
                .any(|t| (deny || t.tcp_compatible()) && t.ports.admits(Some(port)))
    }

    fn source_matches(&self, principal: Option<&[u8]>) -> bool {
        self.from.is_empty() || self.from.iter().any(|f| f.admits(principal))
    }
}

fn namespace_of(principal: Option<&[u8]>) -> Option<&[u8]> {
    let p = principal?;
    let at = p.windows(4).position(|w| w == b"/ns/")? + 4;
    let rest = &p[at..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    Some(&rest[..end])
}

impl Authorization {
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }

    /// Every policy, DENY ones first: the order `Decision` indexes.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.deny.iter().chain(self.allow.iter())
    }

    /// The name of the policy a decision names.
    pub fn name(&self, decided_by: Option<usize>) -> &str {
        decided_by
            .and_then(|i| self.policies().nth(i))
            .map_or("(no ALLOW policy matched)", |p| p.name.as_str())
    }

    /// An opaque TCP connection, judged once, by its source and port.
    /// HTTP-only fields (methods, paths, `when` headers) fail closed, as
    /// Istio's do for TCP: an ALLOW rule with them never matches, a DENY
    /// rule matches without them (on its source and ports).
    pub fn decide_connection(&self, principal: Option<&[u8]>, port: &[u8]) -> Decision {
        let deny = self.deny.iter().position(|p| {
            p.rules
                .iter()
                .any(|r| r.connection_matches(principal, port, true))
        });
        if deny.is_some() {
            return Decision::Deny(deny);
        }
        if self.allow.is_empty() {
            return Decision::Allow(None);
        }
        let allow = self.allow.iter().position(|p| {
            p.rules
                .iter()
                .any(|r| r.connection_matches(principal, port, false))
        });
        match allow {
            Some(i) => Decision::Allow(Some(self.deny.len() + i)),
            None => Decision::Deny(None),
        }
    }

    pub fn decide<R: Request + ?Sized>(&self, s: &Subject<'_, R>) -> Decision {
        let deny = self.deny.iter().position(|p| p.matches(s));
        if deny.is_some() {
            return Decision::Deny(deny);
        }
        if self.allow.is_empty() {
            return Decision::Allow(None);
        }
        match self.allow.iter().position(|p| p.matches(s)) {
            Some(i) => Decision::Allow(Some(self.deny.len() + i)),
            None => Decision::Deny(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestRequest {
        method: String,
        headers: Vec<(String, String)>,
    }

    impl Request for TestRequest {
        fn method(&self) -> &[u8] {
            self.method.as_bytes()
        }

        fn header(&self, name: &[u8]) -> Option<&[u8]> {
            self.headers
                .iter()
                .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        }
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> TestRequest {
        TestRequest {
            method: method.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn values(yes: &[&str], no: &[&str]) -> Values {
        Values {
            yes: yes.iter().map(|v| Pattern::parse(v)).collect(),
            no: no.iter().map(|v| Pattern::parse(v)).collect(),
        }
    }

    const WEB: &[u8] = b"cluster.local/ns/shop/sa/web";

    fn orders_policy() -> Authorization {
        Authorization {
            deny: vec![Policy {
                name: "no-admin".into(),
                rules: vec![Rule {
                    to: vec![Operation {
                        paths: values(&["/admin", "/admin/*"], &[]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }],
            allow: vec![Policy {
                name: "web-orders".into(),
                rules: vec![Rule {
                    from: vec![Source {
                        principals: values(&["cluster.local/ns/shop/sa/web"], &[]),
                        ..Default::default()
                    }],
                    to: vec![Operation {
                        methods: values(&["POST", "GET"], &[]),
                        paths: values(&["/orders", "/orders/*"], &[]),
                        ..Default::default()
                    }],
                    when: vec![Condition {
                        header: b"x-tenant".to_vec().into(),
                        values: values(&["*"], &["blocked"]),
                    }],
                }],
            }],
        }
    }

    fn decide(
        a: &Authorization,
        method: &str,
        path: &str,
        principal: Option<&[u8]>,
        h: &[(&str, &str)],
    ) -> bool {
        let r = req(method, h);
        let mut norm = Vec::new();
        path::normalize(path.as_bytes(), &mut norm).unwrap();
        let s = Subject {
            req: &r,
            path: &norm,
            principal,
            port: b"8080",
        };
        matches!(a.decide(&s), Decision::Allow(_))
    }

    #[test]
    fn istio_semantics_deny_first_then_some_allow() {
        let a = orders_policy();
        let t = [("x-tenant", "a")];
        assert!(decide(&a, "POST", "/orders/7", Some(WEB), &t));
        assert!(!decide(&a, "DELETE", "/orders/7", Some(WEB), &t), "method");
        assert!(
            !decide(&a, "POST", "/orders/7", None, &t),
            "unauthenticated"
        );
        assert!(
            !decide(
                &a,
                "POST",
                "/orders/7",
                Some(b"cluster.local/ns/shop/sa/evil"),
                &t
            ),
            "another principal"
        );
        assert!(
            !decide(&a, "POST", "/orders/7", Some(WEB), &[]),
            "when: header missing"
        );
        assert!(!decide(
            &a,
            "POST",
            "/orders/7",
            Some(WEB),
            &[("x-tenant", "blocked")]
        ));
        assert!(
            !decide(&a, "GET", "/orders/../admin", Some(WEB), &t),
            "normalised into the deny"
        );
        assert!(!decide(&a, "GET", "/admin", Some(WEB), &t));
    }

    #[test]
    fn connections_are_judged_by_source_and_request_fields_fail_closed() {
        let a = orders_policy();
        // The DENY rule names paths only: for a connection they are
        // ignored and it matches every source.
        assert_eq!(
            a.decide_connection(Some(WEB), b"8080"),
            Decision::Deny(Some(0))
        );
        assert_eq!(a.name(Some(0)), "no-admin");
        let mut allow_only = a.clone();
        allow_only.deny.clear();
        // The ALLOW rule has `to` and `when`: it never matches a connection.
        assert_eq!(
            allow_only.decide_connection(Some(WEB), b"8080"),
            Decision::Deny(None)
        );
        allow_only.allow[0].rules[0].to.clear();
        allow_only.allow[0].rules[0].when.clear();
        assert_eq!(
            allow_only.decide_connection(Some(WEB), b"8080"),
            Decision::Allow(Some(0))
        );
        assert_eq!(allow_only.name(Some(0)), "web-orders");
        assert_eq!(
            allow_only.decide_connection(None, b"8080"),
            Decision::Deny(None)
        );
        assert_eq!(
            allow_only.decide_connection(Some(b"cluster.local/ns/shop/sa/evil"), b"8080"),
            Decision::Deny(None)
        );
    }

    #[test]
    fn ports_are_matched_for_requests_and_connections() {
        let ports = |yes: &[&str], no: &[&str]| Operation {
            ports: values(yes, no),
            ..Default::default()
        };
        let mut a = Authorization::default();
        a.allow.push(Policy {
            name: "metrics-port".into(),
            rules: vec![Rule {
                to: vec![ports(&["9090"], &[])],
                ..Default::default()
            }],
        });
        let on = |a: &Authorization, port: &[u8]| {
            let r = req("GET", &[]);
            let s = Subject {
                req: &r,
                path: b"/x",
                principal: None,
                port,
            };
            matches!(a.decide(&s), Decision::Allow(_))
        };
        assert!(on(&a, b"9090"));
        assert!(!on(&a, b"8080"));
        // Ports are TCP-compatible: a connection is judged by them.
        assert_eq!(a.decide_connection(None, b"9090"), Decision::Allow(Some(0)));
        assert_eq!(a.decide_connection(None, b"8080"), Decision::Deny(None));
        // A DENY rule with paths and ports: for a connection the paths
        // are ignored, the ports are not.
        a.deny.push(Policy {
            name: "no-admin-on-9090".into(),
            rules: vec![Rule {
                to: vec![Operation {
                    paths: values(&["/admin"], &[]),
                    ports: values(&[], &["8080"]),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        assert_eq!(a.decide_connection(None, b"9090"), Decision::Deny(Some(0)));
        assert_eq!(a.decide_connection(None, b"8080"), Decision::Deny(None));
    }

    #[test]
    fn no_allow_policy_allows_and_an_empty_allow_denies_all() {
        let mut a = Authorization::default();
        assert!(decide(&a, "GET", "/x", None, &[]));
        a.allow.push(Policy {
            name: "nothing".into(),
            rules: vec![],
        });
        assert!(!decide(&a, "GET", "/x", Some(WEB), &[]));
        a.allow.push(Policy {
            name: "everything".into(),
            rules: vec![Rule::default()],
        });
        assert!(decide(&a, "GET", "/x", None, &[]));
    }

    #[test]
    fn namespaces_come_from_the_principal_and_patterns_match_as_istio_writes_them() {
        let a = Authorization {
            deny: vec![],
            allow: vec![Policy {
                name: "shop".into(),
                rules: vec![Rule {
                    from: vec![Source {
                        namespaces: values(&["shop"], &[]),
                        principals: values(&[], &["*/sa/evil"]),
                    }],
                    ..Default::default()
                }],
            }],
        };
        assert!(decide(&a, "GET", "/", Some(WEB), &[]));
        assert!(!decide(
            &a,
            "GET",
            "/",
            Some(b"cluster.local/ns/shop/sa/evil"),
            &[]
        ));
        assert!(!decide(
            &a,
            "GET",
            "/",
            Some(b"cluster.local/ns/other/sa/web"),
            &[]
        ));
        assert!(!decide(&a, "GET", "/", None, &[]));
        assert_eq!(Pattern::parse("*"), Pattern::Any);
        assert_eq!(Pattern::parse("/a*"), Pattern::Prefix(b"/a"[..].into()));
        assert_eq!(
            Pattern::parse("*.json"),
            Pattern::Suffix(b".json"[..].into())
        );
    }
}
