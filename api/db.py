"""The API's connections: a psycopg 3 async pool, read-only sessions, one retry if broken."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

# Every session is read-only (the API never writes) and bounded in time.
_SESSION_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=5000 -c TimeZone=UTC"


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, connection)


class Database:
    """A pool opened by the app's lifespan; queries return plain tuples."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 3.0,
    ) -> None:
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,  # waiting for a connection longer than this is RpcServerError
            open=False,
            configure=_configure,
            kwargs={
                "autocommit": True,
                "application_name": "ledger-api",
                "options": _SESSION_OPTIONS,
                "connect_timeout": max(1, int(timeout)),
            },
            name="ledger-api",
        )

    async def open(self) -> None:
        # Do not wait: the API starts while the database is down and answers RpcServerError.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch_all(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        for attempt in (1, 2):
            async with self.pool.connection() as connection:
                try:
                    cursor = await connection.execute(query, params)
                    return await cursor.fetchall()
                except psycopg.OperationalError:
                    # A connection broken under us (server restart): one more, fresh one.
                    if attempt == 1 and connection.broken:
                        log.warning("database connection broken; retrying the read once")
                        continue
                    raise
        raise AssertionError("unreachable")

    async def fetch_one(self, query: LiteralString, params: Mapping[str, Any]) -> Row | None:
        rows = await self.fetch_all(query, params)
        return rows[0] if rows else None

    async def is_ready(self, query: LiteralString) -> bool:
        row = await self.fetch_one(query, {})
        return bool(row and row[0])
