"""Which fetched records the consumer takes: none of a partition not sought yet, none it
already handed to a commit (they come again after a seek), all after a rewind."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.consumer.offsets import SeekToStoredOffsets
from services.consumer.pipeline import CommitPipeline
from services.consumer.records import SourceRecord
from services.consumer.sink import LedgerSink


def listener(sought: dict[int, int]) -> SeekToStoredOffsets:
    """A listener whose partitions were sought to `sought` ({partition: offset})."""
    made = SeekToStoredOffsets(LedgerSink("postgresql://unused/none", "g"), "t", CommitPipeline())
    made.assigned = {TopicPartition("t", p) for p in sought}
    made.next_offsets = {("t", p): o for p, o in sought.items()}
    return made


def records(partition: int, first: int, last: int) -> list[SourceRecord]:
    return [SourceRecord("t", partition, o, None, b"{}") for o in range(first, last + 1)]


def offsets(kept: list[SourceRecord]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in kept]


def test_records_from_the_sought_offsets_are_taken_as_they_are() -> None:
    batch = records(0, 5, 9) + records(1, 0, 2)
    assert listener({0: 5, 1: 0}).fresh(batch) is batch


def test_records_of_a_partition_not_sought_yet_are_dropped() -> None:
    kept = listener({0: 0}).fresh(records(0, 0, 1) + records(1, 0, 1))
    assert offsets(kept) == [(0, 0), (0, 1)]


def test_records_handed_to_a_commit_are_not_taken_again() -> None:
    # A fetch from offset 0 ran before the seek to 0 completed: the first batch went to a
    # commit, then the same records came again from the seek.
    seen = listener({0: 0})
    first = records(0, 0, 9)
    assert seen.fresh(first) is first
    seen.handed({("t", 0): 10})
    assert seen.fresh(records(0, 0, 9)) == []
    assert offsets(seen.fresh(records(0, 5, 12))) == [(0, 10), (0, 11), (0, 12)]


def test_after_a_rewind_the_records_are_taken_again() -> None:
    seen = listener({0: 0})
    seen.handed({("t", 0): 10})
    seen.rewound({("t", 0): 0})  # the commit of 0..9 failed
    batch = records(0, 0, 9)
    assert seen.fresh(batch) is batch


class Seeks:
    def __init__(self) -> None:
        self.sought: list[tuple[TopicPartition, int]] = []

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.sought.append((partition, offset))


def just_sought(sought: dict[int, int]) -> tuple[SeekToStoredOffsets, Seeks]:
    """A listener right after an assignment sought `sought`, before any batch came."""
    made = listener(sought)
    made._unconfirmed = {("t", p) for p in sought}
    seeks = Seeks()
    made.bind(lambda: seeks)
    return made, seeks


def test_a_first_batch_past_the_stored_offset_is_fetched_again_from_it() -> None:
    # Kafka's committed offset (120) was ahead of the database's (100): the first fetch
    # ran from 120 before the seek to 100 took effect. Taking it would skip 100..119.
    seen, seeks = just_sought({0: 100})
    assert seen.fresh(records(0, 120, 130)) == []
    assert seeks.sought == [(TopicPartition("t", 0), 100)]
    batch = records(0, 100, 130)
    assert seen.fresh(batch) is batch


def test_a_true_gap_after_the_stored_offset_is_taken_the_second_time() -> None:
    # The log really starts later (retention): the re-fetch starts past 100 again.
    seen, seeks = just_sought({0: 100})
    assert seen.fresh(records(0, 150, 160)) == []
    batch = records(0, 150, 160)
    assert seen.fresh(batch) is batch
    assert len(seeks.sought) == 1


def test_a_first_batch_from_before_the_stored_offset_is_cut_at_it() -> None:
    seen, seeks = just_sought({0: 100})
    assert offsets(seen.fresh(records(0, 95, 102))) == [(0, 100), (0, 101), (0, 102)]
    assert seeks.sought == []
