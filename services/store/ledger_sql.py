"""Statements that append to the ledger and keep the consumer's bookkeeping.

Batches go through `COPY` into a temporary staging table and one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`, which both deduplicates by
event `id` and tells which events are new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.store import copy_text as c
from services.store.connection import Conn

CREATE_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS ledger_staging (
    ord             integer     NOT NULL,
    event_id        text        NOT NULL,
    user_pack_id    bigint      NOT NULL,
    event_type      text        NOT NULL,
    event_time      timestamptz NOT NULL,
    source          text        NOT NULL,
    envelope        text        NOT NULL,
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint
) ON COMMIT DELETE ROWS
"""

COPY_STAGING = """
COPY ledger_staging (ord, event_id, user_pack_id, event_type, event_time, source, envelope,
                     kafka_topic, kafka_partition, kafka_offset) FROM STDIN
"""

APPEND_FROM_STAGING = """
INSERT INTO ledger_events (event_id, user_pack_id, event_type, event_time, source, envelope,
                           kafka_topic, kafka_partition, kafka_offset)
SELECT event_id, user_pack_id, event_type, event_time, source, envelope::jsonb,
       kafka_topic, kafka_partition, kafka_offset
FROM ledger_staging
ORDER BY ord
ON CONFLICT (event_id) DO NOTHING
RETURNING position, event_id
"""

PACK_ENTRIES = """
SELECT user_pack_id, position, envelope
FROM ledger_events
WHERE user_pack_id = ANY(%s)
ORDER BY user_pack_id, position
"""

INSERT_REFUSED = """
INSERT INTO refused_records (kafka_topic, kafka_partition, kafka_offset, record_key,
                             record_value, reason)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
"""

# The stored offsets never move backwards: a consumer that lost its partitions during a
# long outage may still commit an older batch (its writes are idempotent anyway).
STORE_OFFSETS = """
INSERT INTO consumer_offsets (consumer_group, kafka_topic, kafka_partition, next_offset)
VALUES (%s, %s, %s, %s)
ON CONFLICT (consumer_group, kafka_topic, kafka_partition) DO UPDATE
SET next_offset = greatest(consumer_offsets.next_offset, excluded.next_offset),
    updated_at = now()
"""

LOAD_OFFSETS = """
SELECT kafka_topic, kafka_partition, next_offset
FROM consumer_offsets
WHERE consumer_group = %s AND kafka_topic = %s
"""

# Serialises consumers of one partition: during a rebalance the old and the new owner
# may hold the same records for a moment; the second waits for the first's commit.
LOCK_PARTITIONS = """
SELECT pg_advisory_xact_lock(hashtextextended(%s || '/' || t || '/' || p::text, 0))
FROM unnest(%s::text[], %s::integer[]) AS x(t, p)
ORDER BY t, p
"""


@dataclass(frozen=True, slots=True)
class StagedEvent:
    event_id: str
    user_pack_id: int
    event_type: str
    event_time: datetime
    source: str
    envelope: str  # the record value as received: valid JSON of the CloudEvent
    kafka_topic: str | None
    kafka_partition: int | None
    kafka_offset: int | None


@dataclass(frozen=True, slots=True)
class RefusedRecord:
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    key: bytes | None
    value: bytes | None
    reason: str


async def append_events(conn: Conn, events: Sequence[StagedEvent]) -> dict[str, int]:
    """Append new events in the given order; return {event_id: position} of the new ones."""
    if not events:
        return {}
    text = c.lines(
        (
            str(ord_),
            c.text(event.event_id),
            str(event.user_pack_id),
            event.event_type,
            c.timestamp(event.event_time),
            c.text(event.source),
            c.text(event.envelope),
            c.text(event.kafka_topic),
            c.integer(event.kafka_partition),
            c.integer(event.kafka_offset),
        )
        for ord_, event in enumerate(events)
    )
    async with conn.cursor() as cur:
        await cur.execute(CREATE_STAGING)
        async with cur.copy(COPY_STAGING) as copy:
            await copy.write(text)
        await cur.execute(APPEND_FROM_STAGING)
        rows = await cur.fetchall()
    return {str(event_id): int(position) for position, event_id in rows}


async def load_pack_entries(
    conn: Conn, user_pack_ids: Sequence[int]
) -> list[tuple[int, int, object]]:
    """Every ledger entry of the given packs: (user_pack_id, position, envelope)."""
    async with conn.cursor() as cur:
        await cur.execute(PACK_ENTRIES, (list(user_pack_ids),))
        return [(int(r[0]), int(r[1]), r[2]) for r in await cur.fetchall()]


async def record_refusals(conn: Conn, refusals: Sequence[RefusedRecord]) -> None:
    if not refusals:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            INSERT_REFUSED,
            [
                (r.kafka_topic, r.kafka_partition, r.kafka_offset, r.key, r.value, r.reason)
                for r in refusals
            ],
        )


async def lock_partitions(conn: Conn, group: str, partitions: Sequence[tuple[str, int]]) -> None:
    if not partitions:
        return
    topics = [topic for topic, _ in partitions]
    numbers = [number for _, number in partitions]
    await conn.execute(LOCK_PARTITIONS, (group, topics, numbers))


async def store_offsets(conn: Conn, group: str, next_offsets: dict[tuple[str, int], int]) -> None:
    if not next_offsets:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            STORE_OFFSETS,
            [(group, topic, part, offset) for (topic, part), offset in next_offsets.items()],
        )


async def load_offsets(conn: Conn, group: str, topic: str) -> dict[tuple[str, int], int]:
    async with conn.cursor() as cur:
        await cur.execute(LOAD_OFFSETS, (group, topic))
        return {(str(t), int(p)): int(o) for t, p, o in await cur.fetchall()}
