"""The consumer's NOTIFY through real PostgreSQL: delivered on commit only, every id of a
batch too large for one payload delivered in chunks."""

from __future__ import annotations

import asyncio

import psycopg

from services.store import live_sql
from services.store.connection import connect


async def _received(listener: psycopg.AsyncConnection, seconds: float) -> list[int]:
    ids: list[int] = []
    try:
        async with asyncio.timeout(seconds):
            async for notification in listener.notifies():
                assert notification.channel == live_sql.CHANNEL
                ids.extend(live_sql.parse_payload(notification.payload))
    except TimeoutError:
        pass
    return ids


async def test_notify_arrives_on_commit_in_chunks_and_never_on_rollback(
    ledger_database: str,
) -> None:
    listener = await psycopg.AsyncConnection.connect(ledger_database, autocommit=True)
    writer = await connect(ledger_database)
    try:
        await listener.execute(live_sql.LISTEN)
        ids = list(range(10**17, 10**17 + 3000))  # 18 digits each: 7 chunks
        async with writer.transaction():
            await live_sql.notify_changed(writer, ids)
        assert await _received(listener, 1.0) == ids

        class Rollback(Exception):
            pass

        try:
            async with writer.transaction():
                await live_sql.notify_changed(writer, [5])
                raise Rollback
        except Rollback:
            pass
        assert await _received(listener, 0.5) == []
    finally:
        await writer.close()
        await listener.close()
