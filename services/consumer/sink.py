"""The consumer's database side: commit batches, wait out outages, know stored offsets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from services.consumer import metrics
from services.consumer.ahead import Ahead, Handoff, Planned, plan_ahead
from services.consumer.ingest import BatchOutcome, ingest_parsed
from services.consumer.parsing import ParsedBatch
from services.consumer.state_cache import StateCache
from services.store import ledger_sql
from services.store.connection import Conn, connect

log = logging.getLogger("ledger.consumer")

T = TypeVar("T")

# psycopg's errors when the server is gone, restarting or refusing connections.
_OUTAGE = (psycopg.OperationalError, psycopg.InterfaceError)


class LedgerSink:
    """Owns the database connections: one for the commits, where every call retries with
    backoff until it succeeds, and one on the side, to plan a batch ahead while the
    previous one commits."""

    def __init__(self, database_url: str, group: str, *, max_backoff: float = 30.0) -> None:
        self._url = database_url
        self._group = group
        self._max_backoff = max_backoff
        self._conn: Conn | None = None
        self._side: Conn | None = None
        self.cache = StateCache()

    async def close(self) -> None:
        for conn in (self._conn, self._side):
            if conn is not None:
                await conn.close()
        self._conn = self._side = None

    async def plan_ahead(self, batch: ParsedBatch, before: Planned) -> Ahead | None:
        """The batch planned ahead of its transaction (`services/consumer/ahead.py`), or
        None if that failed: it is then planned inside its transaction. No retries."""
        try:
            if self._side is None or self._side.closed:
                self._side = await connect(self._url, application_name="ledger-consume-ahead")
            return await plan_ahead(self._side, batch, before, self.cache)
        except _OUTAGE as error:
            log.debug("planning ahead skipped: %s", error)
            side, self._side = self._side, None
            if side is not None:
                await _close_quietly(side)
        except Exception:  # whatever it is, the transaction plans the batch (and meets it)
            log.exception("planning ahead failed; the batch is planned in its transaction")
        return None

    async def commit_parsed(
        self, batch: ParsedBatch, ahead: Ahead | None = None, handoff: Handoff | None = None
    ) -> BatchOutcome:
        """Commit a batch, maybe planned `ahead`: only the first attempt uses that plan,
        and a second attempt voids what `handoff` gave the next batch."""
        attempts = 0

        async def attempt(conn: Conn) -> BatchOutcome:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                return await ingest_parsed(conn, self._group, batch, self.cache, ahead, handoff)
            if handoff is not None:
                handoff.retried()
            return await ingest_parsed(conn, self._group, batch, self.cache)

        return await self._with_retry(attempt)

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
            await _close_quietly(conn)


async def _close_quietly(conn: Conn) -> None:
    try:
        await conn.close()
    except Exception:  # closing a broken connection may fail too
        log.debug("closing a broken connection failed", exc_info=True)
