"""Statements of `ledger replay` and `ledger verify`.

Replay reads the ledger pack by pack, builds fresh read models beside the live ones
(`packs_next`, `usage_records_next`) and swaps them in by renaming, in one transaction.
"""

from __future__ import annotations

from typing import Final

from services.store.projection_sql import PACK_COLUMNS, USAGE_COLUMNS
from services.store.schema import read_model_tables

NEXT: Final = "_next"
OLD: Final = "_old"
READ_MODELS: Final = ("packs", "usage_records")

# One replay at a time per database (a session lock: released when the replay's control
# connection closes, however it ends).
TRY_REPLAY_LOCK: Final = "SELECT pg_try_advisory_lock(hashtextextended('ledger replay', 0))"

# Session settings of the connections that stream the ledger: times in UTC (the values
# are instants; only their tzinfo depends on this), room to sort a pack-ordered stream in
# memory, and a plan chosen for reading everything rather than for the first rows.


def stream_settings(work_mem: str) -> list[str]:
    return [
        "SET TimeZone = 'UTC'",
        "SET jit = off",
        f"SET work_mem = '{work_mem}'",
        "SET cursor_tuple_fraction = 1.0",
    ]


# Waits until every transaction that appends to the ledger has ended and blocks new ones
# for the moment it takes to read the last position. After it, every event at or below
# the returned position is committed (or rolled back) for good, and every event appended
# later gets a higher position: identity values only grow.
LOCK_LEDGER: Final = "LOCK TABLE ledger_events IN SHARE MODE"
LAST_POSITION: Final = "SELECT coalesce(max(position), 0) FROM ledger_events"

COUNT_EVENTS: Final = "SELECT count(*) FROM ledger_events WHERE position > %s AND position <= %s"

PACKS_WITH_EVENTS: Final = """
SELECT DISTINCT user_pack_id FROM ledger_events WHERE position > %s AND position <= %s
"""

# One row per event, in fold input form: the purchase as its envelope (parsed in full),
# every other event as the few fields the fold reads, taken out of the stored (validated)
# envelope by the server. kind: 0 purchase, 1 adjustment, 2 start, 3 stop, 4 heartbeat (as
# in projections.fold). number: deltaSeconds or trainId; text: trainName or the stop
# reason; lease: a start's leaseSeconds.
_STEP_COLUMNS: Final = """
    e.user_pack_id,
    e.position,
    CASE e.event_type
        WHEN 'infinite.pack.purchased' THEN 0
        WHEN 'infinite.pack.adjusted' THEN 1
        WHEN 'infinite.training.started' THEN 2
        WHEN 'infinite.training.stopped' THEN 3
        WHEN 'infinite.training.heartbeat' THEN 4
    END AS kind,
    e.event_time::text AS event_time,  -- parsed by the reader, and written back as is
    e.event_id,
    CASE WHEN e.event_type = 'infinite.pack.adjusted' THEN e.envelope #>> '{data,deltaSeconds}'
         ELSE e.envelope #>> '{data,trainId}' END AS number,
    CASE e.event_type
        WHEN 'infinite.training.started' THEN e.envelope #>> '{data,trainName}'
        WHEN 'infinite.training.stopped' THEN e.envelope #>> '{data,reason}'
    END AS text,
    CASE WHEN e.event_type = 'infinite.training.started'
         THEN e.envelope #>> '{data,userId}' END AS user_id,
    CASE WHEN e.event_type = 'infinite.training.started'
         THEN e.envelope #>> '{data,userName}' END AS user_name,
    CASE WHEN e.event_type = 'infinite.training.started'
         THEN e.envelope #>> '{data,leaseSeconds}' END AS lease,
    CASE WHEN e.event_type = 'infinite.pack.purchased' THEN e.envelope::text END AS envelope"""

# One part of the ledger (packs by id modulo `parts`), up to a position.
STEPS_UP_TO: Final = f"""
SELECT {_STEP_COLUMNS}
FROM ledger_events AS e
WHERE e.position <= %(upto)s AND e.user_pack_id %% %(parts)s = %(part)s
ORDER BY e.user_pack_id, e.position
"""

PACK_STEPS_UP_TO: Final = f"""
SELECT {_STEP_COLUMNS}
FROM ledger_events AS e
WHERE e.user_pack_id = ANY(%(packs)s) AND e.position <= %(upto)s
ORDER BY e.user_pack_id, e.position
"""

# Verification parses every envelope in full, as the consumer does.
ENVELOPES: Final = """
SELECT user_pack_id, position, envelope::text
FROM ledger_events
ORDER BY user_pack_id, position
"""


def parts(query: str, upto: int, count: int) -> list[tuple[str, dict[str, int]]]:
    """`query` for each of `count` parts of the ledger."""
    return [(query, {"upto": upto, "parts": count, "part": part}) for part in range(count)]


LIVE_PACKS: Final = f"SELECT {PACK_COLUMNS} FROM packs ORDER BY user_pack_id"
LIVE_USAGE: Final = (
    f"SELECT user_pack_id, {USAGE_COLUMNS} FROM usage_records ORDER BY user_pack_id, log_id"
)


def copy_packs(suffix: str = NEXT) -> str:
    return f"COPY packs{suffix} ({PACK_COLUMNS}) FROM STDIN"


def copy_usage(suffix: str = NEXT) -> str:
    return f"COPY usage_records{suffix} ({USAGE_COLUMNS}) FROM STDIN"


def drop_leftovers() -> list[str]:
    """What an interrupted replay may have left behind."""
    return [
        f"DROP TABLE IF EXISTS {table}{suffix}" for suffix in (NEXT, OLD) for table in READ_MODELS
    ]


def create_next_tables() -> str:
    """The DDL of the fresh read models: the schema's own, under the `_next` names."""
    return read_model_tables(NEXT)


# The keys and indexes of a fresh table, dropped while it is loaded and built afterwards
# from these definitions (faster than maintaining them row by row).
TABLE_KEYS: Final = """
SELECT conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u', 'x')
ORDER BY conname
"""
TABLE_INDEX_DEFINITIONS: Final = """
SELECT i.relname, pg_get_indexdef(x.indexrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = to_regclass(%s)
ORDER BY i.relname
"""


# Refolded packs in the fresh tables: their rows are replaced as a whole.
DELETE_NEXT_PACKS: Final = f"DELETE FROM packs{NEXT} WHERE user_pack_id = ANY(%s)"
DELETE_NEXT_USAGE: Final = f"DELETE FROM usage_records{NEXT} WHERE user_pack_id = ANY(%s)"

# The indexes of a table (their names carry the table's name: they are renamed with it).
TABLE_INDEXES: Final = """
SELECT i.relname
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.oid = to_regclass(%s)
ORDER BY i.relname
"""

# The privileges granted on a live table, to grant them on its replacement too.
TABLE_GRANTS: Final = """
SELECT a.privilege_type,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
       a.is_grantable
FROM pg_class c
CROSS JOIN LATERAL aclexplode(c.relacl) AS a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner
"""
