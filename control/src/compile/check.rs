//! `ringmeshctl auth check`: would a request from one Service to another
//! be allowed?
//!
//! Answered from what a sidecar of the called Service would be sent
//! (its inbound listener's mesh mode and AuthorizationPolicies, compiled
//! by the same functions) and judged by `ringmesh-authz`, the engine the
//! proxies run: the path is normalised as the proxy does and the caller's
//! principal is the SPIFFE ID the CA issues its sidecars. What the answer
//! says is what a proxy would do, not a second reading of the policies.

use std::str::FromStr;

use ringmesh_authz::{self as authz, Authorization, Decision, Pattern, Subject, Values};
use ringmesh_pki::spiffe::SpiffeId;
use ringmesh_proto::v1 as pb;

use super::MeshContext;
use crate::resources::model::MtlsMode;
use crate::resources::Resources;

/// A request to judge.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// A Service or Gateway name, or a SPIFFE ID; `None`: a caller
    /// without a workload certificate.
    pub from: Option<String>,
    pub to: String,
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// The workload port called (what policies' `ports` name); `None`
    /// matches no `ports` condition.
    pub port: Option<u16>,
}

/// What the called Service's sidecar would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The policy that decided, when one did.
    pub policy: Option<String>,
    /// The caller as policies see it (`td/ns/x/sa/y`).
    pub principal: Option<String>,
    pub normalized_path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("no Service `{0}`")]
    UnknownService(String),
    #[error("no Service or Gateway `{0}` to call from (or give a SPIFFE ID)")]
    UnknownCaller(String),
    #[error("`{0}` is not a SPIFFE ID: {1}")]
    BadSpiffeId(String, String),
    #[error("method: empty")]
    NoMethod,
}

impl authz::Request for Probe {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, v)| v.as_bytes())
    }
}

pub fn check(res: &Resources, mesh: &MeshContext, probe: &Probe) -> Result<Verdict, CheckError> {
    if !res.services.contains_key(&probe.to) {
        return Err(CheckError::UnknownService(probe.to.clone()));
    }
    if probe.method.is_empty() {
        return Err(CheckError::NoMethod);
    }
    let principal = match probe.from.as_deref() {
        None | Some("") => None,
        Some(id) if id.starts_with("spiffe://") => Some(
            SpiffeId::from_str(id)
                .map_err(|e| CheckError::BadSpiffeId(id.to_string(), e.to_string()))?
                .as_str()
                .to_string(),
        ),
        Some(name) if res.services.contains_key(name) || res.gateways.contains_key(name) => Some(
            super::identity_of(&mesh.trust_domain, name)
                .map_err(|e| CheckError::BadSpiffeId(name.to_string(), e.to_string()))?
                .as_str()
                .to_string(),
        ),
        Some(other) => return Err(CheckError::UnknownCaller(other.to_string())),
    }
    .map(|id| authz::bare_principal(&id).to_string());
    let mut normal = Vec::new();
    let path_ok = authz::path::normalize(probe.path.as_bytes(), &mut normal).is_ok();
    let normalized_path = String::from_utf8_lossy(&normal).into_owned();
    let refused = |reason: String| Verdict {
        allowed: false,
        policy: None,
        principal: principal.clone(),
        normalized_path: normalized_path.clone(),
        reason,
    };
    if principal.is_none() && res.mtls_mode(&probe.to) == MtlsMode::Strict {
        return Ok(refused(format!(
            "`{}` takes mTLS only (PeerAuthentication STRICT): a caller without a workload certificate is refused before any policy",
            probe.to
        )));
    }
    if !path_ok {
        return Ok(refused(
            "the path has an encoded `/` or `\\`, or a broken escape: the proxy answers 400".into(),
        ));
    }
    let policies = engine(&super::authorization(res, &probe.to, None));
    let port = probe.port.map(|p| p.to_string()).unwrap_or_default();
    let subject = Subject {
        req: probe,
        path: &normal,
        principal: principal.as_deref().map(str::as_bytes),
        port: port.as_bytes(),
    };
    let decision = policies.decide(&subject);
    let (allowed, by) = match decision {
        Decision::Allow(by) => (true, by),
        Decision::Deny(by) => (false, by),
    };
    let policy = by.map(|_| policies.name(by).to_string());
    let reason = match (decision, &policy) {
        (Decision::Allow(_), Some(p)) => format!("allowed by ALLOW policy `{p}`"),
        (Decision::Allow(_), None) => format!(
            "no ALLOW policy applies to `{}`: every request not denied is allowed",
            probe.to
        ),
        (Decision::Deny(_), Some(p)) => format!("denied by DENY policy `{p}`"),
        (Decision::Deny(_), None) => {
            format!("no ALLOW policy of `{}` matches the request", probe.to)
        }
    };
    Ok(Verdict {
        allowed,
        policy,
        principal,
        normalized_path,
        reason,
    })
}

