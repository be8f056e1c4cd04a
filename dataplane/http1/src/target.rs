//! Where a forwarded or redirected request goes: the path and Host a
//! route's `rewrite` (or `redirect`) puts in place of the client's.
//!
//! Prefix replacement is the Gateway API's `ReplacePrefixMatch`: the part
//! of the path the route's prefix matched is replaced, the rest (and the
//! query) kept, with exactly one `/` where the two meet whether or not
//! either side ends in one. It writes into the caller's buffer (the head
//! being encoded, or a pooled buffer), so a rewrite allocates nothing.

/// A route's new path for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replace the whole path; the query is kept.
    Full(Box<[u8]>),
    /// Replace the first `matched` bytes of the path (the route's path
    /// prefix without a trailing `/`) with `with` (stored without a
    /// trailing `/`).
    Prefix { matched: usize, with: Box<[u8]> },
}

impl PathRewrite {
    /// A prefix replacement for a route matching `prefix`, replacing it
    /// with `with`: trailing slashes of both are dropped, as the Gateway
    /// API's table of examples has it.
    pub fn prefix(prefix: &[u8], with: &[u8]) -> PathRewrite {
        PathRewrite::Prefix {
            matched: trim_slash(prefix).len(),
            with: trim_slash(with).into(),
        }
    }

    /// Append the rewritten `path` (no query) to `out`.
    pub fn write_path(&self, path: &[u8], out: &mut Vec<u8>) {
        match self {
            PathRewrite::Full(p) => out.extend_from_slice(p),
            PathRewrite::Prefix { matched, with } => {
                let start = out.len();
                out.extend_from_slice(with);
                // The route matched the prefix, so the path starts with it;
                // a shorter path (never routed here) keeps nothing of it.
                out.extend_from_slice(path.get(*matched..).unwrap_or_default());
                if out.len() == start {
                    out.push(b'/');
                }
            }
        }
    }

    /// Append the rewritten path and the client's `query` (`?` and all).
    pub fn write_target(&self, path: &[u8], query: Option<&[u8]>, out: &mut Vec<u8>) {
        self.write_path(path, out);
        if let Some(q) = query {
            out.push(b'?');
            out.extend_from_slice(q);
        }
    }
}

/// Append the request target sent on: `path` rewritten by `rewrite` when
/// there is one, then `?` and `query` when there is one.
pub fn write_target(
    rewrite: Option<&PathRewrite>,
    path: &[u8],
    query: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    match rewrite {
        Some(p) => p.write_target(path, query, out),
        None => {
            out.extend_from_slice(path);
            if let Some(q) = query {
                out.push(b'?');
                out.extend_from_slice(q);
            }
        }
    }
}

fn trim_slash(p: &[u8]) -> &[u8] {
    p.strip_suffix(b"/").unwrap_or(p)
}

/// A route's `rewrite`: what replaces the client's path and Host on the
/// upstream request. Both unset is no rewrite (the route holds `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRewrite {
    /// The whole Host (`:authority`) sent upstream.
    pub host: Option<Box<[u8]>>,
    pub path: Option<PathRewrite>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(path: &str, matched: &str, with: &str) -> String {
        let mut out = Vec::new();
        PathRewrite::prefix(matched.as_bytes(), with.as_bytes())
            .write_path(path.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prefix_replacement_follows_the_gateway_api_table() {
        // (request path, prefix match, replacement) -> path, from the
        // Gateway API's HTTPPathModifier documentation.
        for (path, matched, with, want) in [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            ("/", "/", "/v2", "/v2/"),
            ("/a/b", "/", "/v2", "/v2/a/b"),
        ] {
            assert_eq!(prefix(path, matched, with), want, "{path} {matched} {with}");
        }
    }

    #[test]
    fn the_query_is_kept_and_a_full_path_replaces_everything() {
        let mut out = Vec::new();
        PathRewrite::Full(b"/new"[..].into()).write_target(b"/old/x", Some(b"a=1"), &mut out);
        assert_eq!(out, b"/new?a=1");
        out.clear();
        PathRewrite::prefix(b"/old", b"/new").write_target(b"/old/x", None, &mut out);
        assert_eq!(out, b"/new/x");
        out.clear();
        // A path shorter than the prefix never routes here; nothing panics.
        PathRewrite::prefix(b"/long/prefix", b"/n").write_target(b"/l", None, &mut out);
        assert_eq!(out, b"/n");
    }
}
