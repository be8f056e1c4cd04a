//! An HTTPRoute rule's `filters`: the Gateway API's `RequestMirror`,
//! compiled onto the proxy route's `mirror`. The other standard filters
//! are known and refused as not supported yet.

use serde_saphyr::Spanned;

use super::super::model::{Mirror, Resources, RouteKind};
use super::super::raw::{RawFilter, RawRequestMirror};
use super::{did_you_mean, Checker, Doc};

/// The Gateway API's filter types this control plane knows of.
const KNOWN: [&str; 7] = [
    "RequestMirror",
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
];

impl Checker {
    /// The rule's mirror, after reporting every problem of its filters;
    /// `path` names the rule.
    pub(super) fn filters(
        &mut self,
        doc: &Doc,
        filters: &[Spanned<RawFilter>],
        path: &str,
        known: &Resources,
    ) -> Option<Mirror> {
        let mut mirror = None;
        let mut mirrors = 0;
        for (i, f) in filters.iter().enumerate() {
            let at = format!("{path}.filters[{i}]");
            let kind = &f.value.kind;
            match kind.value.as_str() {
                "RequestMirror" => {
                    mirrors += 1;
                    if mirrors > 1 {
                        self.err(
                            doc,
                            &kind.referenced,
                            format!("{at}.type"),
                            "one RequestMirror per rule: the proxy mirrors a route to one cluster",
                        );
                        continue;
                    }
                    match &f.value.request_mirror {
                        Some(m) => {
                            mirror =
                                self.request_mirror(doc, m, &format!("{at}.requestMirror"), known)
                        }
                        None => self.err(
                            doc,
                            &f.referenced,
                            format!("{at}.requestMirror"),
                            "missing: `backendRef`, the Service the copies go to",
                        ),
                    }
                }
                other if KNOWN.contains(&other) => self.err(
                    doc,
                    &kind.referenced,
                    format!("{at}.type"),
                    format!("`{other}` is not supported yet: RequestMirror is"),
                ),
                other => self.err(
                    doc,
                    &kind.referenced,
                    format!("{at}.type"),
                    format!(
                        "unknown filter type `{other}`{}",
                        did_you_mean(other, &KNOWN)
                    ),
                ),
            }
            if kind.value != "RequestMirror" {
                if let Some(m) = &f.value.request_mirror {
                    self.err(
                        doc,
                        &m.referenced,
                        format!("{at}.requestMirror"),
                        "goes with `type: RequestMirror`",
                    );
                }
            }
        }
        mirror
    }

    fn request_mirror(
        &mut self,
        doc: &Doc,
        m: &Spanned<RawRequestMirror>,
        path: &str,
        known: &Resources,
    ) -> Option<Mirror> {
        let raw = &m.value;
        let backend = self.backend_ref(
            doc,
            &raw.backend_ref,
            &format!("{path}.backendRef"),
            RouteKind::Http,
            known,
        );
        let percent = match (&raw.percent, &raw.fraction) {
            (Some(_), Some(f)) => {
                self.err(
                    doc,
                    &f.referenced,
                    format!("{path}.fraction"),
                    "give `percent` or `fraction`, not both",
                );
                return None;
            }
            (Some(p), None) if (0.0..=100.0).contains(&p.value) => Some(p.value),
            (Some(p), None) => {
                self.err(
                    doc,
                    &p.referenced,
                    format!("{path}.percent"),
                    format!("{} is not a percentage: write 0 to 100", p.value),
                );
                return None;
            }
            (None, Some(f)) => {
                let n = f.value.numerator.value;
                let d = f.value.denominator.as_ref().map_or(100, |d| d.value);
                if d == 0 || n > d {
                    let at = f
                        .value
                        .denominator
                        .as_ref()
                        .map_or(&f.referenced, |d| &d.referenced);
                    self.err(
                        doc,
                        at,
                        format!("{path}.fraction"),
                        format!("{n}/{d}: the denominator must be more than 0 and at least the numerator"),
                    );
                    return None;
                }
                Some(n as f64 * 100.0 / d as f64)
            }
            (None, None) => None,
        };
        Some(Mirror {
            cluster: backend?.cluster,
            percent,
        })
    }
}
