#!/usr/bin/env python3
"""RSS per idle keep-alive connection of a running proxy, two ways.

  sequential: open N connections, then send one request on each in turn
  burst:      send N requests at once on N new connections, then read all

It prints the RSS growth per connection (VmRSS of --pid) right after the
connections are opened and again --settle seconds after the last response,
when ringmesh has parked them (1 s quiet + its 1 s sweep).

Example (ringmesh on :18001 forwarding to any upstream answering "ok"):
  perf/peers/idle_memory.py --pid $(pgrep -f 'ringmesh-proxy --config') \\
      --port 18001 --conns 5000 --mode sequential
"""

import argparse
import resource
import socket
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no process {pid}")


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"ok"):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before the response")
        data += chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--mode", choices=["sequential", "burst"], default="sequential")
    ap.add_argument("--settle", type=float, default=3.0)
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.conns + 1000), hard))

    base = rss_kib(args.pid)
    socks = []
    for _ in range(args.conns):
        s = socket.create_connection(("127.0.0.1", args.port))
        if args.mode == "burst":
            s.sendall(REQUEST)
        socks.append(s)
    time.sleep(args.settle)
    print(f"opened:  {(rss_kib(args.pid) - base) / args.conns:.2f} KiB per connection")
    for s in socks:
        if args.mode == "sequential":
            s.sendall(REQUEST)
        read_response(s)
    time.sleep(args.settle)
    print(f"idle after one request each ({args.mode}): {(rss_kib(args.pid) - base) / args.conns:.2f} KiB per connection")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
