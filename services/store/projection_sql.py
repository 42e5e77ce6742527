"""Statements that read pack snapshots and write the read models (`packs`, `usage_records`).

Writes go through `COPY` into temporary staging tables and one upsert per table: a
batch of thousands of packs costs a handful of round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from psycopg import AsyncCursor

from projections.codegen import compiled
from projections.read_models import PackDynamics, PackRow, UsageRow, changing, sql_type
from projections.snapshot import PurchaseColumns, from_snapshot
from projections.state import PackState
from services.store import copy_text as c
from services.store.connection import Conn

# Locks the packs a batch touches (in id order: no deadlock between two consumers) and
# tells their version, so that a state cached in memory is used only while current.
LOCK_VERSIONS = """
SELECT user_pack_id, event_count
FROM packs{suffix}
WHERE user_pack_id = ANY(%s::bigint[])
ORDER BY user_pack_id
FOR UPDATE
"""

LOAD_STATES = f"""
SELECT user_pack_id, snapshot, {", ".join(f.name for f in fields(PurchaseColumns))}
FROM packs{{suffix}}
WHERE user_pack_id = ANY(%s::bigint[])
"""

# Column lists, staging tables and updates, all derived from the rows' declarations
# (`projections.read_models`): a column is added there (and by a migration), not here.
PACK_COLUMNS = ", ".join(f.name for f in fields(PackRow))
DYNAMIC_COLUMNS = ", ".join(changing(PackRow))
USAGE_COLUMNS = ", ".join(f.name for f in fields(UsageRow))
CLOSE_COLUMNS = ", ".join(changing(UsageRow))
"""New records (their start event is new to the ledger, so their logId is too) go
straight in; records closed by a stop get the columns a stop sets."""


def _staging(table: str, row: type) -> str:
    columns = ", ".join(f"{name} {sql_type(row, name)}" for name in changing(row))
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DELETE ROWS"


def _assignments(row: type, source: str, target: str) -> str:
    """`name = source.name` for each column that changes (a `null_keeps` column keeps
    its `target` value when the source's is NULL)."""
    _key, *names = changing(row)
    keeps = {f.name for f in fields(row) if f.metadata["null_keeps"]}
    return ",\n    ".join(
        f"{name} = coalesce({source}.{name}, {target}.{name})"
        if name in keeps
        else f"{name} = {source}.{name}"
        for name in names
    )


CREATE_DYNAMICS_STAGING = _staging("pack_dynamics_staging", PackRow)
UPDATE_DYNAMICS = f"""
UPDATE packs{{suffix}} AS p SET
    {_assignments(PackRow, "s", "p")},
    updated_at = now()
FROM pack_dynamics_staging AS s
WHERE p.user_pack_id = s.user_pack_id
"""

CREATE_PACK_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS packs_staging
    (LIKE packs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

_UPSERT_SET = ",\n    ".join(f"{f.name} = excluded.{f.name}" for f in fields(PackRow)[1:])
UPSERT_PACKS = f"""
INSERT INTO packs{{suffix}} ({PACK_COLUMNS})
SELECT {PACK_COLUMNS} FROM packs_staging
ON CONFLICT (user_pack_id) DO UPDATE SET
    {_UPSERT_SET},
    updated_at = now()
"""

DELETE_PACK_USAGE = "DELETE FROM usage_records{suffix} WHERE user_pack_id = ANY(%s)"

CREATE_CLOSES_STAGING = _staging("usage_closes_staging", UsageRow)
CLOSE_USAGE = f"""
UPDATE usage_records{{suffix}} AS u SET
    {_assignments(UsageRow, "s", "u")}
FROM usage_closes_staging AS s
WHERE u.log_id = s.log_id
"""

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


def _formatted(row: type, name: str, *, iso_text: bool = False) -> str:
    """The expression that gives `row.NAME` as a COPY text field, by its SQL type (times
    already ISO 8601 text when `iso_text`)."""
    declared = next(f for f in fields(row) if f.name == name)
    kind = sql_type(PackRow if iso_text else row, name)
    nullable = "None" in str(declared.type)
    value = f"row.{name}"
    if kind in ("bigint", "integer"):
        return f"c.integer({value})" if nullable else f"str({value})"
    if kind == "text":
        return f"c.text({value})"
    if kind == "timestamptz":
        if iso_text:
            return f"(c.NULL if {value} is None else {value})"
        return f"c.timestamp({value})"
    if kind == "timestamptz[]":
        if nullable:  # elements that may be NULL
            return (
                f"c.optional_iso_array({value})"
                if iso_text
                else (f"c.optional_timestamp_array({value})")
            )
        return f"c.iso_array({value})" if iso_text else f"c.timestamp_array({value})"
    if kind == "bigint[]":
        return f"c.integer_array({value})"
    if kind == "jsonb":
        return f"(c.NULL if {value} is None else c.json_value({value}))"
    raise TypeError(f"{row.__name__}.{name}: no COPY format for SQL type {kind!r}")


def _fields_function(name: str, row: type, columns: list[str], *, iso_text: bool = False) -> Any:
    items = ", ".join(_formatted(row, column, iso_text=iso_text) for column in columns)
    return compiled(name, f"def {name}(row):\n    return ({items},)\n", {"c": c})


pack_fields = _fields_function("pack_fields", PackRow, [f.name for f in fields(PackRow)])
pack_fields.__doc__ = "A pack row as COPY text fields, in the order of PACK_COLUMNS."
usage_fields = _fields_function("usage_fields", UsageRow, [f.name for f in fields(UsageRow)])
usage_fields.__doc__ = "A usage record as COPY text fields, in the order of USAGE_COLUMNS."
_close_fields = _fields_function("close_fields", UsageRow, changing(UsageRow))
_dynamics_fields = _fields_function(
    "dynamics_fields", PackDynamics, changing(PackRow), iso_text=True
)


async def lock_versions(
    conn: Conn, user_pack_ids: Sequence[int], suffix: str = ""
) -> dict[int, int]:
    """{pack: event_count} of the given packs that have a read model, locked until commit."""
    if not user_pack_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(
            LOCK_VERSIONS.format(suffix=suffix), (c.int_array(sorted(user_pack_ids)),)
        )
        return {int(pack_id): int(count) for pack_id, count in await cur.fetchall()}


async def load_states(
    conn: Conn, user_pack_ids: Sequence[int], suffix: str = ""
) -> dict[int, PackState]:
    """The fold states of the given packs, from their snapshots and purchase columns."""
    if not user_pack_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(LOAD_STATES.format(suffix=suffix), (c.int_array(user_pack_ids),))
        return {
            int(row[0]): from_snapshot(row[1], PurchaseColumns(*row[2:]))
            for row in await cur.fetchall()
        }


def dynamics_lines(rows: Sequence[PackDynamics]) -> bytes:
    """COPY text of pack updates (DYNAMIC_COLUMNS), for `write_pack_dynamics`."""
    return c.lines(map(_dynamics_fields, rows))


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


def pack_lines(rows: Iterable[PackRow]) -> bytes:
    """COPY text of whole pack rows (PACK_COLUMNS), for `write_pack_lines`."""
    return c.lines(map(pack_fields, rows))


async def write_packs(conn: Conn, rows: Sequence[PackRow], suffix: str = "") -> None:
    await write_pack_lines(conn, pack_lines(rows), suffix)


async def write_pack_lines(conn: Conn, lines: bytes, suffix: str = "") -> None:
    """Insert or replace whole pack rows (`lines` from `pack_lines`)."""
    if not lines:
        return
    async with conn.cursor() as cur:
        await _through_staging(
            cur,
            CREATE_PACK_STAGING,
            f"COPY packs_staging ({PACK_COLUMNS}) FROM STDIN",
            lines,
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
