"""All settings, read once from the environment (pydantic-settings).

Order of precedence: variables in the environment, then the env file written by
`ledger infra up` (the local services), then the contract's defaults.
Nothing here opens a connection: engines and clients are built by the services
that need them, after the settings were read.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections.terms import Terms


def state_dir() -> Path:
    """Where `ledger infra` keeps its services' data, logs and env file."""
    explicit = os.environ.get("LEDGER_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "infinite-ledger"


def local_env_file() -> Path:
    return state_dir() / "ledger.env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    events_topic: str = Field(default="pack-events", validation_alias="LEDGER_EVENTS_TOPIC")
    database_url: str = Field(
        default="postgresql://ledger:ledger@127.0.0.1:5432/ledger",
        validation_alias="LEDGER_DATABASE_URL",
    )
    jwt_secret: SecretStr | None = Field(default=None, validation_alias="LEDGER_JWT_SECRET")
    jwt_public_key_file: Path | None = Field(
        default=None, validation_alias="LEDGER_JWT_PUBLIC_KEY_FILE"
    )
    timezone: str = Field(default="Asia/Shanghai", validation_alias="LEDGER_TIMEZONE")
    api_port: int = Field(default=8081, validation_alias="LEDGER_API_PORT")
    api_host: str = Field(default="127.0.0.1", validation_alias="LEDGER_API_HOST")
    # On SIGTERM the API answers the requests in flight for at most this long, then ends
    # what is still open: the streams, which would otherwise hold the shutdown for as long
    # as their clients listen (their EventSource reconnects, to another process).
    api_shutdown_grace_seconds: int = Field(
        default=5, ge=0, validation_alias="LEDGER_API_SHUTDOWN_GRACE_SECONDS"
    )
    # Origins whose pages may call the API from a browser: a comma list, or `*`; empty =
    # same origin only (parsed, and refused when malformed, by api/cors.py).
    cors_origins: str = Field(default="", validation_alias="LEDGER_CORS_ORIGINS")
    # `ledger dev` serves its live page (services/web/live.html) here; 0 turns it off.
    dev_page_port: int = Field(default=8082, validation_alias="LEDGER_DEV_PAGE_PORT")
    consumer_group: str = Field(default="ledger", validation_alias="LEDGER_CONSUMER_GROUP")
    # 0 turns the consumer's metrics endpoint off.
    consumer_metrics_port: int = Field(
        default=9108, validation_alias="LEDGER_CONSUMER_METRICS_PORT"
    )
    batch_max_records: int = Field(default=50000, validation_alias="LEDGER_BATCH_MAX_RECORDS")
    # The consumer's automatic garbage collector is off; a full pass runs this often
    # (services/consumer/collector.py: each pass pauses the consumer, ~0.3-0.8 s with
    # 20,000 packs cached).
    gc_pass_seconds: float = Field(default=600.0, gt=0, validation_alias="LEDGER_GC_PASS_SECONDS")
    # The exhaustion notifier scans `packs` this often for exhaustions due within the
    # horizon that no live consumer holds in memory; the horizon must exceed the period
    # (docs/consumer.md, "Exhaustion notices").
    notice_rescan_seconds: float = Field(
        default=30.0, validation_alias="LEDGER_NOTICE_RESCAN_SECONDS"
    )
    notice_horizon_seconds: float = Field(
        default=90.0, validation_alias="LEDGER_NOTICE_HORIZON_SECONDS"
    )

    # Low-balance notices (`infinite.pack.low`): a comma list of thresholds in seconds;
    # empty turns them off. Read by `low_balance_thresholds`.
    low_balance_seconds: str = Field(default="600", validation_alias="LEDGER_LOW_BALANCE_SECONDS")

    @property
    def low_balance_thresholds(self) -> tuple[int, ...]:
        """The thresholds, distinct and ascending; ValueError unless positive integers."""
        parts = [part.strip() for part in self.low_balance_seconds.split(",") if part.strip()]
        if not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(
                f"LEDGER_LOW_BALANCE_SECONDS: {self.low_balance_seconds!r} is not a comma list"
                " of positive whole seconds"
            )
        return tuple(sorted({int(part) for part in parts}))

    # The lease of a session started without `leaseSeconds`, in seconds (1-86400); empty:
    # such sessions have no lease (CONTRACT.md section 2). Read by `default_lease`.
    default_lease_seconds: str = Field(default="", validation_alias="LEDGER_DEFAULT_LEASE_SECONDS")

    @property
    def default_lease(self) -> int | None:
        """The default lease, or None; ValueError unless empty or 1-86400 whole seconds."""
        text = self.default_lease_seconds.strip()
        if not text:
            return None
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 86_400):
            raise ValueError(
                f"LEDGER_DEFAULT_LEASE_SECONDS: {self.default_lease_seconds!r} is not empty or"
                " a whole number of seconds from 1 to 86400"
            )
        return int(text)

    @property
    def terms(self) -> Terms:
        """The fold's settings (`projections.terms`): every process that folds uses these."""
        return Terms(self.low_balance_thresholds, self.default_lease)

    @property
    def dlq_topic(self) -> str:
        return f"{self.events_topic}.dlq"

    @property
    def out_topic(self) -> str:
        return f"{self.events_topic}.out"

    @property
    def psycopg_url(self) -> str:
        """The database URL as libpq/psycopg wants it (no SQLAlchemy driver suffix)."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL as SQLAlchemy wants it (psycopg 3 driver)."""
        url = self.psycopg_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once per process."""
    env_file = local_env_file()
    if env_file.is_file():
        return Settings(_env_file=env_file)
    return Settings()
