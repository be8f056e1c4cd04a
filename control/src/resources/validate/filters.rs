//! An HTTPRoute rule's `filters`, the Gateway API's, each compiled onto
//! the proxy routes the rule becomes: `RequestHeaderModifier` and
//! `ResponseHeaderModifier` (the route's `request_headers` /
//! `response_headers`), `RequestRedirect` (the route's `redirect` action),
//! `URLRewrite` (its `rewrite`) and `RequestMirror` (its `mirror`,
//! `mirror.rs`). `ExtensionRef` and `CORS` are known and refused as not
//! supported yet.
//!
//! The proxy's header edits remove, then append. The Gateway API's `set`
//! (replace any value the request has) is therefore a `remove` and an
//! `add` of the same name; `add` appends; `remove` removes.

use serde_saphyr::Spanned;

use super::super::model::{
    HeaderEdits, Match, Mirror, PathMatch, PathModifier, Redirect, Resources, Rewrite,
};
use super::super::raw::{
    RawFilter, RawHeaderModifier, RawHttpPathModifier, RawRequestRedirect, RawUrlRewrite,
};
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

/// What a rule's filters add to its proxy routes.
#[derive(Debug, Default)]
pub(super) struct RuleFilters {
    pub mirror: Option<Mirror>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub redirect: Option<Redirect>,
    /// A `RequestRedirect` filter is given (valid or not): the rule
    /// forwards nothing, so it takes no `backendRefs`.
    pub redirects: bool,
    pub rewrite: Option<Rewrite>,
}

