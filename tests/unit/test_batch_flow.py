"""The path of fetched batches through `BatchFlow` (services/consumer/batch.py) on the
fake store and a fake Kafka consumer: fresh records only, a failed batch rewound, one
fetched behind it dropped, Kafka's offsets never ahead of the database's, a rebalance
waiting for the batch in flight."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import psycopg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.consumer.batch import BatchFlow
from services.consumer.offsets import SeekToStoredOffsets
from services.consumer.outcome import BatchOutcome
from services.consumer.pipeline import CommitPipeline
from services.consumer.records import SourceRecord
from services.consumer.sink import LedgerSink
from services.retry import Backoff
from tests.support.streams import expected_rows, stream
from tests.unit.fake_store import FakeDatabase, FakeStore


class FakeConsumer:
    def __init__(self, partitions: set[int]) -> None:
        self.assigned = {TopicPartition("t", p) for p in partitions}
        self.seeks: list[tuple[int, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, place: TopicPartition, offset: int) -> None:
        self.seeks.append((place.partition, offset))

    def highwater(self, place: TopicPartition) -> int | None:
        return None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


class Watched:
    def __init__(self) -> None:
        self.exhaustions: list[tuple[int, datetime]] = []
        self.crossings: list[tuple[int, list[datetime]]] = []
        self.published: list[Any] = []

    def watch(self, exhaustions: list[tuple[int, datetime]]) -> None:
        self.exhaustions += exhaustions

    def watch_crossings(self, crossings: list[tuple[int, list[datetime]]]) -> None:
        self.crossings += crossings

    async def publish(self, refused: Any) -> None:
        self.published.append(refused)


async def _no_wait(seconds: float) -> None:
    return None


def flow_on(db: FakeDatabase, consumer: FakeConsumer) -> tuple[BatchFlow, SeekToStoredOffsets]:
    sink = LedgerSink("unused", "g", stores=(FakeStore(db), FakeStore(db)), max_backoff=0.01)
    pipeline = CommitPipeline()
    listener = SeekToStoredOffsets(sink, "t", pipeline)
    listener.bind(lambda: consumer)
    listener.assigned = set(consumer.assigned)
    listener.next_offsets = {("t", tp.partition): 0 for tp in consumer.assigned}
    watched = Watched()
    flow = BatchFlow(
        sink=sink,
        listener=listener,
        pipeline=pipeline,
        notifier=watched,  # type: ignore[arg-type]
        dead_letters=watched,  # type: ignore[arg-type]
        consumer=lambda: consumer,
        backoff=Backoff(0.0, 0.0, sleep=_no_wait),
    )
    return flow, listener


def records(docs: list[Any], partition: int, first: int) -> list[SourceRecord]:
    return [
        SourceRecord(
            "t",
            partition,
            first + i,
            b"k",
            doc if isinstance(doc, bytes) else json.dumps(doc).encode(),
        )
        for i, doc in enumerate(docs)
    ]


async def test_batches_flow_in_order_and_kafka_offsets_follow_the_database() -> None:
    arrivals = stream(packs=4, events_per_pack=20, seed=17)
    db = FakeDatabase()
    consumer = FakeConsumer({0})
    flow, _ = flow_on(db, consumer)
    for start in range(0, len(arrivals), 16):
        await flow.handle(records(arrivals[start : start + 16], 0, start))
    await flow.pipeline.stop()
    await flow.close()  # the last batch's Kafka offsets are sent beside the shutdown
    assert db.rows() == expected_rows(arrivals)
    committed = [offsets[TopicPartition("t", 0)] for offsets in consumer.commits]
    assert committed == [*range(16, len(arrivals), 16), len(arrivals)]
    assert committed[-1] == db.tables.offsets[("t", 0)]


async def test_records_already_handed_to_a_commit_are_not_taken_again() -> None:
    arrivals = stream(packs=2, events_per_pack=10, seed=4)
    db = FakeDatabase()
    flow, _ = flow_on(db, FakeConsumer({0}))
    await flow.handle(records(arrivals, 0, 0))
    await flow.handle(records(arrivals[:5], 0, 0))  # fetched again before a seek took effect
    await flow.pipeline.stop()
    assert db.commits == 1


async def test_a_failed_batch_rewinds_and_the_one_fetched_behind_it_is_dropped() -> None:
    arrivals = stream(packs=2, events_per_pack=10, seed=9)
    db = FakeDatabase(refusals_fail=True)  # a refusal that cannot be stored fails the batch
    consumer = FakeConsumer({0, 1})
    flow, listener = flow_on(db, consumer)
    await flow.handle(records([b"not json", *arrivals[:5]], 0, 0))
    behind = records(arrivals[5:10], 0, 6) + records(arrivals[10:12], 1, 0)
    await flow.handle(behind)
    assert consumer.seeks == [(0, 0), (1, 0)]  # the failed batch's, then the other partition
    assert listener.next_offsets == {("t", 0): 0, ("t", 1): 0}
    assert db.tables.offsets == {} and consumer.commits == []
    # Fetched again from the rewind: the refusal can be stored now.
    db.refusals_fail = False
    await flow.handle(records([b"not json", *arrivals[:5]], 0, 0))
    await flow.pipeline.stop()
    assert db.tables.offsets == {("t", 0): 6}
    assert [r.kafka_offset for r in db.tables.refused.values()] == [0]


async def test_a_rebalance_waits_for_the_batch_in_flight_and_a_rewind_spares_moved_partitions() -> (
    None
):
    arrivals = stream(packs=2, events_per_pack=8, seed=2)
    db = FakeDatabase(refusals_fail=True)
    consumer = FakeConsumer({0, 1})
    flow, listener = flow_on(db, consumer)
    await flow.handle(records([b"{", *arrivals[:4]], 0, 0) + records(arrivals[4:8], 1, 0))
    consumer.assigned = {TopicPartition("t", 0)}  # partition 1 moved to another consumer
    await listener.on_partitions_revoked({TopicPartition("t", 1)})  # waits for the commit
    assert db.rollbacks >= 1  # the batch in flight had ended (failed) before the revoke
    assert consumer.seeks == [(0, 0)]  # not partition 1: its new owner reads stored offsets
    assert ("t", 1) not in listener.next_offsets


async def test_a_batch_planned_on_a_retried_batch_is_planned_in_its_transaction() -> None:
    arrivals = unique(stream(packs=2, events_per_pack=12, seed=5))
    db = FakeDatabase()
    db.fail("store_offsets", psycopg.OperationalError("terminating connection"))
    flow, _ = flow_on(db, FakeConsumer({0}))
    outcomes = recorded_outcomes(flow)
    await flow.handle(records(arrivals[:12], 0, 0))  # fails once (an outage), then commits
    await flow.handle(records(arrivals[12:], 0, 12))  # planned on its first attempt's states
    await flow.handle(records(arrivals[12:], 0, 12))  # nothing new: dropped as handed
    await flow.pipeline.stop()
    assert len(outcomes) == 2
    assert outcomes[1].packs_planned_ahead == 0  # the handoff was void
    assert db.rows() == expected_rows(arrivals)


async def test_a_batch_planned_on_a_clean_commit_uses_its_plan() -> None:
    arrivals = unique(stream(packs=2, events_per_pack=12, seed=5))
    db = FakeDatabase()
    flow, _ = flow_on(db, FakeConsumer({0}))
    outcomes = recorded_outcomes(flow)
    await flow.handle(records(arrivals[:12], 0, 0))
    await flow.handle(records(arrivals[12:], 0, 12))
    await flow.pipeline.stop()
    assert outcomes[1].packs_planned_ahead == 2
    assert db.rows() == expected_rows(arrivals)


def recorded_outcomes(flow: BatchFlow) -> list[BatchOutcome]:
    """The outcomes of the flow's commits, as they come."""
    outcomes: list[BatchOutcome] = []
    commit = flow.sink.commit_parsed

    async def recorded(*args: Any) -> BatchOutcome:
        outcomes.append(await commit(*args))
        return outcomes[-1]

    flow.sink.commit_parsed = recorded  # type: ignore[method-assign]
    return outcomes


