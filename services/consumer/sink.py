"""The consumer's database side: commit batches, wait out outages, know stored offsets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from services.consumer import metrics
from services.consumer.ingest import BatchOutcome, ParsedBatch, ingest_parsed
from services.consumer.state_cache import StateCache
from services.store import ledger_sql
from services.store.connection import Conn, connect

log = logging.getLogger("ledger.consumer")

T = TypeVar("T")

# psycopg's errors when the server is gone, restarting or refusing connections.
_OUTAGE = (psycopg.OperationalError, psycopg.InterfaceError)


class LedgerSink:
    """Owns one database connection; every call retries with backoff until it succeeds."""

    def __init__(self, database_url: str, group: str, *, max_backoff: float = 30.0) -> None:
        self._url = database_url
        self._group = group
        self._max_backoff = max_backoff
        self._conn: Conn | None = None
        self.cache = StateCache()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def commit_parsed(self, batch: ParsedBatch) -> BatchOutcome:
        return await self._with_retry(
            lambda conn: ingest_parsed(conn, self._group, batch, self.cache)
        )

    async def stored_offsets(self, topic: str) -> dict[tuple[str, int], int]:
        return await self._with_retry(
            lambda conn: ledger_sql.load_offsets(conn, self._group, topic)
        )

    async def _with_retry(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        delay = 0.2
        while True:
            try:
                conn = await self._connection()
                return await work(conn)
            except _OUTAGE as error:
                # A database outage is not a bad record: wait and try the same work again.
                metrics.OUTAGES.inc()
                log.warning("database unavailable (%s); retrying in %.1fs", error, delay)
                await self._drop_connection()
            except psycopg.errors.DeadlockDetected:
                log.warning("deadlock with another consumer; retrying in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self._url, application_name="ledger-consume")
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # closing a broken connection may fail too
                log.debug("closing a broken connection failed", exc_info=True)
