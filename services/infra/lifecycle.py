"""`up`, `down` and `status` of the local services, serialised by a lock file."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.infra import envfile, kafka, kafka_probe, maven, pg_binaries, postgres
from services.infra.config import HOST, InfraConfig, database_url
from services.infra.errors import InfraError
from services.infra.procs import file_lock, port_in_use

Log = Callable[[str], None]
State = Literal["running", "external", "stopped", "blocked"]
_LOCK_TIMEOUT = 1800.0  # the first `up` may download Kafka's jars and install PostgreSQL


def _silent(_: str) -> None:
    return None


@dataclass(frozen=True)
class ServiceStatus:
    """What runs on a service's port: ours (`running`), someone else's usable server
    (`external`), nothing (`stopped`), or a program we cannot use (`blocked`)."""

    name: str
    state: State
    port: int
    pid: int | None = None
    detail: str = ""

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def describe(self, verb: str | None = None) -> str:
        """One line, e.g. `kafka: running (pid 42) on 127.0.0.1:9092; log ...`."""
        pid = f" (pid {self.pid})" if self.pid else ""
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.name}: {verb or self.state}{pid} on {self.address}{detail}"


def _kafka_status(config: InfraConfig) -> ServiceStatus:
    ours = kafka.running(config)
    if ours is not None:
        return ServiceStatus("kafka", "running", ours.port, ours.pid, f"log {config.kafka_log}")
    port = config.kafka_port
    if port_in_use(HOST, port):
        if kafka_probe.answers(HOST, port) is not None:
            return ServiceStatus("kafka", "external", port, None, "not started by ledger infra")
        return ServiceStatus(
            "kafka",
            "blocked",
            port,
            None,
            f"{HOST}:{port} is taken by another program that is not a Kafka broker; stop it "
            f"or choose another port with LEDGER_KAFKA_PORT",
        )
    if port_in_use(HOST, config.controller_port):
        return ServiceStatus(
            "kafka",
            "blocked",
            port,
            None,
            f"the Kafka controller port {HOST}:{config.controller_port} is taken by another "
            f"program; stop it or choose another port with LEDGER_KAFKA_CONTROLLER_PORT",
        )
    return ServiceStatus("kafka", "stopped", port)


def _postgres_status(config: InfraConfig) -> ServiceStatus:
    pg = postgres.layout(config)
    ours = postgres.running(pg) if pg is not None else None
    if pg is not None and ours is not None:
        detail = f"data {pg.data}; log {pg.log_file}"
        return ServiceStatus("postgres", "running", ours.port, ours.pid, detail)
    port = config.pg_port
    if port_in_use(HOST, port):
        login_error = postgres.login_error(port)
        if login_error is None:
            return ServiceStatus("postgres", "external", port, None, "not started by ledger infra")
        return ServiceStatus(
            "postgres",
            "blocked",
            port,
            None,
            f"{HOST}:{port} is taken by another program that does not accept the ledger "
            f"login (role ledger, password ledger, database ledger): {login_error}; stop it "
            f"or choose another port with LEDGER_PG_PORT",
        )
    return ServiceStatus("postgres", "stopped", port)


def service_status(config: InfraConfig | None = None) -> list[ServiceStatus]:
    """What runs now on the ports of the local services (no lock, no side effect)."""
    config = config or InfraConfig.from_env()
    return [_kafka_status(config), _postgres_status(config)]


def _start_kafka(config: InfraConfig, log: Log) -> kafka.KafkaProcess:
    java = kafka.java_binary()
    maven.ensure_jars(config, log)
    kafka.write_configuration(config)
    kafka.ensure_formatted(config, java, log)
    return kafka.spawn(config, java)


def _start_postgres(config: InfraConfig, log: Log) -> ServiceStatus:
    bin_dir = pg_binaries.ensure_bin_dir(config, log)
    pg = postgres.layout(config, decide=True)
    if pg is None:  # pragma: no cover - `decide` always gives one
        raise InfraError("no folder for PostgreSQL's data")
    version = postgres.data_version(pg)
    if version is not None:
        bin_dir = pg_binaries.find_bin_dir(prefer_version=version) or bin_dir
    else:
        log(f"postgres: creating a cluster in {pg.data} (first start only)")
    postgres.prepare(pg, bin_dir)
    process = postgres.start(pg, bin_dir, config.pg_port, config.timeout)
    postgres.provision(pg, process.port)
    detail = f"data {pg.data}; log {pg.log_file}"
    return ServiceStatus("postgres", "running", process.port, process.pid, detail)


def _again(status: ServiceStatus) -> str:
    return "already running" if status.state == "running" else "using the server already running"


def _ensure_postgres(config: InfraConfig, now: ServiceStatus, log: Log) -> ServiceStatus:
    if now.state == "stopped":
        now = _start_postgres(config, log)
        log(now.describe("started"))
    else:
        log(now.describe(_again(now)))
        pg = postgres.layout(config)
        if now.state == "running" and pg is not None:
            postgres.provision(pg, now.port)
    login_error = postgres.login_error(now.port)
    if login_error is not None:
        raise InfraError(f"PostgreSQL answers but the ledger login fails: {login_error}")
    return now


def ensure_up(config: InfraConfig | None = None, log: Log = _silent) -> dict[str, str]:
    """Start Kafka and PostgreSQL unless they run, wait until both answer, write
    `ledger.env`; returns its settings. Raises InfraError (naming the log to read)."""
    config = config or InfraConfig.from_env()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(config.lock_file, _LOCK_TIMEOUT, log):
        kafka_now, pg_now = service_status(config)
        blocked = [s.detail for s in (kafka_now, pg_now) if s.state == "blocked"]
        if blocked:
            raise InfraError("\n".join(blocked))

        # The broker boots in the background while PostgreSQL starts.
        started = _start_kafka(config, log) if kafka_now.state == "stopped" else None
        pg_now = _ensure_postgres(config, pg_now, log)
        if started is not None:
            kafka.wait_ready(config, started.port, started.pid, config.timeout)
            kafka_port = started.port
            log(
                f"kafka: started (pid {started.pid}) on {started.bootstrap}; log {config.kafka_log}"
            )
        else:
            kafka.wait_ready(config, kafka_now.port, kafka_now.pid, config.timeout)
            kafka_port = kafka_now.port
            log(kafka_now.describe(_again(kafka_now)))

        values = {
            "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{kafka_port}",
            "LEDGER_DATABASE_URL": database_url(pg_now.port),
        }
        envfile.write(config.env_file, values)
        return values


def ensure_down(config: InfraConfig | None = None, log: Log = _silent) -> None:
    """Stop what `ensure_up` started (Kafka: SIGTERM, then SIGKILL; PostgreSQL: fast
    shutdown). Data stays. Servers that `ledger infra` did not start are left alone."""
    config = config or InfraConfig.from_env()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(config.lock_file, _LOCK_TIMEOUT, log):
        stopped = kafka.stop(config)
        log(f"kafka: stopped (pid {stopped.pid})" if stopped else "kafka: not running")
        pg = postgres.layout(config)
        process = postgres.running(pg) if pg is not None else None
        if pg is None or process is None:
            log("postgres: not running")
            return
        bin_dir = pg_binaries.find_bin_dir(prefer_version=postgres.data_version(pg))
        if bin_dir is None:
            raise InfraError("PostgreSQL runs but its pg_ctl was not found (set LEDGER_PG_BIN)")
        postgres.stop(pg, bin_dir)
        log(f"postgres: stopped (pid {process.pid})")


def local_env(config: InfraConfig | None = None) -> dict[str, str]:
    """The settings of the local services: `ledger.env`, else what `up` would write."""
    config = config or InfraConfig.from_env()
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": config.kafka_bootstrap,
        "LEDGER_DATABASE_URL": database_url(config.pg_port),
    }
    recorded = envfile.read(config.env_file)
    return {key: recorded.get(key) or value for key, value in values.items()}


def resolved_env(
    config: InfraConfig | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The settings other commands need; a value in the environment always wins."""
    env = os.environ if environ is None else environ
    return {key: env.get(key) or value for key, value in local_env(config).items()}
