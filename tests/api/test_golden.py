"""Each endpoint against the document's response example: names, JSON types, values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.support import (
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    FixedClock,
    bearer,
    insert_pack,
    insert_record,
    node,
    ok,
)

USER = 6748564
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def assert_same_json(actual: Any, expected: Any, path: str = "data") -> None:
    """Equal values of equal JSON types (in Python, 1 == 1.0 == True: not enough)."""
    assert type(actual) is type(expected), f"{path}: {actual!r} is not like {expected!r}"
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            assert_same_json(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, not {len(expected)}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(got, want, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.fixture(autouse=True)
def fixed_now(clock: FixedClock) -> None:
    clock.set(NOW)


async def test_pack_list_matches_the_document_example(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(
        db,
        user_pack_id=1,
        user_id=USER,
        pack_name="1",
        duration_type="type.activity",
        granted=0,
        buy_datetime=datetime(2020, 5, 8, 6, 15, 38, tzinfo=UTC),  # 14:15:38 in Shanghai
        nodes=[node(123, cpu=1, gpu=2, memory=10)],
    )
    data = await ok(
        client,
        PACK_LIST,
        {
            "order": [{"key": "packName", "sort": "asc"}],
            "isFreeStatus": False,
            "userPackStatus": "userPackStatus.free",
            "pageNum": 1,
            "pageSize": 10,
        },
        bearer(USER),
    )
    assert_same_json(
        data,
        {
            "total": "1",
            "pageCurrent": 1,
            "pageSize": 10,
            "pageTotal": 1,
            "userPackList": [
                {
                    "packName": "1",
                    "userPackId": "1",
                    "duration": "0",
                    "packDurationType": "type.activity",
                    "userPackStatus": "status.free",
                    "buyDatetime": "2020-05-08 14:15:38",
                    # the extension fields (CONTRACT.md section 3): no open session
                    "exhaustsAt": None,
                    "burnRate": 0,
                    "nodeList": [
                        {
                            "cpuCount": 1,
                            "gpuCount": 2,
                            "memorySize": 10,
                            "nodeId": 123,
                            "nodeName": "节点名称",
                            "nodeType": "nodeType.master",
                        }
                    ],
                }
            ],
        },
    )


async def test_pack_list_of_a_timing_pack_gives_remaining_seconds_as_digits(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=9223372036854775807, user_id=USER, granted=7200, charged=20)
    data = await ok(client, PACK_LIST, {}, bearer(USER))
    (item,) = data["userPackList"]
    assert item["userPackId"] == "9223372036854775807"
    assert item["duration"] == "7180"
    assert item["packDurationType"] == "type.timing"


async def test_pack_detail_matches_the_document_example(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(
        db,
        user_pack_id=76,
        user_id=USER,
        pack_name="测试资源",
        granted=200,
        charged=20,
        buy_datetime=datetime(2020, 5, 5, 8, 23, tzinfo=UTC),
        nodes=[node(123), node(124, name="w", node_type="nodeType.worker", cpu=8, gpu=0)],
    )
    data = await ok(client, PACK_DETAIL, {"userPackId": 76}, bearer(USER))
    assert_same_json(
        data,
        {
            "nodeList": [
                {
                    "cpuCount": 1,
                    "gpuCount": 2,
                    "memorySize": 10,
                    "nodeId": 123,
                    "nodeName": "节点名称",
                    "nodeType": "nodeType.master",
                },
                {
                    "cpuCount": 8,
                    "gpuCount": 0,
                    "memorySize": 10,
                    "nodeId": 124,
                    "nodeName": "w",
                    "nodeType": "nodeType.worker",
                },
            ],
            "userPackStatus": "status.free",
            "packDurationType": "type.timing",
            "userPackId": 76,
            "packName": "测试资源",
            "purchasingTime": "2020-05-05 16:23:00",
            "buyDatetime": "2020-05-05 16:23:00",
            "duration": 180,
            "exhaustsAt": None,
            "burnRate": 0,
        },
    )
    # The id may come as a string of digits (the list hands ids out as strings).
    assert await ok(client, PACK_DETAIL, {"userPackId": "76"}, bearer(USER)) == data
    assert await ok(client, PACK_DETAIL, {"userPackId": "076"}, bearer(USER)) == data


async def test_log_list_matches_the_document_example(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=6841534864138, user_id=USER, granted=10**6)
    start = datetime(2020, 4, 28, 4, 12, 12, tzinfo=UTC)  # 12:12:12 in Shanghai
    length = 86400 + 5 * 3600 + 30 * 60 + 15
    insert_record(
        db,
        log_id=3113523513121653132,
        user_pack_id=6841534864138,
        owner_user_id=USER,
        train_id=77,
        start_time=start,
        end_time=start + timedelta(seconds=length, microseconds=999_000),
    )
    data = await ok(
        client,
        LOG_LIST,
        {"order": [{"key": "", "sort": ""}], "pageNum": 1, "pageSize": 10},
        bearer(USER),
    )
    assert_same_json(
        data,
        {
            "list": [
                {
                    "usageRecordId": "3113523513121653132",
                    "logId": "3113523513121653132",
                    "packId": "6841534864138",
                    "trainId": "77",
                    "trainName": "训练名称",
                    "duration": "1天5时30分15秒",
                    "userName": "张三",
                    "createTime": "2020-04-28 12:12:12",
                    "endTime": "2020-04-29 17:42:27",
                    "finishTime": "2020-04-29 17:42:27",
                    "leaseEndsAt": None,  # extension: the session had no lease
                }
            ],
            "pageCurrent": 1,
            "pageSize": 10,
            "pageTotal": 1,
            "total": 1,
        },
    )


async def test_log_list_shows_a_running_session_without_end(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=5, user_id=USER, granted=10**6, open_starts=[NOW])
    insert_record(
        db,
        log_id=8,
        user_pack_id=5,
        owner_user_id=USER,
        start_time=NOW - timedelta(seconds=59),
    )
    data = await ok(client, LOG_LIST, {"order": [], "pageNum": 1, "pageSize": 10}, bearer(USER))
    (item,) = data["list"]
    assert item["endTime"] is None
    assert item["finishTime"] is None
    assert item["duration"] == "59秒"


async def test_log_detail_matches_the_document_example(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    remaining = 86400 + 5 * 3600 + 20 * 60 + 55
    insert_pack(
        db,
        user_pack_id=123,
        user_id=USER,
        pack_name="南栖",
        granted=remaining + 24,
        charged=24,
        nodes=[node(674654354, cpu=4, gpu=1, memory=8)],
    )
    insert_record(
        db,
        log_id=135646135,
        user_pack_id=123,
        owner_user_id=USER,
        train_id=5488464634,
        start_time=datetime(2020, 4, 28, 4, 12, 12, tzinfo=UTC),
        end_time=datetime(2020, 4, 28, 4, 12, 36, tzinfo=UTC),
    )
    data = await ok(client, LOG_DETAIL, {"logId": 135646135}, bearer(USER))
    assert_same_json(
        data,
        {
            "trainId": 5488464634,
            "trainName": "训练名称",
            "pack": {
                "packId": 123,
                "packName": "南栖",
                "residueDuration": "1天5时20分55秒",
                "nodeList": [
                    {
                        "nodeId": 674654354,
                        "nodeName": "节点名称",
                        "nodeType": "nodeType.master",
                        "nodeCount": 1,
                        "cpuCount": 4,
                        "gpuCount": 1,
                        "memorySize": 8,
                    }
                ],
            },
            "userId": USER,
            "userName": "张三",
            "duration": 24,
            "startTime": "2020-04-28 12:12:12",
            "endTime": "2020-04-28 12:12:36",
            "leaseEndsAt": None,  # extension: the session had no lease
        },
    )
    assert await ok(client, LOG_DETAIL, {"logId": "135646135"}, bearer(USER)) == data


async def test_log_detail_names_who_ran_the_training(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=3, user_id=USER)
    insert_record(
        db,
        log_id=4,
        user_pack_id=3,
        owner_user_id=USER,
        user_id=42,
        user_name="李四",
        start_time=NOW - timedelta(hours=1),
        end_time=NOW,
    )
    data = await ok(client, LOG_DETAIL, {"logId": 4}, bearer(USER))
    assert (data["userId"], data["userName"], data["duration"]) == (42, "李四", 3600)


async def test_times_follow_the_configured_zone(make_app: Any, db: psycopg.Connection) -> None:
    insert_pack(
        db, user_pack_id=1, user_id=USER, buy_datetime=datetime(2020, 5, 8, 6, 15, 38, tzinfo=UTC)
    )
    app = make_app(timezone="UTC")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        data = await ok(http, PACK_DETAIL, {"userPackId": 1}, bearer(USER))
    assert data["buyDatetime"] == "2020-05-08 06:15:38"


async def test_nodes_show_the_contract_fields_only(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    stored = {**node(5), "internal": "x"}
    del stored["nodeName"]
    insert_pack(db, user_pack_id=1, user_id=USER, nodes=[stored, node(6)])
    data = await ok(client, PACK_DETAIL, {"userPackId": 1}, bearer(USER))
    assert data["nodeList"][0] == {**node(5), "nodeName": None}
    assert data["nodeList"][1] == node(6)
