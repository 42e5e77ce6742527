#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, start the real Kafka broker and
# PostgreSQL server (`ledger infra up`, no Docker) and headless Chromium (the browser test),
# lint, type-check, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/chromium.sh
uv() { bash scripts/uv.sh "$@"; }
uv run ledger infra up
uv run ruff check .
uv run ruff format --check .
uv run mypy
uv run pytest -q -p no:cacheprovider --hypothesis-profile=ci "$@"
