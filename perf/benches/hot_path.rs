//! Per-request hot path: parse + route + header rewrite, both directions.
//!
//! Data path measured: a 9-header client request is parsed in place,
//! matched against 10 routes (the last one wins), its forwarded head is
//! written (hop-by-hop headers dropped, X-Forwarded-* added, route edits
//! applied), then a 6-header response is parsed and its head rewritten.
//! No IO, no syscalls: this is the proxy's own CPU work per request.
//!
//! Run:              cargo bench -p ringmesh-perf --bench hot_path
//! Save a baseline:  cargo bench -p ringmesh-perf --bench hot_path -- --save-baseline main
//! Compare to it:    cargo bench -p ringmesh-perf --bench hot_path -- --baseline main
//!
//! Last numbers are in docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmesh_http1::{parse_request, Limits, RequestHead};
use ringmesh_perf::{HotPath, REQUEST, RESPONSE};

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));

    let mut hp = HotPath::new();
    group.bench_function("request_and_response", |b| {
        b.iter(|| {
            hp.run(
                std::hint::black_box(REQUEST),
                std::hint::black_box(RESPONSE),
            )
        })
    });

    group.bench_function("telemetry_json_text_span", |b| {
        b.iter(|| hp.telemetry(std::hint::black_box(REQUEST)))
    });

    let mut head = RequestHead::default();
    let limits = Limits::default();
    group.bench_function("parse_request_only", |b| {
        b.iter(|| parse_request(std::hint::black_box(REQUEST), &limits, &mut head))
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
