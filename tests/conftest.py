"""Shared fixtures: the Kafka broker and PostgreSQL server of the test session.

They come from the environment (KAFKA_BOOTSTRAP_SERVERS, LEDGER_DATABASE_URL), else from
the local services of `ledger infra` (started if needed and left running), else from
testcontainers when a Docker engine answers. See `services.infra.testing`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from services.infra.testing import (
    SessionServices,
    create_topic,
    delete_topic,
    temporary_database,
    topic_name,
)

# The test command's profile (scripts/test.sh, see tests/support/examples.py): the same
# examples each run of the same code, and the failing example's blob printed.
settings.register_profile("ci", derandomize=True, print_blob=True)


@pytest.fixture(scope="session")
def session_services() -> Iterator[SessionServices]:
    """The resolver behind `kafka_bootstrap` and `database_url` (`.sources` tells which
    of environment / local / testcontainers each one came from)."""
    services = SessionServices()
    yield services
    services.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(session_services: SessionServices) -> str:
    """Bootstrap servers of a Kafka broker, e.g. `127.0.0.1:9092`."""
    return session_services.kafka_bootstrap()


@pytest.fixture(scope="session")
def database_url(session_services: SessionServices) -> str:
    """`postgresql://` URL of the session's server; its role may create databases."""
    return session_services.database_url()


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    with temporary_database(database_url) as url:
        yield url


@pytest.fixture
def unique_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new topic with 4 partitions, deleted after the test."""
    name = topic_name(request.node.name)
    create_topic(kafka_bootstrap, name, partitions=4)
    yield name
    delete_topic(kafka_bootstrap, name)
