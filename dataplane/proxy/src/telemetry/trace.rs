//! W3C trace context (`traceparent`) and request ids, on the request path:
//! parsed from the header bytes and written into fixed arrays, no
//! allocation.
//!
//! Each proxy makes one span per request: a server span on an inbound
//! listener, a client span on an outbound one. The upstream gets a
//! `traceparent` naming this proxy's span as its parent, so the next hop's
//! span is its child. Head-based sampling: a request that brings a valid
//! `traceparent` keeps its sampled flag (the caller decided); one that
//! starts a trace here is sampled at the config's rate. An unsampled
//! request still propagates (flag 0), so the hops after it agree.
//! `tracestate` is forwarded untouched.

use crate::view::RequestView;

/// A request's place in a trace, at this proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// This proxy's span.
    pub span_id: [u8; 8],
    /// The caller's span; `None`: the trace starts here.
    pub parent: Option<[u8; 8]>,
    pub sampled: bool,
}

/// `traceparent` as sent upstream: `00-<trace>-<span>-<flags>`.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceContext {
    /// Continue the trace the request carries, or start one sampled with
    /// probability `per_million` / 1e6.
    pub fn for_request(req: &dyn RequestView, rng: &mut fastrand::Rng, per_million: u32) -> Self {
        let span_id = nonzero_id(rng);
        match req.header(b"traceparent").and_then(parse_traceparent) {
            Some((trace_id, parent, flags)) => TraceContext {
                trace_id,
                span_id,
                parent: Some(parent),
                sampled: flags & 1 == 1,
            },
            None => {
                let mut trace_id = [0; 16];
                trace_id[..8].copy_from_slice(&nonzero_id(rng));
                trace_id[8..].copy_from_slice(&rng.u64(..).to_le_bytes());
                TraceContext {
                    trace_id,
                    span_id,
                    parent: None,
                    sampled: rng.u32(..1_000_000) < per_million,
                }
            }
        }
    }

    /// The `traceparent` to send upstream: this proxy's span is the parent.
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [0u8; TRACEPARENT_LEN];
        out[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        hex_into(&self.span_id, &mut out[36..52]);
        out[52] = b'-';
        out[53] = b'0';
        out[54] = if self.sampled { b'1' } else { b'0' };
        out
    }
}

/// (trace id, parent id, flags) of a valid `traceparent` (W3C Trace
/// Context level 1): version 00 is exactly 55 bytes; a later version may
/// append fields, which are ignored; version ff, all-zero ids, uppercase
/// hex and bad separators make the header invalid (and a new trace
/// starts).
pub fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    if v.len() < TRACEPARENT_LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_byte(v[0], v[1])?;
    if version == 0xff || (version == 0 && v.len() != TRACEPARENT_LEN) {
        return None;
    }
    if version != 0 && v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' {
        return None;
    }
    let mut trace = [0u8; 16];
    for (i, t) in trace.iter_mut().enumerate() {
        *t = hex_byte(v[3 + 2 * i], v[4 + 2 * i])?;
    }
    let mut parent = [0u8; 8];
    for (i, p) in parent.iter_mut().enumerate() {
        *p = hex_byte(v[36 + 2 * i], v[37 + 2 * i])?;
    }
    let flags = hex_byte(v[53], v[54])?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags))
}

/// A random `x-request-id` in UUID version 4 form.
pub fn request_id(rng: &mut fastrand::Rng) -> [u8; 36] {
    let mut raw = rng.u128(..).to_le_bytes();
    raw[6] = (raw[6] & 0x0f) | 0x40;
    raw[8] = (raw[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        hex_into(&[*b], &mut out[o..o + 2]);
        o += 2;
    }
    out
}

fn nonzero_id(rng: &mut fastrand::Rng) -> [u8; 8] {
    rng.u64(1..).to_le_bytes()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

/// One byte from two lowercase hex digits (the spec forbids uppercase).
fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some(nibble(hi)? << 4 | nibble(lo)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_parses() {
        let (trace, parent, flags) = parse_traceparent(GOOD).unwrap();
        assert_eq!(trace[0], 0x4b);
        assert_eq!(trace[15], 0x36);
        assert_eq!(parent, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(flags, 1);
    }

    #[test]
    fn invalid_headers_are_refused() {
        let bad: &[&[u8]] = &[
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"",
        ];
        for b in bad {
            assert_eq!(parse_traceparent(b), None, "{}", String::from_utf8_lossy(b));
        }
        // A later version may carry more fields.
        assert!(parse_traceparent(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        )
        .is_some());
    }

    #[test]
    fn what_is_sent_parses_back_with_this_span_as_parent() {
        let mut rng = fastrand::Rng::with_seed(7);
        let ctx = TraceContext {
            trace_id: [0x4b; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent: None,
            sampled: true,
        };
        let sent = ctx.traceparent();
        let (trace, parent, flags) = parse_traceparent(&sent).unwrap();
        assert_eq!((trace, parent, flags), (ctx.trace_id, ctx.span_id, 1));
        let id = request_id(&mut rng);
        assert_eq!(id[14], b'4', "{}", String::from_utf8_lossy(&id));
        assert_eq!([id[8], id[13], id[18], id[23]], [b'-'; 4]);
    }
}
