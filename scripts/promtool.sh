#!/usr/bin/env bash
# Make sure `promtool` (Debian's `prometheus` package) is installed: the observability tests run
# `promtool check metrics` on every service's /metrics. Idempotent; needs root to install.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
[[ $EUID -eq 0 ]] || { echo "ERROR: promtool is missing; run: sudo apt-get install -y prometheus" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y --no-install-recommends prometheus >/dev/null
}
# the package starts a Prometheus server where it can (no systemd here: usually not); the tests need only the binary
command -v promtool >/dev/null
echo "promtool: $(promtool --version 2>&1 | head -n1)"
