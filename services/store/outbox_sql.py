"""The notice outboxes' common statements: both `exhaustion_notices` (exhaustion, start
and low-balance notices, `notice_sql`) and `lapse_notices` (`lapse_sql`) are claimed
and marked published the same way."""

from __future__ import annotations

from typing import Any, Literal

from psycopg import sql

from services.store.connection import Conn

Outbox = Literal["exhaustion_notices", "lapse_notices"]

# Claimed in the transaction that publishes them: a second notifier skips them.
_CLAIM_UNPUBLISHED = sql.SQL("""
SELECT notice_id, user_pack_id, payload
FROM {}
WHERE published_at IS NULL
ORDER BY created_at
LIMIT %s
FOR UPDATE SKIP LOCKED
""")

_MARK_PUBLISHED = sql.SQL("UPDATE {} SET published_at = now() WHERE notice_id = ANY(%s)")


async def claim_unpublished(
    conn: Conn, outbox: Outbox, limit: int = 500
) -> list[tuple[str, int, Any]]:
    """(notice id, pack, payload) of up to `limit` unpublished notices, oldest first."""
    async with conn.cursor() as cur:
        await cur.execute(_CLAIM_UNPUBLISHED.format(sql.Identifier(outbox)), (limit,))
        return [(str(a), int(b), c) for a, b, c in await cur.fetchall()]


async def mark_published(conn: Conn, outbox: Outbox, notice_ids: list[str]) -> None:
    if notice_ids:
        await conn.execute(_MARK_PUBLISHED.format(sql.Identifier(outbox)), (notice_ids,))
