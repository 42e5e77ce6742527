"""The API's connections: a psycopg 3 async pool, read-only sessions, one retry if broken."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, LiteralString, TypeVar

import orjson
import psycopg
import psycopg_pool
from psycopg.rows import AsyncRowFactory, tuple_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from services.retry import Backoff, retrying

log = logging.getLogger(__name__)

Row = TypeVar("Row")
"""What `row_factory` (a psycopg row factory: `api.rows`, or `tuple_row`) makes of each row."""

# Every session is read-only (the API never writes) and bounded in time; its time zone is
# the display zone, in which the statements format the times they answer
# (`services.store.read_sql.display_time`).
_SESSION_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=5000"


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, connection)


_BROKEN = "database connection broken; checking the pool, reading again"


class _Broken(Exception):
    """The connection of a read broke: worth one more read on another connection."""


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

    async def fetch_all(
        self, query: LiteralString, params: Mapping[str, Any], row_factory: AsyncRowFactory[Row]
    ) -> list[Row]:
        # A connection lost under us (a server restart?): drop every dead idle connection
        # (`pool.check`), then read once more, at once, on a sound or a new one.
        first = True

        async def read() -> list[Row]:
            nonlocal first
            retry, first = first, False
            return await self._fetch_all(query, params, row_factory, retry=retry)

        async def check_pool(error: BaseException) -> None:
            await self.pool.check()

        return await retrying(
            read,
            lambda error: _BROKEN if isinstance(error, _Broken) else None,
            Backoff(0.0, 0.0),
            log,
            attempts=2,
            before_retry=check_pool,
        )

    async def _fetch_all(
        self,
        query: LiteralString,
        params: Mapping[str, Any],
        row_factory: AsyncRowFactory[Row],
        *,
        retry: bool = True,
    ) -> list[Row]:
        """The rows; `_Broken` when the connection broke and `retry` allows another try."""
        async with self.pool.connection() as connection:
            try:
                cursor = connection.cursor(binary=True, row_factory=row_factory)
                await cursor.execute(query, params)
                return await cursor.fetchall()
            except psycopg.OperationalError as error:
                if retry and connection.broken:
                    raise _Broken() from error
                raise

    async def fetch_slices(
        self,
        query: LiteralString,
        params: Mapping[str, Any],
        row_factory: AsyncRowFactory[Row],
        size: int,
    ) -> AsyncGenerator[list[Row], None]:
        """The rows, `size` at a time: the whole result arrives at once, but each slice is
        decoded only when taken, so that a caller can let the event loop run between two
        (decoding 130 pack rows in one go held the loop for about 2 ms). No retry: the
        stream's hub reads afresh after any failure."""
        async with self.pool.connection() as connection:
            cursor = connection.cursor(binary=True, row_factory=row_factory)
            await cursor.execute(query, params)
            while taken := await cursor.fetchmany(size):
                yield taken

    async def fetch_one(
        self, query: LiteralString, params: Mapping[str, Any], row_factory: AsyncRowFactory[Row]
    ) -> Row | None:
        rows = await self.fetch_all(query, params, row_factory)
        return rows[0] if rows else None

    async def is_ready(self, query: LiteralString) -> bool:
        row = await self.fetch_one(query, {}, tuple_row)
        return bool(row and row[0])
