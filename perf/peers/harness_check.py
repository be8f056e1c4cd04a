#!/usr/bin/env python3
"""Checks the harness against the tools it replaces, in one run:

1. ringmesh-bench load vs wrk, each with one thread on CPU 1, against the
   same server on CPU 0 (nginx `return 200`, one worker): requests/s.
2. ringmesh-bench upstream vs nginx `return 200`, each with one worker on
   CPU 0, driven by ringmesh-bench load on CPU 1: requests/s closed loop
   and pipelined, and the server's CPU time per request.

Alternating runs (A B A B ...), medians, ratios. Needs nginx and wrk
(perf/install-peers.sh) and release builds:
    cargo build --release -p ringmesh-bench
    perf/peers/harness_check.py --runs 3 --seconds 8
"""

import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "target/release/ringmesh-bench")
TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def bench_load(port, seconds, pipeline=1):
    out = subprocess.run(["taskset", "-c", "1", BENCH, "load", f"http://127.0.0.1:{port}/", "-c", "10", "-t", "1",
                          "-d", f"{seconds}s", "-w", "0s", "-p", str(pipeline), "--json", "-", "-q"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def wrk(port, seconds):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c10", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    conf = f"""daemon off; master_process off; worker_processes 1; error_log stderr crit; pid {tmp}/n.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  server {{ listen 127.0.0.1:18100 backlog=4096; location / {{ return 200 ""; }} }} }}"""
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(conf)
    nginx = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", f"{tmp}/nginx.conf"])
    up = subprocess.Popen(["taskset", "-c", "0", BENCH, "upstream", "-l", "127.0.0.1:18101", "--cpus", "0"],
                          stderr=subprocess.DEVNULL)
    time.sleep(1)
    res = {k: [] for k in ["wrk", "bench", "nginx_rps", "up_rps", "nginx_pipe", "up_pipe", "nginx_cpu", "up_cpu"]}
    try:
        for r in range(a.runs):
            res["wrk"].append(wrk(18100, a.seconds))
            res["bench"].append(bench_load(18100, a.seconds)["rps"])
            for name, port, pid in [("nginx", 18100, nginx.pid), ("up", 18101, up.pid)]:
                c0 = cpu_s(pid)
                rep = bench_load(port, a.seconds)
                res[f"{name}_cpu"].append((cpu_s(pid) - c0) * 1e6 / rep["requests"])
                res[f"{name}_rps"].append(rep["rps"])
                res[f"{name}_pipe"].append(bench_load(port, a.seconds, 16)["rps"])
            print(f"run {r + 1}/{a.runs}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()), file=sys.stderr)
    finally:
        nginx.terminate(); up.terminate()
    m = {k: statistics.median(v) for k, v in res.items()}
    print(f"medians of {a.runs} alternating runs, {a.seconds}s each; load on CPU 1, server on CPU 0\n")
    print("| load generator (1 thread, c=10) vs nginx return 200 | req/s |\n|---|---|")
    print(f"| wrk | {m['wrk']:.0f} |\n| ringmesh-bench load | {m['bench']:.0f} ({m['bench'] / m['wrk']:.2f}× wrk) |\n")
    print("| server (1 worker) | req/s c=10 | req/s pipelined 16 | server CPU µs/req (c=10) |\n|---|---|---|---|")
    print(f"| nginx return 200 | {m['nginx_rps']:.0f} | {m['nginx_pipe']:.0f} | {m['nginx_cpu']:.2f} |")
    print(f"| ringmesh-bench upstream | {m['up_rps']:.0f} | {m['up_pipe']:.0f} | {m['up_cpu']:.2f} "
          f"({m['up_cpu'] / m['nginx_cpu']:.2f}× nginx) |")


if __name__ == "__main__":
    main()
