#!/usr/bin/env python3
"""Generates docs/grafana/ringmesh-dashboard.json: python3 docs/grafana/generate.py > docs/grafana/ringmesh-dashboard.json, then check.py."""
import json, sys

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RI = "[$__rate_interval]"
# Aggregate series: the plain /metrics job; `core=""` keeps a per-core
# scrape (every series with a `core` label) from being counted twice.
T = 'job=~"$job",instance=~"$instance",core=""'
L = T + ',listener=~"$listener"'
R = L + ',route=~"$route"'
C = T + ',cluster=~"$cluster"'
C5 = 'class="5xx"'
NOT_OK = 'grpc_status!="0"'
PC = 'job=~"$per_core_job",instance=~"$instance",core!=""'

def rate(metric, sel, extra=""):
    s = sel + ("," + extra if extra else "")
    return f"rate({metric}{{{s}}}{RI})"

def unrouted(e):
    return f'label_replace({e}, "route", "(unrouted)", "route", "")'

def q(expr, legend="", **kw):
    d = {"expr": expr, "legendFormat": legend or "__auto"}
    d.update(kw)
    return d

panels = []
_id = [0]
def nid():
    _id[0] += 1
    return _id[0]

def ts(title, desc, targets, unit="short", w=12, h=8, stack=False, bars=False, max1=False):
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else (25 if stack else 10),
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults = {"unit": unit, "min": 0, "custom": custom, "color": {"mode": "palette-classic"}}
    if max1:
        defaults["max"] = 1
    return {
        "type": "timeseries", "title": title, "description": desc,
        "datasource": DS, "_w": w, "_h": h,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "right" if w >= 12 else "bottom",
                       "showLegend": True, "calcs": ["mean", "max"], "sortBy": "Max", "sortDesc": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    }

def stat(title, desc, targets, unit="short", w=4, h=4, thresholds=None, decimals=None, text_mode="auto"):
    defaults = {"unit": unit, "color": {"mode": "thresholds"},
                "thresholds": {"mode": "absolute",
                               "steps": thresholds or [{"color": "green", "value": None}]}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat", "title": title, "description": desc, "datasource": DS,
        "_w": w, "_h": h,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                    "orientation": "auto", "textMode": text_mode},
        "targets": targets,
    }

def table(title, desc, targets, hide, rename=None, w=12, h=8, unit=None):
    for t in targets:
        t.update({"format": "table", "instant": True, "range": False})
    defaults = {"custom": {"align": "auto", "filterable": True}}
    if unit:
        defaults["unit"] = unit
    return {
        "type": "table", "title": title, "description": desc, "datasource": DS,
        "_w": w, "_h": h,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "transformations": [{"id": "organize", "options": {
            "excludeByName": {k: True for k in hide}, "indexByName": {},
            "renameByName": rename or {}}}],
        "targets": targets,
    }

rows = []
def row(title, collapsed=False):
    rows.append({"title": title, "collapsed": collapsed, "panels": []})
def add(p):
    rows[-1]["panels"].append(p)

def share(metric, sel, bad, by):
    num = f"sum by ({by}) ({rate(metric, sel, bad)})"
    den = f"sum by ({by}) ({rate(metric, sel)})"
    return f"{num} / {den}"

PCT = [{"color": "green", "value": None}, {"color": "orange", "value": 0.01}, {"color": "red", "value": 0.05}]

# ---------------------------------------------------------------- overview
row("Overview")
add(stat("Requests/s", "Downstream requests per second, all selected proxies and listeners (ringmesh_requests_total, unrouted included).",
         [q(f"sum({rate('ringmesh_requests_total', L)})", "req/s", refId="A")], unit="reqps"))
add(stat("5xx share", "Share of downstream responses with a 5xx status.",
         [q(f'sum({rate("ringmesh_requests_total", L, C5)}) / sum({rate("ringmesh_requests_total", L)})', "5xx", refId="A")],
         unit="percentunit", thresholds=PCT, decimals=2))
