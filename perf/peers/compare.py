#!/usr/bin/env python3
"""Side-by-side comparison of ringmesh-proxy, nginx and HAProxy (interim).

Until `ringmesh-bench compare` (issue 3) exists, this script produces the
numbers quoted in docs/benchmarks.md. Layout on a 2-core machine:

  CPU 1: the proxy under test (one worker / one thread, pinned)
  CPU 0: the upstream (nginx `return 200`, one worker) and the load (wrk)

Every proxy keeps upstream connections alive, logs nothing, adds
X-Forwarded-For, and runs one worker on the same core. Targets alternate
run by run (A B C A B C ...) and medians are reported, so a noisy machine
still gives a fair comparison. What it measures, per target:

  cpu_us_per_req   proxy CPU time (utime+stime from /proc/PID/stat) divided
                   by requests served, at a paced load well below saturation
  pipelined_rps    requests/s with 16-deep pipelining on 10 connections:
                   the proxy's core, not the load generator, is the limit
  paced_p50/p99_ms wrk latency percentiles during the paced run (same
                   request rate for every target)
  p50/p99_ms       wrk latency percentiles at 10 connections, closed loop;
                   bounded by CPU 0 (wrk + upstream), so a proxy that lets
                   more requests through loads CPU 0 harder
  kib_per_idle     RSS growth per idle keep-alive connection (after one
                   request each), over N connections

Needs: nginx, haproxy, wrk (perf/install-peers.sh), a release build of
ringmesh-proxy. Usage: perf/peers/compare.py [--runs 3] [--seconds 8]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UPSTREAM_PORT = 18000
PORTS = {"ringmesh": 18001, "nginx": 18002, "haproxy": 18003}
PROXY_CPU = "1"
LOAD_CPU = "0"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def nginx_upstream_conf(tmp):
    return f"""
daemon off; master_process off; worker_processes 1; error_log stderr crit; pid {tmp}/up.pid;
events {{ worker_connections 20000; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  client_body_temp_path {tmp}/up_body; proxy_temp_path {tmp}/up_proxy;
  fastcgi_temp_path {tmp}/up_fcgi; uwsgi_temp_path {tmp}/up_uwsgi; scgi_temp_path {tmp}/up_scgi;
  server {{ listen 127.0.0.1:{UPSTREAM_PORT} backlog=4096; location / {{ return 200 "ok"; }} }}
}}
"""


def nginx_proxy_conf(tmp):
    return f"""
