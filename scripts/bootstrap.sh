#!/usr/bin/env bash
# Installs what the project needs on a fresh machine (Debian, Python 3.11, Java 17, Maven):
# uv (pinned) and the locked Python environment. `ledger infra up` later fetches Kafka
# through Maven and installs PostgreSQL from the OS packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
if ! bash scripts/uv.sh --version 2>/dev/null | grep -q "uv ${UV_VERSION}"; then
    if ! python3 -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}" 2>/dev/null; then
        # An externally managed python3 (Debian's own, PEP 668) refuses pip installs:
        # uv goes into a virtual environment of the project's own instead.
        python3 -m venv .tools
        .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
    fi
fi
bash scripts/uv.sh sync --frozen
