#!/usr/bin/env bash
# Runs the ledger locally: installs, starts Kafka and PostgreSQL (`ledger infra up`),
# migrates, then runs the consumer and the API until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
uv() { python3 -m uv "$@"; }
uv run ledger infra up
uv run ledger migrate
if [ -z "${LEDGER_JWT_SECRET:-}" ]; then
    LEDGER_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    export LEDGER_JWT_SECRET
    echo "LEDGER_JWT_SECRET was not set: using a random one for this run"
fi
token="$(uv run python -c 'import os, time, jwt; print(jwt.encode({"sub": "1", "name": "demo", "roles": ["admin"], "exp": int(time.time()) + 86400}, os.environ["LEDGER_JWT_SECRET"], algorithm="HS256"))')"
uv run ledger consume &
consumer=$!
trap 'kill $consumer 2>/dev/null || true; wait $consumer 2>/dev/null || true' EXIT INT TERM
echo "API on http://127.0.0.1:${LEDGER_API_PORT:-8081} (docs at /docs); an admin token for 24 h:"
echo "  Authorization: Bearer $token"
uv run ledger api
