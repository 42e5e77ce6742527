"""Statements of the exhaustion outbox: notices are recorded once, then published.

Two kinds of `infinite.pack.exhausted` notice share the outbox: one per exhaustion (id
`rules.exhaustion_notice_id`) and one per training started during an exhaustion (id
`rules.start_notice_id`, see UNNOTIFIED_STARTS)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from services.store import copy_text
from services.store.connection import Conn

# A notice names the trainings running at its instant: a session whose lease ended by
# then lapsed (`ledger_running_train_ids`, `projections.leases.running_train_ids`).
# The notifier's in-memory schedule says which packs may be due; the database decides.
# A stale entry (the exhaustion moved later, or went away, or its notice is recorded
# already) selects nothing. By primary key: no index on `exhausts_at` (HOT updates).
DUE_EXHAUSTIONS_OF_PACKS = """
SELECT p.user_pack_id, p.exhausts_at, p.exhaustion_notice_id,
       ledger_running_train_ids(p.open_train_ids, p.open_lease_ends, p.exhausts_at)
FROM packs p
WHERE p.user_pack_id = ANY(%s)
  AND p.exhausts_at <= %s
  AND p.exhaustion_notice_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM exhaustion_notices n WHERE n.notice_id = p.exhaustion_notice_id)
ORDER BY p.exhausts_at
"""

# `rules.start_notice_id` in SQL: the id of the notice of its own of the session `u`.
START_NOTICE_ID = "'exhausted-' || u.user_pack_id || '-start-' || u.log_id"

# The open sessions `u` of pack `p` that get a notice of its own not recorded yet: those
# that started after the exhaustion began (`projections.fold.started_during_exhaustion`),
# and those that started at its very instant but are not named by its notice, recorded
# before they were applied (`<> ALL` of a NULL array, no notice recorded, is not true).
# By the index on (user_pack_id, start_time): only the sessions from the instant on.
UNNOTIFIED_STARTS = f"""
FROM usage_records u
LEFT JOIN exhaustion_notices e ON e.notice_id = p.exhaustion_notice_id
WHERE u.user_pack_id = p.user_pack_id
  AND u.start_time >= p.exhausts_at
  AND u.end_time IS NULL
  AND (u.start_time > p.exhausts_at OR u.train_id <> ALL(e.train_ids))
  AND NOT EXISTS (SELECT 1 FROM exhaustion_notices n WHERE n.notice_id = {START_NOTICE_ID})
"""

# Of the scheduled packs that are exhausted by `now`, the sessions above.
DUE_STARTS_OF_PACKS = f"""
SELECT p.user_pack_id, p.exhausts_at, {START_NOTICE_ID},
       ledger_running_train_ids(p.open_train_ids, p.open_lease_ends, p.exhausts_at)
FROM packs p
CROSS JOIN LATERAL (SELECT u.user_pack_id, u.log_id, u.start_time {UNNOTIFIED_STARTS}) u
WHERE p.user_pack_id = ANY(%s)
  AND p.exhausts_at <= %s
ORDER BY p.user_pack_id, u.start_time, u.log_id
"""

# The notifier's periodic rescan: packs exhausting before `until` whose notice is not
# recorded, or whose notice is recorded (so the exhaustion has begun) with a session
# above, a page at a time after (exhausts_at, user_pack_id) = `after`. A sequential scan
# of `packs` (there is no index on `exhausts_at`), a few times a minute; the sessions are
# looked up only for the packs with an open session started at or after their exhaustion
# (`open_starts`, in the row).
EXHAUSTIONS_UNTIL = f"""
SELECT p.user_pack_id, p.exhausts_at
FROM packs p
WHERE p.exhausts_at <= %s
  AND (p.exhausts_at, p.user_pack_id) > (%s, %s)
  AND p.exhaustion_notice_id IS NOT NULL
  AND (
    NOT EXISTS (SELECT 1 FROM exhaustion_notices n WHERE n.notice_id = p.exhaustion_notice_id)
    OR (
      EXISTS (SELECT 1 FROM unnest(p.open_starts) AS s WHERE s >= p.exhausts_at)
      AND EXISTS (SELECT 1 {UNNOTIFIED_STARTS})
    )
  )