add(stat("p99 latency", "p99 of ringmesh_request_duration_seconds over every selected route (request head to end of response).",
         [q(f"histogram_quantile(0.99, sum by (le) ({rate('ringmesh_request_duration_seconds_bucket', R)}))", "p99", refId="A")],
         unit="s", thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.25}, {"color": "red", "value": 1}]))
add(stat("Upstream 5xx share", "Share of responses from the selected clusters with a 5xx status (ringmesh_upstream_requests_total).",
         [q(f'sum({rate("ringmesh_upstream_requests_total", C, C5)}) / sum({rate("ringmesh_upstream_requests_total", C)})', "5xx", refId="A")],
         unit="percentunit", thresholds=PCT, decimals=2))
add(stat("Downstream connections", "Open downstream connections (ringmesh_downstream_connections_active).",
         [q(f"sum(ringmesh_downstream_connections_active{{{L}}})", "open", refId="A")]))
add(stat("Proxies / workers", "Proxies reporting (instances with ringmesh_worker_info) and their worker threads.",
         [q(f"count(count by (job, instance) (ringmesh_worker_info{{{T}}}))", "proxies", refId="A"),
          q(f"count(ringmesh_worker_info{{{T}}})", "workers", refId="B")], text_mode="value_and_name"))

# ---------------------------------------------------------------- routes
row("Routes: rate, errors, latency")
add(ts("Requests/s by route", "ringmesh_requests_total by listener and route; (unrouted) is route=\"\": requests that matched no route or were refused before routing.",
       [q(unrouted(f"sum by (listener, route) ({rate('ringmesh_requests_total', R)})"), "{{listener}} {{route}}", refId="A")], unit="reqps"))
add(ts("Responses/s by status class", "ringmesh_requests_total by class (1xx..5xx), selected routes.",
       [q(f"sum by (class) ({rate('ringmesh_requests_total', R)})", "{{class}}", refId="A")], unit="reqps", stack=True))
add(ts("Responses/s by status code", "ringmesh_responses_total: each exact code seen (other: codes past the 16 each worker tracks per route).",
       [q(f"sum by (code) ({rate('ringmesh_responses_total', R)})", "{{code}}", refId="A")], unit="reqps", stack=True))
add(ts("Requests/s by direction", "inbound: callers reaching the workload (or a gateway's clients); outbound: the workload calling other services.",
       [q(f"sum by (direction) ({rate('ringmesh_requests_total', L)})", "{{direction}}", refId="A")], unit="reqps"))
add(ts("5xx share by route", "Share of each route's responses with a 5xx status.",
       [q(unrouted(share("ringmesh_requests_total", R, 'class="5xx"', "listener, route")), "{{listener}} {{route}}", refId="A")],
       unit="percentunit", max1=True))
add(ts("4xx share by route", "Share of each route's responses with a 4xx status (denials, unrouted 404s, client errors).",
       [q(unrouted(share("ringmesh_requests_total", R, 'class="4xx"', "listener, route")), "{{listener}} {{route}}", refId="A")],
       unit="percentunit", max1=True))
for qq, name in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")]:
    add(ts(f"Request duration {name} by route",
           f"{name} of ringmesh_request_duration_seconds (complete request head to end of response), all status classes. Buckets from 0.25 ms to 10 s: a quantile past 10 s reads as 10 s.",
           [q(f"histogram_quantile({qq}, sum by (listener, route, le) ({rate('ringmesh_request_duration_seconds_bucket', R)}))",
              "{{listener}} {{route}}", refId="A")], unit="s", w=8))
add(ts("Request duration p99 by status class", "p99 of ringmesh_request_duration_seconds by class: errors are usually faster or slower than successes.",
       [q(f"histogram_quantile(0.99, sum by (class, le) ({rate('ringmesh_request_duration_seconds_bucket', R)}))", "{{class}}", refId="A")], unit="s"))
