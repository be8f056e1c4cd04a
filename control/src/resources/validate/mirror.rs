//! The Gateway API's `RequestMirror` filter (`filters.rs` reads the
//! rest), compiled onto the proxy route's `mirror`.

use serde_saphyr::Spanned;

use super::super::model::{Mirror, Resources, RouteKind};
use super::super::raw::RawRequestMirror;
use super::{Checker, Doc};

impl Checker {
    pub(super) fn request_mirror(
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
