"""Every validation rule: all violations in `data.ruleViolated`, `msg` names the first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import inputs, params
from api.envelope import ApiError
from api.inputs import ID_MAX
from api.validation import Rule, validate
from tests.api.support import (
    ENDPOINTS,
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    bearer,
    call,
    insert_pack,
    insert_record,
    ok,
)

USER = 7
BIG = 2**63
PAGE = {"pageNum": 1, "pageSize": 10}
_ZONE = ZoneInfo("Asia/Shanghai")
_NOW = datetime(2024, 5, 1, tzinfo=UTC)

CASES: list[tuple[str, Any, dict[str, list[str]]]] = [
    # getUserPackDetail: userPackId notNull
    (PACK_DETAIL, {}, {"userPackId": ["notNull"]}),
    (PACK_DETAIL, {"userPackId": None}, {"userPackId": ["notNull"]}),
    (PACK_DETAIL, {"userPackId": ""}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": "abc"}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": " 12"}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": "-1"}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": 1.5}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": True}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": [1]}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": {"id": 1}}, {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, {"userPackId": 0}, {"userPackId": ["min"]}),
    (PACK_DETAIL, {"userPackId": "0"}, {"userPackId": ["min"]}),
    (PACK_DETAIL, {"userPackId": -3}, {"userPackId": ["min"]}),
    (PACK_DETAIL, {"userPackId": BIG}, {"userPackId": ["max"]}),
    (PACK_DETAIL, {"userPackId": str(BIG)}, {"userPackId": ["max"]}),
    (PACK_DETAIL, {"userPackId": "9" * 60}, {"userPackId": ["max"]}),
    # Leading zeros are not significant, however many (CONTRACT.md: ids below 2^63).
    (PACK_DETAIL, {"userPackId": "0" * 40 + str(BIG)}, {"userPackId": ["max"]}),
    (PACK_DETAIL, {"userPackId": "0" * 40}, {"userPackId": ["min"]}),
    (PACK_DETAIL, {"userPackId": "-" + "0" * 40 + "1"}, {"userPackId": ["typeMismatch"]}),
    (LOG_DETAIL, {"logId": "0" * 5000 + "9" * 20}, {"logId": ["max"]}),
    (PACK_DETAIL, b'{"userPackId": 18446744073709551616}', {"userPackId": ["max"]}),
    (PACK_DETAIL, b'{"userPackId": -99999999999999999999}', {"userPackId": ["min"]}),
    (PACK_DETAIL, b'{"userPackId": 5.0}', {"userPackId": ["typeMismatch"]}),
    (PACK_DETAIL, b'{"userPackId": 1e400}', {"body": ["malformedJson"]}),
    # getTrainPackLogDetail: logId notBlank
    (LOG_DETAIL, {}, {"logId": ["notBlank"]}),
    (LOG_DETAIL, {"logId": None}, {"logId": ["notBlank"]}),
    (LOG_DETAIL, {"logId": ""}, {"logId": ["notBlank"]}),
    (LOG_DETAIL, {"logId": "   "}, {"logId": ["notBlank"]}),
    (LOG_DETAIL, {"logId": "x1"}, {"logId": ["typeMismatch"]}),
    (LOG_DETAIL, {"logId": False}, {"logId": ["typeMismatch"]}),
    (LOG_DETAIL, {"logId": 0}, {"logId": ["min"]}),
    (LOG_DETAIL, {"logId": str(BIG)}, {"logId": ["max"]}),
    # getTrainPackLogList: order, pageNum, pageSize notNull
    (LOG_LIST, {}, {"order": ["notNull"], "pageNum": ["notNull"], "pageSize": ["notNull"]}),
    (LOG_LIST, {"order": None, **PAGE}, {"order": ["notNull"]}),
    (LOG_LIST, {"order": [], "pageNum": None, "pageSize": 10}, {"pageNum": ["notNull"]}),
    (LOG_LIST, {"order": [], "pageNum": 1}, {"pageSize": ["notNull"]}),
    (LOG_LIST, {"order": "createTime", **PAGE}, {"order": ["typeMismatch"]}),
    (LOG_LIST, {"order": [1], **PAGE}, {"order": ["typeMismatch"]}),
    (LOG_LIST, {"order": [{"key": "bogus"}], **PAGE}, {"order.key": ["inEnum"]}),
    (LOG_LIST, {"order": [{"key": "packName"}], **PAGE}, {"order.key": ["inEnum"]}),
    (LOG_LIST, {"order": [{"key": 3}], **PAGE}, {"order.key": ["typeMismatch"]}),
    (LOG_LIST, {"order": [{"key": "logId", "sort": "up"}], **PAGE}, {"order.sort": ["inEnum"]}),
    (LOG_LIST, {"order": [{"key": "", "sort": 1}], **PAGE}, {"order.sort": ["typeMismatch"]}),
    (
        LOG_LIST,
        {"order": [], "pageNum": 0, "pageSize": 101},
        {"pageNum": ["min"], "pageSize": ["max"]},
    ),
    (
        LOG_LIST,
        {"order": [], "pageNum": -1, "pageSize": 0},
        {"pageNum": ["min"], "pageSize": ["min"]},
    ),
    (LOG_LIST, {"order": [], "pageNum": 2**31, "pageSize": 1}, {"pageNum": ["max"]}),
    (LOG_LIST, {"order": [], "pageNum": "-" + "0" * 40 + "1", "pageSize": 1}, {"pageNum": ["min"]}),
    (LOG_LIST, {"order": [], "pageNum": 1, "pageSize": "0" * 40 + "101"}, {"pageSize": ["max"]}),
    (
        LOG_LIST,
        {"order": [], "pageNum": "x", "pageSize": 1.5},
        {"pageNum": ["typeMismatch"], "pageSize": ["typeMismatch"]},
    ),
    (LOG_LIST, {"order": [], **PAGE, "packId": "abc"}, {"packId": ["typeMismatch"]}),
    (LOG_LIST, {"order": [], **PAGE, "packId": 0}, {"packId": ["min"]}),
    (LOG_LIST, {"order": [], **PAGE, "packId": BIG}, {"packId": ["max"]}),
    (
        LOG_LIST,
        {"order": [{"key": "nope", "sort": "sideways"}, {"key": "nope2"}], "pageSize": 0},
        {
            "order.sort": ["inEnum"],
            "order.key": ["inEnum"],
            "pageNum": ["notNull"],
            "pageSize": ["min"],
        },
    ),
    # getUserPackList: everything optional
    (PACK_LIST, {"isFreeStatus": "yes"}, {"isFreeStatus": ["typeMismatch"]}),
    (PACK_LIST, {"isFreeStatus": 1}, {"isFreeStatus": ["typeMismatch"]}),
    (PACK_LIST, {"userPackStatus": "status.bogus"}, {"userPackStatus": ["inEnum"]}),
    (PACK_LIST, {"userPackStatus": "free"}, {"userPackStatus": ["inEnum"]}),
    (PACK_LIST, {"userPackStatus": "type.timing"}, {"userPackStatus": ["inEnum"]}),
    (PACK_LIST, {"userPackStatus": 3}, {"userPackStatus": ["typeMismatch"]}),
    (PACK_LIST, {"packDurationType": "timing"}, {"packDurationType": ["inEnum"]}),
    (PACK_LIST, {"packDurationType": ["type.timing"]}, {"packDurationType": ["typeMismatch"]}),
    (PACK_LIST, {"pageNum": 0}, {"pageNum": ["min"]}),
    (PACK_LIST, {"pageSize": 101}, {"pageSize": ["max"]}),
    (PACK_LIST, {"pageSize": 0}, {"pageSize": ["min"]}),
    (PACK_LIST, {"order": {"key": "packName"}}, {"order": ["typeMismatch"]}),
    (PACK_LIST, {"order": [{"key": "logId"}]}, {"order.key": ["inEnum"]}),
    (PACK_LIST, {"order": [{"key": "buyDatetime", "sort": "random"}]}, {"order.sort": ["inEnum"]}),
    (
        PACK_LIST,
        {"isFreeStatus": 1, "userPackStatus": "x", "packDurationType": 2, "pageSize": 0},
        {
            "isFreeStatus": ["typeMismatch"],
            "userPackStatus": ["inEnum"],
            "packDurationType": ["typeMismatch"],
            "pageSize": ["min"],
        },
    ),
    # the body itself
    (PACK_LIST, b"{bad json", {"body": ["malformedJson"]}),
    (PACK_DETAIL, b'{"userPackId": 1', {"body": ["malformedJson"]}),
    (LOG_LIST, b"\xff\xfe", {"body": ["malformedJson"]}),
    (LOG_DETAIL, b"[1]", {"body": ["typeMismatch"]}),
    (PACK_LIST, b'"text"', {"body": ["typeMismatch"]}),
    (PACK_LIST, b"null", {"body": ["typeMismatch"]}),
    (PACK_DETAIL, b"", {"userPackId": ["notNull"]}),
]


@pytest.mark.parametrize(("path", "body", "violated"), CASES)
async def test_violations_are_all_reported_and_the_first_named(
    client: httpx.AsyncClient, path: str, body: Any, violated: dict[str, list[str]]
) -> None:
    answer = await call(client, path, body, bearer(USER))
    assert answer["code"] == "General.ParameterInvalid"
    assert answer["data"] == {"ruleViolated": violated}
    assert list(answer["data"]["ruleViolated"]) == list(violated)  # in the order of checking
    field, rules = next(iter(violated.items()))
    assert answer["msg"] == f"request params[{field}] {rules[0]}."


async def test_the_document_examples_of_parameter_invalid(client: httpx.AsyncClient) -> None:
    answer = await call(client, PACK_DETAIL, {}, bearer(USER))
    assert answer == {
        "code": "General.ParameterInvalid",
        "data": {"ruleViolated": {"userPackId": ["notNull"]}},
        "msg": "request params[userPackId] notNull.",
    }
    answer = await call(client, LOG_DETAIL, {"logId": ""}, bearer(USER))
    assert answer == {
        "code": "General.ParameterInvalid",
        "data": {"ruleViolated": {"logId": ["notBlank"]}},
        "msg": "request params[logId] notBlank.",
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (PACK_LIST, {}),
        (PACK_LIST, b""),
        (PACK_LIST, {"order": None, "isFreeStatus": None, "userPackStatus": None}),
        (PACK_LIST, {"userPackStatus": "", "packDurationType": "", "order": []}),
        (PACK_LIST, {"order": [{"key": "", "sort": ""}], "pageNum": "2", "pageSize": "100"}),
        (PACK_LIST, {"order": [{"key": "duration", "sort": "DESC"}, {"key": "duration"}]}),
        (PACK_LIST, {"order": [{"key": "packName"}, {"sort": "desc"}], "unknownField": 1}),
        (PACK_DETAIL, {"userPackId": 9223372036854775807}),
        (PACK_DETAIL, {"userPackId": "9223372036854775807"}),
        (LOG_LIST, {"order": [], "pageNum": 1, "pageSize": 100, "packId": ""}),
        (LOG_LIST, {"order": [{}], "pageNum": 1, "pageSize": 1, "packId": None}),
        (LOG_LIST, {"order": [{"key": "usageRecordId", "sort": "asc"}], **PAGE, "packId": "12"}),
        (LOG_DETAIL, {"logId": 1}),
        (LOG_DETAIL, {"logId": "00001"}),
        (LOG_DETAIL, {"logId": "0" * 5000 + "1"}),
        (PACK_DETAIL, {"userPackId": "0" * 40 + "9223372036854775807"}),
        (LOG_LIST, {"order": [], "pageNum": "0" * 40 + "1", "pageSize": "0" * 40 + "100"}),
    ],
)
async def test_valid_bodies_pass(client: httpx.AsyncClient, path: str, body: Any) -> None:
    answer = await call(client, path, body, bearer(USER))
    assert answer["code"] in ("General.Success", "General.NotFound"), answer


@pytest.mark.parametrize(
    ("field", "spellings"),
    [
        ("userPackStatus", ("status.training", "userPackStatus.training")),
        ("userPackStatus", ("status.free", "userPackStatus.free")),
        ("userPackStatus", ("status.outOfTime", "userPackStatus.outOfTime")),
        ("packDurationType", ("type.timing", "packDurationType.timing")),
        ("packDurationType", ("type.activity", "packDurationType.activity")),
    ],
)
async def test_both_enum_spellings_filter_alike(
    client: httpx.AsyncClient, db: psycopg.Connection, field: str, spellings: tuple[str, str]
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    insert_pack(db, user_pack_id=1, user_id=USER)  # free timing
    insert_pack(db, user_pack_id=2, user_id=USER, open_starts=[now - timedelta(seconds=5)])
    insert_pack(db, user_pack_id=3, user_id=USER, charged=3600)  # out of time
    insert_pack(db, user_pack_id=4, user_id=USER, duration_type="type.activity", granted=0)
    expected = {
        "status.free": {"1", "4"},
        "status.training": {"2"},
        "status.outOfTime": {"3"},
        "type.timing": {"1", "2", "3"},
        "type.activity": {"4"},
    }[spellings[0]]
    for spelling in spellings:
        data = await ok(client, PACK_LIST, {field: spelling}, bearer(USER))
        assert {item["userPackId"] for item in data["userPackList"]} == expected
        assert data["total"] == str(len(expected))


async def test_order_sort_may_be_empty_or_any_case(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    from datetime import UTC, datetime

    insert_pack(db, user_pack_id=1, user_id=USER, granted=10)
    insert_pack(db, user_pack_id=2, user_id=USER, granted=30)
    insert_pack(db, user_pack_id=3, user_id=USER, granted=20)
    del datetime, UTC

    async def ids(order: list[dict[str, Any]]) -> list[str]:
        data = await ok(client, PACK_LIST, {"order": order}, bearer(USER))
        return [item["userPackId"] for item in data["userPackList"]]

    assert await ids([{"key": "duration", "sort": ""}]) == ["1", "3", "2"]
    assert await ids([{"key": "duration"}]) == ["1", "3", "2"]
    assert await ids([{"key": "duration", "sort": "asc"}]) == ["1", "3", "2"]
    assert await ids([{"key": "duration", "sort": "DESC"}]) == ["2", "3", "1"]
    assert await ids([{"key": "duration", "sort": "desc"}]) == ["2", "3", "1"]


async def test_empty_order_key_means_the_default_order(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2023, 1, 1, tzinfo=UTC)
    insert_pack(db, user_pack_id=1, user_id=USER)
    for log_id, minutes in ((10, 5), (11, 1), (12, 9)):
        insert_record(
            db,
            log_id=log_id,
            user_pack_id=1,
            owner_user_id=USER,
            start_time=start + timedelta(minutes=minutes),
            end_time=start + timedelta(minutes=20),
        )
    for order in ([], [{"key": "", "sort": ""}], [{"key": "", "sort": "asc"}], [{}]):
        data = await ok(client, LOG_LIST, {"order": order, **PAGE}, bearer(USER))
        assert [item["logId"] for item in data["list"]] == ["12", "10", "11"], order


def _enums(schema: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """The values an OpenAPI field schema lists, through anyOf and $ref."""
    if "$ref" in schema:
        return _enums(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    found = set(schema.get("enum", ()))
    for option in schema.get("anyOf", ()):
        found |= _enums(option, schemas)
    return found


async def test_documented_spellings_are_the_accepted_ones(client: httpx.AsyncClient) -> None:
    """The OpenAPI document lists exactly what the validation accepts."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    pack_list = schemas["UserPackListRequest"]["properties"]
    assert _enums(pack_list["userPackStatus"], schemas) == set(inputs.STATUS_SPELLINGS)
    assert _enums(pack_list["packDurationType"], schemas) == set(inputs.DURATION_TYPE_SPELLINGS)
    pack_key = schemas["PackOrder"]["properties"]["key"]
    record_key = schemas["RecordOrder"]["properties"]["key"]
    assert _enums(pack_key, schemas) == {"", *params.PACK_ORDER_KEYS}
    assert _enums(record_key, schemas) == {"", *params.RECORD_ORDER_KEYS}
    rules = schemas["RuleViolated"]["properties"]["ruleViolated"]["additionalProperties"]["items"]
    assert _enums(rules, schemas) == {rule.value for rule in Rule}
    for field in ("userPackStatus", "packDurationType"):
        for spelling in _enums(pack_list[field], schemas):
            validate(params.UserPackListRequest, {field: spelling}, _ZONE, _NOW)
    for key in _enums(pack_key, schemas):
        for sort in _enums(schemas["PackOrder"]["properties"]["sort"], schemas):
            body = {"order": [{"key": key, "sort": sort}]}
            validate(params.UserPackListRequest, body, _ZONE, _NOW)
    for key in _enums(record_key, schemas):
        body = {"order": [{"key": key}], **PAGE}
        validate(params.TrainPackLogListRequest, body, _ZONE, _NOW)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_validation_comes_after_authentication(client: httpx.AsyncClient, path: str) -> None:
    answer = await call(client, path, b"{not json")
    assert answer["code"] == "General.Unauthorized"


