"""Statements of the exhaustion outbox: notices are recorded once, then published."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from services.store.connection import Conn

# The notifier's in-memory schedule says which packs may be due; the database decides.
# A stale entry (the exhaustion moved later, or went away, or its notice is recorded
# already) selects nothing. By primary key: no index on `exhausts_at` (HOT updates).
DUE_EXHAUSTIONS_OF_PACKS = """
SELECT p.user_pack_id, p.exhausts_at, p.exhaustion_notice_id, p.open_train_ids
FROM packs p
WHERE p.user_pack_id = ANY(%s)
  AND p.exhausts_at <= %s
  AND p.exhaustion_notice_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM exhaustion_notices n WHERE n.notice_id = p.exhaustion_notice_id)
ORDER BY p.exhausts_at
"""

# The notifier's periodic rescan: packs exhausting before `until` whose notice is not
# recorded, a page at a time after (exhausts_at, user_pack_id) = `after`. A sequential
# scan of `packs` (there is no index on `exhausts_at`), a few times a minute.
EXHAUSTIONS_UNTIL = """
SELECT p.user_pack_id, p.exhausts_at
FROM packs p
WHERE p.exhausts_at <= %s
  AND (p.exhausts_at, p.user_pack_id) > (%s, %s)
  AND p.exhaustion_notice_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM exhaustion_notices n WHERE n.notice_id = p.exhaustion_notice_id)
ORDER BY p.exhausts_at, p.user_pack_id
LIMIT %s
"""

INSERT_NOTICE = """
INSERT INTO exhaustion_notices (notice_id, user_pack_id, exhausted_at, train_ids, payload)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (notice_id) DO NOTHING
"""

# SKIP LOCKED: several consumers may run the notifier; each notice goes out through one.
CLAIM_UNPUBLISHED = """
SELECT notice_id, user_pack_id, payload
FROM exhaustion_notices
WHERE published_at IS NULL
ORDER BY created_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

MARK_PUBLISHED = "UPDATE exhaustion_notices SET published_at = now() WHERE notice_id = ANY(%s)"


async def due_exhaustions(
    conn: Conn, pack_ids: list[int], now: datetime
) -> list[tuple[int, datetime, str, list[int]]]:
    """Of `pack_ids`, those exhausted at or before `now` whose notice is not recorded."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(DUE_EXHAUSTIONS_OF_PACKS, (pack_ids, now))
        return [(int(a), b, str(c), list(d)) for a, b, c, d in await cur.fetchall()]


async def exhaustions_until(
    conn: Conn, until: datetime, after: tuple[datetime, int], limit: int = 1000
) -> list[tuple[int, datetime]]:
    """(pack, exhausts_at) of packs exhausting at or before `until` whose notice is not
    recorded, in (exhausts_at, pack) order after `after`; at most `limit`."""
    async with conn.cursor() as cur:
        await cur.execute(EXHAUSTIONS_UNTIL, (until, after[0], after[1], limit))
        return [(int(a), b) for a, b in await cur.fetchall()]


async def record_notices(
    conn: Conn, notices: list[tuple[str, int, datetime, list[int], Any]]
) -> None:
    if notices:
        async with conn.cursor() as cur:
            await cur.executemany(
                INSERT_NOTICE, [(n[0], n[1], n[2], n[3], Jsonb(n[4])) for n in notices]
            )


async def claim_unpublished(conn: Conn, limit: int = 500) -> list[tuple[str, int, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(CLAIM_UNPUBLISHED, (limit,))
        return [(str(a), int(b), c) for a, b, c in await cur.fetchall()]


async def mark_published(conn: Conn, notice_ids: list[str]) -> None:
    if notice_ids:
        await conn.execute(MARK_PUBLISHED, (notice_ids,))
