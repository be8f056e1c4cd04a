//! A route's `redirect` (an action) and `rewrite` (an edit of the
//! upstream request): the path modifiers both share, host names, and the
//! rule that a prefix replacement needs a prefix to replace.

use serde_saphyr::Spanned;

use ringmesh_http1::target::{PathRewrite, TargetRewrite};

use super::Validator;
use crate::config::raw::{RawPathModifier, RawRedirect, RawRewrite, RawRoute};
use crate::redirect::Redirect;

impl Validator {
    /// `None` after reporting every problem of the redirect.
    pub(super) fn redirect(
        &mut self,
        route: &RawRoute,
        r: &Spanned<RawRedirect>,
        path: &str,
    ) -> Option<Redirect> {
        let raw = &r.value;
        let mut ok = true;
        let scheme: Option<&'static [u8]> = match raw.scheme.as_ref() {
            None => None,
            Some(s) if s.value == "http" => Some(b"http"),
            Some(s) if s.value == "https" => Some(b"https"),
            Some(s) => {
                self.err(
                    &s.referenced,
                    format!("{path}.scheme"),
                    format!("`{}`: a redirect's scheme is `http` or `https`", s.value),
                );
                ok = false;
                None
            }
        };
        let host = raw
            .hostname
            .as_ref()
            .and_then(|h| self.hostname(h, &format!("{path}.hostname")));
        ok &= raw.hostname.is_none() || host.is_some();
        let port = match &raw.port {
            Some(p) if (1..=65535).contains(&p.value) => Some(p.value as u16),
            Some(p) => {
                self.err(
                    &p.referenced,
                    format!("{path}.port"),
                    format!("{} is not a port: 1 to 65535", p.value),
                );
                ok = false;
                None
            }
            None => None,
        };
        let new_path = match &raw.path {
            Some(p) => {
                let m = self.path_modifier(route, p, &format!("{path}.path"));
                ok &= m.is_some();
                m
            }
            None => None,
        };
        let status = match &raw.status {
            None => Redirect::DEFAULT_STATUS,
            Some(s) if Redirect::STATUSES.contains(&(s.value.min(999) as u16)) => s.value as u16,
            Some(s) => {
                self.err(
                    &s.referenced,
                    format!("{path}.status"),
                    format!(
                        "{} is not a redirect status: 301, 302, 303, 307 or 308",
                        s.value
                    ),
                );
                ok = false;
                Redirect::DEFAULT_STATUS
            }
        };
        ok.then_some(Redirect {
            scheme,
            host,
            port,
            path: new_path,
            status,
        })
    }

    /// `None` after reporting every problem of the rewrite. Only a route
    /// that forwards may rewrite (`route` checks the action).
    pub(super) fn rewrite(
        &mut self,
        route: &RawRoute,
        r: &Spanned<RawRewrite>,
        path: &str,
    ) -> Option<TargetRewrite> {
        let raw = &r.value;
        if raw.hostname.is_none() && raw.path.is_none() {
            self.err(
                &r.referenced,
                path,
                "give a `hostname`, a `path` or both (or leave `rewrite` out)",
            );
            return None;
        }
        if route.cluster.is_none() && route.weighted_clusters.is_none() {
            self.err(
                &r.referenced,
                path,
                "only a route that forwards (`cluster` or `weighted_clusters`) rewrites its requests",
            );
            return None;
        }
        let host = raw
            .hostname
            .as_ref()
            .map(|h| self.hostname(h, &format!("{path}.hostname")));
        let new_path = raw
            .path
            .as_ref()
            .map(|p| self.path_modifier(route, p, &format!("{path}.path")));
        if matches!(host, Some(None)) || matches!(new_path, Some(None)) {
            return None;
        }
        Some(TargetRewrite {
            host: host.flatten(),
            path: new_path.flatten(),
        })
    }

    /// `{ full: /x }` or `{ prefix: /y }`; a prefix needs the route to
    /// match a path prefix, whose matched part it replaces.
    fn path_modifier(
        &mut self,
        route: &RawRoute,
        p: &Spanned<RawPathModifier>,
        path: &str,
    ) -> Option<PathRewrite> {
        match (&p.value.full, &p.value.prefix) {
            (Some(full), None) => self
                .replacement_path(full, &format!("{path}.full"), false)
                .then(|| PathRewrite::Full(full.value.as_bytes().into())),
            (None, Some(prefix)) => {
                let ok = self.replacement_path(prefix, &format!("{path}.prefix"), true);
                let matched = route
                    .matcher
                    .path
                    .as_ref()
                    .and_then(|m| m.value.prefix.as_deref());
                let Some(matched) = matched else {
                    self.err(
                        &prefix.referenced,
                        format!("{path}.prefix"),
                        "replaces the path prefix the route matched, and this route matches none: give it `match.path.prefix`, or use `full`",
                    );
                    return None;
                };
                ok.then(|| PathRewrite::prefix(matched.as_bytes(), prefix.value.as_bytes()))
            }
            (Some(_), Some(prefix)) => {
                self.err(
                    &prefix.referenced,
                    path,
                    "give `full` or `prefix`, not both",
                );
                None
            }
            (None, None) => {
                self.err(&p.referenced, path, "give `full: /path` or `prefix: /path`");
                None
            }
        }
    }

    /// A path to send: starts with `/` (a prefix may also be empty: the
    /// matched prefix is dropped), visible ASCII, no query or fragment.
    fn replacement_path(&mut self, p: &Spanned<String>, path: &str, may_be_empty: bool) -> bool {
        let v = &p.value;
        let problem = if v.is_empty() && may_be_empty {
            return true;
        } else if !v.starts_with('/') {
            "must start with `/`"
        } else if v.contains(['?', '#']) {
            "must not contain `?` or `#`: the request's query is kept"
        } else if !v.bytes().all(|b| b.is_ascii_graphic()) {
            "must be visible ASCII with no spaces (percent-encode the rest)"
        } else {
            return true;
        };
        self.err(&p.referenced, path, format!("`{v}` {problem}"));
        false
    }

    /// A host name or IP address for Host or Location, without a port.
    fn hostname(&mut self, h: &Spanned<String>, path: &str) -> Option<Box<[u8]>> {
        let v = &h.value;
        let bracketed = v.starts_with('[')
            && v.ends_with(']')
            && v[1..v.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
        let name = !v.is_empty()
            && v.len() <= 253
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if bracketed || name {
            return Some(v.to_ascii_lowercase().into_bytes().into());
        }
        let hint = if v.contains(':') && !v.starts_with('[') {
            ": no port here (a redirect has `port`; an IPv6 address goes in brackets)"
        } else {
            ": letters, digits, `-` and `.`, or an IPv6 address in brackets"
        };
        self.err(
            &h.referenced,
            path,
            format!("`{v}` is not a host name{hint}"),
        );
        None
    }
}
