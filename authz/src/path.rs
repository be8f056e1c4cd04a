//! The path an authorization rule sees: normalised so that spellings of
//! the same resource cannot slip past a rule written for one of them.
//!
//! RFC 3986 normalisation, as Istio applies it for its policies (Envoy's
//! `normalize_path` with `merge_slashes`):
//! - percent-encoded unreserved characters are decoded (`%2e` is `.`,
//!   `%41` is `A`), so `/%2e%2e/admin` is `/../admin`;
//! - runs of `/` are merged (`//admin` is `/admin`);
//! - `.` and `..` segments are removed (`/orders/../admin` is `/admin`;
//!   `..` above the root stays at the root).
//!
//! An encoded slash or backslash (`%2F`, `%5C`) cannot be normalised
//! safely (upstreams disagree on whether it separates segments):
//! `normalize` refuses such a path, and the request is answered 400
//! rather than judged on a guess. Case is kept: paths are case-sensitive.

/// Why a path has no normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` or `%5C`: an encoded separator.
    EncodedSlash,
    /// A `%` not followed by two hex digits.
    BadEscape,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether a policy's path pattern can match: its fixed part (without the
/// `*` of a prefix or suffix pattern) must be its own normal form, since
/// requests are matched normalised; a suffix part is checked as if it
/// followed a `/`. The proxy and the control plane both refuse patterns
/// that fail this, with the same answer.
pub fn pattern_is_normal(pattern: &str) -> bool {
    let bare = pattern.trim_start_matches('*').trim_end_matches('*');
    let path = if bare.starts_with('/') {
        bare.to_string()
    } else {
        format!("/{bare}")
    };
    let mut out = Vec::new();
    normalize(path.as_bytes(), &mut out).is_ok() && out == path.as_bytes()
}

/// Write the normal form of `path` (without its query) into `out`,
/// which is cleared first; `out`'s capacity is reused, so a core that
/// keeps one buffer normalises without allocating.
pub fn normalize(path: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    // Decode escapes of unreserved characters; keep others encoded
    // (uppercased), refuse encoded separators.
    let mut i = 0;
    let mut decoded: Vec<u8> = std::mem::take(out);
    while i < path.len() {
        let b = path[i];
        if b != b'%' {
            decoded.push(b);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) else {
            *out = decoded;
            return Err(PathError::BadEscape);
        };
        let c = h << 4 | l;
        if c == b'/' || c == b'\\' {
            *out = decoded;
            return Err(PathError::EncodedSlash);
        }
        if unreserved(c) {
            decoded.push(c);
        } else {
            decoded.push(b'%');
            decoded.push(path[i + 1].to_ascii_uppercase());
            decoded.push(path[i + 2].to_ascii_uppercase());
        }
        i += 3;
    }
    // Segments: merge slashes, drop `.`, pop on `..`. Done in place: with
    // a leading `/`, every segment has a `/` before it in the input, so
    // the output never gets longer than the input.
    if decoded.first() != Some(&b'/') {
        decoded.insert(0, b'/');
    }
    let len = decoded.len();
    let mut ends_dir = decoded.last() == Some(&b'/');
    let (mut w, mut r) = (0, 0);
    while r < len {
        while r < len && decoded[r] == b'/' {
            r += 1;
        }
        let start = r;
        while r < len && decoded[r] != b'/' {
            r += 1;
        }
        match &decoded[start..r] {
            b"" => {}
            b"." => ends_dir = true,
            b".." => {
                // Back to the slash that began the last written segment.
                while w > 0 {
                    w -= 1;
                    if decoded[w] == b'/' {
                        break;
                    }
                }
                ends_dir = true;
            }
            _ => {
                decoded[w] = b'/';
                decoded.copy_within(start..r, w + 1);
                w += 1 + (r - start);
                ends_dir = r < len;
            }
        }
    }
    // A directory (`/a/`, `/a/.`, `/a/b/..`) keeps its trailing slash.
    if w == 0 || ends_dir {
        if w == decoded.len() {
            decoded.push(b'/');
        } else {
            decoded[w] = b'/';
        }
        w += 1;
    }
    decoded.truncate(w);
    *out = decoded;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_checked_in_their_normal_form() {
        for p in [
            "/admin",
            "/a/",
            "/",
            "/a%20b",
            "/a%3Fb",
            "/ADMIN",
            "/orders/",
            "/orders/*",
            "*.json",
            "*",
        ] {
            assert!(pattern_is_normal(p), "{p}");
        }
        for p in [
            "//admin",
            "/orders/../admin",
            "/a/./b",
            "/%61dmin",
            "/a%3fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%zz",
            "/a%2",
            "/a/..",
            "/a/.",
            "//x*",
            "*/../x",
        ] {
            assert!(!pattern_is_normal(p), "{p}");
        }
    }

    fn norm(p: &str) -> Result<String, PathError> {
        let mut out = Vec::new();
        normalize(p.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn bypass_spellings_normalise_to_the_resource() {
        for (input, want) in [
            ("/admin", "/admin"),
            ("//admin", "/admin"),
            ("/orders/../admin", "/admin"),
            ("/orders/./../admin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/orders/%2E%2E/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/../../admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/", "/a/"),
            ("/", "/"),
            ("", "/"),
            ("/..", "/"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/ADMIN", "/ADMIN"),
            ("*", "/*"),
            ("a/b", "/a/b"),
        ] {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn encoded_separators_and_broken_escapes_are_refused() {
        assert_eq!(norm("/orders%2F..%2Fadmin"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
    }

    #[test]
    fn no_input_panics_and_every_output_is_normal() {
        let alphabet = b"/.a%2eE5cF~";
        let mut rng = fastrand::Rng::with_seed(7);
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let len = rng.usize(0..16);
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            if normalize(&input, &mut out).is_ok() {
                assert!(out.starts_with(b"/"), "{input:?} -> {out:?}");
                assert!(!out.windows(2).any(|w| w == b"//"), "{input:?} -> {out:?}");
                let again = out.clone();
                normalize(&again, &mut out).unwrap();
                assert_eq!(out, again, "normalising twice changes nothing: {input:?}");
            }
        }
    }

    #[test]
    fn the_buffer_is_reused() {
        let mut out = Vec::with_capacity(64);
        let cap = out.capacity();
        normalize(b"/a/../b", &mut out).unwrap();
        normalize(b"/c//d", &mut out).unwrap();
        assert_eq!(out, b"/c/d");
        assert_eq!(out.capacity(), cap);
    }
}
