"""Where the local services live and which ports they use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.infra.errors import InfraError
from services.settings import state_dir

HOST = "127.0.0.1"
KAFKA_VERSION = "4.4.0"
# log4j-core comes in transitively with kafka-server; its SLF4J 1.x binding must match.
LOG4J_VERSION = "2.25.5"
DEPENDENCY_PLUGIN_VERSION = "3.11.0"

DB_USER = "ledger"
DB_PASSWORD = "ledger"
DB_NAME = "ledger"

DEFAULT_KAFKA_PORT = 9092
DEFAULT_PG_PORT = 5432
DEFAULT_TIMEOUT = 120.0


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise InfraError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise InfraError(f"{name}={port} is not a port number")
    return port


@dataclass(frozen=True)
class InfraConfig:
    """The settings of `ledger infra`, read from the environment, and its file layout."""

    state_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    controller_port: int = DEFAULT_KAFKA_PORT + 1
    pg_port: int = DEFAULT_PG_PORT
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InfraConfig:
        env = os.environ if environ is None else environ
        kafka_port = _port(env, "LEDGER_KAFKA_PORT", DEFAULT_KAFKA_PORT)
        explicit_state = env.get("LEDGER_STATE_DIR")
        return cls(
            state_dir=Path(explicit_state) if explicit_state else state_dir(),
            kafka_port=kafka_port,
            controller_port=_port(env, "LEDGER_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            pg_port=_port(env, "LEDGER_PG_PORT", DEFAULT_PG_PORT),
        )

    # --- files shared by both services -------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "ledger.env"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "infra.lock"

    # --- Kafka -------------------------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_dir / "libs"

    @property
    def kafka_tools_libs(self) -> Path:
        """Kafka's command-line tools (console producer), apart from the broker's jars."""
        return self.kafka_dir / "tools"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log(self) -> Path:
        """The broker's own log (log4j, rolled over at 20 MB)."""
        return self.logs_dir / "kafka.log"

    @property
    def kafka_out(self) -> Path:
        """The JVM's stdout and stderr (start-up failures, crashes)."""
        return self.logs_dir / "kafka.out"

    @property
    def maven_log(self) -> Path:
        return self.logs_dir / "maven.log"

    # --- PostgreSQL --------------------------------------------------------------------
    @property
    def pg_location_file(self) -> Path:
        """Records the folder chosen for PostgreSQL's data (see `postgres_layout`)."""
        return self.state_dir / "postgres.location"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"


def database_url(port: int) -> str:
    return f"postgresql://{DB_USER}:{DB_PASSWORD}@{HOST}:{port}/{DB_NAME}"
