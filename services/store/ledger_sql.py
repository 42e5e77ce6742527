"""Statements that append to the ledger and keep the consumer's bookkeeping.

A batch is appended with one `COPY` straight into `ledger_events`: the ids the ledger
already holds are looked up first (one index probe each), the new events get their
positions from the identity's sequence, and the COPY writes them. A concurrent writer
of the same id between the look-up and the COPY makes the COPY fail on the unique
constraint: the transaction rolls back and the batch is retried, finding the id.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from psycopg.types.json import Jsonb

from services.store import copy_text as c
from services.store.connection import Conn

T = TypeVar("T")

EXISTING_IDS = "SELECT event_id FROM ledger_events WHERE event_id = ANY(%s::text[])"

NEXT_POSITIONS = """
SELECT array_agg(nextval('ledger_events_position_seq'::regclass)) FROM generate_series(1, %s)
"""

COPY_EVENTS = """
COPY ledger_events (position, event_id, user_pack_id, event_type, event_time, source,
                    envelope, kafka_topic, kafka_partition, kafka_offset) FROM STDIN
"""

# Every entry of the given packs, the envelope as JSON text (parsed faster as text than
# as a decoded object); left out (NULL) for the positions the caller already holds as
# events (a batch's own entries).
PACK_ENTRIES = """
SELECT e.user_pack_id, e.position, CASE WHEN k.position IS NULL THEN e.envelope::text END
FROM ledger_events e
LEFT JOIN unnest(%s::bigint[]) AS k(position) ON k.position = e.position
WHERE e.user_pack_id = ANY(%s)
ORDER BY e.user_pack_id, e.position
"""

# The entries of each pack above a position: what its stored snapshot has not applied.
PACK_TAILS = """
SELECT e.user_pack_id, e.position, e.envelope::text
FROM unnest(%s::bigint[], %s::bigint[]) AS t(user_pack_id, after)
JOIN ledger_events e ON e.user_pack_id = t.user_pack_id AND e.position > t.after
ORDER BY e.user_pack_id, e.position
"""

INSERT_REFUSED = """
INSERT INTO refused_records (kafka_topic, kafka_partition, kafka_offset, record_key,
                             record_value, reason, record_headers)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
"""

# The stored offsets never move backwards: a consumer that lost its partitions during a
# long outage may still commit an older batch (its writes are idempotent anyway).
STORE_OFFSETS = """
INSERT INTO consumer_offsets (consumer_group, kafka_topic, kafka_partition, next_offset)
SELECT %s, t, p, o FROM unnest(%s::text[], %s::integer[], %s::bigint[]) AS x(t, p, o)
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


@dataclass(slots=True)  # not frozen: one per record, built ~2x faster
class StagedEvent:
    event_id: str
    user_pack_id: int
    event_type: str
    event_time: datetime
    source: str
    envelope: str  # the CloudEvent as structured JSON: the value as received (binary
    # content mode: the event the headers and value stand for, see events/binary.py)
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
    # The record's own headers: stored with the refusal (`ledger refused show`, a
    # re-drive of a binary-mode record) and on its copy on the dead-letter topic.
    headers: Sequence[tuple[str, bytes]] = ()


def headers_json(headers: Sequence[tuple[str, bytes]]) -> Jsonb:
    """A record's headers as stored with a refusal: [[name, base64 value], ...]."""
    return Jsonb([[name, base64.b64encode(value).decode()] for name, value in headers])


async def claim_positions(
    conn: Conn, events: Sequence[StagedEvent]
) -> list[tuple[int, StagedEvent]]:
    """The events new to the ledger (an id already in it, or repeated within `events`, is
    kept once), in the given order, each with the position drawn for it."""
    if not events:
        return []
    async with conn.cursor() as cur:
        await cur.execute(EXISTING_IDS, (c.text_array(event.event_id for event in events),))
        known = {str(row[0]) for row in await cur.fetchall()}
        new: list[StagedEvent] = []
        for event in events:
            if event.event_id not in known:
                known.add(event.event_id)
                new.append(event)
        if not new:
            return []
        await cur.execute(NEXT_POSITIONS, (len(new),))
        row = await cur.fetchone()
        assert row is not None
        positions: list[int] = row[0]
    return list(zip(positions, new, strict=True))


COPY_CHUNK = 2_000
"""Rows formatted and sent at a time: the server appends one chunk while the next is
formatted."""


async def copy_events(
    conn: Conn, numbered: Sequence[tuple[int, StagedEvent]], meanwhile: Callable[[], T]
) -> T:
    """Append events with their positions (from `claim_positions`) by one COPY, and
    return `meanwhile()`, called once every row is sent: this process works while the
    server appends (the COPY completes, or fails with what `meanwhile` raised, after)."""
    if not numbered:
        return meanwhile()
    async with conn.cursor() as cur, cur.copy(COPY_EVENTS) as copy:
        for start in range(0, len(numbered), COPY_CHUNK):
            await copy.write(event_lines(numbered[start : start + COPY_CHUNK]))
        return meanwhile()


def event_lines(numbered: Sequence[tuple[int, StagedEvent]]) -> bytes:
    """COPY text of events with their positions (COPY_EVENTS's columns)."""
    return c.lines(
        (
            str(position),
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
        for position, event in numbered
    )


async def load_pack_entries(
    conn: Conn, user_pack_ids: Sequence[int], known_positions: Sequence[int] = ()
) -> list[tuple[int, int, str | None]]:
    """Every ledger entry of the given packs: (user_pack_id, position, envelope as JSON
    text), the envelope None at the `known_positions`."""
    async with conn.cursor() as cur:
        await cur.execute(PACK_ENTRIES, (list(known_positions), list(user_pack_ids)))
        return [(int(r[0]), int(r[1]), r[2]) for r in await cur.fetchall()]


async def load_pack_tails(conn: Conn, after: dict[int, int]) -> list[tuple[int, int, str]]:
    """The ledger entries of each pack above a position ({pack: position}), as
    (user_pack_id, position, envelope as JSON text)."""
    if not after:
        return []
    async with conn.cursor() as cur:
        await cur.execute(PACK_TAILS, (list(after), list(after.values())))
        return [(int(r[0]), int(r[1]), r[2]) for r in await cur.fetchall()]


async def record_refusals(conn: Conn, refusals: Sequence[RefusedRecord]) -> None:
    if not refusals:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            INSERT_REFUSED,
            [
                (
                    r.kafka_topic,
                    r.kafka_partition,
                    r.kafka_offset,
                    r.key,
                    r.value,
                    r.reason,
                    headers_json(r.headers),
                )
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
    places = list(next_offsets)
    await conn.execute(
        STORE_OFFSETS,
        (group, [t for t, _ in places], [p for _, p in places], list(next_offsets.values())),
    )


async def load_offsets(conn: Conn, group: str, topic: str) -> dict[tuple[str, int], int]:
    async with conn.cursor() as cur:
        await cur.execute(LOAD_OFFSETS, (group, topic))
        return {(str(t), int(p)): int(o) for t, p, o in await cur.fetchall()}
