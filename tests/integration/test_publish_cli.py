"""`ledger publish FILE` and `events.publisher` against a real Kafka broker."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.envelope import STARTED, STOPPED
from events.parse import Refusal, parse_event
from events.publisher import CONTENT_TYPE, EventPublisher, build_event, publish_events
from services.cli import main
from services.consumer.parsing import sort_out
from services.consumer.records import SourceRecord
from services.settings import get_settings
from tests.support.kafka import read_all
from tests.unit.contract_cases import EXAMPLES_FILE, base, example_lines


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, unique_topic: str
) -> Iterator[str]:
    """Point `ledger publish` at the test's broker and topic (settings are cached)."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("LEDGER_EVENTS_TOPIC", unique_topic)
    get_settings.cache_clear()
    yield unique_topic
    get_settings.cache_clear()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> end offset of every partition of `topic`."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap)
    await consumer.start()  # fetches the metadata of the subscribed topic
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"no partitions known for {topic}"
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def _pack_key(line: bytes) -> bytes:
    return str(int(json.loads(line)["data"]["userPackId"])).encode()


def _records(bootstrap: str, topic: str) -> list[Any]:
    return asyncio.run(read_all(bootstrap, topic))


def test_publish_the_example_file(
    cli_env: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert get_settings().events_topic == cli_env
    assert main(["publish", str(EXAMPLES_FILE)]) == 0
    assert f"published 8 event(s) to {cli_env}" in capsys.readouterr().out

    records = _records(kafka_bootstrap, cli_env)
    lines = example_lines()
    assert sorted(r.value for r in records) == sorted(lines)
    for record in records:
        event = parse_event(record.value)
        assert not isinstance(event, Refusal), event.reason
        assert record.key == str(event.data.userPackId).encode()
        assert record.key.isdigit()
        assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()
    # All events of a pack on one partition, in file order.
    by_key: dict[bytes, list[Any]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[record.key].append(record)
    assert set(by_key) == {b"1001", b"1002"}
    for key, items in by_key.items():
        assert len({r.partition for r in items}) == 1
        in_file = [line for line in lines if _pack_key(line) == key]
        assert [r.value for r in items] == in_file


def test_publish_the_example_file_in_binary_mode(
    cli_env: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", "--mode", "binary", str(EXAMPLES_FILE)]) == 0
    assert "(binary content mode)" in capsys.readouterr().out

    records = _records(kafka_bootstrap, cli_env)
    lines = example_lines()
    assert len(records) == len(lines)
    by_id = {json.loads(line)["id"]: line for line in lines}
    for record in records:
        headers = dict(record.headers)
        assert headers["ce_specversion"] == b"1.0"
        assert b"ce_data" not in headers and CONTENT_TYPE.encode() not in headers.values()
        line = by_id[headers["ce_id"].decode()]
        assert json.loads(record.value) == json.loads(line)["data"]  # the value is `data`
        assert record.key == _pack_key(line)
        (accepted,), refused = sort_out(
            [SourceRecord(record.topic, record.partition, record.offset, record.key,
                          record.value, record.headers)]
        )  # fmt: skip
        assert refused == []
        assert accepted.event == parse_event(line)  # what the consumer reads: the same event


def test_a_bad_line_publishes_nothing(
    cli_env: str, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = base(STOPPED)
    bad["data"]["trainId"] = "5001x"
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([*example_lines(), json.dumps(bad).encode()]) + b"\n")
    assert main(["publish", str(path)]) == 1
    assert f"{path}:9: data.trainId: " in capsys.readouterr().err
    ends = asyncio.run(end_offsets(kafka_bootstrap, cli_env))
    assert len(ends) == 4
    assert set(ends.values()) == {0}


async def test_event_publisher(kafka_bootstrap: str, unique_topic: str) -> None:
    started = build_event(
        STARTED,
        {"userPackId": "42", "trainId": 1, "trainName": "t", "userId": 7, "userName": "u"},
        id="it/start",
        source="scheduler/it",
        time="2024-05-01T10:00:00+08:00",
    )
    stopped = build_event(
        STOPPED,
        {"userPackId": 42, "trainId": 1},
        id="it/stop",
        source="scheduler/it",
        time="2024-05-01T11:00:00+08:00",
    )
    other = base(STARTED)  # pack 1001
    async with EventPublisher(kafka_bootstrap, unique_topic) as publisher:
        first = await publisher.publish(started)
        rest = await publisher.publish_many([stopped, other])
    assert (first.id, first.key, first.topic) == ("it/start", b"42", unique_topic)
    assert [p.id for p in rest] == ["it/stop", other["id"]]
    assert rest[0].partition == first.partition
    assert rest[0].offset == first.offset + 1
    assert rest[1].key == b"1001"

    records = await read_all(kafka_bootstrap, unique_topic)
    located = {(r.partition, r.offset): r for r in records}
    assert len(records) == 3
    for published, event in zip([first, *rest], [started, stopped, other], strict=True):
        record = located[(published.partition, published.offset)]
        assert record.key == published.key
        assert json.loads(record.value) == event


def test_publish_events_from_sync_code(kafka_bootstrap: str, unique_topic: str) -> None:
    events = [json.loads(line) for line in example_lines()]
    published = publish_events(events, kafka_bootstrap, unique_topic)
    assert [p.id for p in published] == [e["id"] for e in events]
    offsets = asyncio.run(end_offsets(kafka_bootstrap, unique_topic))
    assert sum(offsets.values()) == len(events)
