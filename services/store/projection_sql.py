"""Statements that read pack snapshots and write the read models (`packs`, `usage_records`).

Writes go through `COPY` into temporary staging tables and one upsert per table: a
batch of thousands of packs costs a handful of round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncCursor

from projections.read_models import PackDynamics, PackRow, UsageRow
from projections.snapshot import PurchaseColumns, from_snapshot
from projections.state import PackState
from services.store import copy_text as c
from services.store.connection import Conn

# Locks the packs a batch touches (in id order: no deadlock between two consumers) and
# tells their version, so that a state cached in memory is used only while current.
LOCK_VERSIONS = """
SELECT user_pack_id, event_count
FROM packs{suffix}
WHERE user_pack_id = ANY(%s)
ORDER BY user_pack_id
FOR UPDATE
"""

LOAD_STATES = """
SELECT user_pack_id, snapshot, user_id, user_name, pack_name, duration_type, buy_datetime,
       activity_end_time, node_list
FROM packs{suffix}
WHERE user_pack_id = ANY(%s)
"""

DYNAMIC_COLUMNS = (
    "user_pack_id, granted, charged, open_starts, open_train_ids, exhausts_at, "
    "exhaustion_notice_id, snapshot, event_count"
)

CREATE_DYNAMICS_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS pack_dynamics_staging (
    user_pack_id bigint, granted bigint, charged bigint, open_starts timestamptz[],
    open_train_ids bigint[], exhausts_at timestamptz, exhaustion_notice_id text,
    snapshot jsonb, event_count bigint
) ON COMMIT DELETE ROWS
"""

UPDATE_DYNAMICS = """
UPDATE packs{suffix} AS p SET
    granted = s.granted,
    charged = s.charged,
    open_starts = s.open_starts,
    open_train_ids = s.open_train_ids,
    exhausts_at = s.exhausts_at,
    exhaustion_notice_id = s.exhaustion_notice_id,
    snapshot = coalesce(s.snapshot, p.snapshot),  -- NULL: the stored snapshot stays
    event_count = s.event_count,
    updated_at = now()
FROM pack_dynamics_staging AS s
WHERE p.user_pack_id = s.user_pack_id
"""

PACK_COLUMNS = (
    "user_pack_id, user_id, user_name, pack_name, duration_type, buy_datetime, "
    "activity_end_time, node_list, granted, charged, open_starts, open_train_ids, "
    "exhausts_at, exhaustion_notice_id, snapshot, event_count"
)

