#!/usr/bin/env bash
# Debian's headless Chromium for the browser test (tests/e2e/test_browser_cors.py):
# installed once with apt-get (through sudo for a user other than root), then left alone.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "chromium is missing and this user cannot install it:" \
            "run 'apt-get install -y chromium' as root" >&2
        exit 1
    fi
    as_root=(sudo)
fi
echo "installing chromium with apt-get (first run only)" >&2
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
