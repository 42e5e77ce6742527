"""No endpoint, filter or order lets a user see another user's data; an admin sees all."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.params import PACK_ORDER_KEYS, RECORD_ORDER_KEYS
from tests.api.support import (
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    FixedClock,
    bearer,
    call,
    insert_pack,
    insert_record,
    ok,
)

A, B, ADMIN = 1001, 1002, 9
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
# Packs: owner -> ids (free timing, training timing, out of time, activity).
PACKS = {A: [11, 12, 13, 14], B: [21, 22, 23, 24]}
# Records: id -> (pack, who ran it). 102 is B's training on A's pack; 202 is A's on B's.
RECORDS = {101: (11, A), 102: (12, B), 103: (12, A), 201: (21, B), 202: (22, A), 203: (22, B)}
OWNER = {pack: owner for owner, packs in PACKS.items() for pack in packs}

PACK_FILTERS: list[dict[str, Any]] = [
    {},
    {"isFreeStatus": True},
    {"isFreeStatus": False},
    {"userPackStatus": "status.free"},
    {"userPackStatus": "userPackStatus.training"},
    {"userPackStatus": "status.outOfTime"},
    {"packDurationType": "type.timing"},
    {"packDurationType": "packDurationType.activity"},
    {"isFreeStatus": True, "packDurationType": "type.timing"},
]


@pytest.fixture(autouse=True)
def two_users(db: psycopg.Connection, clock: FixedClock) -> None:
    clock.set(NOW)
    for owner, (free, training, out, activity) in PACKS.items():
        insert_pack(db, user_pack_id=free, user_id=owner, pack_name=f"free-{owner}")
        insert_pack(
            db,
            user_pack_id=training,
            user_id=owner,
            pack_name=f"training-{owner}",
            open_starts=[NOW - timedelta(minutes=5)],
        )
        insert_pack(db, user_pack_id=out, user_id=owner, pack_name=f"out-{owner}", charged=3600)
        insert_pack(
            db,
            user_pack_id=activity,
            user_id=owner,
            pack_name=f"activity-{owner}",
            duration_type="type.activity",
            granted=0,
        )
    for log_id, (pack, runner) in RECORDS.items():
        insert_record(
            db,
            log_id=log_id,
            user_pack_id=pack,
            owner_user_id=OWNER[pack],
            user_id=runner,
            user_name=f"user-{runner}",
            train_name=f"train-{log_id}",
            start_time=NOW - timedelta(minutes=log_id % 7 + 10),
            end_time=None if log_id in (103, 203) else NOW - timedelta(minutes=1),
        )


def _visible_packs(user: int) -> set[int]:
    return set(OWNER) if user == ADMIN else set(PACKS[user])


def _visible_records(user: int) -> set[int]:
    return {log for log, (pack, _) in RECORDS.items() if user == ADMIN or OWNER[pack] == user}


ORDERS = [
    [{"key": key, "sort": sort}]
    for key, sort in itertools.product(PACK_ORDER_KEYS, ("asc", "desc"))
]


@pytest.mark.parametrize("user", [A, B, ADMIN])
async def test_pack_list_shows_own_packs_only(client: httpx.AsyncClient, user: int) -> None:
    headers = bearer(user, admin=user == ADMIN)
    everything = await ok(client, PACK_LIST, {"pageSize": 100}, headers)
    assert {int(p["userPackId"]) for p in everything["userPackList"]} == _visible_packs(user)
    assert everything["total"] == str(len(_visible_packs(user)))
    for filters, order in itertools.product(PACK_FILTERS, [None, *ORDERS]):
        body = {**filters, "pageSize": 100, **({"order": order} if order else {})}
        data = await ok(client, PACK_LIST, body, headers)
        seen = {int(p["userPackId"]) for p in data["userPackList"]}
        assert seen <= _visible_packs(user), body
        assert data["total"] == str(len(seen)), body


async def test_filters_select_the_expected_packs_of_the_caller(client: httpx.AsyncClient) -> None:
    expected = {
        "isFreeStatus": {11, 14},
        "status.free": {11, 14},
        "status.training": {12},
        "status.outOfTime": {13},
        "type.timing": {11, 12, 13},
        "type.activity": {14},
    }
    bodies: dict[str, dict[str, Any]] = {
        "isFreeStatus": {"isFreeStatus": True},
        "status.free": {"userPackStatus": "status.free"},
        "status.training": {"userPackStatus": "status.training"},
        "status.outOfTime": {"userPackStatus": "status.outOfTime"},
        "type.timing": {"packDurationType": "type.timing"},
        "type.activity": {"packDurationType": "type.activity"},
    }
    for name, body in bodies.items():
        data = await ok(client, PACK_LIST, body, bearer(A))
        assert {int(p["userPackId"]) for p in data["userPackList"]} == expected[name], name
    both = {"isFreeStatus": True, "userPackStatus": "status.training"}
    data = await ok(client, PACK_LIST, both, bearer(A))
    assert data["userPackList"] == [] and data["total"] == "0"


@pytest.mark.parametrize("user", [A, B, ADMIN])
async def test_log_list_shows_records_on_own_packs_only(
    client: httpx.AsyncClient, user: int
) -> None:
    headers = bearer(user, admin=user == ADMIN)
    orders = [[]] + [
        [{"key": key, "sort": sort}]
        for key, sort in itertools.product(RECORD_ORDER_KEYS, ("asc", "desc", ""))
    ]
    for order, pack in itertools.product(orders, [None, *OWNER]):
        body: dict[str, Any] = {"order": order, "pageNum": 1, "pageSize": 100}
        if pack is not None:
            body["packId"] = str(pack)
        data = await ok(client, LOG_LIST, body, headers)
        seen = {int(item["logId"]) for item in data["list"]}
        expected = _visible_records(user)
        if pack is not None:
            expected = {log for log in expected if RECORDS[log][0] == pack}
        assert seen == expected, body
        assert data["total"] == len(seen)


async def test_running_a_training_on_a_pack_does_not_reveal_it(client: httpx.AsyncClient) -> None:
    """B ran record 102 on A's pack 12: it is A's record, not B's."""
    data = await ok(client, LOG_LIST, {"order": [], "pageNum": 1, "pageSize": 100}, bearer(B))
    assert "102" not in {item["logId"] for item in data["list"]}
    answer = await call(client, LOG_DETAIL, {"logId": 102}, bearer(B))
    assert answer["code"] == "General.NotFound"
    detail = await ok(client, LOG_DETAIL, {"logId": 102}, bearer(A))
    assert (detail["userId"], detail["userName"]) == (B, f"user-{B}")


