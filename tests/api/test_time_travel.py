"""Time travel: `asOf` answers the four endpoints as the ledger stood at that instant.

The history is made of real events, ingested as the consumer ingests them (so the read
models are current too): a purchase, a top-up, a closed session and a session still
running. Values as of an instant are checked against the pure fold of the events up to
that instant.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from events.parse import parse_object
from projections import fold as pure
from projections.rules import log_id_for
from projections.state import LedgerEntry
from services.consumer.ingest import ingest
from services.consumer.records import SourceRecord
from services.store.connection import connect
from tests.api.support import (
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    FixedClock,
    bearer,
    call,
    node,
    ok,
    shanghai,
)

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)
PAGE = {"order": [], "pageNum": 1, "pageSize": 10}


class History:
    """One pack of user `owner`: bought at T0, topped up, one closed and one open session."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        # The ledger is append-only and outlives each test: fresh ids for every history.
        self.owner = random.randint(10**6, 10**9)
        self.stranger = self.owner + 1
        self.pack = random.randint(10**9, 10**15)
        self.docs: list[dict[str, Any]] = []
        started, stopped = "infinite.training.started", "infinite.training.stopped"
        self._add(f"{tag}-p", "infinite.pack.purchased", T0, userId=self.owner,
                  userName="甲", packName="包", packDurationType="type.timing",
                  durationSeconds=7200, nodeList=[node(5)])  # fmt: skip
        self._add(f"{tag}-a", "infinite.pack.adjusted", T0 + timedelta(minutes=10),
                  deltaSeconds=600, reason="top-up")  # fmt: skip
        self._add(f"{tag}-s1", started, T0 + timedelta(minutes=20), trainId=1,
                  trainName="first", userId=self.owner, userName="甲")  # fmt: skip
        self._add(f"{tag}-t1", stopped, T0 + timedelta(minutes=50), trainId=1)
        self._add(f"{tag}-s2", started, T0 + timedelta(minutes=60), trainId=2,
                  trainName="second", userId=self.owner, userName="甲")  # fmt: skip
        self.first_log = log_id_for(f"{tag}-s1")
        self.second_log = log_id_for(f"{tag}-s2")
        self.topic = f"time-travel-{tag}"

    def _add(self, id_: str, type_: str, time: datetime, **data: Any) -> None:
        self.docs.append(
            {
                "specversion": "1.0",
                "id": id_,
                "source": "tests",
                "type": type_,
                "time": time.isoformat(),
                "data": {"userPackId": self.pack, **data},
            }
        )

    async def ingest(self, db_url: str) -> None:
        records = [
            SourceRecord(self.topic, 0, offset, b"k", orjson.dumps(doc))
            for offset, doc in enumerate(self.docs)
        ]
        conn = await connect(db_url)
        try:
            outcome = await ingest(conn, "time-travel", records)
        finally:
            await conn.close()
        assert outcome.appended == len(self.docs) and not outcome.refused

    def state_at(self, instant: datetime) -> pure.FoldResult:
        """The pure fold of the events up to `instant`."""
        entries = [
            LedgerEntry(position, parse_object(doc))
            for position, doc in enumerate(self.docs, start=1)
            if datetime.fromisoformat(doc["time"]) <= instant
        ]
        return pure.fold(self.pack, entries)


@pytest.fixture
async def history(db_url: str, clock: FixedClock) -> History:
    made = History()
    await made.ingest(db_url)
    clock.set(NOW)
    return made


async def _answers(
    client: httpx.AsyncClient, h: History, user: int, **extra: Any
) -> dict[str, dict[str, Any]]:
    """The four endpoints' whole answers for `user`, with `extra` in every body."""
    headers = bearer(user)
    bodies = {
        PACK_LIST: {**extra},
        PACK_DETAIL: {"userPackId": h.pack, **extra},
        LOG_LIST: {**PAGE, **extra},
        LOG_DETAIL: {"logId": h.first_log, **extra},
    }
    return {path: await call(client, path, body, headers) for path, body in bodies.items()}


