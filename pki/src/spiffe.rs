//! SPIFFE IDs: the names of workloads in the mesh.
//!
//! A workload's identity is `spiffe://<trust-domain>/ns/<namespace>/sa/<service>`,
//! carried as the only URI SAN of its X.509-SVID. Both sides read it: the
//! control plane to issue it, the proxy to check who is on the other end of
//! an mTLS connection. rustls checks DNS and IP names only, so this parsing
//! is what stands between a peer certificate and an authorization decision:
//! it follows the SPIFFE ID standard (spiffe/spiffe `standards/SPIFFE-ID.md`)
//! strictly and accepts nothing it does not name.
//!
//! - scheme `spiffe://`, lowercase;
//! - trust domain: lowercase letters, digits, `.`, `-`, `_`; not empty
//!   (so no port, user info or uppercase);
//! - path: one or more `/`-separated segments, each non-empty, not `.` or
//!   `..`, made of `[A-Za-z0-9._-]` (so no percent-encoding, query or
//!   fragment, and no trailing `/`);
//! - at most 2048 bytes in all.
//!
//! The standard also allows an ID with no path (the trust domain itself);
//! an X509-SVID must name a workload, so [`SpiffeId`] requires a path.

use std::fmt;
use std::str::FromStr;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The longest SPIFFE ID the standard allows, in bytes.
pub const MAX_LEN: usize = 2048;

const SCHEME: &str = "spiffe://";

/// A valid SPIFFE ID naming a workload (it has a path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID, as parsed or built.
    id: String,
    /// Where the path starts in `id` (its first `/`).
    path_at: usize,
}

/// What is wrong with a SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("SPIFFE ID is {len} bytes long; at most {MAX_LEN} are allowed")]
    TooLong { len: usize },
    #[error("SPIFFE ID must start with `spiffe://`")]
    Scheme,
    #[error("SPIFFE ID has an empty trust domain")]
    EmptyTrustDomain,
    #[error(
        "trust domain has {ch:?} at byte {at}; only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    TrustDomainChar { ch: char, at: usize },
    #[error("SPIFFE ID has no path; a workload identity needs one (e.g. /ns/default/sa/web)")]
    NoPath,
    #[error("SPIFFE ID path has an empty segment (`//` or a trailing `/`)")]
    EmptySegment,
    #[error("SPIFFE ID path has a {0:?} segment")]
    DotSegment(&'static str),
    #[error(
        "SPIFFE ID path segment {segment:?} has {ch:?}; only letters, digits, '.', '-' and '_' are allowed"
    )]
    PathChar { segment: String, ch: char },
}

impl SpiffeId {
    /// The mesh's identity for `service` in `namespace`:
    /// `spiffe://<trust_domain>/ns/<namespace>/sa/<service>`.
    pub fn workload(
        trust_domain: &str,
        namespace: &str,
        service: &str,
    ) -> Result<SpiffeId, SpiffeIdError> {
        // Each part is one segment: `a/sa/b` as a namespace would make a
        // valid ID of another shape.
        check_segment(namespace)?;
        check_segment(service)?;
        format!("{SCHEME}{trust_domain}/ns/{namespace}/sa/{service}").parse()
    }

    /// The whole ID, e.g. `spiffe://mesh.local/ns/shop/sa/orders`.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// e.g. `mesh.local`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_at]
    }

    /// e.g. `/ns/shop/sa/orders`.
    pub fn path(&self) -> &str {
        &self.id[self.path_at..]
    }

    /// The namespace and service of a `/ns/<namespace>/sa/<service>` path;
    /// `None` for any other path.
    pub fn workload_parts(&self) -> Option<(&str, &str)> {
        let mut segs = self.path()[1..].split('/');
        match (
            segs.next(),
            segs.next(),
            segs.next(),
            segs.next(),
            segs.next(),
        ) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => Some((ns, sa)),
            _ => None,
        }
    }
}

/// Checks a trust domain name (`mesh.local`) as a SPIFFE ID would.
pub fn check_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if let Some((at, ch)) = td
        .char_indices()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(SpiffeIdError::TrustDomainChar { ch, at });
    }
    Ok(())
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.len() > MAX_LEN {
            return Err(SpiffeIdError::TooLong { len: s.len() });
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_trust_domain(td)?;
        if path.is_empty() {
            return Err(SpiffeIdError::NoPath);
        }
        for segment in path[1..].split('/') {
            check_segment(segment)?;
        }
        Ok(SpiffeId {
            id: s.to_string(),
            path_at: SCHEME.len() + td.len(),
        })
    }
}