add(ts("Mean request duration by route", "ringmesh_request_duration_seconds _sum / _count.",
       [q(f"sum by (listener, route) ({rate('ringmesh_request_duration_seconds_sum', R)}) / sum by (listener, route) ({rate('ringmesh_request_duration_seconds_count', R)})",
          "{{listener}} {{route}}", refId="A")], unit="s"))

# ---------------------------------------------------------------- clusters
row("Upstream clusters")
add(ts("Upstream requests/s by cluster", "ringmesh_upstream_requests_total: requests forwarded to each cluster (tries, retries included).",
       [q(f"sum by (cluster) ({rate('ringmesh_upstream_requests_total', C)})", "{{cluster}}", refId="A")], unit="reqps", w=8))
add(ts("Upstream 5xx share by cluster", "Share of each cluster's responses with a 5xx status.",
       [q(share("ringmesh_upstream_requests_total", C, 'class="5xx"', "cluster"), "{{cluster}}", refId="A")], unit="percentunit", w=8, max1=True))
add(ts("Upstream responses/s by class", "ringmesh_upstream_requests_total by status class.",
       [q(f"sum by (class) ({rate('ringmesh_upstream_requests_total', C)})", "{{class}}", refId="A")], unit="reqps", w=8, stack=True))
add(ts("Upstream response time p50 / p99", "ringmesh_upstream_response_seconds, per try: from taking or opening an upstream connection to the response head.",
       [q(f"histogram_quantile(0.5, sum by (cluster, le) ({rate('ringmesh_upstream_response_seconds_bucket', C)}))", "{{cluster}} p50", refId="A"),
        q(f"histogram_quantile(0.99, sum by (cluster, le) ({rate('ringmesh_upstream_response_seconds_bucket', C)}))", "{{cluster}} p99", refId="B")], unit="s"))
add(ts("Upstream connect time p50 / p99", "ringmesh_upstream_connect_seconds: new upstream connections, TCP connect plus the TLS handshake for TLS clusters.",
       [q(f"histogram_quantile(0.5, sum by (cluster, le) ({rate('ringmesh_upstream_connect_seconds_bucket', C)}))", "{{cluster}} p50", refId="A"),
        q(f"histogram_quantile(0.99, sum by (cluster, le) ({rate('ringmesh_upstream_connect_seconds_bucket', C)}))", "{{cluster}} p99", refId="B")], unit="s"))
add(ts("Connect failures/s", "ringmesh_upstream_connect_failures_total: connection attempts that failed or timed out.",
       [q(f"sum by (cluster) ({rate('ringmesh_upstream_connect_failures_total', C)})", "{{cluster}}", refId="A")], unit="ops", w=8))
add(ts("Overflows/s by limit", "ringmesh_upstream_overflow_total: requests failed fast with 503 overflow (and retries not sent) because a worker's share of a circuit-breaker threshold was in use, by limit (connections, pending_requests, requests, retries).",
       [q(f"sum by (cluster, limit) ({rate('ringmesh_upstream_overflow_total', C)})", "{{cluster}} {{limit}}", refId="A")], unit="ops", w=8))
add(ts("Retries/s", "ringmesh_upstream_retries_total: requests sent again under their route's retry policy.",
       [q(f"sum by (cluster) ({rate('ringmesh_upstream_retries_total', C)})", "{{cluster}}", refId="A")], unit="ops", w=8))
add(ts("Timeouts/s", "ringmesh_upstream_timeouts_total: tries with no response head within the route's timeout (or the gRPC deadline).",
       [q(f"sum by (cluster) ({rate('ringmesh_upstream_timeouts_total', C)})", "{{cluster}}", refId="A")], unit="ops", w=8))
add(ts("Requests/s by endpoint", "ringmesh_endpoint_requests_total: where each cluster's tries went (series go when an endpoint leaves its cluster).",
       [q(f"sum by (cluster, endpoint) ({rate('ringmesh_endpoint_requests_total', C)})", "{{cluster}} {{endpoint}}", refId="A")], unit="ops", w=8))
