//! A route's `mirror`: compiled into a `mirror::Policy` on the route.
//!
//! Not a filter: a filter decides what happens to the request, and a
//! mirror must never change that. It is a side effect the forward phase
//! starts (`mirror`), so it has a field of its own on `Route`.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::Validator;
use crate::config::model::ClusterId;
use crate::config::raw::RawMirror;
use crate::mirror::Policy;

impl Validator {
    /// `None` after reporting every problem of the mirror; `path` names
    /// the `mirror` field itself.
    pub(super) fn mirror(
        &mut self,
        m: &Spanned<RawMirror>,
        path: &str,
        clusters: &HashMap<String, ClusterId>,
    ) -> Option<Policy> {
        let cluster_path = format!("{path}.cluster");
        let cluster = match &m.value.cluster {
            Some(name) => self.cluster_ref(name, &cluster_path, clusters),
            None => {
                self.err(
                    &m.referenced,
                    cluster_path,
                    "missing: the cluster the copies go to",
                );
                None
            }
        };
        let per_million = match &m.value.percent {
            Some(p) => self.percent_value(p, &format!("{path}.percent")),
            None => Some(crate::filter::fault::PER_MILLION),
        };
        let max_body_bytes = match &m.value.max_body_bytes {
            Some(b) if b.value <= Policy::MAX_BODY_LIMIT => Some(b.value),
            Some(b) => {
                self.err(
                    &b.referenced,
                    format!("{path}.max_body_bytes"),
                    format!(
                        "`{}`: at most {} (4 MiB): each mirrored request holds its body in memory",
                        b.value,
                        Policy::MAX_BODY_LIMIT
                    ),
                );
                None
            }
            None => Some(Policy::DEFAULT_MAX_BODY),
        };
        Some(Policy {
            cluster: cluster?,
            per_million: per_million?,
            max_body_bytes: max_body_bytes?,
        })
    }
}