async def test_before_the_purchase_nothing_exists(
    client: httpx.AsyncClient, history: History
) -> None:
    answers = await _answers(client, history, history.owner, asOf=shanghai(T0 - timedelta(1)))
    assert answers[PACK_LIST]["data"]["total"] == "0"
    assert answers[PACK_LIST]["data"]["userPackList"] == []
    assert answers[PACK_DETAIL]["code"] == "General.NotFound"
    assert answers[LOG_LIST]["data"]["total"] == 0 and answers[LOG_LIST]["data"]["list"] == []
    assert answers[LOG_DETAIL]["code"] == "General.NotFound"


@pytest.mark.parametrize("minutes", [0, 5, 15, 30, 49, 55, 61, 90, 120])
async def test_values_as_of_an_instant_are_the_pure_folds(
    client: httpx.AsyncClient, history: History, minutes: int
) -> None:
    instant = T0 + timedelta(minutes=minutes)
    expected = history.state_at(instant)
    state = expected.state
    headers = bearer(history.owner)
    as_of = shanghai(instant)

    detail = await ok(client, PACK_DETAIL, {"userPackId": history.pack, "asOf": as_of}, headers)
    assert detail["duration"] == pure.remaining_at(state, instant)
    assert detail["userPackStatus"] == pure.status_at(state, instant)
    listed = await ok(client, PACK_LIST, {"asOf": as_of}, headers)
    assert [item["userPackId"] for item in listed["userPackList"]] == [str(history.pack)]
    assert listed["userPackList"][0]["duration"] == str(detail["duration"])
    assert listed["userPackList"][0]["userPackStatus"] == detail["userPackStatus"]

    logs = await ok(client, LOG_LIST, {**PAGE, "asOf": as_of}, headers)
    by_id = {int(item["logId"]): item for item in logs["list"]}
    assert set(by_id) == set(expected.records)
    for log_id, record in expected.records.items():
        end = record.end_time or instant
        seconds = int((end - record.start_time).total_seconds())
        one = await ok(client, LOG_DETAIL, {"logId": log_id, "asOf": as_of}, headers)
        assert one["duration"] == seconds
        assert one["endTime"] == (None if record.end_time is None else shanghai(record.end_time))
        assert by_id[log_id]["endTime"] == one["endTime"]
        assert one["pack"]["packId"] == history.pack


async def test_during_the_first_session(client: httpx.AsyncClient, history: History) -> None:
    instant = T0 + timedelta(minutes=30)
    as_of = shanghai(instant)
    headers = bearer(history.owner)
    detail = await ok(client, PACK_DETAIL, {"userPackId": history.pack, "asOf": as_of}, headers)
    assert detail["userPackStatus"] == "status.training"
    assert detail["duration"] == 7200 + 600 - 600  # ten minutes into the first session
    logs = await ok(client, LOG_LIST, {**PAGE, "asOf": as_of}, headers)
    assert logs["total"] == 1
    (item,) = logs["list"]
    assert item["logId"] == str(history.first_log)
    assert item["endTime"] is None and item["finishTime"] is None
    assert item["duration"] == "10分0秒"
    one = await ok(client, LOG_DETAIL, {"logId": history.first_log, "asOf": as_of}, headers)
    assert one["endTime"] is None and one["duration"] == 600
    assert one["pack"]["residueDuration"] == "2时0分0秒"
    # The second session does not exist yet.
    missing = await call(client, LOG_DETAIL, {"logId": history.second_log, "asOf": as_of}, headers)
    assert missing["code"] == "General.NotFound"


async def test_as_of_now_equals_the_live_answer(
    client: httpx.AsyncClient, history: History
) -> None:
    live = await _answers(client, history, history.owner)
    assert live[LOG_LIST]["data"]["total"] == 2
    for as_of in (shanghai(NOW), NOW.isoformat(), "2024-05-01T10:00:00Z"):
        assert await _answers(client, history, history.owner, asOf=as_of) == live
    assert await _answers(client, history, history.owner, asOf="") == live