add(ts("Error share by endpoint", "ringmesh_endpoint_errors_total / ringmesh_endpoint_requests_total: tries that failed (no connection, reset, timeout, 5xx).",
       [q(f"sum by (cluster, endpoint) ({rate('ringmesh_endpoint_errors_total', C)}) / sum by (cluster, endpoint) ({rate('ringmesh_endpoint_requests_total', C)})", "{{cluster}} {{endpoint}}", refId="A")], unit="percentunit", w=8))
add(ts("Ejected / unhealthy endpoints", "ringmesh_endpoint_ejected (workers that have the endpoint ejected by outlier detection) and endpoints failing active health checks (ringmesh_endpoint_healthy == 0); ringmesh_upstream_panic_total rate: picks among all endpoints because too few were healthy.",
       [q(f"sum by (cluster, endpoint) (ringmesh_endpoint_ejected{{{C}}})", "{{cluster}} {{endpoint}} ejected", refId="A"),
        q(f"sum by (cluster) (ringmesh_endpoint_healthy{{{C}}} == 0)", "{{cluster}} unhealthy", refId="B"),
        q(f"sum by (cluster) ({rate('ringmesh_upstream_panic_total', C)})", "{{cluster}} panic picks/s", refId="C")], w=8))

# ---------------------------------------------------------------- callers
row("Callers (workload identity)")
add(ts("Requests/s by caller", "ringmesh_source_requests_total on mesh listeners, by the caller's SPIFFE ID. unknown: no client certificate; other: callers past the 32 each worker tracks per listener.",
       [q(f"sum by (source_principal) ({rate('ringmesh_source_requests_total', L)})", "{{source_principal}}", refId="A")], unit="reqps"))
add(ts("5xx share by caller", "Share of each caller's requests answered with a 5xx status.",
       [q(share("ringmesh_source_requests_total", L, 'class="5xx"', "source_principal"), "{{source_principal}}", refId="A")], unit="percentunit", max1=True))
add(ts("Request duration p99 by caller", "p99 of ringmesh_source_request_duration_seconds: each caller's latency as this (callee's) proxy saw it.",
       [q(f"histogram_quantile(0.99, sum by (source_principal, le) ({rate('ringmesh_source_request_duration_seconds_bucket', L)}))", "{{source_principal}}", refId="A")], unit="s"))

# ---------------------------------------------------------------- connections
row("Connections, TLS, protocols")
add(ts("Downstream connections open / parked", "ringmesh_downstream_connections_active (open) and ringmesh_downstream_connections_parked (idle keep-alive, parked without buffers), by listener.",
       [q(f"sum by (listener) (ringmesh_downstream_connections_active{{{L}}})", "{{listener}} open", refId="A"),
        q(f"sum by (listener) (ringmesh_downstream_connections_parked{{{L}}})", "{{listener}} parked", refId="B")], w=8))
add(ts("Downstream connections accepted / rejected per second", "ringmesh_downstream_connections_total (accepted) and ringmesh_downstream_connections_rejected_total (closed at accept: max_connections reached), by listener.",
       [q(f"sum by (listener) ({rate('ringmesh_downstream_connections_total', L)})", "{{listener}} accepted", refId="A"),
        q(f"sum by (listener) ({rate('ringmesh_downstream_connections_rejected_total', L)})", "{{listener}} rejected", refId="B")], unit="cps", w=8))
add(ts("Upstream connections open / opened per second", "ringmesh_upstream_connections_active (idle ones included) and the rate of ringmesh_upstream_connections_total, by cluster.",
       [q(f"sum by (cluster) (ringmesh_upstream_connections_active{{{C}}})", "{{cluster}} open", refId="A"),
        q(f"sum by (cluster) ({rate('ringmesh_upstream_connections_total', C)})", "{{cluster}} opened/s", refId="B")], w=8))
add(ts("Tunnel bytes/s", "ringmesh_tunnel_bytes_total: bytes relayed by TCP proxying and upgraded connections; up is client to upstream, down is back.",
       [q(f"sum by (listener, direction) ({rate('ringmesh_tunnel_bytes_total', L)})", "{{listener}} {{direction}}", refId="A")], unit="Bps", w=8))
