"""`events.publisher`: building and encoding events (no Kafka)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from events.envelope import StartedEvent
from events.parse import Refusal, parse_event
from events.publisher import (
    EventPublisher,
    InvalidEvent,
    build_event,
    check_value,
    encode,
    publish_events,
    validate,
)
from tests.unit.contract_cases import (
    ADJUSTED,
    PURCHASED,
    STARTED,
    STOPPED,
    base,
    example_lines,
    refused_cases,
)

START_DATA = {
    "userPackId": 1001,
    "trainId": 5001,
    "trainName": "llama",
    "userId": 7,
    "userName": "alice",
}


def test_build_event_fills_the_envelope() -> None:
    before = datetime.now(UTC)
    event = build_event(STARTED, START_DATA)
    after = datetime.now(UTC)
    assert event["specversion"] == "1.0"
    assert event["type"] == STARTED
    assert event["source"] == "scheduler"
    assert event["subject"] == "1001"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == START_DATA
    assert uuid.UUID(event["id"]).version == 4
    when = datetime.fromisoformat(event["time"])
    assert when.utcoffset() == timedelta(0)
    assert before <= when <= after
    assert build_event(STARTED, START_DATA)["id"] != event["id"]


def test_build_event_keeps_what_it_is_given() -> None:
    at = datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=8)))
    event = build_event(
        STOPPED,
        {"userPackId": "001001", "trainId": "5001"},
        id="cluster-a/train/5001/stop",
        source="scheduler/cluster-a",
        time=at,
        extensions={"traceparent": "00-abc-def-01"},
    )
    assert event["id"] == "cluster-a/train/5001/stop"
    assert event["source"] == "scheduler/cluster-a"
    assert event["time"] == "2024-05-01T10:00:00+08:00"
    assert event["subject"] == "1001"  # normalised as the consumer compares it
    assert event["traceparent"] == "00-abc-def-01"
    assert event["data"] == {"userPackId": "001001", "trainId": "5001"}
    parsed = validate(event)
    assert parsed.time == datetime(2024, 5, 1, 2, tzinfo=UTC)
    assert parsed.model_extra == {"traceparent": "00-abc-def-01"}
    time_text = build_event(STOPPED, {"userPackId": 1}, time="2024-05-01T02:00:00Z")["time"]
    assert time_text == "2024-05-01T02:00:00Z"


def test_build_event_without_a_pack_leaves_subject_out() -> None:
    assert "subject" not in build_event(STOPPED, {"trainId": 1})
    assert "subject" not in build_event(STOPPED, {"userPackId": True, "trainId": 1})


def test_build_event_refuses_naive_time_and_core_extensions() -> None:
    with pytest.raises(InvalidEvent, match="offset"):
        build_event(STARTED, START_DATA, time=datetime(2024, 5, 1, 10))
    with pytest.raises(InvalidEvent, match="'id'"):
        build_event(STARTED, START_DATA, extensions={"id": "x"})


@pytest.mark.parametrize("kind", [PURCHASED, ADJUSTED, STARTED, STOPPED])
def test_encode_key_is_the_pack_digits(kind: str) -> None:
    event = base(kind)
    event["data"]["userPackId"] = "0001001"
    key, value = encode(event)
    assert key == b"1001"
    assert json.loads(value) == event
    assert not isinstance(parse_event(value), Refusal)


def test_encode_sends_json_text_verbatim() -> None:
    for line in example_lines():
        key, value = encode(line)
        assert value == line
        assert key == str(int(json.loads(line)["data"]["userPackId"])).encode()
        assert encode(line.decode()) == (key, value)


def test_encode_a_model() -> None:
    parsed = validate(base(STARTED) | {"traceparent": "t"})
    assert isinstance(parsed, StartedEvent)
    key, value = encode(parsed)
    assert key == b"1001"
    document = json.loads(value)
    assert document["time"] == "2024-05-01T10:00:00+08:00"
    assert document["traceparent"] == "t"
    assert document["data"]["trainId"] == 5001
    assert validate(value) == parsed


def test_encode_a_built_event_round_trips() -> None:
    event = build_event(STARTED, START_DATA, id="e-1", time="2024-05-01T02:00:00Z")
    key, value = encode(event)
    assert key == b"1001"
    parsed = parse_event(value)
    assert isinstance(parsed, StartedEvent)
    assert (parsed.id, parsed.subject, parsed.data.trainId) == ("e-1", "1001", 5001)


@pytest.mark.parametrize(
    "case", [c for c in refused_cases() if c.value is not None][::7], ids=lambda c: c.label
)
def test_encode_refuses_with_the_consumers_reason(case: Any) -> None:
    refusal = parse_event(case.value)
    assert isinstance(refusal, Refusal)
    with pytest.raises(InvalidEvent) as caught:
        encode(case.value)
    assert caught.value.reason == refusal.reason
    assert caught.value.position is None


def test_encode_refuses_dicts_with_reason_naming_the_field() -> None:
    event = base(ADJUSTED)
    event["data"]["deltaSeconds"] = 0
    with pytest.raises(InvalidEvent, match="deltaSeconds must not be 0"):
        encode(event)
    with pytest.raises(InvalidEvent, match=r"data\.trainId: "):
        encode(build_event(STOPPED, {"userPackId": 1, "trainId": -1}))
    with pytest.raises(InvalidEvent, match="not serialisable as JSON"):
        encode(base(STARTED) | {"traceparent": object()})
    with pytest.raises(InvalidEvent, match="not serialisable as JSON"):
        encode(build_event(STOPPED, {"userPackId": 2**70, "trainId": 1}))
    with pytest.raises(InvalidEvent, match="not an event: int"):
        encode(42)  # type: ignore[arg-type]


async def test_publish_many_sends_nothing_when_one_event_is_bad() -> None:
    """Validation happens before the producer is touched (it is never started here)."""
    publisher = EventPublisher("127.0.0.1:1", "t")
    good = base(STARTED)
    bad = base(STOPPED) | {"time": "2024-05-01T10:00:00"}
    with pytest.raises(InvalidEvent) as caught:
        await publisher.publish_many([good, good, bad])
    assert caught.value.position == 3
    assert str(caught.value).startswith("event 3: time: ")


async def test_publish_requires_start() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await EventPublisher("127.0.0.1:1").publish(base(STARTED))


def test_publish_events_validates_before_connecting() -> None:
    with pytest.raises(InvalidEvent, match="event 1: unknown type"):
        publish_events([base(STARTED) | {"type": "x"}], "127.0.0.1:1")


def test_producer_options() -> None:
    publisher = EventPublisher("k:9092", "pack-events", linger_ms=20, request_timeout_ms=5000)
    assert publisher.topic == "pack-events"
    options = publisher._options
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert options["linger_ms"] == 20
    assert options["request_timeout_ms"] == 5000
    assert options["bootstrap_servers"] == "k:9092"


async def test_start_failure_leaves_nothing_open() -> None:
    publisher = EventPublisher("127.0.0.1:1", request_timeout_ms=1000)
    with pytest.raises(Exception, match="Unable to bootstrap"):
        await publisher.start()
    assert publisher._producer is None
    await publisher.stop()  # harmless


def test_nul_characters_are_refused_like_the_consumer_does() -> None:
    from services.consumer.parsing import sort_out
    from services.consumer.records import SourceRecord

    event = base(STARTED)
    event["data"]["trainName"] = "bad\x00name"
    with pytest.raises(InvalidEvent) as caught:
        encode(event)
    value = json.dumps(event).encode()
    assert b"\\u0000" in value
    assert check_value(value) == Refusal(caught.value.reason)
    accepted, refused = sort_out(
        [
            SourceRecord("pack-events", 0, 0, b"1001", value),
            SourceRecord("pack-events", 0, 1, b"1001", json.dumps(base(STARTED)).encode()),
        ]
    )
    assert [r.reason for r in refused] == [caught.value.reason]
    assert len(accepted) == 1


@pytest.mark.parametrize("case", refused_cases()[::5], ids=lambda c: c.label)
def test_check_value_agrees_with_the_consumer(case: Any) -> None:
    from services.consumer.parsing import sort_out
    from services.consumer.records import SourceRecord

    _, refused = sort_out([SourceRecord("pack-events", 0, 0, None, case.value)])
    result = check_value(case.value) if case.value is not None else parse_event(None)
    assert isinstance(result, Refusal)
    assert [r.reason for r in refused] == [result.reason]
