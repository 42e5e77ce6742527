"""The sink's own ceiling: PostgreSQL alone applying the statements of a batch stream,
every row formatted beforehand (no parsing, no folding in the timed part).

    uv run python benchmarks/consumer_bench.py ...   # prints it after `ledger consume`

The events are cut into batches of `batch` records in publication order; each batch is
parsed, deduplicated, given positions and folded in memory first (the same pure
`plan.plan` and `plan.refold` the consumer runs), and its rows turned into COPY text by
the same adapter (`PostgresBatchStore.format`). Then, timed, one transaction per batch
sends what the consumer's transaction sends in the catch-up (the states in its cache):
the partition locks, the id look-up and the positions drawn, the packs locked, the
ledger's COPY, the ledger entries of re-folded packs read back, the pack and usage
writes, the offsets. events/s = the events of every batch but the first / the time of
their transactions (the consumer benchmark's rate also starts at the first commit).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from projections.state import LedgerEntry, PackState
from services.consumer.ahead import new_entries
from services.consumer.parsing import parsed
from services.consumer.plan import Loaded, by_pack, plan, refold
from services.consumer.records import SourceRecord
from services.settings import get_settings
from services.store import copy_text, ledger_sql, projection_sql
from services.store.batch_store import PostgresBatchStore
from services.store.connection import connect

PLACES = [("ceiling", p) for p in range(4)]


@dataclass(slots=True)
class Prepared:
    """One batch's statements' inputs, every row already COPY text."""

    records: int
    ids: str  # the text[] literal of its accepted ids, for the look-up
    accepted: int
    packs: list[int]
    events: bytes
    refold: list[int]  # packs whose ledger entries the transaction reads back
    known: list[int]  # the positions of the batch's own entries of those (not sent back)
    refolded: list[int]  # those written whole
    dynamics: bytes
    packs_whole: bytes
    new_usage: bytes
    closed_usage: bytes


def prepare(events: list[tuple[bytes, bytes]], batch: int) -> list[Prepared]:
    """Every batch parsed, folded and formatted: the untimed part."""
    store = PostgresBatchStore("ceiling")
    terms = get_settings().terms  # the fold's settings, as the consumer folds with them
    states: dict[int, PackState] = {}
    entries: dict[int, list[LedgerEntry]] = defaultdict(list)
    seen: set[str] = set()
    position = 0
    prepared = []
    for start in range(0, len(events), batch):
        records = [
            SourceRecord("ceiling", 0, start + i, key, value)
            for i, (key, value) in enumerate(events[start : start + batch])
        ]
        parsed_batch = parsed(records)
        numbered = []
        for item in parsed_batch.accepted:
            if item.staged.event_id not in seen:
                seen.add(item.staged.event_id)
                position += 1
                numbered.append((position, item.staged))
        grouped = by_pack(new_entries(parsed_batch.accepted, numbered))
        for pack_id, pack_entries in grouped.items():
            entries[pack_id] += pack_entries
        versions = {p: states[p].event_count for p in grouped if p in states}
        planned = plan(Loaded(grouped, versions, {p: states[p] for p in versions}), terms=terms)
        refolded = refold(planned.to_refold, entries, terms=terms)
        for pack_id in planned.to_refold:
            states.pop(pack_id, None)
        states.update(planned.states)
        states.update(refolded.states)
        text = store.format(planned)
        prepared.append(
            Prepared(
                records=len(records),
                ids=copy_text.text_array(item.staged.event_id for item in parsed_batch.accepted),
                accepted=len(parsed_batch.accepted),
                packs=list(grouped),
                events=ledger_sql.event_lines(numbered),
                refold=planned.to_refold,
                known=[e.position for p in planned.to_refold for e in grouped[p]],
                refolded=refolded.packs,
                dynamics=text.dynamics,
                packs_whole=projection_sql.pack_lines(refolded.pack_rows),
                new_usage=text.new_usage + projection_sql.usage_lines(refolded.usage),
                closed_usage=text.closed_usage,
            )
        )
    return prepared


async def sink_ceiling(url: str, events: list[tuple[bytes, bytes]], batch: int = 50_000) -> float:
    """events/s of PostgreSQL alone on `url` (a fresh, migrated database), timed as the
    consumer benchmark times `ledger consume`: from the end of the first batch's commit
    to the end of the last (the first batch, which writes every purchase, is left out
    of both)."""
    prepared = prepare(events, batch)
    conn = await connect(url, application_name="ledger-sink-ceiling")
    seconds: list[float] = []
    offset = 0
    try:
        for one in prepared:
            offset += one.records
            started = time.perf_counter()
            async with conn.transaction():
                await ledger_sql.lock_partitions(conn, "ceiling", PLACES)
                async with conn.cursor() as cur:
                    await cur.execute(ledger_sql.EXISTING_IDS, (one.ids,))
                    await cur.fetchall()
                    await cur.execute(ledger_sql.NEXT_POSITIONS, (one.accepted,))
                    await cur.fetchone()
                await projection_sql.lock_versions(conn, one.packs)
                async with conn.cursor() as cur, cur.copy(ledger_sql.COPY_EVENTS) as copy:
                    await copy.write(one.events)
                if one.refold:
                    await ledger_sql.load_pack_entries(conn, one.refold, one.known)
                await projection_sql.write_pack_dynamics(conn, one.dynamics)
                await projection_sql.write_pack_lines(conn, one.packs_whole)
                await projection_sql.write_usage(
                    conn, one.refolded, one.new_usage, one.closed_usage
                )
                await ledger_sql.store_offsets(conn, "ceiling", {PLACES[0]: offset})
            seconds.append(time.perf_counter() - started)
    finally:
        await conn.close()
    if len(prepared) < 2:
        raise ValueError("the ceiling needs at least two batches (the first is left out)")
    return sum(one.records for one in prepared[1:]) / sum(seconds[1:])


async def main() -> None:
    """Alone: `uv run python benchmarks/sink_ceiling.py --events 200000 --packs 20000`."""
    import argparse
    import uuid
    from datetime import UTC, datetime, timedelta

    import psycopg

    from benchmarks.consumer_bench import make_events
    from services.settings import get_settings
    from services.store.migrate import migrate

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--packs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    admin_url = get_settings().psycopg_url
    database = f"ceiling_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    try:
        migrate(url)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
        events = make_events(args.events, args.packs, base=start)
        rate = await sink_ceiling(url, events, args.batch)
        print(f"sink ceiling (PostgreSQL alone, rows formatted beforehand): {rate:,.0f} events/s")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