add(ts("TLS handshakes / failures per second", "ringmesh_tls_handshakes_total and ringmesh_tls_handshake_failures_total by listener and reason (TLS and mesh listeners only).",
       [q(f"sum by (listener) ({rate('ringmesh_tls_handshakes_total', L)})", "{{listener}} ok", refId="A"),
        q(f"sum by (listener, reason) ({rate('ringmesh_tls_handshake_failures_total', L)}) > 0", "{{listener}} {{reason}}", refId="B")], unit="ops", w=8))
add(ts("Protocol detected per second", "ringmesh_protocol_detected_total on detecting listeners: tls, http1, h2c, tcp, timeout (no bytes in time, relayed as TCP), closed.",
       [q(f"sum by (listener, protocol) ({rate('ringmesh_protocol_detected_total', L)})", "{{listener}} {{protocol}}", refId="A")], unit="cps", w=8, stack=True))

# ---------------------------------------------------------------- grpc
row("gRPC")
add(ts("gRPC calls/s by status", "ringmesh_grpc_requests_total by grpc_status (a code appears once seen). 0 OK, 1 CANCELLED, 2 UNKNOWN, 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND, 6 ALREADY_EXISTS, 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION, 10 ABORTED, 11 OUT_OF_RANGE, 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE, 15 DATA_LOSS, 16 UNAUTHENTICATED.",
       [q(f"sum by (grpc_status) ({rate('ringmesh_grpc_requests_total', R)})", "{{grpc_status}}", refId="A")], unit="reqps", stack=True))
g_all = f"sum by (listener, route) ({rate('ringmesh_grpc_requests_total', R)})"
g_bad = f"sum by (listener, route) ({rate('ringmesh_grpc_requests_total', R, NOT_OK)})"
add(ts("gRPC non-OK share by route", "Share of each route's gRPC calls whose client got a grpc-status other than 0 (OK).",
       [q(f"({g_bad} or 0 * {g_all}) / {g_all}", "{{listener}} {{route}}", refId="A")], unit="percentunit", max1=True))

# ---------------------------------------------------------------- authz
row("Authorization and faults")
add(ts("Authorization decisions/s", "ringmesh_authz_decisions_total by listener and decision (allow, deny), on listeners with authorization.",
       [q(f"sum by (listener, decision) ({rate('ringmesh_authz_decisions_total', L)})", "{{listener}} {{decision}}", refId="A")], unit="reqps", w=8))
add(ts("Decisions/s by policy", "ringmesh_authz_policy_decisions_total: requests and TCP connections each policy decided (allowed for ALLOW policies, denied for DENY ones).",
       [q(f"sum by (listener, policy) ({rate('ringmesh_authz_policy_decisions_total', L)})", "{{listener}} {{policy}}", refId="A")], unit="reqps", w=8))
add(ts("Faults injected/s", "ringmesh_faults_injected_total by listener, route and fault (delay, abort); only routes with fault filters.",
       [q(f"sum by (listener, route, fault) ({rate('ringmesh_faults_injected_total', R)})", "{{listener}} {{route}} {{fault}}", refId="A")], unit="ops", w=8))
add(ts("Mirrored requests/s by outcome", "ringmesh_mirror_requests_total: copies sent to a route's mirror cluster (sent, failed), and those not sent (dropped: 128 in flight on the worker; body_too_large; incomplete).",
       [q(f"sum by (route, outcome) ({rate('ringmesh_mirror_requests_total', R)})", "{{route}} {{outcome}}", refId="A")], unit="ops", w=8))
add(ts("Health checks/s by result", "ringmesh_endpoint_health_checks_total: active health checks (run on worker 0) by cluster and result.",
       [q(f"sum by (cluster, result) ({rate('ringmesh_endpoint_health_checks_total', C)})", "{{cluster}} {{result}}", refId="A")], unit="ops", w=8))