ORDER BY p.exhausts_at, p.user_pack_id
LIMIT %s
"""

# --- low-balance notices ---------------------------------------------------------------
# Each pack row lists its crossings under way or ahead (`packs.low_balance`: threshold,
# instant, notice id); a crossing's notice is due once its instant has passed and goes
# into the same outbox. A crossing that the pack left (re-armed) before its notice was
# recorded is no longer listed.
_LOWS = """
FROM packs p
CROSS JOIN LATERAL jsonb_array_elements(p.low_balance) AS l
WHERE NOT EXISTS (SELECT 1 FROM exhaustion_notices n WHERE n.notice_id = l->>'id')
"""

# Of the scheduled packs, the crossings due by `now` whose notice is not recorded.
DUE_LOWS_OF_PACKS = f"""
SELECT p.user_pack_id, (l->>'threshold')::bigint, (l->>'at')::timestamptz, l->>'id',
       ledger_running_train_ids(p.open_train_ids, p.open_lease_ends, (l->>'at')::timestamptz),
       p.exhausts_at
{_LOWS}
  AND p.user_pack_id = ANY(%s)
  AND (l->>'at')::timestamptz <= %s
ORDER BY 3, 1, 2
"""

# When each of the given packs has its next crossing not yet announced: the schedule.
NEXT_LOWS_OF_PACKS = f"""
SELECT p.user_pack_id, min((l->>'at')::timestamptz)
{_LOWS}
  AND p.user_pack_id = ANY(%s::bigint[])
GROUP BY p.user_pack_id
"""

# The rescan: packs with a crossing not announced before `until`, earliest first. A
# sequential scan of the packs with crossings, once per rescan period.
LOWS_UNTIL = f"""
SELECT p.user_pack_id, min((l->>'at')::timestamptz) AS at
{_LOWS}
  AND p.low_balance <> '[]'
  AND (l->>'at')::timestamptz <= %s
GROUP BY p.user_pack_id
ORDER BY at
LIMIT %s
"""

INSERT_NOTICE = """
INSERT INTO exhaustion_notices (notice_id, user_pack_id, exhausted_at, train_ids, payload)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (notice_id) DO NOTHING
"""

# SKIP LOCKED: several consumers may run the notifier; each notice goes out through one.


async def due_exhaustions(
    conn: Conn, pack_ids: list[int], now: datetime
) -> list[tuple[int, datetime, str, list[int]]]:
    """Of `pack_ids`, those exhausted at or before `now` whose notice is not recorded."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(DUE_EXHAUSTIONS_OF_PACKS, (pack_ids, now))
        return [(int(a), b, str(c), list(d)) for a, b, c, d in await cur.fetchall()]


async def due_starts(
    conn: Conn, pack_ids: list[int], now: datetime
) -> list[tuple[int, datetime, str, list[int]]]:
    """Of `pack_ids`, exhausted at or before `now`, the notices of their own that open
    sessions get (see UNNOTIFIED_STARTS) not recorded yet: (pack, exhausts_at, notice id,
    open trainIds), the sessions of a pack in start order. Run after `record_notices` of
    the packs' exhaustions, in the same transaction: a notice just recorded names them."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(DUE_STARTS_OF_PACKS, (pack_ids, now))
        return [(int(a), b, str(c), list(d)) for a, b, c, d in await cur.fetchall()]


async def exhaustions_until(
    conn: Conn, until: datetime, after: tuple[datetime, int], limit: int = 1000
) -> list[tuple[int, datetime]]:
    """(pack, exhausts_at) of packs exhausting at or before `until` whose notice is not
    recorded, or with a session whose notice of its own is not recorded, in
    (exhausts_at, pack) order after `after`; at most `limit`."""
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


async def due_lows(
    conn: Conn, pack_ids: list[int], now: datetime
) -> list[tuple[int, int, datetime, str, list[int], datetime | None]]:
    """Of `pack_ids`, the crossings due by `now` not recorded: (pack, threshold,
    crossedAt, notice id, open trainIds, exhausts_at)."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(DUE_LOWS_OF_PACKS, (pack_ids, now))
        return [
            (int(a), int(b), c, str(d), list(e), f) for a, b, c, d, e, f in await cur.fetchall()
        ]


async def next_lows(conn: Conn, pack_ids: list[int]) -> list[tuple[int, datetime]]:
    """(pack, instant of its next crossing not recorded) of those of `pack_ids` that have one."""
    if not pack_ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(NEXT_LOWS_OF_PACKS, (copy_text.int_array(pack_ids),))
        return [(int(a), b) for a, b in await cur.fetchall()]


async def lows_until(conn: Conn, until: datetime, limit: int) -> list[tuple[int, datetime]]:
    """(pack, instant) of packs with a crossing not recorded at or before `until`."""
    async with conn.cursor() as cur:
        await cur.execute(LOWS_UNTIL, (until, limit))
        return [(int(a), b) for a, b in await cur.fetchall()]
