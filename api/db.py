"""The API's connections: a psycopg 3 async pool, read-only sessions, one retry if broken."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, LiteralString

import orjson
import psycopg
import psycopg_pool
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

# Every session is read-only (the API never writes) and bounded in time; it answers
# times in the display zone (the values do not depend on it, only their tzinfo does).
_SESSION_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=5000"


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, connection)


class Database:
    """Queries on a pool that the app's lifespan opens (a new pool each time) and closes."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 3.0,
        timezone: str = "UTC",
    ) -> None:
        self.conninfo = conninfo
        self.options = f"{_SESSION_OPTIONS} -c TimeZone={timezone}"
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout  # waiting longer than this for a connection: RpcServerError
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise psycopg_pool.PoolClosed("the API's connection pool is not open")
        return self._pool

    async def open(self) -> None:
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self.conninfo,
            min_size=self.min_size,
            max_size=self.max_size,
            timeout=self.timeout,
            open=False,
            configure=_configure,
            kwargs={
                "autocommit": True,
                "application_name": "ledger-api",
                "options": self.options,
                "connect_timeout": max(1, int(self.timeout)),
            },
            name="ledger-api",
        )
        # Do not wait: the API starts while the database is down and answers RpcServerError.
        await pool.open(wait=False)
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def fetch_all(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        rows = await self._fetch_all(query, params)
        if rows is None:
            # The connection was lost under us (a server restart?): drop every dead idle
            # connection, then read once more on a sound or a new one.
            log.warning("database connection broken; checking the pool, reading again")
            await self.pool.check()
            rows = await self._fetch_all(query, params, retry=False)
        assert rows is not None
        return rows

    async def _fetch_all(
        self, query: LiteralString, params: Mapping[str, Any], *, retry: bool = True
    ) -> list[Row] | None:
        """The rows; None when the connection broke and `retry` allows another try."""
        async with self.pool.connection() as connection:
            try:
                cursor = await connection.execute(query, params, binary=True)
                return await cursor.fetchall()
            except psycopg.OperationalError:
                if retry and connection.broken:
                    return None
                raise

    async def fetch_one(self, query: LiteralString, params: Mapping[str, Any]) -> Row | None:
        rows = await self.fetch_all(query, params)
        return rows[0] if rows else None

    async def is_ready(self, query: LiteralString) -> bool:
        row = await self.fetch_one(query, {})
        return bool(row and row[0])
