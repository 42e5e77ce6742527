#!/usr/bin/env bash
# Runs the whole platform locally: installs, starts Kafka and PostgreSQL (no Docker),
# migrates, runs the consumer, the API and a simulated scheduler; prints the API address
# and ready-to-use tokens. Ctrl-C stops everything it started. `--no-demo` leaves the
# simulated scheduler out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
demo="--demo"
if [ "${1:-}" = "--no-demo" ]; then demo=""; fi
exec bash scripts/uv.sh run ledger dev $demo