CREATE_PACK_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS packs_staging
    (LIKE packs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

UPSERT_PACKS = f"""
INSERT INTO packs{{suffix}} ({PACK_COLUMNS})
SELECT {PACK_COLUMNS} FROM packs_staging
ON CONFLICT (user_pack_id) DO UPDATE SET
    user_id = excluded.user_id,
    user_name = excluded.user_name,
    pack_name = excluded.pack_name,
    duration_type = excluded.duration_type,
    buy_datetime = excluded.buy_datetime,
    activity_end_time = excluded.activity_end_time,
    node_list = excluded.node_list,
    granted = excluded.granted,
    charged = excluded.charged,
    open_starts = excluded.open_starts,
    open_train_ids = excluded.open_train_ids,
    exhausts_at = excluded.exhausts_at,
    exhaustion_notice_id = excluded.exhaustion_notice_id,
    snapshot = excluded.snapshot,
    event_count = excluded.event_count,
    updated_at = now()
"""

USAGE_COLUMNS = (
    "log_id, user_pack_id, owner_user_id, train_id, train_name, user_id, user_name, "
    "start_time, end_time, charged_seconds, overrun_seconds, stop_reason, start_event_id, "
    "stop_event_id"
)

DELETE_PACK_USAGE = "DELETE FROM usage_records{suffix} WHERE user_pack_id = ANY(%s)"

# The staging tables are never analyzed, and a hash join of a few thousand staged rows
# with the whole read model looked cheap to the planner: every batch read all of
# `usage_records` (41 us per closed record with 250,000 records, growing with the
# table). One index probe per staged row costs what the batch holds, however large the
# table grows; these settings hold for the UPDATE only (SET LOCAL, then RESET).
INDEX_JOINS_ONLY = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
PLANNER_DEFAULTS = "RESET enable_hashjoin; RESET enable_mergejoin"


def by_index_probes(update: str) -> str:
    """`update` between INDEX_JOINS_ONLY and PLANNER_DEFAULTS: one round trip (a text
    without parameters goes by the simple protocol, several statements at once)."""
    return f"{INDEX_JOINS_ONLY}; {update}; {PLANNER_DEFAULTS}"


# New records (their start event is new to the ledger, so their logId is too) go
# straight in; records closed by a stop get the columns a stop sets.
CLOSE_COLUMNS = "log_id, end_time, charged_seconds, overrun_seconds, stop_reason, stop_event_id"

CREATE_CLOSES_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS usage_closes_staging (
    log_id bigint, end_time timestamptz, charged_seconds bigint, overrun_seconds bigint,
    stop_reason text, stop_event_id text
) ON COMMIT DELETE ROWS
"""

CLOSE_USAGE = """
UPDATE usage_records{suffix} AS u SET
    end_time = s.end_time,
    charged_seconds = s.charged_seconds,
    overrun_seconds = s.overrun_seconds,
    stop_reason = s.stop_reason,
    stop_event_id = s.stop_event_id
FROM usage_closes_staging AS s
WHERE u.log_id = s.log_id
"""


def pack_fields(row: PackRow) -> tuple[str, ...]:
    """A pack row as COPY text fields, in the order of PACK_COLUMNS."""
    return _changing_fields(
        row,
        (
            str(row.user_pack_id),
            str(row.user_id),
            c.text(row.user_name),
            c.text(row.pack_name),
            row.duration_type,
            c.timestamp(row.buy_datetime),
            c.timestamp(row.activity_end_time),
            c.json_value(row.node_list),
        ),
        c.timestamp_array(row.open_starts),
        c.timestamp(row.exhausts_at),
    )


def _changing_fields(
    row: PackRow | PackDynamics, leading: tuple[str, ...], open_starts: str, exhausts_at: str
) -> tuple[str, ...]:
    """`leading`, then the columns events change after the purchase (DYNAMIC_COLUMNS but
    the id), the times given formatted; a snapshot of None keeps the stored one."""
    return (
        *leading,
        str(row.granted),
        str(row.charged),
        open_starts,
        c.integer_array(row.open_train_ids),
        exhausts_at,
        c.text(row.exhaustion_notice_id),
        c.NULL if row.snapshot is None else c.json_value(row.snapshot),
        str(row.event_count),
    )


def usage_fields(row: UsageRow) -> tuple[str, ...]:
    """A usage record as COPY text fields, in the order of USAGE_COLUMNS."""
    return (
        str(row.log_id),
        str(row.user_pack_id),
        str(row.owner_user_id),
        str(row.train_id),
        c.text(row.train_name),
        str(row.user_id),
        c.text(row.user_name),
        c.timestamp(row.start_time),
        c.timestamp(row.end_time),
        c.integer(row.charged_seconds),
        c.integer(row.overrun_seconds),
        c.text(row.stop_reason),
        c.text(row.start_event_id),
        c.text(row.stop_event_id),
    )


async def lock_versions(
    conn: Conn, user_pack_ids: Sequence[int], suffix: str = ""
) -> dict[int, int]:
    """{pack: event_count} of the given packs that have a read model, locked until commit."""
    if not user_pack_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(LOCK_VERSIONS.format(suffix=suffix), (sorted(user_pack_ids),))
        return {int(pack_id): int(count) for pack_id, count in await cur.fetchall()}


async def load_states(
    conn: Conn, user_pack_ids: Sequence[int], suffix: str = ""
) -> dict[int, PackState]:
    """The fold states of the given packs, from their snapshots and purchase columns."""
    if not user_pack_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(LOAD_STATES.format(suffix=suffix), (list(user_pack_ids),))
        return {
            int(row[0]): from_snapshot(row[1], PurchaseColumns(*row[2:]))
            for row in await cur.fetchall()
        }


def dynamics_lines(rows: Sequence[PackDynamics]) -> bytes:
    """COPY text of pack updates (DYNAMIC_COLUMNS), for `write_pack_dynamics`."""
    return c.lines(
        _changing_fields(
            row,
            (str(row.user_pack_id),),
            c.iso_array(row.open_starts),
            c.NULL if row.exhausts_at is None else row.exhausts_at,
        )
        for row in rows
    )


async def write_pack_dynamics(conn: Conn, lines: bytes, suffix: str = "") -> None:
    """Update the columns that change after the purchase, for packs already stored
    (`lines` from `dynamics_lines`)."""
    if not lines:
        return
    async with conn.cursor() as cur:
        await _through_staging(
            cur,
            CREATE_DYNAMICS_STAGING,
            f"COPY pack_dynamics_staging ({DYNAMIC_COLUMNS}) FROM STDIN",
            lines,
            by_index_probes(UPDATE_DYNAMICS.format(suffix=suffix)),
        )


async def write_packs(conn: Conn, rows: Sequence[PackRow], suffix: str = "") -> None:
    if not rows:
        return
    async with conn.cursor() as cur:
        await _through_staging(
            cur,
            CREATE_PACK_STAGING,
            f"COPY packs_staging ({PACK_COLUMNS}) FROM STDIN",
            c.lines(map(pack_fields, rows)),
            UPSERT_PACKS.format(suffix=suffix),
        )


def usage_lines(rows: Iterable[UsageRow]) -> bytes:
    """COPY text of whole usage records (USAGE_COLUMNS), for `write_usage`."""
    return c.lines(map(usage_fields, rows))


def close_lines(rows: Iterable[UsageRow]) -> bytes:
    """COPY text of what closing records sets (CLOSE_COLUMNS), for `write_usage`."""
    return c.lines(map(_close_fields, rows))


async def write_usage(
    conn: Conn,
    refolded_pack_ids: Sequence[int],
    new_lines: bytes,
    closed_lines: bytes,
    suffix: str = "",
) -> None:
    """The records of re-folded packs are replaced as a whole; `new_lines` (`usage_lines`:
    records a batch's new start events opened, and every record of the re-folded packs)
    are inserted, `closed_lines` (`close_lines`) set what their stops set."""
    async with conn.cursor() as cur:
        if refolded_pack_ids:
            await cur.execute(DELETE_PACK_USAGE.format(suffix=suffix), (list(refolded_pack_ids),))
        if new_lines:
            statement = f"COPY usage_records{suffix} ({USAGE_COLUMNS}) FROM STDIN"
            async with cur.copy(statement) as copy:
                await copy.write(new_lines)
        if closed_lines:
            await _through_staging(
                cur,
                CREATE_CLOSES_STAGING,
                f"COPY usage_closes_staging ({CLOSE_COLUMNS}) FROM STDIN",
                closed_lines,
                by_index_probes(CLOSE_USAGE.format(suffix=suffix)),
            )


async def _through_staging(
    cur: AsyncCursor[Any], create: str, copy_in: str, lines: bytes, apply: str
) -> None:
    """Rows into a temporary staging table (created on first use, emptied at commit),
    then one statement that applies them to the read model."""
    await cur.execute(create)
    async with cur.copy(copy_in) as copy:
        await copy.write(lines)
    await cur.execute(apply)


def _close_fields(row: UsageRow) -> tuple[str, ...]:
    return (
        str(row.log_id),
        c.timestamp(row.end_time),
        c.integer(row.charged_seconds),
        c.integer(row.overrun_seconds),
        c.text(row.stop_reason),
        c.text(row.stop_event_id),
    )
