#!/usr/bin/env python3
"""Check ringmesh-dashboard.json against the metrics the proxy renders.

    python3 docs/grafana/check.py                      # static checks
    python3 docs/grafana/check.py --prom http://localhost:9090
                                                       # and run every query

Static: the JSON loads; every `expr` has balanced quotes, (), [] and {};
every metric it names is rendered by the proxy (read from the sources
below, histograms with their _bucket/_sum/_count series) or is one of
the access-log/span families still being added; every label it selects,
groups by or puts in a legend is one the families it uses carry (plus the
target labels job and instance, `core` from /metrics?per_core=1, `le` for
buckets). LABELS below must name exactly the families found in the
sources, and only label names the sources write, so it cannot drift
silently.

With --prom: each query, its Grafana variables replaced (`.*`, 1m),
is sent to Prometheus' /api/v1/query; a parse error fails, an empty
result is listed (a family not rendered yet, or no traffic).
"""
import json
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOURCES = [
    ROOT / "dataplane/proxy/src/metrics.rs",
    ROOT / "dataplane/proxy/src/metrics/endpoint.rs",
    ROOT / "dataplane/proxy/src/identity.rs",
    ROOT / "dataplane/proxy/src/telemetry/mod.rs",
]
DASHBOARD = HERE / "ringmesh-dashboard.json"

