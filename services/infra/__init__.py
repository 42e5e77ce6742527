"""Local Kafka and PostgreSQL for development and tests, without Docker (`ledger infra`).

The public entry points:

- `ensure_up()` starts (idempotently) a single-node KRaft Kafka broker and a PostgreSQL
  server on 127.0.0.1, waits until both answer, writes `<state_dir>/ledger.env` and
  returns the settings other commands need (`KAFKA_BOOTSTRAP_SERVERS`,
  `LEDGER_DATABASE_URL`).
- `ensure_down()` stops what `ensure_up()` started and keeps the data.
- `service_status()` tells what runs; `resolved_env()` gives the settings with the
  environment winning over the local services.
"""

from __future__ import annotations

from services.infra.config import InfraConfig
from services.infra.errors import InfraError
from services.infra.lifecycle import (
    ServiceStatus,
    ensure_down,
    ensure_up,
    local_env,
    resolved_env,
    service_status,
)

__all__ = [
    "InfraConfig",
    "InfraError",
    "ServiceStatus",
    "ensure_down",
    "ensure_up",
    "local_env",
    "resolved_env",
    "service_status",
]
