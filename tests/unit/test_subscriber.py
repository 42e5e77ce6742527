"""The subscriber of `ledger consume` (`app.subscribe`) on FastStream's in-memory
`TestKafkaBroker`: what it hands the batch protocol for the records published."""

from __future__ import annotations

import json

from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.consumer.app import subscribe
from services.consumer.batch import BatchFlow
from services.consumer.offsets import SeekToStoredOffsets
from services.consumer.pipeline import CommitPipeline
from services.consumer.records import SourceRecord
from services.consumer.sink import LedgerSink
from services.settings import Settings
from tests.support.streams import expected_rows, stream
from tests.unit.fake_store import FakeDatabase, FakeStore
from tests.unit.test_batch_flow import FakeConsumer, Watched


async def test_the_subscriber_hands_the_raw_records_to_the_batch_protocol() -> None:
    settings = Settings()
    broker = KafkaBroker("localhost:9092")
    db = FakeDatabase()
    sink = LedgerSink("unused", "g", stores=(FakeStore(db), FakeStore(db)))
    listener = SeekToStoredOffsets(sink, settings.events_topic, CommitPipeline())
    handed: list[list[SourceRecord]] = []

    async def handle(records: list[SourceRecord]) -> None:
        handed.append(records)

    subscribe(broker, settings, listener, handle)
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            b'{"not": "decoded"}',
            settings.events_topic,
            key=b"42",
            headers={"ce_id": "e-1"},
        )
    assert len(handed) == 1
    [record] = handed[0]
    assert record.topic == settings.events_topic
    assert record.key == b"42"
    assert record.value == b'{"not": "decoded"}'  # raw: FastStream decodes nothing
    assert ("ce_id", b"e-1") in list(record.headers)


async def test_published_events_reach_the_fake_store_through_the_whole_flow() -> None:
    settings = Settings()
    broker = KafkaBroker("localhost:9092")
    db = FakeDatabase()
    arrivals = stream(packs=2, events_per_pack=6, seed=3)
    consumer = FakeConsumer({0})
    consumer.assigned = {TopicPartition(settings.events_topic, 0)}
    sink = LedgerSink("unused", "g", stores=(FakeStore(db), FakeStore(db)))
    pipeline = CommitPipeline()
    listener = SeekToStoredOffsets(sink, settings.events_topic, pipeline)
    listener.assigned = set(consumer.assigned)
    flow = BatchFlow(
        sink=sink,
        listener=listener,
        pipeline=pipeline,
        notifier=Watched(),  # type: ignore[arg-type]
        dead_letters=Watched(),  # type: ignore[arg-type]
        consumer=lambda: consumer,
    )
    subscribe(broker, settings, listener, flow.handle)
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish_batch(
            *[json.dumps(doc).encode() for doc in arrivals],
            topic=settings.events_topic,
            partition=0,
        )
        await pipeline.stop()
    assert db.rows() == expected_rows(arrivals)
    assert set(db.tables.ledger) == {doc["id"] for doc in arrivals}
    # (The test broker gives every record offset 0: the offsets are the real broker's
    # tests' business, tests/integration/test_consumer_*.py.)
