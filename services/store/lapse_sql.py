"""Statements of the lapse outbox (`lapse_notices`): each lapse recorded once, then published.

A session lapses at its lease end (CONTRACT.md section 2, Leases). The ledger holds a
lapse in one of two forms, and the notifier must find it in either:
- *open*: no later event of the pack has been folded yet, so the usage record is still
  open (`end_time IS NULL`) and its `lease_ends_at` has passed: it lapsed at `now`;
- *closed*: the consumer folded a later event and persisted the lapse (`end_time` = the
  lease end, `stop_reason` 'leaseExpired' and no stop event: a scheduler's stop with
  that reason is no lapse; `projections.leases.is_lapse`), perhaps before the notifier
  recorded it.
Both give the same (log_id, lapsed_at) for one lapse, so it is recorded once whichever
form the notifier meets first. A lapse is "not recorded" when no row of `lapse_notices`
has its (log_id, lapsed_at): the SQL finds them without computing `rules.lapse_notice_id`.
The indexes are the partial ones of `schema.LAPSE_INDEXES` (only leased open sessions,
only lapses).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from services.store import copy_text
from services.store.connection import Conn


def _not_recorded(packs: str) -> str:
    """The lapses not recorded (lapsed or ahead) of the packs `packs` selects. Two texts,
    not one with `%s IS NULL OR ...`: a generic plan of that cannot use the indexes."""
    return f"""
SELECT u.user_pack_id, u.train_id, u.log_id, u.lease_ends_at AS lapsed_at
FROM usage_records u
WHERE u.end_time IS NULL AND u.lease_ends_at IS NOT NULL AND {packs}
  AND NOT EXISTS (
    SELECT 1 FROM lapse_notices n WHERE n.log_id = u.log_id AND n.lapsed_at = u.lease_ends_at
  )
UNION ALL
SELECT u.user_pack_id, u.train_id, u.log_id, u.end_time
FROM usage_records u
WHERE u.stop_reason = 'leaseExpired' AND u.stop_event_id IS NULL AND {packs}
  AND NOT EXISTS (
    SELECT 1 FROM lapse_notices n WHERE n.log_id = u.log_id AND n.lapsed_at = u.end_time
  )
"""


_OF_PACKS = _not_recorded("u.user_pack_id = ANY(%(packs)s::bigint[])")
_OF_ALL = _not_recorded("true")

# Of the scheduled packs, the lapses due by `now` not recorded, in lapse order. A lease
# end in the future (a heartbeat moved it since the pack was scheduled) selects nothing.
DUE_LAPSES_OF_PACKS = f"""
SELECT user_pack_id, train_id, log_id, lapsed_at
FROM ({_OF_PACKS}) l
WHERE lapsed_at <= %(now)s
ORDER BY lapsed_at, user_pack_id, train_id, log_id
"""

# When each of the given packs has its next lapse not recorded: the schedule.
NEXT_LAPSES_OF_PACKS = f"""
SELECT user_pack_id, min(lapsed_at) FROM ({_OF_PACKS}) l GROUP BY user_pack_id
"""

# The rescan: packs with a lapse not recorded before `until`, earliest first, a page at a
# time after (at, user_pack_id) = `after`. Only lapses: both partial indexes, whole.
LAPSES_UNTIL = f"""
SELECT user_pack_id, at
FROM (
    SELECT user_pack_id, min(lapsed_at) AS at
    FROM ({_OF_ALL}) l
    WHERE lapsed_at <= %(until)s
    GROUP BY user_pack_id
) p
WHERE (at, user_pack_id) > (%(after_at)s, %(after_pack)s)
ORDER BY at, user_pack_id
LIMIT %(limit)s
"""

INSERT_LAPSE = """
INSERT INTO lapse_notices (notice_id, user_pack_id, log_id, train_id, lapsed_at, payload)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""

# SKIP LOCKED: several consumers may run the notifier; each notice goes out through one.
Lapse = tuple[int, int, int, datetime]
"""(pack, trainId, logId, lapsedAt) of one lapse."""


async def due_lapses(conn: Conn, pack_ids: list[int], now: datetime) -> list[Lapse]:
    """Of `pack_ids`, the lapses at or before `now` not recorded."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(DUE_LAPSES_OF_PACKS, {"packs": pack_ids, "now": now})
        return [(int(a), int(b), int(c), d) for a, b, c, d in await cur.fetchall()]


async def next_lapses(conn: Conn, pack_ids: list[int]) -> list[tuple[int, datetime]]:
    """(pack, instant of its next lapse not recorded) of those of `pack_ids` that have one."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(NEXT_LAPSES_OF_PACKS, {"packs": copy_text.int_array(pack_ids)})
        return [(int(a), b) for a, b in await cur.fetchall()]


async def lapses_until(
    conn: Conn, until: datetime, after: tuple[datetime, int], limit: int
) -> list[tuple[int, datetime]]:
    """(pack, instant of its first lapse not recorded) of packs with one at or before
    `until`, in (instant, pack) order after `after`; at most `limit`."""
    params = {"until": until, "after_at": after[0], "after_pack": after[1], "limit": limit}
    async with conn.cursor() as cur:
        await cur.execute(LAPSES_UNTIL, params)
        return [(int(a), b) for a, b in await cur.fetchall()]


async def record_lapses(conn: Conn, notices: list[tuple[str, Lapse, Any]]) -> None:
    """(notice id, lapse, payload) of each lapse, recorded at most once."""
    if notices:
        async with conn.cursor() as cur:
            await cur.executemany(
                INSERT_LAPSE,
                [
                    (notice_id, pack, log_id, train, at, Jsonb(payload))
                    for notice_id, (pack, train, log_id, at), payload in notices
                ],
            )