/// The policies as the proxy holds them, from what its config carries.
fn engine(policies: &[pb::AuthorizationPolicy]) -> Authorization {
    let values = |yes: &[String], no: &[String], pattern: fn(&str) -> Pattern| Values {
        yes: yes.iter().map(|v| pattern(v)).collect(),
        no: no.iter().map(|v| pattern(v)).collect(),
    };
    let mut out = Authorization::default();
    for p in policies {
        let rules = p
            .rules
            .iter()
            .map(|r| authz::Rule {
                from: r
                    .from
                    .iter()
                    .map(|f| authz::Source {
                        principals: values(
                            &f.principals,
                            &f.not_principals,
                            authz::principal_pattern,
                        ),
                        namespaces: values(&f.namespaces, &f.not_namespaces, Pattern::parse),
                    })
                    .collect(),
                to: r
                    .to
                    .iter()
                    .map(|t| authz::Operation {
                        methods: values(&t.methods, &t.not_methods, authz::method_pattern),
                        paths: values(&t.paths, &t.not_paths, Pattern::parse),
                        ports: values(&t.ports, &t.not_ports, |p| {
                            Pattern::Exact(p.as_bytes().into())
                        }),
                    })
                    .collect(),
                when: r
                    .when
                    .iter()
                    .map(|c| authz::Condition {
                        header: authz::header_name(&c.header),
                        values: values(&c.values, &c.not_values, Pattern::parse),
                    })
                    .collect(),
            })
            .collect();
        let policy = authz::Policy {
            name: p.name.clone(),
            rules,
        };
        if p.action() == pb::AuthzAction::Deny {
            out.deny.push(policy);
        } else {
            out.allow.push(policy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCES: &str = "\
kind: Service
metadata: { name: web, namespace: shop }
---
kind: Service
metadata: { name: orders, namespace: shop }
---
kind: Service
metadata: { name: public }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: shop }
spec:
  action: DENY
  rules: [ { to: [ { operation: { paths: [/admin, /admin/*] } } ] } ]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-orders, namespace: shop }
spec:
  targetRefs: [ { kind: Service, name: orders } ]
  rules:
    - from: [ { source: { principals: [cluster.local/ns/shop/sa/web] } } ]
      to: [ { operation: { methods: [GET, POST], paths: [/orders, /orders/*] } } ]
      when: [ { key: 'request.headers[x-tenant]', notValues: [blocked] } ]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: shop }
spec: { mtls: { mode: STRICT } }
";

    fn resources() -> Resources {
        crate::resources::parse(&[("mesh.yaml".to_string(), RESOURCES.to_string())])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn probe(from: Option<&str>, method: &str, path: &str) -> Probe {
        Probe {
            from: from.map(String::from),
            to: "orders.shop".into(),
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            port: None,
        }
    }

    fn judge(p: &Probe) -> Verdict {
        check(&resources(), &MeshContext::default(), p).unwrap()
    }

    #[test]
    fn the_allowed_caller_the_others_and_the_policy_that_decided() {
        let v = judge(&probe(Some("web.shop"), "GET", "/orders/7"));
        assert!(v.allowed, "{v:?}");
        assert_eq!(v.policy.as_deref(), Some("web-orders.shop"));
        assert_eq!(v.principal.as_deref(), Some("cluster.local/ns/shop/sa/web"));

        let v = judge(&probe(Some("public"), "GET", "/orders/7"));
        assert!(!v.allowed);
        assert_eq!(v.policy, None);
        assert!(v.reason.contains("no ALLOW policy"), "{}", v.reason);

        let v = judge(&probe(Some("web.shop"), "DELETE", "/orders/7"));
        assert!(!v.allowed, "method");

        // A SPIFFE ID as the caller, and a header condition.
        let mut p = probe(
            Some("spiffe://cluster.local/ns/shop/sa/web"),
            "post",
            "/orders",
        );
        assert!(
            !judge(&p).allowed,
            "methods are matched as sent: `post` is not POST"
        );
        p.method = "POST".into();
        assert!(judge(&p).allowed);
        p.headers = vec![("x-tenant".into(), "blocked".into())];
        assert!(!judge(&p).allowed, "when: notValues");
    }

    #[test]
    fn bypass_spellings_are_judged_normalised_and_strict_refuses_plaintext() {
        for path in [
            "/orders/../admin",
            "/orders/%2e%2e/admin",
            "//admin",
            "/%61dmin",
        ] {
            let v = judge(&probe(Some("web.shop"), "GET", path));
            assert!(!v.allowed, "{path}");
            assert_eq!(v.normalized_path, "/admin", "{path}");
            assert_eq!(v.policy.as_deref(), Some("no-admin.shop"), "{path}");
        }
        let v = judge(&probe(Some("web.shop"), "GET", "/orders%2F..%2Fadmin"));
        assert!(!v.allowed && v.reason.contains("400"), "{v:?}");

        let v = judge(&probe(None, "GET", "/orders/1"));
        assert!(!v.allowed && v.reason.contains("STRICT"), "{v:?}");
    }

    #[test]
    fn unknown_names_are_errors() {
        let res = resources();
        let mesh = MeshContext::default();
        let mut p = probe(Some("nobody"), "GET", "/");
        assert_eq!(
            check(&res, &mesh, &p),
            Err(CheckError::UnknownCaller("nobody".into()))
        );
        p.from = None;
        p.to = "orders".into();
        assert_eq!(
            check(&res, &mesh, &p),
            Err(CheckError::UnknownService("orders".into()))
        );
    }
}
