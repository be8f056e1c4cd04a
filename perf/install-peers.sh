#!/usr/bin/env bash
# Install the peers ringmesh is compared with, and the load generator, from
# Debian's packages. Envoy is used when an `envoy` binary is on PATH; Debian
# does not package it. libnginx-mod-stream is nginx's TCP relay (`stream`),
# a dynamic module on Debian, for `mode = "tcp"` scenarios (tcp.toml).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq nginx-light libnginx-mod-stream haproxy wrk
# Debian starts the packaged services; the comparison runs its own copies.
$SUDO systemctl stop nginx haproxy 2>/dev/null || $SUDO pkill -x nginx || true
$SUDO pkill -x haproxy || true
echo "installed: $(nginx -v 2>&1), $(haproxy -v | head -1), $(wrk --version 2>&1 | head -1)"