impl Checker {
    /// The rule's filters, after reporting every problem of them; `path`
    /// names the rule, `matches` are its (checked) matches: a prefix
    /// replacement needs each to be a path prefix.
    pub(super) fn filters(
        &mut self,
        doc: &Doc,
        filters: &[Spanned<RawFilter>],
        path: &str,
        known: &Resources,
        matches: &[Match],
    ) -> RuleFilters {
        let mut out = RuleFilters::default();
        // Where the first filter of each type was, for "one per rule".
        let mut seen: Vec<&str> = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            let at = format!("{path}.filters[{i}]");
            let kind = &f.value.kind;
            let t = kind.value.as_str();
            if KNOWN.contains(&t) && seen.contains(&t) {
                let why = match t {
                    "RequestMirror" => "the proxy mirrors a route to one cluster",
                    _ => "as the Gateway API allows",
                };
                self.err(
                    doc,
                    &kind.referenced,
                    format!("{at}.type"),
                    format!("one {t} per rule: {why}"),
                );
                continue;
            }
            seen.push(t);
            out.redirects |= t == "RequestRedirect";
            let v = &f.value;
            match t {
                "RequestMirror" => match &v.request_mirror {
                    Some(m) => {
                        out.mirror =
                            self.request_mirror(doc, m, &format!("{at}.requestMirror"), known)
                    }
                    None => self.missing(doc, f, &at, "requestMirror", "`backendRef`, the Service the copies go to"),
                },
                "RequestHeaderModifier" | "ResponseHeaderModifier" => {
                    let (field, given) = if t == "RequestHeaderModifier" {
                        ("requestHeaderModifier", &v.request_header_modifier)
                    } else {
                        ("responseHeaderModifier", &v.response_header_modifier)
                    };
                    match given {
                        Some(m) => {
                            let edits = self.header_modifier(
                                doc,
                                m,
                                &format!("{at}.{field}"),
                                t == "RequestHeaderModifier",
                            );
                            if t == "RequestHeaderModifier" {
                                out.request_headers = edits;
                            } else {
                                out.response_headers = edits;
                            }
                        }
                        None => self.missing(doc, f, &at, field, "`set`, `add` or `remove`"),
                    }
                }
                "RequestRedirect" => match &v.request_redirect {
                    Some(r) => {
                        out.redirect =
                            self.request_redirect(doc, r, &format!("{at}.requestRedirect"), matches)
                    }
                    None => self.missing(doc, f, &at, "requestRedirect", "what the redirect changes (`scheme`, `hostname`, `path`, `port`, `statusCode`)"),
                },
                "URLRewrite" => match &v.url_rewrite {
                    Some(r) => {
                        out.rewrite = self.url_rewrite(doc, r, &format!("{at}.urlRewrite"), matches)
                    }
                    None => self.missing(doc, f, &at, "urlRewrite", "`hostname`, `path` or both"),
                },
                other @ ("ExtensionRef" | "CORS") => self.err(
                    doc,
                    &kind.referenced,
                    format!("{at}.type"),
                    format!(
                        "`{other}` is not supported yet: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite and RequestMirror are"
                    ),
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
            // A field for another type is a mistake the Gateway API's CEL
            // rules refuse too.
            let fields = [
                (
                    "RequestMirror",
                    "requestMirror",
                    v.request_mirror.as_ref().map(|x| x.referenced),
                ),
                (
                    "RequestHeaderModifier",
                    "requestHeaderModifier",
                    v.request_header_modifier.as_ref().map(|x| x.referenced),
                ),
                (
                    "ResponseHeaderModifier",
                    "responseHeaderModifier",
                    v.response_header_modifier.as_ref().map(|x| x.referenced),
                ),
                (
                    "RequestRedirect",
                    "requestRedirect",
                    v.request_redirect.as_ref().map(|x| x.referenced),
                ),
                (
                    "URLRewrite",
                    "urlRewrite",
                    v.url_rewrite.as_ref().map(|x| x.referenced),
                ),
            ];
            for (owner, field, at_field) in fields {
                if let Some(loc) = at_field.filter(|_| owner != t) {
                    self.err(
                        doc,
                        &loc,
                        format!("{at}.{field}"),
                        format!("goes with `type: {owner}`"),
                    );
                }
            }
        }
        if let (Some(_), Some(_)) = (&out.redirect, &out.rewrite) {
            let at = filters
                .iter()
                .position(|f| f.value.kind.value == "URLRewrite")
                .unwrap_or_default();
            self.err(
                doc,
                &filters[at].value.kind.referenced,
                format!("{path}.filters[{at}].type"),
                "a rule with RequestRedirect answers itself: there is no upstream request to rewrite (the Gateway API allows one or the other)",
            );
        }
        out
    }

    fn missing(&mut self, doc: &Doc, f: &Spanned<RawFilter>, at: &str, field: &str, what: &str) {
        self.err(
            doc,
            &f.referenced,
            format!("{at}.{field}"),
            format!("missing: {what}"),
        );
    }

    /// `set` -> remove + add, `add` -> add, `remove` -> remove; every name
    /// once per list (case-insensitive), as the Gateway API requires.
    fn header_modifier(
        &mut self,
        doc: &Doc,
        m: &Spanned<RawHeaderModifier>,
        path: &str,
        request: bool,
    ) -> HeaderEdits {
        let m = &m.value;
        let mut out = HeaderEdits::default();
        for (list, name) in [(&m.set, "set"), (&m.add, "add")] {
            let mut names: Vec<String> = Vec::new();
            for (i, h) in list.iter().enumerate() {
                let at = format!("{path}.{name}[{i}]");
                let Some(n) = self.edit_name(
                    doc,
                    &h.value.name,
                    &format!("{at}.name"),
                    request,
                    &mut names,
                ) else {
                    continue;
                };
                let value = &h.value.value;
                if value
                    .value
                    .bytes()
                    .any(|b| b == b'\r' || b == b'\n' || b == 0)
                {
                    self.err(
                        doc,
                        &value.referenced,
                        format!("{at}.value"),
                        "a header value must not contain CR, LF or NUL",
                    );
                    continue;
                }
                if name == "set" {
                    out.remove.push(n.clone());
                }
                out.add.push((n, value.value.clone()));
            }
        }
        let mut names = Vec::new();
        for (i, r) in m.remove.iter().enumerate() {
            if let Some(n) =
                self.edit_name(doc, r, &format!("{path}.remove[{i}]"), request, &mut names)
            {
                out.remove.push(n);
            }
        }
        out
    }

    /// A header name to edit, lowercased; `None` (reported) when it is not
    /// a header name, repeats one in `seen`, or is one the proxy owns.
    fn edit_name(
        &mut self,
        doc: &Doc,
        n: &Spanned<String>,
        path: &str,
        request: bool,
        seen: &mut Vec<String>,
    ) -> Option<String> {
        let v = n.value.to_ascii_lowercase();
        let problem = if !super::token(&v) {
            format!("`{}` is not a header name", n.value)
        } else if seen.contains(&v) {
            format!(
                "`{}` is given twice: header names are case-insensitive",
                n.value
            )
        } else if request && v == "host" {
            "`host` is not edited here: use a URLRewrite filter's `hostname`".to_string()
        } else if matches!(
            v.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "te" | "content-length"
        ) {
            format!("`{}` frames the message: the proxy sets it", n.value)
        } else {
            seen.push(v.clone());
            return Some(v);
        };
        self.err(doc, &n.referenced, path, problem);
        None
    }

    fn request_redirect(
        &mut self,
        doc: &Doc,
        r: &Spanned<RawRequestRedirect>,
        path: &str,
        matches: &[Match],
    ) -> Option<Redirect> {
        let errors = self.errors.len();
        let raw = &r.value;
        let scheme = raw.scheme.as_ref().map(|s| {
            if !matches!(s.value.as_str(), "http" | "https") {
                self.err(
                    doc,
                    &s.referenced,
                    format!("{path}.scheme"),
                    format!("`{}`: a redirect's scheme is `http` or `https`", s.value),
                );
            }
            s.value.clone()
        });
        let hostname = raw
            .hostname
            .as_ref()
            .map(|h| self.precise_hostname(doc, h, &format!("{path}.hostname")));
        let port = raw.port.as_ref().map(|p| {
            if !(1..=65535).contains(&p.value) {
                self.err(
                    doc,
                    &p.referenced,
                    format!("{path}.port"),
                    format!("{} is not a port: 1 to 65535", p.value),
                );
            }
            p.value as u16
        });
        let status = raw.status_code.as_ref().map(|s| {
            if ![301, 302, 303, 307, 308].contains(&s.value) {
                self.err(
                    doc,
                    &s.referenced,
                    format!("{path}.statusCode"),
                    format!(
                        "{} is not a redirect status: 301, 302, 303, 307 or 308",
                        s.value
                    ),
                );
            }
            s.value as u16
        });
        let new_path = raw
            .path
            .as_ref()
            .and_then(|p| self.path_modifier(doc, p, &format!("{path}.path"), matches));
        (self.errors.len() == errors).then_some(Redirect {
            scheme,
            hostname,
            port,
            path: new_path,
            status,
        })
    }

    fn url_rewrite(
        &mut self,
        doc: &Doc,
        r: &Spanned<RawUrlRewrite>,
        path: &str,
        matches: &[Match],
    ) -> Option<Rewrite> {
        let errors = self.errors.len();
        let raw = &r.value;
        if raw.hostname.is_none() && raw.path.is_none() {
            self.err(
                doc,
                &r.referenced,
                path,
                "give a `hostname`, a `path` or both (or leave the filter out)",
            );
            return None;
        }
        let hostname = raw
            .hostname
            .as_ref()
            .map(|h| self.precise_hostname(doc, h, &format!("{path}.hostname")));
        let new_path = raw
            .path
            .as_ref()
            .and_then(|p| self.path_modifier(doc, p, &format!("{path}.path"), matches));
        (self.errors.len() == errors).then_some(Rewrite {
            hostname,
            path: new_path,
        })
    }

    /// `HTTPPathModifier`: `type` and its one field. `ReplacePrefixMatch`
    /// replaces what a `PathPrefix` match matched, so every match of the
    /// rule must be one (a rule without matches matches the prefix `/`).
    fn path_modifier(
        &mut self,
        doc: &Doc,
        p: &Spanned<RawHttpPathModifier>,
        path: &str,
        matches: &[Match],
    ) -> Option<PathModifier> {
        let raw = &p.value;
        let Some(kind) = &raw.kind else {
            self.err(
                doc,
                &p.referenced,
                format!("{path}.type"),
                "missing: `ReplaceFullPath` or `ReplacePrefixMatch`",
            );
            return None;
        };
        let (field, value, other) = match kind.value.as_str() {
            "ReplaceFullPath" => (
                "replaceFullPath",
                &raw.replace_full_path,
                ("replacePrefixMatch", &raw.replace_prefix_match),
            ),
            "ReplacePrefixMatch" => (
                "replacePrefixMatch",
                &raw.replace_prefix_match,
                ("replaceFullPath", &raw.replace_full_path),
            ),
            other => {
                let hint = did_you_mean(other, &["ReplaceFullPath", "ReplacePrefixMatch"]);
                self.err(
                    doc,
                    &kind.referenced,
                    format!("{path}.type"),
                    format!("unknown path modifier `{other}`{hint}: ReplaceFullPath or ReplacePrefixMatch"),
                );
                return None;
            }
        };
        if let Some(o) = other.1 {
            self.err(
                doc,
                &o.referenced,
                format!("{path}.{}", other.0),
                format!(
                    "goes with `type: {}`",
                    if other.0 == "replaceFullPath" {
                        "ReplaceFullPath"
                    } else {
                        "ReplacePrefixMatch"
                    }
                ),
            );
        }
        let Some(value) = value else {
            self.err(
                doc,
                &kind.referenced,
                format!("{path}.{field}"),
                format!("missing: `type: {}` needs `{field}`", kind.value),
            );
            return None;
        };
        let v = &value.value;
        let prefix = field == "replacePrefixMatch";
        let problem = if v.is_empty() && prefix {
            None
        } else if !v.starts_with('/') {
            Some("must start with `/`")
        } else if v.contains(['?', '#']) {
            Some("must not contain `?` or `#`: the request's query is kept")
        } else if !v.bytes().all(|b| b.is_ascii_graphic()) {
            Some("must be visible ASCII with no spaces (percent-encode the rest)")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.err(
                doc,
                &value.referenced,
                format!("{path}.{field}"),
                format!("`{v}` {problem}"),
            );
            return None;
        }
        if !prefix {
            return Some(PathModifier::Full(v.clone()));
        }
        if let Some(i) = matches
            .iter()
            .position(|m| !matches!(m.path, PathMatch::Prefix(_)))
        {
            self.err(
                doc,
                &kind.referenced,
                format!("{path}.type"),
                format!("ReplacePrefixMatch replaces the prefix a PathPrefix match matched, and matches[{i}] is Exact: use ReplaceFullPath, or a PathPrefix match"),
            );
            return None;
        }
        Some(PathModifier::Prefix(v.clone()))
    }

    /// A host name without a port or wildcard, lowercased, as the
    /// Gateway API's PreciseHostname (an IPv6 address goes in brackets).
    fn precise_hostname(&mut self, doc: &Doc, h: &Spanned<String>, path: &str) -> String {
        let v = &h.value;
        let bracketed = v.starts_with('[')
            && v.ends_with(']')
            && v[1..v.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
        let name = !v.is_empty()
            && v.len() <= 253
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !(bracketed || name) {
            let hint = if v.contains(':') && !v.starts_with('[') {
                ": no port here (a redirect has `port`)"
            } else if v.contains('*') {
                ": no wildcard, it is where requests go"
            } else {
                ": letters, digits, `-` and `.`"
            };
            self.err(
                doc,
                &h.referenced,
                path,
                format!("`{v}` is not a host name{hint}"),
            );
        }
        v.to_ascii_lowercase()
    }
}