daemon off; master_process off; worker_processes 1; error_log stderr crit; pid {tmp}/px.pid;
worker_rlimit_nofile 40000;
events {{ worker_connections 30000; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  client_body_temp_path {tmp}/px_body; proxy_temp_path {tmp}/px_proxy;
  fastcgi_temp_path {tmp}/px_fcgi; uwsgi_temp_path {tmp}/px_uwsgi; scgi_temp_path {tmp}/px_scgi;
  upstream up {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 64; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{PORTS['nginx']} backlog=4096;
    location / {{
      proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


def haproxy_conf():
    return f"""
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 1s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:{PORTS['haproxy']}
  default_backend b
backend b
  server s1 127.0.0.1:{UPSTREAM_PORT}
"""


def ringmesh_conf():
    return f"""
runtime: {{ workers: 1, cpu_affinity: [{PROXY_CPU}] }}
listeners:
  - name: main
    address: 127.0.0.1:{PORTS['ringmesh']}
    idle_timeout: 300s
    routes: [ {{ cluster: up }} ]
clusters:
  - name: up
    endpoints: ['127.0.0.1:{UPSTREAM_PORT}']
    pool: {{ max_idle_per_endpoint: 64, idle_timeout: 300s }}
"""


def wait_port(port, limit=10):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def start(cmd, cpu, port):
    proc = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=raise_nofile)
    wait_port(port)
    return proc


def raise_nofile():
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


LUA_PACED = """
-- Each connection sends a request, then waits `pause` ms after the
-- response: a paced load, far from saturating the proxy.
local pause = tonumber(os.getenv("PAUSE_MS") or "3")
function delay() return pause end
"""

LUA_PIPELINE = """
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
"""


def wrk(port, conns, seconds, script=None, latency=False, env=None):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    if latency:
        cmd.append("--latency")
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    pct = {}
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M)
        if m:
            pct[p] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return {"requests": reqs, "rps": rps, "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sock_err.group(1) if sock_err else "", "pct": pct}


def idle_connections(port, pid, n):
    """RSS growth per idle keep-alive connection, after one request each."""
    base = rss_kib(pid)
    socks = []
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        data = b""
        while b"ok" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("closed during idle setup")
            data += chunk
    # Past ringmesh's 1 s park grace and its 1 s sweep: the connections are
    # idle in the steady state, not just finished.
    time.sleep(3.0)
    grown = rss_kib(pid) - base
    for s in socks:
        s.close()
    return grown / n


def svg_chart(med, targets, args):
    """Four panels of bars, one per metric, one bar per target."""
    panels = [
        ("cpu_us_per_req", "CPU µs per request (lower is better)", "{:.1f}"),
        ("pipelined_rps", "pipelined req/s (higher is better)", "{:,.0f}"),
        ("paced_p99_ms", "p99 ms at the paced rate (lower is better)", "{:.2f}"),
        ("kib_per_idle", "KiB per idle connection (lower is better)", "{:.1f}"),
    ]
    colors = {"ringmesh": "#d9480f", "nginx": "#2b8a3e", "haproxy": "#1c7ed6", "envoy": "#7048e8"}
    pw, ph, pad = 360, 220, 40
    width, height = pad + 2 * (pw + pad), 70 + 2 * (ph + pad)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{pad}" y="28" font-size="16" font-weight="bold">ringmesh vs peers: proxy pinned to one core</text>',
           f'<text x="{pad}" y="48" fill="#555">medians of {args.runs} alternating runs, {args.seconds}s each; perf/peers/compare.py</text>']
    for i, (key, title, fmt) in enumerate(panels):
        x0 = pad + (i % 2) * (pw + pad)
        y0 = 70 + (i // 2) * (ph + pad)
        out.append(f'<text x="{x0}" y="{y0 + 14}" font-weight="bold">{title}</text>')
        top = max(med[t][key] for t in targets) or 1
        bw = (pw - 20) / len(targets)
        for j, t in enumerate(targets):
            v = med[t][key]
            h = (ph - 60) * v / top
            bx = x0 + 10 + j * bw
            by = y0 + ph - 25 - h
            out.append(f'<rect x="{bx + 8:.1f}" y="{by:.1f}" width="{bw - 16:.1f}" height="{h:.1f}" fill="{colors.get(t, "#868e96")}"/>')
            out.append(f'<text x="{bx + bw / 2:.1f}" y="{by - 4:.1f}" text-anchor="middle">{fmt.format(v)}</text>')
            out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph - 8}" text-anchor="middle">{t}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--paced-conns", type=int, default=100)
    ap.add_argument("--pause-ms", type=int, default=3)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--targets", default="ringmesh,nginx,haproxy")
    ap.add_argument("--json", help="write raw results here")
    ap.add_argument("--svg", help="write a bar chart of the medians here")
    args = ap.parse_args()

    ringmesh_bin = os.path.join(ROOT, "target/release/ringmesh-proxy")
    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} not found: run perf/install-peers.sh")
    if not os.path.exists(ringmesh_bin):
        sys.exit("build first: cargo build --release -p ringmesh-proxy")

    raise_nofile()  # this process holds the idle connections
    tmp = tempfile.mkdtemp(prefix="ringmesh-peers-")
    paced = os.path.join(tmp, "paced.lua")
    pipeline = os.path.join(tmp, "pipeline.lua")
    write(paced, LUA_PACED)
    write(pipeline, LUA_PIPELINE)
    write(f"{tmp}/up.conf", nginx_upstream_conf(tmp))
    write(f"{tmp}/px.conf", nginx_proxy_conf(tmp))
    write(f"{tmp}/haproxy.cfg", haproxy_conf())
    write(f"{tmp}/ringmesh.yaml", ringmesh_conf())
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    commands = {
        "ringmesh": [ringmesh_bin, "--config", f"{tmp}/ringmesh.yaml", "--log", "warn"],
        "nginx": [nginx, "-c", f"{tmp}/px.conf", "-e", "stderr"],
        "haproxy": [haproxy, "-f", f"{tmp}/haproxy.cfg", "-db"],
    }
    targets = args.targets.split(",")
    upstream = start([nginx, "-c", f"{tmp}/up.conf", "-e", "stderr"], LOAD_CPU, UPSTREAM_PORT)
    results = {t: [] for t in targets}
    try:
        for run in range(args.runs):
            for t in targets:
                log(f"[run {run + 1}/{args.runs}] {t}")
                proc = start(commands[t], PROXY_CPU, PORTS[t])
                try:
                    port = PORTS[t]
                    wrk(port, 10, 2)  # warm-up: pools filled, pages touched
                    before = cpu_ticks(proc.pid)
                    p = wrk(port, args.paced_conns, args.seconds, paced, latency=True,
                            env={"PAUSE_MS": str(args.pause_ms)})
                    ticks = cpu_ticks(proc.pid) - before
                    cpu_us = ticks * 1e6 / CLK_TCK / max(p["requests"], 1)
                    pipe = wrk(port, 10, args.seconds, pipeline)
                    lat = wrk(port, 10, args.seconds, latency=True)
                    idle = idle_connections(port, proc.pid, args.idle)
                    r = {"cpu_us_per_req": cpu_us, "paced_rps": p["rps"], "paced_p50_ms": p["pct"].get("50"),
                         "paced_p99_ms": p["pct"].get("99"), "pipelined_rps": pipe["rps"],
                         "p50_ms": lat["pct"].get("50"), "p99_ms": lat["pct"].get("99"), "closed_rps": lat["rps"],
                         "kib_per_idle": idle, "errors": [p["non2xx"], pipe["non2xx"], lat["non2xx"],
                                                          p["socket_errors"], pipe["socket_errors"]]}
                    log("   " + json.dumps(r))
                    results[t].append(r)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(10)

    keys = ["cpu_us_per_req", "paced_rps", "paced_p50_ms", "paced_p99_ms", "pipelined_rps", "p50_ms", "p99_ms",
            "closed_rps", "kib_per_idle"]
    med = {t: {k: statistics.median([r[k] for r in results[t] if r[k] is not None]) for k in keys} for t in targets}
    rate = int(med[targets[0]]['paced_rps'])
    print(f"| target | CPU µs/req @ ~{rate} req/s | p50 / p99 ms @ ~{rate} req/s | pipelined req/s | closed-loop req/s (c=10) | p50 / p99 ms (c=10, closed loop) | KiB per idle conn |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        m = med[t]
        print(f"| {t} | {m['cpu_us_per_req']:.2f} | {m['paced_p50_ms']:.3f} / {m['paced_p99_ms']:.3f} | {m['pipelined_rps']:.0f} | "
              f"{m['closed_rps']:.0f} | {m['p50_ms']:.3f} / {m['p99_ms']:.3f} | {m['kib_per_idle']:.2f} |")
    print(f"\nmedians of {args.runs} alternating runs, {args.seconds}s each; proxy on CPU {PROXY_CPU}, upstream + wrk on CPU {LOAD_CPU}")
    if args.svg:
        write(args.svg, svg_chart(med, targets, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": results, "medians": med}, f, indent=2)


if __name__ == "__main__":
    main()
