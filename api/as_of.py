"""Time travel: reads as of an earlier instant (`asOf`), from the ledger's event times.

Without `asOf` a read runs on the live read models (`api.db.Database`). With it,
`reader` opens one transaction on one connection, folds the relevant packs' ledger
entries whose `event_time <= asOf` with the pure fold (`projections.fold.fold`) into
temporary tables `packs` and `usage_records` that shadow the live ones, and hands back a
reader on that connection: `api.reads` then runs the same statements, at `asOf`.
See `services.store.as_of_sql` and docs/api.md, "Time travel (`asOf`)".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg.rows import AsyncRowFactory
from psycopg.types.json import Jsonb

from api.auth import Caller
from api.db import Database, Row
from api.reads import Reader
from events.parse import parse_object
from projections.fold import fold
from projections.read_models import PackRow, UsageRow, pack_row, sql_type, usage_row
from projections.state import LedgerEntry
from projections.terms import DEFAULT_TERMS, Terms
from services.store import as_of_sql

_JSON_COLUMNS = [name for name in as_of_sql.PACK_COLUMNS if sql_type(PackRow, name) == "jsonb"]


def rows_as_of(
    entries: Iterable[tuple[int, int, object]], *, terms: Terms = DEFAULT_TERMS
) -> tuple[list[PackRow], list[UsageRow]]:
    """The read-model rows of the packs of `entries` ((user_pack_id, position, envelope),
    already limited to the instant): a pack without a purchase yet has no row."""
    by_pack: dict[int, list[LedgerEntry]] = defaultdict(list)
    for user_pack_id, position, envelope in entries:
        by_pack[user_pack_id].append(LedgerEntry(position, parse_object(envelope)))
    packs: list[PackRow] = []
    records: list[UsageRow] = []
    for user_pack_id, pack_entries in by_pack.items():
        result = fold(user_pack_id, pack_entries, terms=terms)
        if result.state.purchase is None:
            continue  # bought later (or never): the pack does not exist yet
        packs.append(pack_row(result.state))
        records.extend(usage_row(result.state, record) for record in result.records.values())
    return packs, records


class _Snapshot:
    """Reads on the connection that holds the temporary tables, never prepared."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def fetch_all(
        self, query: LiteralString, params: Mapping[str, Any], row_factory: AsyncRowFactory[Row]
    ) -> list[Row]:
        cursor = self.connection.cursor(binary=True, row_factory=row_factory)
        await cursor.execute(query, params, prepare=False)
        return await cursor.fetchall()

    async def fetch_one(
        self, query: LiteralString, params: Mapping[str, Any], row_factory: AsyncRowFactory[Row]
    ) -> Row | None:
        rows = await self.fetch_all(query, params, row_factory)
        return rows[0] if rows else None


async def _pack_ids(
    connection: psycopg.AsyncConnection[Any],
    caller: Caller,
    user_pack_id: int | None,
    log_id: int | None,
) -> list[int]:
    params: dict[str, Any] = {"user_id": caller.user_id, "user_pack_id": user_pack_id}
    if log_id is not None:
        params["log_id"] = log_id
        query = as_of_sql.RECORD_PACK_ANY_OWNER if caller.is_admin else as_of_sql.RECORD_PACK
    else:
        query = as_of_sql.relevant_packs(
            every_owner=caller.is_admin, one_pack=user_pack_id is not None
        )
    cursor = await connection.execute(query, params, prepare=False)
    return [int(row[0]) for row in await cursor.fetchall()]


async def _fill(
    connection: psycopg.AsyncConnection[Any], packs: list[PackRow], records: list[UsageRow]
) -> None:
    await connection.execute(as_of_sql.CREATE_PACKS, prepare=False)
    await connection.execute(as_of_sql.CREATE_USAGE_RECORDS, prepare=False)
    async with connection.cursor() as cursor:
        async with cursor.copy(as_of_sql.COPY_PACKS) as copy:
            for pack in packs:
                values = {name: getattr(pack, name) for name in as_of_sql.PACK_COLUMNS}
                for name in _JSON_COLUMNS:  # declared jsonb (`projections.read_models`)
                    values[name] = Jsonb(values[name])
                # Nothing reads the fold's snapshot here: an empty one keeps the copy cheap.
                values["snapshot"] = Jsonb({})
                await copy.write_row(list(values.values()))
        async with cursor.copy(as_of_sql.COPY_USAGE_RECORDS) as copy:
            for record in records:
                await copy.write_row([getattr(record, name) for name in as_of_sql.USAGE_COLUMNS])


@asynccontextmanager
async def reader(
    db: Database,
    caller: Caller,
    as_of: datetime | None,
    *,
    user_pack_id: int | None = None,
    log_id: int | None = None,
    terms: Terms = DEFAULT_TERMS,
) -> AsyncIterator[Reader]:
    """Where to read: the live database without `as_of`, else the state at `as_of`.

    `user_pack_id` (a detail, or a list filtered by pack) or `log_id` (a record detail)
    limit the packs folded to that one; otherwise every pack of the caller is folded (for
    an admin every pack of the ledger).
    """
    if as_of is None:
        yield db
        return
    async with db.pool.connection() as connection, connection.transaction():
        await connection.execute(as_of_sql.BEGIN_AS_OF, prepare=False)
        await connection.execute(as_of_sql.NO_FLUSH, prepare=False)
        pack_ids = await _pack_ids(connection, caller, user_pack_id, log_id)
        cursor = await connection.execute(
            as_of_sql.ENTRIES, {"pack_ids": pack_ids, "as_of": as_of}, prepare=False
        )
        entries = [(int(row[0]), int(row[1]), row[2]) for row in await cursor.fetchall()]
        packs, records = rows_as_of(entries, terms=terms)
        await _fill(connection, packs, records)
        yield _Snapshot(connection)
