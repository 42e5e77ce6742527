"""Snapshots written every few events: a consumer without states in memory (a restart, a
new owner after a rebalance) resumes every pack from its lagging snapshot and the
ledger entries above it, in the real database, and still projects exactly."""

from __future__ import annotations

import json
import random
from typing import Any

from services.consumer.ingest import ingest
from services.consumer.plan import SNAPSHOT_EVERY
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from services.replay.verify import verify
from services.store.connection import connect
from tests.support.db import actual_rows, query
from tests.support.streams import expected_rows, stream


def _records(arrivals: list[dict[str, Any]]) -> list[SourceRecord]:
    return [
        SourceRecord("resume", 0, offset, b"k", json.dumps(doc).encode())
        for offset, doc in enumerate(arrivals)
    ]


async def test_cold_batches_resume_from_lagging_snapshots(ledger_database: str) -> None:
    arrivals = stream(packs=12, events_per_pack=90, seed=11)
    records = _records(arrivals)
    rng = random.Random(5)
    cache = StateCache()
    conn = await connect(ledger_database)
    try:
        start = resumed = 0
        while start < len(records):
            size = rng.randint(1, 60)
            # Half the batches without the cache: it then holds stale states, which its
            # event_count check refuses, so those packs resume from the database.
            use_cache = rng.random() < 0.5
            outcome = await ingest(
                conn, "resume", records[start : start + size], cache if use_cache else None
            )
            resumed += outcome.packs_resumed
            start += size
    finally:
        await conn.close()

    assert resumed > 50, f"only {resumed} packs resumed from a lagging snapshot"
    assert actual_rows(ledger_database) == expected_rows(arrivals)
    lags = query(
        ledger_database,
        "SELECT event_count - (snapshot->>'eventCount')::bigint FROM packs",
    )
    assert all(0 <= lag < SNAPSHOT_EVERY + 60 for (lag,) in lags)
    assert any(lag > 0 for (lag,) in lags), "no snapshot lagged: the resume path was not run"
    report = verify(ledger_database, progress=False)
    assert report.clean, report.summary()
