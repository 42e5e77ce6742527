"""Pages: every order walks all rows once, with a unique tie-breaker; inserts between pages.

Pages are offsets (pageNum/pageSize), so what a walk can promise while rows are added is
limited, and these tests assert exactly that:
- with no writes, walking the pages of any order yields every row once, in order;
- rows added *after* the walk's position (e.g. newer sessions, walking `createTime asc`)
  never disturb it: no duplicate, no row skipped;
- rows added *before* the position (walking the default `createTime desc`) shift later
  pages: no row that existed at the start is skipped, but one may be seen twice (at most
  once per row added).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.params import PACK_ORDER_KEYS, RECORD_ORDER_KEYS
from tests.api.support import (
    LOG_LIST,
    PACK_LIST,
    FixedClock,
    bearer,
    insert_pack,
    insert_record,
    ok,
)

USER, OTHER = 5, 6
NOW = datetime(2024, 3, 1, tzinfo=UTC)
BASE = NOW - timedelta(days=10)
INFINITY = float("inf")


def _record_rows(db: psycopg.Connection) -> list[dict[str, Any]]:
    """95 records of USER with many ties, and some of OTHER."""
    insert_pack(db, user_pack_id=1, user_id=USER, granted=10**9)
    insert_pack(db, user_pack_id=2, user_id=OTHER, granted=10**9)
    rows = []
    for index in range(95):
        log_id = 1000 + (index * 37) % 95  # ids not in start order
        start = BASE + timedelta(minutes=(index // 3))  # three records per start time
        running = index % 10 == 0
        length = [60, 120, 60, 300, 3600][index % 5]
        row = {
            "log_id": log_id,
            "train_name": f"train-{'abcde'[index % 5]}",
            "user_name": f"user-{index % 3}",
            "start_time": start,
            "end_time": None if running else start + timedelta(seconds=length),
        }
        insert_record(db, user_pack_id=1, owner_user_id=USER, **row)
        row["seconds"] = int(((NOW if running else row["end_time"]) - start).total_seconds())
        rows.append(row)
    for index in range(20):
        insert_record(
            db,
            log_id=5000 + index,
            user_pack_id=2,
            owner_user_id=OTHER,
            start_time=BASE + timedelta(minutes=index),
        )
    return rows


RECORD_VALUE = {
    "log_id": lambda row: row["log_id"],
    "train_name": lambda row: row["train_name"],
    "user_name": lambda row: row["user_name"],
    "seconds": lambda row: row["seconds"],
    "start_time": lambda row: row["start_time"].timestamp(),
    # A running session has not ended: after every ended one in ascending order.
    "end_time": lambda row: INFINITY if row["end_time"] is None else row["end_time"].timestamp(),
}


async def _walk(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    page_size: int,
    items: str,
    key: str,
    between_pages: Any = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    seen: list[str] = []
    pages = []
    page = 1
    while True:
        data = await ok(
            client, path, {**body, "pageNum": page, "pageSize": page_size}, bearer(USER)
        )
        pages.append(data)
        if not data[items]:
            return seen, pages
        seen.extend(item[key] for item in data[items])
        if between_pages is not None:
            await between_pages(page)
        page += 1


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("api_key", sorted(RECORD_ORDER_KEYS))
async def test_every_record_order_walks_each_row_once(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    clock: FixedClock,
    api_key: str,
    descending: bool,
) -> None:
    clock.set(NOW)
    rows = _record_rows(db)
    sort_key = RECORD_ORDER_KEYS[api_key]
    value = RECORD_VALUE[sort_key]
    expected = [
        str(row["log_id"])
        for row in sorted(rows, key=lambda row: (value(row), row["log_id"]), reverse=descending)
    ]
    order = [{"key": api_key, "sort": "desc" if descending else "asc"}]
    seen, pages = await _walk(client, LOG_LIST, {"order": order}, 10, "list", "logId")
    assert seen == expected
    assert all(page["total"] == 95 and page["pageTotal"] == 10 for page in pages)
    assert [len(page["list"]) for page in pages] == [10] * 9 + [5, 0]


async def test_a_page_past_the_end_still_counts(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    _record_rows(db)
    data = await ok(client, LOG_LIST, {"order": [], "pageNum": 50, "pageSize": 10}, bearer(USER))
    assert (data["list"], data["total"], data["pageTotal"], data["pageCurrent"]) == ([], 95, 10, 50)
    data = await ok(
        client, LOG_LIST, {"order": [], "pageNum": 3, "pageSize": 10, "packId": 2}, bearer(USER)
    )
    assert (data["list"], data["total"]) == ([], 0)
    data = await ok(client, PACK_LIST, {"pageNum": 9, "pageSize": 1}, bearer(USER))
    assert (data["userPackList"], data["total"], data["pageTotal"]) == ([], "1", 1)
    data = await ok(
        client, PACK_LIST, {"pageNum": 9, "userPackStatus": "status.free"}, bearer(USER)
    )
    assert (data["userPackList"], data["total"], data["pageTotal"]) == ([], "1", 1)


def _pack_rows(db: psycopg.Connection) -> list[dict[str, Any]]:
    """45 packs of USER with ties in every sort key."""
    rows = []
    for index in range(45):
        user_pack_id = 100 + (index * 17) % 45
        activity = index % 4 == 3
        state = index % 3  # 0 free, 1 training, 2 out of time
        granted = 0 if activity else [600, 1200, 600][index % 3]
        charged = granted if state == 2 else 0
        starts = [NOW - timedelta(seconds=60)] if state == 1 else []
        row = {
            "user_pack_id": user_pack_id,
            "pack_name": f"pack-{'xyz'[index % 3]}",
            "duration_type": "type.activity" if activity else "type.timing",
            "buy_datetime": BASE + timedelta(hours=index // 4),
            "granted": granted,
            "charged": charged,
            "open_starts": starts,
            "activity_end_time": NOW - timedelta(days=1) if activity and state == 2 else None,
        }
        insert_pack(db, user_id=USER, **row)
        if activity:
            remaining = 0
            status = (
                "status.outOfTime"
                if state == 2
                else ("status.training" if starts else "status.free")
            )
        else:
            remaining = max(0, granted - charged - 60 * len(starts))
            status = (
                "status.outOfTime"
                if remaining == 0
                else ("status.training" if starts else "status.free")
            )
        row.update(remaining=remaining, status=status)
        rows.append(row)
    insert_pack(db, user_pack_id=999, user_id=OTHER)
    return rows


PACK_VALUE = {
    "user_pack_id": lambda row: row["user_pack_id"],
    "pack_name": lambda row: row["pack_name"],
    "status": lambda row: ["status.free", "status.training", "status.outOfTime"].index(
        row["status"]
    ),
    "duration_type": lambda row: ["type.timing", "type.activity"].index(row["duration_type"]),
    "remaining": lambda row: row["remaining"],
    "buy_datetime": lambda row: row["buy_datetime"],
}


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("api_key", sorted(PACK_ORDER_KEYS))
async def test_every_pack_order_walks_each_row_once(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    clock: FixedClock,
    api_key: str,
    descending: bool,
) -> None:
    clock.set(NOW)
    rows = _pack_rows(db)
    value = PACK_VALUE[PACK_ORDER_KEYS[api_key]]
    expected = [
        str(row["user_pack_id"])
        for row in sorted(
            rows, key=lambda row: (value(row), row["user_pack_id"]), reverse=descending
        )
    ]
    order = [{"key": api_key, "sort": "desc" if descending else "asc"}]
    seen, pages = await _walk(client, PACK_LIST, {"order": order}, 7, "userPackList", "userPackId")
    assert seen == expected
    assert all(page["total"] == "45" and page["pageTotal"] == 7 for page in pages)


async def test_the_default_pack_order_is_newest_purchase_first(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    clock.set(NOW)
    rows = _pack_rows(db)
    expected = [
        str(row["user_pack_id"])
        for row in sorted(
            rows, key=lambda row: (row["buy_datetime"], row["user_pack_id"]), reverse=True
        )
    ]
    seen, _ = await _walk(client, PACK_LIST, {}, 10, "userPackList", "userPackId")
    assert seen == expected


async def test_several_order_keys_apply_in_turn(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    clock.set(NOW)
    rows = _record_rows(db)
    order = [{"key": "trainName", "sort": "asc"}, {"key": "duration", "sort": "desc"}]
    seen, _ = await _walk(client, LOG_LIST, {"order": order}, 10, "list", "logId")
    # The tie-breaker follows the first key's direction: log_id ascending here.
    expected = [
        str(row["log_id"])
        for row in sorted(rows, key=lambda row: (row["train_name"], -row["seconds"], row["log_id"]))
    ]
    assert seen == expected


def _new_record(db: psycopg.Connection, log_id: int, start: datetime) -> None:
    insert_record(db, log_id=log_id, user_pack_id=1, owner_user_id=USER, start_time=start)


async def test_rows_added_after_the_position_do_not_disturb_a_walk(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    rows = _record_rows(db)
    original = [
        str(row["log_id"])
        for row in sorted(rows, key=lambda row: (row["start_time"], row["log_id"]))
    ]
    added: list[int] = []

    async def add_newer(page: int) -> None:
        for n in range(3):
            log_id = 9000 + page * 10 + n
            _new_record(db, log_id, NOW + timedelta(minutes=page))  # after every original
            added.append(log_id)

    order = [{"key": "createTime", "sort": "asc"}]
    seen, _ = await _walk(client, LOG_LIST, {"order": order}, 10, "list", "logId", add_newer)
    assert len(seen) == len(set(seen))  # no duplicates
    assert seen[: len(original)] == original  # no skips, in order
    assert set(seen[len(original) :]) <= {str(log_id) for log_id in added}


async def test_rows_added_ahead_of_the_position_skip_nothing(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    rows = _record_rows(db)
    original = {str(row["log_id"]) for row in rows}
    added = 0

    async def add_newest(page: int) -> None:
        nonlocal added
        _new_record(db, 9000 + page, NOW + timedelta(minutes=page))  # first in createTime desc
        added += 1

    seen, _ = await _walk(client, LOG_LIST, {"order": []}, 10, "list", "logId", add_newest)
    assert original <= set(seen)  # nothing that existed at the start is skipped
    duplicates = len(seen) - len(set(seen))
    assert duplicates <= added


async def test_concurrent_inserts_during_a_walk(
    client: httpx.AsyncClient, db: psycopg.Connection, db_url: str
) -> None:
    """A writer adds sessions as fast as it can while a reader walks `createTime asc`."""
    rows = _record_rows(db)
    original = [
        str(row["log_id"])
        for row in sorted(rows, key=lambda row: (row["start_time"], row["log_id"]))
    ]
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as connection:
            while not stop.is_set():
                log_id = 20_000 + written
                await connection.execute(
                    "INSERT INTO usage_records (log_id, user_pack_id, owner_user_id, train_id,"
                    " train_name, user_id, user_name, start_time, start_event_id)"
                    " VALUES (%s, 1, %s, 1, 't', %s, 'u', %s, %s)",
                    (log_id, USER, USER, NOW + timedelta(seconds=written), f"e{log_id}"),
                )
                written += 1
                await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        seen: list[str] = []
        for page in range(1, 11):
            body = {
                "order": [{"key": "createTime", "sort": "asc"}],
                "pageNum": page,
                "pageSize": 10,
            }
            data = await ok(client, LOG_LIST, body, bearer(USER))
            seen.extend(item["logId"] for item in data["list"])
            assert data["total"] >= 95
            await asyncio.sleep(0.005)
    finally:
        stop.set()
        await task
    assert written > 0
    assert len(seen) == len(set(seen))
    assert seen[: len(original)] == original
