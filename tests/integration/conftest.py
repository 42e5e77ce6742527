"""Fixtures of the integration tests: a migrated database and a consumer process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker

from services.infra.testing import create_topic, delete_topic
from services.store.migrate import migrate
from tests.support.consumer_process import ConsumerProcess


@pytest.fixture
def ledger_database(fresh_database: str) -> str:
    migrate(fresh_database)
    return fresh_database


@pytest.fixture
def consumer_factory(
    kafka_bootstrap: str, ledger_database: str, unique_topic: str, tmp_path: Path
) -> Iterator[Callable[[], ConsumerProcess]]:
    """Makes `ledger consume` processes on the test's topic, database and group."""
    group = f"ledger-test-{uuid.uuid4().hex[:8]}"
    made: list[ConsumerProcess] = []

    def make() -> ConsumerProcess:
        process = ConsumerProcess(
            bootstrap=kafka_bootstrap,
            database_url=ledger_database,
            topic=unique_topic,
            group=group,
            log=tmp_path / f"consumer-{len(made)}.log",
        )
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


# The notifier tests' out topic (one partition: its order is the publishing order) and
# the broker the notifier publishes through.
@pytest.fixture
def out_topic(kafka_bootstrap: str, unique_topic: str) -> Iterator[str]:
    name = f"{unique_topic}.out"
    create_topic(kafka_bootstrap, name, partitions=1)
    yield name
    delete_topic(kafka_bootstrap, name)


@pytest.fixture
async def broker(kafka_bootstrap: str) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()
    yield broker
    await broker.stop()