def unique(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for doc in docs:
        seen.setdefault(doc["id"], doc)
    return list(seen.values())


class SlowKafka(FakeConsumer):
    """A consumer whose offset commits wait until released; the first one fails."""

    def __init__(self, partitions: set[int]) -> None:
        super().__init__(partitions)
        self.release = asyncio.Event()
        self.calls = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.calls += 1
        await self.release.wait()
        if self.calls == 1:
            raise KafkaConnectionError("broker gone for a moment")
        await super().commit(offsets)


async def test_kafka_offsets_go_beside_the_next_batches_in_order_merged_while_one_is_out() -> None:
    arrivals = stream(packs=4, events_per_pack=12, seed=5)
    db = FakeDatabase()
    consumer = SlowKafka({0, 1})
    flow, _ = flow_on(db, consumer)
    # Three batches commit while the first batch's Kafka commit is still out: the batches
    # do not wait for it.
    for n, start in enumerate(range(0, 36, 12)):
        await flow.handle(records(arrivals[start : start + 12], n % 2, start))
    await flow.pipeline.stop()
    assert db.tables.offsets == {("t", 0): 36, ("t", 1): 24}
    assert consumer.calls == 1 and consumer.commits == []
    consumer.release.set()
    await flow.close()
    # The first commit failed (informational: skipped); the offsets that came meanwhile
    # went in one commit, the latest of each partition, none ahead of the database's.
    assert consumer.commits == [{TopicPartition("t", 1): 24, TopicPartition("t", 0): 36}]


async def test_a_kafka_commit_that_never_returns_does_not_hold_the_shutdown() -> None:
    arrivals = stream(packs=2, events_per_pack=6, seed=9)
    db = FakeDatabase()
    consumer = SlowKafka({0})  # never released
    flow, _ = flow_on(db, consumer)
    await flow.handle(records(arrivals, 0, 0))
    await flow.pipeline.stop()
    await asyncio.wait_for(flow.close(grace=0.05), timeout=5)
    assert db.tables.offsets == {("t", 0): len(arrivals)} and consumer.commits == []
