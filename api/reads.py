"""The API's reads: run the statements of `services.store.read_sql` as of one instant."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, LiteralString, Protocol
from zoneinfo import ZoneInfo

from api import views
from api.auth import Caller
from api.db import Row
from api.envelope import ApiError, Code
from api.params import PackListQuery, RecordListQuery
from services.store import read_sql


class Reader(Protocol):
    """Where the statements run: `api.db.Database` (live), or an as-of snapshot
    (`api.as_of.reader`)."""

    async def fetch_all(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]: ...

    async def fetch_one(self, query: LiteralString, params: Mapping[str, Any]) -> Row | None: ...


def _scope(caller: Caller, at: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"at": at}
    if not caller.is_admin:
        params["user_id"] = caller.user_id
    return params


async def pack_list(
    db: Reader, caller: Caller, query: PackListQuery, at: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    flags = {
        "every_owner": caller.is_admin,
        "by_duration_type": query.duration_type is not None,
        "by_status": query.status is not None,
        "only_free": query.only_free,
    }
    params = _scope(caller, at)
    params.update(
        duration_type=query.duration_type,
        status=query.status,
        limit=query.page.size,
        offset=query.page.offset,
    )
    rows = await db.fetch_all(read_sql.pack_list(order=query.order, **flags), params)
    if rows:
        total = rows[0][0]
    elif query.page.offset == 0:
        total = 0
    else:  # a page past the end: its rows carry no total
        counted = await db.fetch_one(read_sql.pack_count(**flags), params)
        total = counted[0] if counted else 0
    page = [row[1:] for row in rows]
    return views.pack_list(page, total, query.page.number, query.page.size, zone)


async def pack_detail(
    db: Reader, caller: Caller, user_pack_id: int, at: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    statement = read_sql.PACK_DETAIL_ANY_OWNER if caller.is_admin else read_sql.PACK_DETAIL
    params = _scope(caller, at)
    params["user_pack_id"] = user_pack_id
    row = await db.fetch_one(statement, params)
    if row is None:  # absent or someone else's: the caller cannot tell which
        raise ApiError(Code.NOT_FOUND)
    return views.pack_detail(row, zone)


async def record_list(
    db: Reader, caller: Caller, query: RecordListQuery, at: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    flags = {"every_owner": caller.is_admin, "by_pack": query.user_pack_id is not None}
    params = _scope(caller, at)
    params.update(user_pack_id=query.user_pack_id, limit=query.page.size, offset=query.page.offset)
    rows = await db.fetch_all(read_sql.record_list(order=query.order, **flags), params)
    if rows:
        total = rows[0][0]
    elif query.page.offset == 0:
        total = 0
    else:
        counted = await db.fetch_one(read_sql.record_count(**flags), params)
        total = counted[0] if counted else 0
    page = [row[1:] for row in rows]
    return views.record_list(page, total, query.page.number, query.page.size, zone)


async def record_detail(
    db: Reader, caller: Caller, log_id: int, at: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    statement = read_sql.RECORD_DETAIL_ANY_OWNER if caller.is_admin else read_sql.RECORD_DETAIL
    params = _scope(caller, at)
    params["log_id"] = log_id
    row = await db.fetch_one(statement, params)
    if row is None:
        raise ApiError(Code.NOT_FOUND)
    return views.record_detail(row, zone)
