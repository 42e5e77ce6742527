"""The SQL of time travel (`asOf`): the ledger as it was at an instant, in temporary tables.

An as-of read runs in one transaction on one connection: it chooses the packs the read
may touch (`relevant_packs`, `RECORD_PACK`), loads their ledger entries with
`event_time <= as_of` (`ENTRIES`), folds them in Python, and fills the temporary tables
`packs` and `usage_records` (`CREATE_*`, `COPY_*`). PostgreSQL resolves the unqualified
names of `services.store.read_sql` to the session's temporary schema first, so the very
statements of the live reads then answer as of that instant. The tables are dropped at
commit (or rollback).

The transaction must be able to write its temporary tables: the API's sessions are
`default_transaction_read_only`, so `BEGIN_AS_OF` makes this one read-write (it writes
nothing else; the role needs the database's TEMPORARY privilege, which PUBLIC has by
default). Run every statement here and every read inside the transaction unprepared
(`prepare=False`): a plan prepared earlier on the connection for the live tables must not
be reused, and a plan of the temporary tables must not outlive them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Final

from projections.read_models import PackRow, UsageRow

BEGIN_AS_OF: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ WRITE"
"""The first statement of the as-of transaction: one snapshot, temporary tables allowed."""
NO_FLUSH: Final = "SET LOCAL synchronous_commit = off"
"""The transaction only writes the catalog rows of its temporary tables: its commit need
not wait for the WAL flush (it halves the cost of a small as-of read)."""


def relevant_packs(*, every_owner: bool, one_pack: bool) -> str:
    """The ids of the packs an as-of read may show, from the live read model.

    The caller's packs (`user_id`), or every pack for an admin; with `one_pack` only
    `user_pack_id`. Parameters: user_id (unless every_owner), user_pack_id (one_pack).
    """
    where = ["true" if every_owner else "user_id = %(user_id)s"]
    if one_pack:
        where.append("user_pack_id = %(user_pack_id)s")
    return f"SELECT user_pack_id FROM packs WHERE {' AND '.join(where)}"


RECORD_PACK: Final = """
SELECT user_pack_id FROM usage_records WHERE log_id = %(log_id)s AND owner_user_id = %(user_id)s
"""
RECORD_PACK_ANY_OWNER: Final = """
SELECT user_pack_id FROM usage_records WHERE log_id = %(log_id)s
"""
"""The pack of one usage record (for the record detail), as the live read model says."""

ENTRIES: Final = """
SELECT user_pack_id, position, envelope
FROM ledger_events
WHERE user_pack_id = ANY(%(pack_ids)s) AND event_time <= %(as_of)s
"""
"""Rows: (user_pack_id, position, envelope) of every event of the packs up to `as_of`."""

# Run before the temporary tables exist: `LIKE packs` is still the live table. Without
# the indexes: they hold only the packs of one read, and building indexes costs more than
# sorting those rows (about 3 ms of the ~8 ms of a one-pack as-of read).
CREATE_PACKS: Final = "CREATE TEMPORARY TABLE packs (LIKE packs INCLUDING DEFAULTS) ON COMMIT DROP"
CREATE_USAGE_RECORDS: Final = (
    "CREATE TEMPORARY TABLE usage_records (LIKE usage_records INCLUDING DEFAULTS) ON COMMIT DROP"
)

# The read models' columns, as `projections.read_models` declares them.
PACK_COLUMNS: Final = tuple(f.name for f in fields(PackRow))
USAGE_COLUMNS: Final = tuple(f.name for f in fields(UsageRow))
COPY_PACKS: Final = f"COPY pg_temp.packs ({', '.join(PACK_COLUMNS)}) FROM STDIN"
COPY_USAGE_RECORDS: Final = f"COPY pg_temp.usage_records ({', '.join(USAGE_COLUMNS)}) FROM STDIN"
