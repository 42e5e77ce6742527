"""Fixtures of the API tests: a migrated database per test, the app, a client, tokens.

The session migrates one database of its own on the session's server (the shared
`database_url` fixture; a migration takes about a second) and every test starts with
its read models emptied.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql

from api.app import create_app
from services.infra.testing import drop_database
from services.store.migrate import migrate
from tests.api.support import FixedClock, asgi_client, settings_for, with_database


@pytest.fixture(scope="session")
def api_server_url(database_url: str) -> str:
    """The session's PostgreSQL server (tests/conftest.py: environment, local, container)."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def api_database(api_server_url: str) -> Iterator[str]:
    """A database migrated once for the session's API tests, dropped at the end."""
    name = f"api_tests_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(api_server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = with_database(api_server_url, name)
        migrate(url)
        yield url
    finally:
        drop_database(api_server_url, name)


@pytest.fixture
def db_url(api_database: str) -> str:
    """The session's database with empty read models: each test starts from nothing."""
    with psycopg.connect(api_database, autocommit=True) as connection:
        connection.execute("DELETE FROM usage_records")
        connection.execute("DELETE FROM packs")
    return api_database


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection for inserting test rows (autocommit)."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def clock() -> FixedClock:
    """The app's clock; tests move it to read values as of chosen instants."""
    return FixedClock()


@pytest.fixture
def make_app(db_url: str, clock: FixedClock) -> Callable[..., FastAPI]:
    def build(**overrides: object) -> FastAPI:
        return create_app(settings_for(db_url, **overrides), clock=clock)

    return build


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app, its lifespan (the pool) running."""
    async with asgi_client(app) as http:
        yield http


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    if isinstance(val, datetime):
        return val.isoformat()
    return None
