"""Values as of the request: one instant per request, remaining time keeps falling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from tests.api.support import (
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    FixedClock,
    bearer,
    insert_pack,
    insert_record,
    ok,
)

USER = 77
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PAGE = {"pageNum": 1, "pageSize": 10}


async def _pack(client: httpx.AsyncClient, pack: int) -> tuple[int, str]:
    data = await ok(client, PACK_DETAIL, {"userPackId": pack}, bearer(USER))
    return data["duration"], data["userPackStatus"]


async def _listed(client: httpx.AsyncClient, **body: object) -> list[str]:
    data = await ok(client, PACK_LIST, body, bearer(USER))
    return [item["userPackId"] for item in data["userPackList"]]


async def test_a_running_pack_loses_time_between_requests(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    insert_pack(
        db,
        user_pack_id=1,
        user_id=USER,
        granted=3600,
        charged=600,
        open_starts=[T0 - timedelta(seconds=600)],
    )
    insert_pack(
        db,
        user_pack_id=2,
        user_id=USER,
        granted=3600,
        open_starts=[T0 - timedelta(seconds=100), T0 - timedelta(seconds=50)],
    )
    clock.set(T0)
    assert await _pack(client, 1) == (2400, "status.training")
    assert await _pack(client, 2) == (3450, "status.training")
    clock.advance(100)
    assert await _pack(client, 1) == (2300, "status.training")
    assert await _pack(client, 2) == (3250, "status.training")  # two sessions: twice as fast
    listed = await ok(client, PACK_LIST, {"order": [{"key": "userPackId"}]}, bearer(USER))
    assert [item["duration"] for item in listed["userPackList"]] == ["2300", "3250"]


async def test_status_flips_to_out_of_time_when_remaining_reaches_zero(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    insert_pack(
        db, user_pack_id=1, user_id=USER, granted=3600, open_starts=[T0 - timedelta(seconds=3599)]
    )
    insert_pack(db, user_pack_id=2, user_id=USER, granted=3600)  # free all along
    clock.set(T0)
    assert await _pack(client, 1) == (1, "status.training")
    assert await _listed(client, userPackStatus="status.training") == ["1"]
    assert await _listed(client, userPackStatus="status.outOfTime") == []
    assert await _listed(client, isFreeStatus=True) == ["2"]
    clock.advance(1)
    assert await _pack(client, 1) == (0, "status.outOfTime")
    assert await _listed(client, userPackStatus="status.training") == []
    assert await _listed(client, userPackStatus="status.outOfTime") == ["1"]
    assert await _listed(client, isFreeStatus=True) == ["2"]
    clock.advance(1000)  # never below 0
    assert await _pack(client, 1) == (0, "status.outOfTime")


async def test_an_activity_pack_runs_out_when_its_period_ends(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    insert_pack(
        db,
        user_pack_id=1,
        user_id=USER,
        duration_type="type.activity",
        granted=0,
        activity_end_time=T0 + timedelta(seconds=10),
    )
    clock.set(T0)
    assert await _pack(client, 1) == (0, "status.free")
    clock.advance(10)
    assert await _pack(client, 1) == (0, "status.outOfTime")


async def test_ordering_by_duration_follows_the_request_instant(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    insert_pack(db, user_pack_id=1, user_id=USER, granted=1000)  # free: stays at 1000
    insert_pack(db, user_pack_id=2, user_id=USER, granted=1500, open_starts=[T0])
    order = {"order": [{"key": "duration", "sort": "asc"}]}
    clock.set(T0)
    assert await _listed(client, **order) == ["1", "2"]
    clock.advance(600)  # pack 2: 900 left
    assert await _listed(client, **order) == ["2", "1"]


async def test_a_running_session_grows_in_the_log_list_and_detail(
    client: httpx.AsyncClient, db: psycopg.Connection, clock: FixedClock
) -> None:
    start = T0 - timedelta(seconds=3661)
    insert_pack(db, user_pack_id=1, user_id=USER, granted=7200, open_starts=[start])
    insert_record(db, log_id=10, user_pack_id=1, owner_user_id=USER, start_time=start)
    insert_record(
        db,
        log_id=11,
        user_pack_id=1,
        owner_user_id=USER,
        start_time=T0 - timedelta(seconds=4000),
        end_time=T0 - timedelta(seconds=3700),
    )
    clock.set(T0)
    listed = await ok(
        client, LOG_LIST, {"order": [{"key": "duration", "sort": "desc"}], **PAGE}, bearer(USER)
    )
    assert [(i["logId"], i["duration"]) for i in listed["list"]] == [
        ("10", "1时1分1秒"),
        ("11", "5分0秒"),
    ]
    detail = await ok(client, LOG_DETAIL, {"logId": 10}, bearer(USER))
    assert (detail["duration"], detail["endTime"]) == (3661, None)
    assert detail["pack"]["residueDuration"] == "58分59秒"  # 7200 - 3661 = 3539
    clock.advance(1)
    detail = await ok(client, LOG_DETAIL, {"logId": 10}, bearer(USER))
    assert (detail["duration"], detail["pack"]["residueDuration"]) == (3662, "58分58秒")
    listed = await ok(client, LOG_LIST, {"order": [], **PAGE}, bearer(USER))
    assert listed["list"][0]["duration"] == "1时1分2秒"


async def test_with_the_real_clock_time_has_passed_since_the_start(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    """No fixed clock: rows started in the past are read as of the real request time."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    insert_pack(db, user_pack_id=1, user_id=USER, granted=3600, open_starts=[start])
    remaining, status = await _pack(client, 1)
    assert status == "status.training"
    assert 3600 - 600 - 60 <= remaining <= 3600 - 600
    insert_pack(
        db,
        user_pack_id=2,
        user_id=USER,
        granted=300,
        open_starts=[datetime.now(UTC) - timedelta(minutes=6)],
    )
    assert await _pack(client, 2) == (0, "status.outOfTime")


async def test_one_instant_serves_the_whole_answer(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=30, microseconds=500_000)
    for pack in range(1, 51):
        insert_pack(db, user_pack_id=pack, user_id=USER, granted=10**6, open_starts=[start])
    data = await ok(client, PACK_LIST, {"pageSize": 50}, bearer(USER))
    assert len({item["duration"] for item in data["userPackList"]}) == 1