# Family -> labels, as rendered (see docs/observability.md).
LABELS = {
    "ringmesh_requests_total": {"listener", "direction", "route", "class"},
    "ringmesh_responses_total": {"listener", "direction", "route", "code"},
    "ringmesh_faults_injected_total": {"listener", "route", "fault"},
    "ringmesh_rate_limited_total": {"listener", "route"},
    "ringmesh_grpc_requests_total": {"listener", "route", "grpc_status"},
    "ringmesh_downstream_connections_active": {"listener"},
    "ringmesh_downstream_connections_parked": {"listener"},
    "ringmesh_downstream_connections_total": {"listener"},
    "ringmesh_downstream_connections_rejected_total": {"listener"},
    "ringmesh_tls_handshakes_total": {"listener"},
    "ringmesh_tls_handshake_failures_total": {"listener", "reason"},
    "ringmesh_source_requests_total": {"listener", "source_principal", "class"},
    "ringmesh_source_request_duration_seconds": {"listener", "source_principal", "le"},
    "ringmesh_protocol_detected_total": {"listener", "protocol"},
    "ringmesh_authz_decisions_total": {"listener", "decision"},
    "ringmesh_authz_policy_decisions_total": {"listener", "policy"},
    "ringmesh_tunnel_bytes_total": {"listener", "direction"},
    "ringmesh_request_duration_seconds": {"listener", "direction", "route", "class", "le"},
    "ringmesh_upstream_response_seconds": {"cluster", "le"},
    "ringmesh_upstream_connect_seconds": {"cluster", "le"},
    "ringmesh_upstream_requests_total": {"cluster", "class"},
    "ringmesh_upstream_connections_active": {"cluster"},
    "ringmesh_upstream_connections_total": {"cluster"},
    "ringmesh_upstream_connect_failures_total": {"cluster"},
    "ringmesh_upstream_overflow_total": {"cluster", "limit"},
    "ringmesh_upstream_panic_total": {"cluster"},
    "ringmesh_endpoint_requests_total": {"cluster", "endpoint"},
    "ringmesh_endpoint_errors_total": {"cluster", "endpoint"},
    "ringmesh_endpoint_response_time_seconds_total": {"cluster", "endpoint"},
    "ringmesh_endpoint_ejected": {"cluster", "endpoint"},
    "ringmesh_endpoint_ejections_total": {"cluster", "endpoint"},
    "ringmesh_endpoint_healthy": {"cluster", "endpoint"},
    "ringmesh_endpoint_health_checks_total": {"cluster", "endpoint", "result"},
    "ringmesh_mirror_requests_total": {"listener", "route", "outcome"},
    "ringmesh_upstream_retries_total": {"cluster"},
    "ringmesh_upstream_retries_budget_exhausted_total": {"cluster"},
    "ringmesh_upstream_timeouts_total": {"cluster"},
    "ringmesh_worker_info": {"worker", "cpu", "driver"},
    "ringmesh_config_info": {"version"},
    "ringmesh_config_updates_total": {"result"},
    "ringmesh_config_last_rejected_timestamp_seconds": set(),
    "ringmesh_identity_expiry_timestamp_seconds": {"spiffe_id"},
    "ringmesh_access_log_lines_total": set(),
    "ringmesh_access_log_dropped_total": {"reason"},
    "ringmesh_spans_exported_total": set(),
    "ringmesh_spans_dropped_total": {"reason"},
}
PENDING: set = set()
TARGET = {"job", "instance", "core"}
HISTOGRAM = {f for f, ls in LABELS.items() if "le" in ls}


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def balanced(expr):
    """None when quotes and brackets balance, else what is wrong."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack, quote, i = [], None, 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack.pop() != pairs[ch]:
                return f"unbalanced {ch!r} at {i}"
        i += 1
    if quote:
        return "unterminated string"
    if stack:
        return f"unclosed {stack[-1]!r}"
    return None


def family(name):
    if name in LABELS or name in PENDING:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in HISTOGRAM:
            return base
    return None


def strip_strings(expr):
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)


LABEL_REPLACE = re.compile(r'"(\w+)",\s*"[^"]*",\s*"(\w+)",\s*"[^"]*"\)')


def used_labels(expr, legend):
    bare = strip_strings(expr)
    out = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", bare))
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", bare):
        out |= {l.strip() for l in group.split(",") if l.strip()}
    # label_replace(v, "dst", "repl", "src", "regex"): src is read.
    out |= {src for _, src in LABEL_REPLACE.findall(expr)}
    out |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend or ""))
    return out


def static_checks(dash, source):
    errors = []
    rendered = set(re.findall(r'"(ringmesh_[a-z0-9_]+)"', source))
    if rendered != set(LABELS):
        errors.append(
            "LABELS is out of date: missing "
            f"{sorted(rendered - set(LABELS))}, gone {sorted(set(LABELS) - rendered)}"
        )
    written = set(re.findall(r'(\w+)=\\"', source)) | {"le"}
    for f, ls in LABELS.items():
        if ls - written:
            errors.append(f"LABELS[{f}]: {sorted(ls - written)} not written by the sources")
    n = 0
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            expr = t.get("expr")
            if expr is None:
                continue
            n += 1
            where = f"{p.get('title')!r} {t.get('refId')}"
            if (why := balanced(expr)) is not None:
                errors.append(f"{where}: {why}: {expr}")
            families = set()
            for name in re.findall(r"\b(ringmesh_\w+)", strip_strings(expr)):
                f = family(name)
                if f is None:
                    errors.append(f"{where}: {name} is not rendered by the proxy")
                else:
                    families.add(f)
            if not families:
                errors.append(f"{where}: names no ringmesh metric: {expr}")
            # label_replace(v, "dst", ...) makes dst.
            known = set(TARGET) | {dst for dst, _ in LABEL_REPLACE.findall(expr)}
            for f in families:
                known |= LABELS.get(f, set())
            bad = used_labels(expr, t.get("legendFormat")) - known
            if bad:
                errors.append(f"{where}: labels {sorted(bad)} not on {sorted(families)}")
    for v in dash["templating"]["list"]:
        q = v.get("definition") or ""
        if v["type"] != "query":
            continue
        for name in re.findall(r"\b(ringmesh_\w+)", q):
            if family(name) is None:
                errors.append(f"variable {v['name']}: {name} is not rendered")
        m = re.search(r",\s*(\w+)\)\s*$", q)
        if m and m.group(1) not in TARGET and not any(
            m.group(1) in LABELS.get(family(x) or "", set())
            for x in re.findall(r"\b(ringmesh_\w+)", q)
        ):
            errors.append(f"variable {v['name']}: label {m.group(1)} not on its metric")
    return n, errors


def substitute(expr):
    for var, val in [
        ("$__rate_interval", "1m"),
        ("$__range", "5m"),
        ("$__interval", "30s"),
    ]:
        expr = expr.replace(var, val)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def live_checks(dash, prom):
    errors, empty = [], []
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            if "expr" not in t:
                continue
            expr = substitute(t["expr"])
            url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    body = json.load(r)
            except urllib.error.HTTPError as e:
                body = json.load(e)
            where = f"{p.get('title')!r} {t.get('refId')}"
            if body.get("status") != "success":
                errors.append(f"{where}: {body.get('error')}: {expr}")
            elif not body["data"]["result"]:
                empty.append(where)
    return errors, empty


def main():
    dash = json.loads(DASHBOARD.read_text())
    source = "\n".join(s.read_text() for s in SOURCES)
    n, errors = static_checks(dash, source)
    if "--prom" in sys.argv:
        prom = sys.argv[sys.argv.index("--prom") + 1].rstrip("/")
        live, empty = live_checks(dash, prom)
        errors += live
        for e in empty:
            print(f"empty result: {e}")
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{n} queries, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