# ---------------------------------------------------------------- config
row("Config and identity")
add(table("Config version in force", "ringmesh_config_info{version}: the config each proxy runs (a control plane's snapshot version, reload-N, or static).",
          [q(f"ringmesh_config_info{{{T}}}", refId="A")], hide=["Time", "Value", "__name__", "core"], w=8))
add(stat("Config versions in fleet", "Distinct config versions among the selected proxies: more than 1 for long means the fleet did not converge.",
         [q(f"count(count by (version) (ringmesh_config_info{{{T}}}))", "versions", refId="A")],
         thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 2}]))
add(stat("Rejected updates in range", "ringmesh_config_updates_total{result=\"rejected\"} over the dashboard's time range.",
         [q(f'sum(increase(ringmesh_config_updates_total{{{T},result="rejected"}}[$__range]))', "rejected", refId="A")],
         thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}], decimals=0))
add(stat("Since last rejection", "Time since a selected proxy last rejected a config update (ringmesh_config_last_rejected_timestamp_seconds; proxies that never rejected one are left out).",
         [q(f"time() - max(ringmesh_config_last_rejected_timestamp_seconds{{{T}}} > 0)", "since", refId="A")],
         unit="s", thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 600}, {"color": "green", "value": 3600}]))
add(stat("Shortest identity time left", "Least time left on a selected proxy's workload certificate (ringmesh_identity_expiry_timestamp_seconds - now). Proxies renew at half of the lifetime, so this should never get near 0.",
         [q(f"min(ringmesh_identity_expiry_timestamp_seconds{{{T}}}) - time()", "left", refId="A")],
         unit="s", thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 600}, {"color": "green", "value": 3600}]))
add(ts("Config updates", "ringmesh_config_updates_total by result: applied on every core, or rejected (invalid or refused: the config in force stays).",
       [q(f"sum by (result) (increase(ringmesh_config_updates_total{{{T}}}{RI}))", "{{result}}", refId="A")], bars=True))
add(ts("Identity time left by proxy", "ringmesh_identity_expiry_timestamp_seconds - now, per proxy and SPIFFE ID (proxies run with --control-plane, once they hold a certificate).",
       [q(f"ringmesh_identity_expiry_timestamp_seconds{{{T}}} - time()", "{{instance}} {{spiffe_id}}", refId="A")], unit="s"))

# ---------------------------------------------------------------- per core
pc_note = (" Needs the second scrape job of /metrics?per_core=1 (job ringmesh-per-core in docs/grafana/prometheus.yml), "
           "selected by the per-core job variable: every series there carries a core label.")
row("Per-core balance")
add(ts("Requests/s by core", "ringmesh_requests_total per worker (core label)." + pc_note,
       [q(f"sum by (instance, core) ({rate('ringmesh_requests_total', PC)})", "{{instance}} core {{core}}", refId="A")], unit="reqps"))
pc = f"sum by (instance, core) ({rate('ringmesh_requests_total', PC)})"
add(ts("Busiest / idlest core", "Per proxy: requests/s of its busiest core over its idlest one (1 is perfect balance)." + pc_note,
       [q(f"max by (instance) ({pc}) / min by (instance) ({pc})", "{{instance}}", refId="A")]))
add(ts("Open downstream connections by core", "ringmesh_downstream_connections_active per worker." + pc_note,
       [q(f'sum by (instance, core) (ringmesh_downstream_connections_active{{{PC},listener=~"$listener"}})', "{{instance}} core {{core}}", refId="A")]))
add(table("Workers", "ringmesh_worker_info: each worker's id, the CPU it is pinned to (none: not pinned) and its IO driver (io_uring or epoll).",
          [q(f"ringmesh_worker_info{{{T}}}", refId="A")], hide=["Time", "Value", "__name__", "core"]))

# ---------------------------------------------------------------- logs/tracing
row("Access logs and tracing")
add(ts("Access log lines/s", "ringmesh_access_log_lines_total (written) and ringmesh_access_log_dropped_total (dropped: the writer could not keep up).",
       [q(f"sum({rate('ringmesh_access_log_lines_total', T)})", "written", refId="A"),
        q(f"sum({rate('ringmesh_access_log_dropped_total', T)})", "dropped", refId="B")], unit="ops", w=9))
