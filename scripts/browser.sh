#!/usr/bin/env bash
# The browser the dashboard's tests drive (tests/browser/): Debian's chromium at /usr/bin/chromium,
# used by Playwright for Python through executable_path (Playwright's own browser download is not used).
# Idempotent: returns at once when chromium is installed. Needs root (apt-get).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) is installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends chromium >/dev/null
}
echo "browser: installed $(/usr/bin/chromium --version)"
