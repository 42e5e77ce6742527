"""The API's reads: run the statements of `services.store.read_sql` as of one instant."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, LiteralString, Protocol

from psycopg.rows import AsyncRowFactory

from api import rows, views
from api.auth import Caller
from api.db import Row
from api.envelope import ApiError, Code
from api.params import TrainPackLogListRequest, UserPackListRequest
from services.store import read_sql


class Reader(Protocol):
    """Where the statements run: `api.db.Database` (live), or an as-of snapshot
    (`api.as_of.reader`)."""

    async def fetch_all(
        self, query: LiteralString, params: Mapping[str, Any], row_factory: AsyncRowFactory[Row]
    ) -> list[Row]: ...

    async def fetch_one(
        self, query: LiteralString, params: Mapping[str, Any], row_factory: AsyncRowFactory[Row]
    ) -> Row | None: ...


def _scope(caller: Caller, at: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"at": at}
    if not caller.is_admin:
        params["user_id"] = caller.user_id
    return params


Paged = UserPackListRequest | TrainPackLogListRequest


def _offset(query: Paged) -> int:
    return (query.page_num - 1) * query.page_size


async def _count(
    db: Reader, statement: LiteralString, params: Mapping[str, Any], query: Paged
) -> int:
    """How many rows match, when a page came back empty: none if it was the first."""
    if query.page_num == 1:
        return 0
    counted = await db.fetch_one(statement, params, rows.COUNT)
    return counted.count if counted else 0


async def pack_list(
    db: Reader, caller: Caller, query: UserPackListRequest, at: datetime
) -> dict[str, Any]:
    flags = {
        "every_owner": caller.is_admin,
        "by_duration_type": query.duration_type is not None,
        "by_status": query.status is not None,
        "only_free": bool(query.only_free),
    }
    params = _scope(caller, at)
    params.update(
        duration_type=query.duration_type,
        status=query.status,
        limit=query.page_size,
        offset=_offset(query),
    )
    statement = read_sql.pack_list(order=query.sort_order, **flags)
    page = await db.fetch_all(statement, params, rows.PACK_PAGE)
    if page:
        total = page[0].total
    else:  # a page past the end: its rows carry no total
        total = await _count(db, read_sql.pack_count(**flags), params, query)
    return views.pack_list(page, total, query.page_num, query.page_size)


async def pack_detail(
    db: Reader, caller: Caller, user_pack_id: int, at: datetime
) -> dict[str, Any]:
    statement = read_sql.PACK_DETAIL_ANY_OWNER if caller.is_admin else read_sql.PACK_DETAIL
    params = _scope(caller, at)
    params["user_pack_id"] = user_pack_id
    pack = await db.fetch_one(statement, params, rows.PACK_DETAILS)
    if pack is None:  # absent or someone else's: the caller cannot tell which
        raise ApiError(Code.NOT_FOUND)
    return views.pack_detail(pack)


async def record_list(
    db: Reader, caller: Caller, query: TrainPackLogListRequest, at: datetime
) -> dict[str, Any]:
    flags = {"every_owner": caller.is_admin, "by_pack": query.user_pack_id is not None}
    params = _scope(caller, at)
    params.update(user_pack_id=query.user_pack_id, limit=query.page_size, offset=_offset(query))
    statement = read_sql.record_list(order=query.sort_order, **flags)
    page = await db.fetch_all(statement, params, rows.RECORD_PAGE)
    if page:
        total = page[0].total
    else:
        total = await _count(db, read_sql.record_count(**flags), params, query)
    return views.record_list(page, total, query.page_num, query.page_size)


async def record_detail(db: Reader, caller: Caller, log_id: int, at: datetime) -> dict[str, Any]:
    statement = read_sql.RECORD_DETAIL_ANY_OWNER if caller.is_admin else read_sql.RECORD_DETAIL
    params = _scope(caller, at)
    params["log_id"] = log_id
    record = await db.fetch_one(statement, params, rows.RECORD_DETAILS)
    if record is None:
        raise ApiError(Code.NOT_FOUND)
    return views.record_detail(record)
