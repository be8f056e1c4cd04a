//! A span as a core records it: a compact binary record appended to the
//! core's span buffer (`batch::Outbox`), decoded and turned into OTLP by
//! the exporter thread (`otlp`). The core copies the few strings a span
//! needs and nothing else; building protobuf messages, attributes and
//! strings happens off the request cores.

use super::access_log::Entry;
use super::clock;
use super::trace::TraceContext;

/// Whose side of the call the span is (OTLP's `SpanKind` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An inbound listener: this proxy serves the request.
    Server = 2,
    /// An outbound listener: this proxy calls the next service.
    Client = 3,
}

/// The strings of a record, in order.
const STRINGS: usize = 15;

/// Append one span record.
pub fn encode(ctx: &TraceContext, kind: Kind, e: &Entry<'_>, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&ctx.trace_id);
    out.extend_from_slice(&ctx.span_id);
    out.extend_from_slice(&ctx.parent.unwrap_or_default());
    out.push(u8::from(ctx.parent.is_some()));
    out.push(kind as u8);
    let end = clock::unix_nanos(e.start)
        .saturating_add(u64::try_from(e.duration.as_nanos()).unwrap_or(u64::MAX));
    out.extend_from_slice(&clock::unix_nanos(e.start).to_le_bytes());
    out.extend_from_slice(&end.to_le_bytes());
    out.extend_from_slice(&e.status.unwrap_or(0).to_le_bytes());
    out.push(e.grpc.unwrap_or(u8::MAX));
    let req = e.request;
    let head: [&[u8]; 7] = [
        req.map_or(b"", |r| r.method()),
        req.map_or(b"", |r| r.scheme()),
        req.map_or(b"", |r| r.authority()),
        req.map_or(b"", |r| r.path()),
        req.and_then(|r| r.query()).unwrap_or_default(),
        e.protocol.as_bytes(),
        req.and_then(|r| r.header(b"user-agent"))
            .unwrap_or_default(),
    ];
    for s in head {
        put(out, s);
    }
    put_address(out, Some(e.client));
    put_address(out, e.upstream_host);
    let tail: [&[u8]; 6] = [
        e.principal.unwrap_or_default(),
        e.route.as_bytes(),
        e.cluster.as_bytes(),
        e.listener.as_bytes(),
        e.details.as_bytes(),
        e.flags.as_bytes(),
    ];
    for s in tail {
        put(out, s);
    }
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// A string: its length (u16), then its bytes. A header longer than 64
/// KiB cannot get here (head limits); it is cut rather than trusted.
fn put(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s);
}

/// An address as a string, written in place (its length patched after);
/// empty for `None`.
fn put_address(out: &mut Vec<u8>, addr: Option<std::net::SocketAddr>) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(a) = addr {
        super::access_log::address(a, out);
    }
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_le_bytes());
}

/// A record read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    /// 0: no response (the client went away).
    pub status: u16,
    pub grpc: Option<u8>,
    pub method: &'a [u8],
    pub scheme: &'a [u8],
    pub authority: &'a [u8],
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub protocol: &'a [u8],
    pub user_agent: &'a [u8],
    pub client: &'a [u8],
    pub upstream: &'a [u8],
    pub principal: &'a [u8],
    pub route: &'a [u8],
    pub cluster: &'a [u8],
    pub listener: &'a [u8],
    pub details: &'a [u8],
    pub flags: &'a [u8],
}

/// Every record in `buf`, in order; stops at a truncated one.
pub fn decode(buf: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let rec = rest.get(..len)?;
        rest = &rest[len..];
        parse(&rec[4..])
    })
}

fn parse(mut r: &[u8]) -> Option<Record<'_>> {
    fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (r.get(..n)?, r.get(n..)?);
        *r = tail;
        Some(head)
    }
    let trace_id = take(&mut r, 16)?.try_into().ok()?;
    let span_id = take(&mut r, 8)?.try_into().ok()?;
    let parent: [u8; 8] = take(&mut r, 8)?.try_into().ok()?;
    let has_parent = take(&mut r, 1)?[0] == 1;
    let kind = match take(&mut r, 1)?[0] {
        3 => Kind::Client,
        _ => Kind::Server,
    };
    let start_ns = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
    let end_ns = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
    let status = u16::from_le_bytes(take(&mut r, 2)?.try_into().ok()?);
    let grpc = take(&mut r, 1)?[0];
    let mut s: [&[u8]; STRINGS] = [&[]; STRINGS];
    for slot in &mut s {
        let n = u16::from_le_bytes(take(&mut r, 2)?.try_into().ok()?);
        *slot = take(&mut r, usize::from(n))?;
    }
    Some(Record {
        trace_id,
        span_id,
        parent: has_parent.then_some(parent),
        kind,
        start_ns,
        end_ns,
        status,
        grpc: (grpc != u8::MAX).then_some(grpc),
        method: s[0],
        scheme: s[1],
        authority: s[2],
        path: s[3],
        query: s[4],
        protocol: s[5],
        user_agent: s[6],
        client: s[7],
        upstream: s[8],
        principal: s[9],
        route: s[10],
        cluster: s[11],
        listener: s[12],
        details: s[13],
        flags: s[14],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn records_read_back_as_written() {
        let ctx = TraceContext {
            trace_id: [9; 16],
            span_id: [8; 8],
            parent: Some([7; 8]),
            sampled: true,
        };
        let e = Entry {
            start: UNIX_EPOCH + Duration::from_secs(10),
            duration: Duration::from_millis(5),
            request: None,
            protocol: "HTTP/2",
            status: Some(200),
            flags: "-",
            details: "via_upstream",
            bytes_received: 0,
            bytes_sent: 0,
            upstream_time: None,
            upstream_host: Some("[::1]:9".parse().unwrap()),
            cluster: "c",
            route: "r",
            listener: "l",
            client: "127.0.0.1:5".parse().unwrap(),
            principal: Some(b"td/ns/a/sa/b"),
            trace_id: None,
            request_id: None,
            grpc: Some(0),
        };
        let mut buf = Vec::new();
        encode(&ctx, Kind::Client, &e, &mut buf);
        encode(
            &TraceContext {
                parent: None,
                ..ctx
            },
            Kind::Server,
            &e,
            &mut buf,
        );
        let recs: Vec<Record<'_>> = decode(&buf).collect();
        assert_eq!(recs.len(), 2);
        let r = &recs[0];
        assert_eq!(
            (r.trace_id, r.span_id, r.parent),
            ([9; 16], [8; 8], Some([7; 8]))
        );
        assert_eq!((r.kind, r.status, r.grpc), (Kind::Client, 200, Some(0)));
        assert_eq!(r.end_ns - r.start_ns, 5_000_000);
        assert_eq!(r.upstream, b"[::1]:9");
        assert_eq!(r.client, b"127.0.0.1:5");
        assert_eq!(r.principal, b"td/ns/a/sa/b");
        assert_eq!((recs[1].parent, recs[1].kind), (None, Kind::Server));
        // A cut buffer yields the whole records only.
        assert_eq!(decode(&buf[..buf.len() - 1]).count(), 1);
    }
}