add(stat("Access log drop share", "Dropped lines over written plus dropped.",
         [q(f"sum({rate('ringmesh_access_log_dropped_total', T)}) / (sum({rate('ringmesh_access_log_lines_total', T)}) + sum({rate('ringmesh_access_log_dropped_total', T)}))", "dropped", refId="A")],
         unit="percentunit", w=3, h=8, thresholds=PCT, decimals=2))
add(ts("Spans/s", "ringmesh_spans_exported_total and ringmesh_spans_dropped_total.",
       [q(f"sum({rate('ringmesh_spans_exported_total', T)})", "exported", refId="A"),
        q(f"sum({rate('ringmesh_spans_dropped_total', T)})", "dropped", refId="B")], unit="ops", w=9))
add(stat("Span drop share", "Dropped spans over exported plus dropped.",
         [q(f"sum({rate('ringmesh_spans_dropped_total', T)}) / (sum({rate('ringmesh_spans_exported_total', T)}) + sum({rate('ringmesh_spans_dropped_total', T)}))", "dropped", refId="A")],
         unit="percentunit", w=3, h=8, thresholds=PCT, decimals=2))

# ---------------------------------------------------------------- layout
y = 0
for r in rows:
    rp = {"type": "row", "title": r["title"], "collapsed": r["collapsed"], "id": nid(),
          "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
    panels.append(rp)
    y += 1
    x, rowh = 0, 0
    for p in r["panels"]:
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24:
            y += rowh
            x, rowh = 0, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        p["id"] = nid()
        for t in p["targets"]:
            t["datasource"] = DS
            if "range" not in t:
                t["range"] = True
        x += w
        rowh = max(rowh, h)
        (rp["panels"] if r["collapsed"] else panels).append(p)
    y += rowh

def var(name, label, query, multi=True, include_all=True, regex=""):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
        "allValue": ".*" if include_all else None, "regex": regex,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if include_all else {},
        "options": [], "hide": 0,
    }

dashboard = {
    "__requires": [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        {"type": "panel", "id": "table", "name": "Table", "version": ""},
    ],
    "annotations": {"list": [{
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts", "type": "dashboard"}]},
    "description": "Golden signals of a ringmesh proxy fleet: routes, upstream clusters, callers, connections, gRPC, authorization, config, per-core balance, access logs and spans. See docs/observability.md.",
    "editable": True,
    "fiscalYearStartMonth": 0,
    "graphTooltip": 1,
    "id": None,
    "links": [],
    "panels": panels,
    "refresh": "30s",
    "schemaVersion": 39,
    "tags": ["ringmesh", "service-mesh", "proxy"],
    "templating": {"list": [
        {"name": "DS_PROMETHEUS", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": ""},
        var("job", "job", 'label_values(ringmesh_worker_info{core=""}, job)'),
        var("instance", "instance", 'label_values(ringmesh_worker_info{job=~"$job",core=""}, instance)'),
        var("listener", "listener", 'label_values(ringmesh_downstream_connections_active{job=~"$job",instance=~"$instance",core=""}, listener)'),
        var("route", "route", 'label_values(ringmesh_requests_total{job=~"$job",instance=~"$instance",listener=~"$listener",core=""}, route)'),
        var("cluster", "cluster", 'label_values(ringmesh_upstream_requests_total{job=~"$job",instance=~"$instance",core=""}, cluster)'),
        var("per_core_job", "per-core job", 'label_values(ringmesh_worker_info{core!=""}, job)'),
    ]},
    "time": {"from": "now-1h", "to": "now"},
    "timepicker": {},
    "timezone": "",
    "title": "ringmesh proxies",
    "uid": "ringmesh-proxies",
    "version": 1,
    "weekStart": "",
}
json.dump(dashboard, sys.stdout, indent=2)
sys.stdout.write("\n")
