"""What the test fixtures stand on: which Kafka and PostgreSQL the tests use, fresh
databases and fresh topics.

Kafka and PostgreSQL are chosen once per test session, in this order:
1. the servers named in the environment (`KAFKA_BOOTSTRAP_SERVERS`, `LEDGER_DATABASE_URL`);
2. the local services of `ledger infra` (started in-process, idempotently);
3. testcontainers, only when the local services cannot start and a Docker engine answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from services.infra.errors import InfraError
from services.infra.lifecycle import ensure_up

T = TypeVar("T")
Source = Literal["environment", "local", "testcontainers"]


def _docker_answers() -> bool:
    try:
        docker: Any = importlib.import_module("docker")
        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _import_first(*modules: str) -> Any:
    for name in modules:
        with contextlib.suppress(ImportError):
            return importlib.import_module(name)
    raise ImportError(f"none of {modules} can be imported")


class SessionServices:
    """Resolves the test session's Kafka and PostgreSQL lazily; `close()` stops the
    containers it started (the local services keep running for the next session)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._stack = ExitStack()
        self._local: dict[str, str] | None = None
        self._local_error: str | None = None
        self._values: dict[str, str] = {}
        self.sources: dict[str, Source] = {}

    def _local_services(self) -> dict[str, str] | None:
        if self._local is None and self._local_error is None:
            try:
                self._local = ensure_up()
            except (InfraError, OSError) as error:
                self._local_error = str(error)
        return self._local

    def _resolve(self, key: str, container: Callable[[], str]) -> str:
        if key in self._values:
            return self._values[key]
        if self._environ.get(key):
            self._values[key], self.sources[key] = self._environ[key], "environment"
        elif (local := self._local_services()) is not None:
            self._values[key], self.sources[key] = local[key], "local"
        elif _docker_answers():
            self._values[key], self.sources[key] = container(), "testcontainers"
        else:
            raise InfraError(
                f"no server for {key}: it is not in the environment, the local services "
                f"did not start ({self._local_error}), and no Docker engine answers"
            )
        return self._values[key]

    def _kafka_container(self) -> str:
        module = _import_first("testcontainers.community.kafka", "testcontainers.kafka")
        container = module.KafkaContainer().with_kraft()
        self._stack.enter_context(container)
        return str(container.get_bootstrap_server())

    def _postgres_container(self) -> str:
        module = _import_first("testcontainers.community.postgres", "testcontainers.postgres")
        container = module.PostgresContainer("postgres:16-alpine", driver=None)
        self._stack.enter_context(container)
        return str(container.get_connection_url())

    def kafka_bootstrap(self) -> str:
        return self._resolve("KAFKA_BOOTSTRAP_SERVERS", self._kafka_container)

    def database_url(self) -> str:
        """A `postgresql://` URL of a role that may create databases."""
        url = self._resolve("LEDGER_DATABASE_URL", self._postgres_container)
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    def close(self) -> None:
        self._stack.close()


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str = "test") -> Iterator[str]:
    """Create an empty, uniquely named database on the server of `server_url` (its role
    needs CREATEDB), yield its URL, and drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        drop_database(server_url, name)


def drop_database(server_url: str, name: str, attempts: int = 20) -> None:
    """DROP DATABASE ... WITH (FORCE), retried: a session our role may not terminate (an
    autovacuum worker busy with the freshly written tables) goes away within moments."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(attempts):
        try:
            with psycopg.connect(server_url, autocommit=True) as connection:
                connection.execute(statement)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own loop in a worker thread (safe inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def topic_name(hint: str = "") -> str:
    """A fresh, valid topic name, with a readable hint (e.g. the test's name)."""
    cleaned = re.sub(r"[^a-zA-Z0-9._-]+", "-", hint).strip("-.")[:60]
    return f"test-{cleaned}-{uuid.uuid4().hex[:10]}" if cleaned else f"test-{uuid.uuid4().hex}"


async def _create_topic(bootstrap: str, name: str, partitions: int, wait_seconds: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        for topic, code, *message in response.topic_errors:
            if code != 0:
                raise InfraError(f"creating topic {topic} failed: error {code} {message}")
        deadline = time.monotonic() + wait_seconds
        while True:  # until every partition has a leader
            (described,) = await admin.describe_topics([name])
            leaders = [p["leader"] for p in described["partitions"]]
            if described["error_code"] == 0 and len(leaders) == partitions and min(leaders) >= 0:
                return
            if time.monotonic() > deadline:
                raise InfraError(f"topic {name} has no leader after {wait_seconds:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _delete_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


def create_topic(bootstrap: str, name: str, partitions: int = 4, timeout: float = 30.0) -> None:
    run_coroutine(lambda: _create_topic(bootstrap, name, partitions, timeout))


def delete_topic(bootstrap: str, name: str) -> None:
    run_coroutine(lambda: _delete_topic(bootstrap, name))