fn check_segment(segment: &str) -> Result<(), SpiffeIdError> {
    match segment {
        "" => return Err(SpiffeIdError::EmptySegment),
        "." => return Err(SpiffeIdError::DotSegment(".")),
        ".." => return Err(SpiffeIdError::DotSegment("..")),
        _ => {}
    }
    if let Some(ch) = segment
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(SpiffeIdError::PathChar {
            segment: segment.to_string(),
            ch,
        });
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The SPIFFE ID of a leaf certificate (DER): its URI SAN, if it has
/// exactly one and that one is a valid SPIFFE ID. `None` otherwise, as the
/// X509-SVID standard says such a certificate is no SVID at all (two URI
/// SANs would make the identity ambiguous).
pub fn spiffe_id_of(cert_der: &[u8]) -> Option<SpiffeId> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    match (uris.next(), uris.next()) {
        (Some(uri), None) => uri.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_id_parses_formats_and_splits() {
        let id = SpiffeId::workload("mesh.local", "shop", "orders").expect("valid");
        assert_eq!(id.as_str(), "spiffe://mesh.local/ns/shop/sa/orders");
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(id.trust_domain(), "mesh.local");
        assert_eq!(id.path(), "/ns/shop/sa/orders");
        assert_eq!(id.workload_parts(), Some(("shop", "orders")));
        let again: SpiffeId = id.as_str().parse().expect("round trip");
        assert_eq!(again, id);
    }

    #[test]
    fn other_valid_paths_parse_but_are_not_workloads() {
        for s in [
            "spiffe://td/a",
            "spiffe://a_b-c.9/X.y-z_0/..a/a..",
            "spiffe://td/ns/x/sa/y/extra",
            "spiffe://td/ns/x/sb/y",
        ] {
            let id: SpiffeId = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.workload_parts(), None, "{s}");
        }
    }

    #[test]
    fn invalid_ids_say_what_is_wrong() {
        use SpiffeIdError::*;
        let cases: &[(&str, SpiffeIdError)] = &[
            ("http://td/a", Scheme),
            ("SPIFFE://td/a", Scheme),
            ("spiffe:/td/a", Scheme),
            ("spiffe:///a", EmptyTrustDomain),
            ("spiffe://", EmptyTrustDomain),
            ("spiffe://Td/a", TrustDomainChar { ch: 'T', at: 0 }),
            ("spiffe://td:8080/a", TrustDomainChar { ch: ':', at: 2 }),
            ("spiffe://u@td/a", TrustDomainChar { ch: '@', at: 1 }),
            ("spiffe://td", NoPath),
            ("spiffe://td/", EmptySegment),
            ("spiffe://td/a/", EmptySegment),
            ("spiffe://td//a", EmptySegment),
            ("spiffe://td/a/./b", DotSegment(".")),
            ("spiffe://td/a/..", DotSegment("..")),
            (
                "spiffe://td/a%2e",
                PathChar {
                    segment: "a%2e".into(),
                    ch: '%',
                },
            ),
            (
                "spiffe://td/a?b",
                PathChar {
                    segment: "a?b".into(),
                    ch: '?',
                },
            ),
            (
                "spiffe://td/é",
                PathChar {
                    segment: "é".into(),
                    ch: 'é',
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<SpiffeId>().as_ref(), Err(want), "{s}");
        }
        let err = "spiffe://td:1/a".parse::<SpiffeId>().expect_err("port");
        assert!(err.to_string().contains("':' at byte 2"), "{err}");
    }

    #[test]
    fn the_length_limit_is_2048_bytes() {
        let head = "spiffe://td/";
        let ok = format!("{head}{}", "a".repeat(MAX_LEN - head.len()));
        assert!(ok.parse::<SpiffeId>().is_ok());
        let long = format!("{ok}a");
        assert_eq!(
            long.parse::<SpiffeId>(),
            Err(SpiffeIdError::TooLong { len: MAX_LEN + 1 })
        );
    }

    #[test]
    fn workload_checks_its_parts() {
        assert_eq!(
            SpiffeId::workload("mesh.local", "shop", ".."),
            Err(SpiffeIdError::DotSegment(".."))
        );
        assert_eq!(
            SpiffeId::workload("mesh.local", "x/sa/y", "b"),
            Err(SpiffeIdError::PathChar {
                segment: "x/sa/y".into(),
                ch: '/'
            })
        );
        assert_eq!(
            SpiffeId::workload("mesh.local", "", "b"),
            Err(SpiffeIdError::EmptySegment)
        );
        assert!(matches!(
            SpiffeId::workload("Mesh", "a", "b"),
            Err(SpiffeIdError::TrustDomainChar { ch: 'M', .. })
        ));
    }
}
