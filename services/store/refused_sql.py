"""Statements behind `ledger refused`: refused records and their re-drives."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.store.connection import Conn

# The latest re-drive of each record, and how many there were.
_LATEST = """
LEFT JOIN LATERAL (
    SELECT d.at, d.outcome, d.reason, d.event_id, count(*) OVER () AS attempts,
           bool_or(d.outcome = 'applied') OVER () AS applied
    FROM redrives d WHERE d.refused_id = r.id ORDER BY d.id DESC LIMIT 1
) AS d ON true
"""

# NULL filters match everything. `reason` is a case-insensitive substring of the reason
# the record was refused with, or of the latest one a re-drive refused it with.
# `pending`: only the records no re-drive applied (never re-driven, or refused again).
SELECT_REFUSED = f"""
SELECT r.id, r.refused_at, r.kafka_topic, r.kafka_partition, r.kafka_offset, r.record_key,
       r.reason, d.at, d.outcome, d.reason, d.event_id, coalesce(d.attempts, 0),
       coalesce(d.applied, false)
FROM refused_records r
{_LATEST}
WHERE (%(reason)s::text IS NULL
       OR strpos(lower(r.reason), lower(%(reason)s)) > 0
       OR strpos(lower(d.reason), lower(%(reason)s)) > 0)
  AND (%(since)s::timestamptz IS NULL OR r.refused_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR r.refused_at < %(until)s)
  AND (%(topic)s::text IS NULL OR r.kafka_topic = %(topic)s)
  AND (%(partition)s::integer IS NULL OR r.kafka_partition = %(partition)s)
  AND (%(ids)s::bigint[] IS NULL OR r.id = ANY(%(ids)s))
  AND (NOT %(pending)s OR NOT coalesce(d.applied, false) AND d.outcome IS DISTINCT FROM 'duplicate')
ORDER BY r.id
LIMIT %(limit)s
"""

SELECT_RECORD = """
SELECT kafka_topic, kafka_partition, kafka_offset, record_key, record_value, record_headers
FROM refused_records WHERE id = %s
"""

SELECT_REDRIVES = """
SELECT at, outcome, reason, event_id FROM redrives WHERE refused_id = %s ORDER BY id
"""

INSERT_REDRIVE = """
INSERT INTO redrives (refused_id, outcome, reason, event_id) VALUES (%s, %s, %s, %s)
"""


@dataclass(frozen=True, slots=True)
class Redrive:
    at: datetime
    outcome: str  # applied | duplicate | refused
    reason: str | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    id: int
    refused_at: datetime
    topic: str
    partition: int
    offset: int
    key: bytes | None
    reason: str
    latest: Redrive | None  # the latest re-drive
    redrives: int
    applied: bool  # by one of its re-drives


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None  # None: not kept


@dataclass(frozen=True, slots=True)
class Filters:
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    topic: str | None = None
    partition: int | None = None
    ids: Sequence[int] | None = None
    pending: bool = False  # only those no re-drive applied
    limit: int | None = None


async def select_refused(conn: Conn, filters: Filters) -> list[Refused]:
    params: dict[str, Any] = {
        "reason": filters.reason,
        "since": filters.since,
        "until": filters.until,
        "topic": filters.topic,
        "partition": filters.partition,
        "ids": None if filters.ids is None else list(filters.ids),
        "pending": filters.pending,
        "limit": filters.limit,
    }
    async with conn.cursor() as cur:
        await cur.execute(SELECT_REFUSED, params)
        rows = await cur.fetchall()
    return [
        Refused(
            id=int(r[0]),
            refused_at=r[1],
            topic=str(r[2]),
            partition=int(r[3]),
            offset=int(r[4]),
            key=None if r[5] is None else bytes(r[5]),
            reason=str(r[6]),
            latest=None if r[8] is None else Redrive(r[7], str(r[8]), r[9], r[10]),
            redrives=int(r[11]),
            applied=bool(r[12]),
        )
        for r in rows
    ]


async def load_record(conn: Conn, refused_id: int) -> RawRecord | None:
    async with conn.cursor() as cur:
        await cur.execute(SELECT_RECORD, (refused_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    topic, partition, offset, key, value, headers = row
    return RawRecord(
        str(topic),
        int(partition),
        int(offset),
        None if key is None else bytes(key),
        None if value is None else bytes(value),
        None if headers is None else [(str(n), base64.b64decode(v)) for n, v in headers],
    )


async def load_redrives(conn: Conn, refused_id: int) -> list[Redrive]:
    async with conn.cursor() as cur:
        await cur.execute(SELECT_REDRIVES, (refused_id,))
        return [Redrive(r[0], str(r[1]), r[2], r[3]) for r in await cur.fetchall()]


async def record_redrive(
    conn: Conn, refused_id: int, outcome: str, reason: str | None, event_id: str | None
) -> None:
    await conn.execute(INSERT_REDRIVE, (refused_id, outcome, reason, event_id))