async def test_the_live_path_is_unchanged_after_many_as_of_reads(
    client: httpx.AsyncClient, history: History
) -> None:
    """Psycopg prepares a statement after 5 runs on a connection: the as-of reads must not
    see a plan of the live tables, nor the live reads one of the temporary tables."""
    live = await _answers(client, history, history.owner)
    before = await _answers(
        client, history, history.owner, asOf=shanghai(T0 + timedelta(minutes=90))
    )
    for _ in range(8):
        assert await _answers(client, history, history.owner) == live
        early = await _answers(client, history, history.owner, asOf=shanghai(T0))
        assert early[PACK_DETAIL]["data"]["duration"] == 7200
        assert early[LOG_LIST]["data"]["total"] == 0
    assert before == await _answers(
        client, history, history.owner, asOf=shanghai(T0 + timedelta(minutes=90))
    )


@pytest.mark.parametrize("minutes", [-1, 0, 30, 61, 120])
@pytest.mark.parametrize("filtered", [False, True])
async def test_another_user_sees_nothing_at_any_time(
    client: httpx.AsyncClient, history: History, minutes: int, filtered: bool
) -> None:
    as_of = shanghai(T0 + timedelta(minutes=minutes))
    headers = bearer(history.stranger)
    listed = await ok(client, PACK_LIST, {"asOf": as_of}, headers)
    assert listed["userPackList"] == []
    logs_body = {**PAGE, "asOf": as_of, **({"packId": history.pack} if filtered else {})}
    logs = await ok(client, LOG_LIST, logs_body, headers)
    assert logs["list"] == [] and logs["total"] == 0
    for path, body in (
        (PACK_DETAIL, {"userPackId": history.pack}),
        (LOG_DETAIL, {"logId": history.first_log}),
        (LOG_DETAIL, {"logId": history.second_log}),
    ):
        answer = await call(client, path, {**body, "asOf": as_of}, headers)
        assert answer["code"] == "General.NotFound"


async def test_an_admin_sees_the_pack_as_of_an_instant(
    client: httpx.AsyncClient, history: History
) -> None:
    headers = bearer(history.stranger, admin=True)
    as_of = shanghai(T0 + timedelta(minutes=30))
    listed = await ok(client, PACK_LIST, {"asOf": as_of}, headers)
    assert str(history.pack) in [item["userPackId"] for item in listed["userPackList"]]
    detail = await ok(client, PACK_DETAIL, {"userPackId": history.pack, "asOf": as_of}, headers)
    assert detail["userPackStatus"] == "status.training"
    one = await ok(client, LOG_DETAIL, {"logId": history.first_log, "asOf": as_of}, headers)
    assert one["endTime"] is None


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("2024-13-01 00:00:00", "typeMismatch"),
        ("2024-05-01", "typeMismatch"),
        ("2024-05-01T08:00:00", "typeMismatch"),  # RFC 3339 needs its offset
        ("yesterday", "typeMismatch"),
        (1714550400, "typeMismatch"),
        (True, "typeMismatch"),
        (["2024-05-01 08:00:00"], "typeMismatch"),
        ("2024-05-01 18:00:01", "max"),  # one second after the clock (10:00 UTC)
        ("2999-01-01T00:00:00Z", "max"),
        ("0001-01-01 00:00:00", "min"),
    ],
)
async def test_a_malformed_or_future_as_of_is_refused(
    client: httpx.AsyncClient, history: History, value: Any, rule: str
) -> None:
    for path, body in (
        (PACK_LIST, {}),
        (PACK_DETAIL, {"userPackId": history.pack}),
        (LOG_LIST, PAGE),
        (LOG_DETAIL, {"logId": history.first_log}),
    ):
        answer = await call(client, path, {**body, "asOf": value}, bearer(history.owner))
        assert answer["code"] == "General.ParameterInvalid"
        assert answer["data"] == {"ruleViolated": {"asOf": [rule]}}
        assert answer["msg"] == f"request params[asOf] {rule}."


async def test_as_of_is_checked_with_the_other_fields(client: httpx.AsyncClient) -> None:
    answer = await call(client, LOG_LIST, {"order": [], "asOf": "x"}, bearer(1))
    assert answer["data"]["ruleViolated"] == {
        "pageNum": ["notNull"],
        "pageSize": ["notNull"],
        "asOf": ["typeMismatch"],
    }