@pytest.mark.parametrize(
    ("path", "field", "other", "missing"),
    [
        (PACK_DETAIL, "userPackId", 21, 99),
        (PACK_DETAIL, "userPackId", 24, 2**63 - 1),
        (LOG_DETAIL, "logId", 201, 999),
        (LOG_DETAIL, "logId", 202, 12345678901),
    ],
)
async def test_details_of_others_look_exactly_like_missing_ones(
    client: httpx.AsyncClient, path: str, field: str, other: int, missing: int
) -> None:
    answers = []
    for value in (other, str(other), missing, str(missing)):
        response = await client.post(path, json={field: value}, headers=bearer(A))
        answers.append((response.status_code, response.content))
    assert len(set(answers)) == 1
    assert answers[0] == (200, b'{"code":"General.NotFound","data":{},"msg":"NotFound"}')
    admin = await ok(client, path, {field: other}, bearer(ADMIN, admin=True))
    assert admin


@pytest.mark.parametrize("user", [A, B])
async def test_each_owner_reads_every_detail_of_their_own(
    client: httpx.AsyncClient, user: int
) -> None:
    for pack in PACKS[user]:
        data = await ok(client, PACK_DETAIL, {"userPackId": pack}, bearer(user))
        assert data["userPackId"] == pack
    for log in _visible_records(user):
        data = await ok(client, LOG_DETAIL, {"logId": log}, bearer(user))
        assert data["pack"]["packId"] == RECORDS[log][0]