async def test_an_oversized_body_is_refused_unread(client: httpx.AsyncClient) -> None:
    from api.routes.common import MAX_BODY_BYTES

    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    answer = await call(client, PACK_LIST, body, bearer(USER))
    assert answer == {
        "code": "General.ParameterInvalid",
        "data": {"ruleViolated": {"body": ["max"]}},
        "msg": "request params[body] max.",
    }


async def test_a_zero_padded_id_names_its_pack(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=76, user_id=USER)
    for spelling in (76, "76", "0076", "000000000000000000000000076", "0" * 5000 + "76"):
        data = await ok(client, PACK_DETAIL, {"userPackId": spelling}, bearer(USER))
        assert data["userPackId"] == 76, spelling


@given(number=st.integers(1, ID_MAX), zeros=st.integers(0, 60))
def test_any_zero_padding_of_an_id_is_that_id(number: int, zeros: int) -> None:
    body = {"userPackId": "0" * zeros + str(number)}
    query = validate(params.UserPackDetailRequest, body, _ZONE, _NOW)
    assert query.user_pack_id == number


@given(number=st.integers(ID_MAX + 1, 10**40), zeros=st.integers(0, 60))
def test_any_zero_padding_of_a_number_past_the_ids_is_max(number: int, zeros: int) -> None:
    with pytest.raises(ApiError) as caught:
        body = {"userPackId": "0" * zeros + str(number)}
        validate(params.UserPackDetailRequest, body, _ZONE, _NOW)
    assert caught.value.data == {"ruleViolated": {"userPackId": ["max"]}}
