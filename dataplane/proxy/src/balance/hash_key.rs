//! The key a consistent-hash policy hashes: a header (gRPC metadata is a
//! header), a cookie or the client's address, as xxHash64 (Envoy's hash,
//! stable across builds and machines, so every proxy maps a key alike).

use std::net::IpAddr;

use xxhash_rust::xxh64::xxh64;

use super::PickCtx;
use crate::config::model::HashOn;

/// The request's key, or `None` when it has none (the pick is random).
pub fn key(on: &HashOn, ctx: &PickCtx<'_>) -> Option<u64> {
    match on {
        HashOn::SourceIp => Some(match ctx.client {
            IpAddr::V4(v4) => xxh64(&v4.octets(), 0),
            IpAddr::V6(v6) => xxh64(&v6.octets(), 0),
        }),
        HashOn::Header(name) => ctx.request?.header(name.as_bytes()).map(|v| xxh64(v, 0)),
        HashOn::Cookie(name) => {
            let mut found = None;
            // HTTP/2 may split cookies over several fields.
            ctx.request?.for_each_header(&mut |n, v| {
                if found.is_none() && n.eq_ignore_ascii_case(b"cookie") {
                    found = cookie(v, name.as_bytes()).map(|c| xxh64(c, 0));
                }
            });
            found
        }
    }
}

/// The value of cookie `name` in a `cookie` field (`a=1; b=2`).
fn cookie<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    field.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (n, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        (n == name).then(|| &v[1..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        assert_eq!(
            cookie(b"a=1; session=xyz; b=2", b"session"),
            Some(&b"xyz"[..])
        );
        assert_eq!(cookie(b"session=", b"session"), Some(&b""[..]));
        assert_eq!(cookie(b"sessions=1;xsession=2", b"session"), None);
        assert_eq!(cookie(b"novalue; a=1", b"novalue"), None);
    }
}
