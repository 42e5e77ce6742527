"""`events.parse.parse_event`: every valid form is accepted, every bad one refused with a
reason naming the field (the table is in contract_cases.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from events.envelope import (
    AdjustedEvent,
    HeartbeatEvent,
    PurchasedEvent,
    StartedEvent,
    StoppedEvent,
)
from events.parse import Refusal, parse_event, parse_object
from events.payloads import DurationType, NodeType
from tests.unit.contract_cases import (
    ADJUSTED,
    HEARTBEAT,
    MAX_ID,
    PURCHASED,
    STARTED,
    STOPPED,
    Case,
    accepted_cases,
    base,
    encode,
    example_lines,
    refused_cases,
)


@pytest.mark.parametrize("case", accepted_cases(), ids=lambda c: c.label)
def test_accepts(case: Case) -> None:
    result = parse_event(case.value)
    assert not isinstance(result, Refusal), result.reason


@pytest.mark.parametrize("case", refused_cases(), ids=lambda c: c.label)
def test_refuses_with_precise_reason(case: Case) -> None:
    result = parse_event(case.value)
    assert isinstance(result, Refusal), f"accepted: {result!r}"
    for fragment in case.reason:
        assert fragment in result.reason, f"{fragment!r} not in {result.reason!r}"


@pytest.mark.parametrize("case", refused_cases(), ids=lambda c: c.label)
def test_refusal_names_only_the_offending_field(case: Case) -> None:
    """Each case has a single defect: it yields a single problem, and no noise about the
    other members of the union."""
    result = parse_event(case.value)
    assert isinstance(result, Refusal)
    assert ";" not in result.reason, result.reason
    for other in ("infinite.pack.adjusted.", "infinite.training.started.", "function-after"):
        assert other not in result.reason


def test_str_and_bytes_are_the_same() -> None:
    value = encode(base(STARTED))
    assert parse_event(value) == parse_event(value.decode())


def test_several_defects_are_all_named() -> None:
    event = base(STARTED)
    del event["id"]
    event["data"]["trainId"] = 0
    event["data"]["userName"] = 3
    result = parse_event(encode(event))
    assert isinstance(result, Refusal)
    assert "id: Field required" in result.reason
    assert "data.trainId: " in result.reason
    assert "data.userName: " in result.reason
    assert result.reason.count(";") == 2


def test_types_and_values_of_a_purchase() -> None:
    event = base(PURCHASED)
    event["data"]["userPackId"] = "1001"
    event["data"]["nodeList"][0]["nodeId"] = str(MAX_ID)
    result = parse_event(encode(event))
    assert isinstance(result, PurchasedEvent)
    assert result.type == PURCHASED
    assert result.data.userPackId == 1001
    assert result.data.userId == 7
    assert result.data.packDurationType is DurationType.TIMING
    assert result.data.durationSeconds == 36000
    assert result.data.buyDatetime == datetime(2024, 5, 1, 0, 59, 30, tzinfo=UTC)
    assert result.data.activityEndTime is None
    node = result.data.nodeList[0]
    assert (node.nodeId, node.nodeType, node.cpuCount, node.gpuCount, node.memorySize) == (
        MAX_ID,
        NodeType.MASTER,
        64,
        8,
        512,
    )
    assert result.data.nodeList[1].nodeType is NodeType.WORKER


def test_time_keeps_the_instant_and_offset() -> None:
    event = base(STARTED)
    event["time"] = "2024-05-01T10:00:00.250+08:00"
    result = parse_event(encode(event))
    assert isinstance(result, StartedEvent)
    assert result.time == datetime(2024, 5, 1, 2, 0, 0, 250000, tzinfo=UTC)
    assert result.time.utcoffset() == timedelta(hours=8)
    assert result.model_dump(mode="json")["time"] == "2024-05-01T10:00:00.250000+08:00"


def test_each_type_parses_to_its_model() -> None:
    expected = {
        PURCHASED: PurchasedEvent,
        ADJUSTED: AdjustedEvent,
        STARTED: StartedEvent,
        HEARTBEAT: HeartbeatEvent,
        STOPPED: StoppedEvent,
    }
    for kind, model in expected.items():
        assert type(parse_event(encode(base(kind)))) is model


def test_lease_and_heartbeat_values() -> None:
    started = parse_event(encode(base(STARTED)))
    assert isinstance(started, StartedEvent)
    assert started.data.leaseSeconds == 3600
    unleased = base(STARTED)
    del unleased["data"]["leaseSeconds"]
    without = parse_event(encode(unleased))
    assert isinstance(without, StartedEvent) and without.data.leaseSeconds is None
    heartbeat = parse_event(encode(base(HEARTBEAT)))
    assert isinstance(heartbeat, HeartbeatEvent)
    assert (heartbeat.data.userPackId, heartbeat.data.trainId) == (1001, 5001)


def test_adjustment_and_stop_values() -> None:
    event = base(ADJUSTED)
    event["data"]["deltaSeconds"] = -600
    adjusted = parse_event(encode(event))
    assert isinstance(adjusted, AdjustedEvent)
    assert adjusted.data.deltaSeconds == -600
    stop = base(STOPPED)
    del stop["data"]["reason"]
    stopped = parse_event(encode(stop))
    assert isinstance(stopped, StoppedEvent)
    assert stopped.data.reason is None
    assert stopped.data.trainId == 5001


def test_extension_attributes_are_kept() -> None:
    event = base(STARTED)
    event["traceparent"] = "00-abc-def-01"
    result = parse_event(encode(event))
    assert isinstance(result, StartedEvent)
    assert result.model_extra == {"traceparent": "00-abc-def-01"}
    assert result.model_dump()["traceparent"] == "00-abc-def-01"


def test_unknown_data_fields_are_ignored() -> None:
    event = base(STOPPED)
    event["data"]["exitCode"] = 137
    result = parse_event(encode(event))
    assert isinstance(result, StoppedEvent)
    assert "exitCode" not in result.data.model_dump()


def test_parse_object_takes_datetimes_built_in_python() -> None:
    event = base(STARTED)
    event["time"] = datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=8)))
    result = parse_object(event)
    assert isinstance(result, StartedEvent)
    assert result.time == datetime(2024, 5, 1, 2, tzinfo=UTC)


def test_the_published_examples_parse() -> None:
    lines = example_lines()
    assert len(lines) >= 7
    kinds = set()
    for line in lines:
        result = parse_event(line)
        assert not isinstance(result, Refusal), result.reason
        kinds.add(result.type)
    assert kinds == {PURCHASED, ADJUSTED, STARTED, HEARTBEAT, STOPPED}


def test_case_table_covers_every_rule() -> None:
    """Guard against the table silently shrinking."""
    labels = {case.label for case in refused_cases()}
    assert len(labels) == len(refused_cases()), "duplicate labels"
    assert len(accepted_cases()) >= 40
    assert len(refused_cases()) >= 200
