"""The local services really work: Kafka round trip, PostgreSQL round trip, and the
`ledger infra` command on the services already running (never `down` here: other tests
use them)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.infra.testing import SessionServices

pytestmark = pytest.mark.timeout(300)


def _ledger(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


@pytest.fixture
def local_services(
    session_services: SessionServices, kafka_bootstrap: str, database_url: str
) -> None:
    """Skip unless the session uses the local services of `ledger infra`."""
    if set(session_services.sources.values()) != {"local"}:
        pytest.skip(
            "checks `ledger infra` on the services it started; this session was given other "
            f"services ({session_services.sources}), so there is nothing of ours to check "
            "(the README's test command always uses the local services: this never skips in CI)"
        )


async def test_kafka_round_trip(kafka_bootstrap: str, unique_topic: str) -> None:
    records = {f"key-{n}".encode(): f"value-{n}".encode() for n in range(8)}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records.items():
            await producer.send_and_wait(unique_topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(unique_topic, p) for p in range(4)])
        await consumer.seek_to_beginning()
        assert consumer.partitions_for_topic(unique_topic) == {0, 1, 2, 3}
        received: dict[bytes, bytes] = {}
        async with asyncio.timeout(60):
            while len(received) < len(records):
                batches = await consumer.getmany(timeout_ms=1000)
                for batch in batches.values():
                    received.update({r.key: r.value for r in batch if r.key is not None})
    finally:
        await consumer.stop()
    assert received == records


def test_postgres_round_trip(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as connection:
        connection.execute("CREATE TABLE probe (id bigint PRIMARY KEY, note text NOT NULL)")
        connection.execute("INSERT INTO probe VALUES (%s, %s)", (1, "ledger"))
        connection.commit()
    with psycopg.connect(fresh_database) as connection:
        assert connection.execute("SELECT note FROM probe WHERE id = 1").fetchone() == ("ledger",)
        (name,) = connection.execute("SELECT current_database()").fetchone() or ("",)
        assert name == fresh_database.rsplit("/", 1)[-1]


def test_fresh_databases_are_distinct_and_empty(database_url: str, fresh_database: str) -> None:
    assert fresh_database != database_url
    with psycopg.connect(fresh_database) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


@pytest.mark.usefixtures("local_services")
def test_up_again_is_harmless() -> None:
    result = _ledger("infra", "up")
    assert result.returncode == 0, result.stderr
    assert "kafka: already running" in result.stdout
    assert "postgres: already running" in result.stdout


@pytest.mark.usefixtures("local_services")
def test_status_shows_both_running() -> None:
    result = _ledger("infra", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka: running" in result.stdout
    assert "postgres: running" in result.stdout


@pytest.mark.usefixtures("local_services")
def test_env_prints_the_settings(kafka_bootstrap: str, database_url: str) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "LEDGER_DATABASE_URL")
    }
    result = _ledger("infra", "env", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}" in lines
    assert f"LEDGER_DATABASE_URL={database_url}" in lines


def test_env_lets_the_environment_win(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        LEDGER_STATE_DIR=str(tmp_path),
        KAFKA_BOOTSTRAP_SERVERS="broker.example:29092",
        LEDGER_DATABASE_URL="postgresql://u:p@db.example:5433/x",
    )
    result = _ledger("infra", "env", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "KAFKA_BOOTSTRAP_SERVERS=broker.example:29092",
        "LEDGER_DATABASE_URL=postgresql://u:p@db.example:5433/x",
    ]


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listener that speaks neither Kafka nor PostgreSQL."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("service", ["kafka", "postgres"])
def test_up_refuses_a_port_taken_by_another_program(
    tmp_path: Path, occupied_port: int, service: str
) -> None:
    kafka_port, pg_port = (
        (occupied_port, _free_port()) if service == "kafka" else (_free_port(), occupied_port)
    )
    env = dict(
        os.environ,
        LEDGER_STATE_DIR=str(tmp_path / "state"),
        LEDGER_KAFKA_PORT=str(kafka_port),
        LEDGER_KAFKA_CONTROLLER_PORT=str(_free_port()),
        LEDGER_PG_PORT=str(pg_port),
    )
    result = _ledger("infra", "up", env=env)
    assert result.returncode == 1
    assert f"127.0.0.1:{occupied_port} is taken by another program" in result.stderr
    variable = "LEDGER_KAFKA_PORT" if service == "kafka" else "LEDGER_PG_PORT"
    assert variable in result.stderr
    # Nothing was started or prepared for the throwaway state dir.
    assert not (tmp_path / "state" / "kafka").exists()
    assert not (tmp_path / "state" / "postgres.location").exists()
