"""The consumer's commit pipeline: one batch in flight, failures rewind the next batch."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from services.consumer.batch import kafka_offsets
from services.consumer.batch import lags as _lags
from services.consumer.pipeline import CommitPipeline, fetched_behind, rewind
from services.consumer.records import SourceRecord, next_offsets


class RecordingSeeker:
    def __init__(self, partitions: range = range(4)) -> None:
        self.seeks: dict[TopicPartition, int] = {}
        self.partitions = {TopicPartition("t", p) for p in partitions}

    def assignment(self) -> set[TopicPartition]:
        return self.partitions

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset


def record(partition: int, offset: int) -> SourceRecord:
    return SourceRecord("t", partition, offset, None, b"{}")


async def finishing(result: bool, gate: asyncio.Event | None = None) -> bool:
    if gate is not None:
        await gate.wait()
    return result


async def test_nothing_in_flight_settles_at_once() -> None:
    assert await CommitPipeline().settle() == {}


async def test_a_committed_batch_settles_empty_and_the_next_may_start() -> None:
    pipeline = CommitPipeline()
    pipeline.start(finishing(True), next_offsets([record(0, 1), record(1, 1)]))
    assert await pipeline.settle() == {}
    pipeline.start(finishing(True), next_offsets([record(2, 5)]))
    assert await pipeline.settle() == {}


async def test_a_failed_batch_reports_its_next_offsets_once() -> None:
    pipeline = CommitPipeline()
    pipeline.start(
        finishing(False), next_offsets([record(0, 7), record(3, 2), record(0, 9), record(0, 8)])
    )
    assert await pipeline.settle() == {("t", 0): 10, ("t", 3): 3}
    assert await pipeline.settle() == {}  # reported once


async def test_a_second_batch_cannot_start_before_the_first_settles() -> None:
    pipeline = CommitPipeline()
    gate = asyncio.Event()
    pipeline.start(finishing(True, gate), next_offsets([record(0, 0)]))
    second = finishing(True)
    with pytest.raises(RuntimeError, match="in flight"):
        pipeline.start(second, next_offsets([record(1, 0)]))
    second.close()
    gate.set()
    assert await pipeline.settle() == {}


async def test_settle_waits_for_the_batch_in_flight() -> None:
    pipeline = CommitPipeline()
    gate = asyncio.Event()
    pipeline.start(finishing(True, gate), next_offsets([record(0, 0)]))
    settling = asyncio.create_task(pipeline.settle())
    await asyncio.sleep(0.01)
    assert not settling.done()
    gate.set()
    assert await settling == {}


async def test_drain_waits_and_leaves_the_failure_for_settle() -> None:
    pipeline = CommitPipeline()
    gate = asyncio.Event()
    pipeline.start(finishing(False, gate), next_offsets([record(5, 3)]))
    draining = asyncio.create_task(pipeline.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()
    gate.set()
    await draining
    assert await pipeline.settle() == {("t", 5): 4}


async def test_stop_waits_for_the_batch_in_flight_then_cancels_it() -> None:
    pipeline = CommitPipeline()
    gate = asyncio.Event()
    pipeline.start(finishing(True, gate), next_offsets([record(0, 0)]))
    asyncio.get_running_loop().call_later(0.05, gate.set)
    await pipeline.stop(grace=5)  # commits in time
    assert await pipeline.settle() == {}

    stuck = asyncio.Event()  # a commit waiting out an outage that does not end
    pipeline.start(finishing(True, stuck), next_offsets([record(0, 1)]))
    await pipeline.stop(grace=0.05)
    with pytest.raises(asyncio.CancelledError):
        await pipeline.settle()


def test_rewind_seeks_each_partition_to_its_first_record_but_the_rewound_ones() -> None:
    seeker = RecordingSeeker()
    records = [record(0, 12), record(1, 40), record(0, 10), record(2, 7), record(1, 41)]
    rewind(seeker, records, {("t", 2): 9})
    assert seeker.seeks == {TopicPartition("t", 0): 10, TopicPartition("t", 1): 40}


def test_rewind_leaves_the_partitions_a_rebalance_took_away() -> None:
    seeker = RecordingSeeker(partitions=range(1, 4))  # partition 0 went to another consumer
    rewind(seeker, [record(0, 12), record(1, 40), record(0, 10)])
    assert seeker.seeks == {TopicPartition("t", 1): 40}


FAILED = {("t", 0): 20, ("t", 1): 6}  # next offsets of the failed batch: 0@10..19, 1@3..5


def test_a_batch_fetched_before_the_rewind_is_behind_the_failed_one() -> None:
    # It goes on where the failed batch stopped on partition 0.
    assert fetched_behind([record(2, 50), record(0, 20), record(0, 21)], FAILED)


def test_the_batch_fetched_again_after_the_rewind_goes_ahead() -> None:
    # It starts again at (or before the end of) the failed records, even with new ones.
    assert not fetched_behind([record(0, 10), record(0, 25), record(1, 3)], FAILED)
    assert not fetched_behind([record(1, 5), record(1, 6)], FAILED)


def test_a_batch_of_other_partitions_goes_ahead() -> None:
    assert not fetched_behind([record(2, 100), record(3, 0)], FAILED)


class AssignedOnly:
    """Like AIOKafkaConsumer: highwater() of a partition it no longer holds is an error."""

    def __init__(self, highwaters: dict[TopicPartition, int]) -> None:
        self._highwaters = highwaters

    def assignment(self) -> set[TopicPartition]:
        return set(self._highwaters)

    def highwater(self, partition: TopicPartition) -> int:
        assert partition in self._highwaters, "Partition is not assigned"
        return self._highwaters[partition]


def test_lags_of_a_batch_committed_after_a_rebalance_skip_the_partitions_moved_away() -> None:
    # The batch committed in the background while partition 1 went to another consumer.
    consumer = AssignedOnly({TopicPartition("t", 0): 100})
    records = [record(0, 90), record(1, 40), record(0, 95)]
    assert _lags(consumer, next_offsets(records)) == {0: 4}


def test_kafka_offsets_are_the_batch_s_own_not_the_consumer_s_positions() -> None:
    # The next batch is already fetched (positions further on): Kafka gets this batch's
    # next offsets, for the partitions still held.
    consumer = AssignedOnly({TopicPartition("t", 0): 500, TopicPartition("t", 2): 500})
    records = [record(0, 90), record(1, 40), record(0, 95), record(2, 7)]
    assert kafka_offsets(consumer, next_offsets(records)) == {
        TopicPartition("t", 0): 96,
        TopicPartition("t", 2): 8,
    }
