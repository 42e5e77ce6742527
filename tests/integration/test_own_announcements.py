"""The notifier's LISTEN on real PostgreSQL tells the announcements of this process's own
batches (their connection's backend is the notifying one) from every other writer's:
the former are looked up for their lapses only (their crossings were handed over from
memory, `ExhaustionNotifier.watch_crossings`), the latter for both."""

from __future__ import annotations

import asyncio
import contextlib

from services.consumer.notices import ExhaustionNotifier
from services.settings import Settings
from services.store import live_sql
from services.store.batch_store import PostgresBatchStore
from services.store.connection import connect
from tests.integration.test_exhaustion_notifier import eventually


async def test_own_batches_announcements_are_told_from_other_writers(
    ledger_database: str,
) -> None:
    own = PostgresBatchStore("g", url=ledger_database)
    assert own.backend_pid is None  # no connection yet: nothing is heard as its own
    other = await connect(ledger_database)
    settings = Settings(database_url=ledger_database, low_balance_seconds="600")
    n = ExhaustionNotifier(settings, broker=None, own_writer=lambda: own.backend_pid)  # type: ignore[arg-type]
    listening = asyncio.create_task(n._listen())
    try:
        conn = await own.connection()
        assert own.backend_pid == conn.info.backend_pid != other.info.backend_pid
        # The LISTEN is set up when a rescan is asked for (`_next_rescan` reset to 0).
        n._next_rescan = 1.0
        await eventually(lambda: n._next_rescan == 0.0, 5, "the LISTEN")
        async with own.transaction():
            await own.announce_changes([1, 2])
        async with other.transaction():
            await live_sql.notify_changed(other, [2, 3])
        await eventually(lambda: n._changed == {2, 3}, 5, "the other writer's packs")
        await eventually(lambda: n._lapses_changed == {1, 2}, 5, "the own batch's packs")
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await own.close()
        await other.close()
