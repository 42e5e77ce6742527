"""Seek to the offsets stored in the database whenever partitions are assigned.

Kafka's own committed offsets are only informational (they show lag to Kafka tools):
the database commits the offsets together with the writes, so they are the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from services.consumer.pipeline import CommitPipeline
from services.consumer.records import Place, SourceRecord, first_offsets
from services.consumer.sink import LedgerSink

log = logging.getLogger("ledger.consumer")


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks on assignment; `assigned` holds the partitions whose seek is done (the
    subscriber drops records of the others: they come again from the stored offset)."""

    def __init__(self, sink: LedgerSink, topic: str, pipeline: CommitPipeline) -> None:
        self._sink = sink
        self._topic = topic
        self._pipeline = pipeline
        self._consumer: Callable[[], Any] | None = None
        self.assigned: set[TopicPartition] = set()
        # Per partition, the offset from which records are new to this process: the
        # stored offset once sought, then past every record handed to a commit, back to
        # where a rewind sent it. Records below it were fetched before the seek (or
        # before a rewind) and come again; taking them too would only redo work.
        self.next_offsets: dict[Place, int] = {}
        # Partitions sought on assignment whose first batch has not come yet.
        self._unconfirmed: set[Place] = set()

    def fresh(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """The records of partitions already sought, from their next offsets on."""
        first = first_offsets(records)
        drop = {place for place in first if place not in self.assigned}
        for place in first.keys() & self._unconfirmed:
            self._unconfirmed.discard(place)
            expected = self.next_offsets.get(place)
            if expected is not None and first[place] > expected:
                # The first batch since the seek starts past the stored offset: it was
                # fetched before the seek took effect, from Kafka's committed offset, which
                # was ahead of the database's (taking it would skip records). Fetch again
                # from the stored offset; a true gap in the log comes back the same way and
                # is then taken.
                assert self._consumer is not None
                self._consumer().seek(TopicPartition(*place), expected)
                drop.add(place)
        if not drop and all(
            offset >= self.next_offsets.get(place, 0) for place, offset in first.items()
        ):
            return records  # the common case, checked per partition (records in order)
        kept = [
            record
            for record in records
            if (place := (record.topic, record.partition)) not in drop
            and record.offset >= self.next_offsets.get(place, 0)
        ]
        log.info(
            "dropped %d records fetched before a seek of %s",
            len(records) - len(kept),
            sorted(first),
        )
        return kept

    def handed(self, offsets: Mapping[Place, int]) -> None:
        """Records up to (not including) these offsets went to a commit."""
        for place, offset in offsets.items():
            self.next_offsets[place] = max(self.next_offsets.get(place, 0), offset)

    def rewound(self, sought: dict[Place, int]) -> None:
        """These partitions were sent back (a failed batch): their records come again."""
        self.next_offsets.update(sought)

    def bind(self, consumer: Callable[[], Any]) -> None:
        """`consumer()` gives the subscriber's AIOKafkaConsumer once it has started."""
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The batch in flight commits before the partitions go to another consumer.
        await self._pipeline.drain()
        self.assigned -= set(revoked)
        for tp in revoked:
            self.next_offsets.pop((tp.topic, tp.partition), None)
            self._unconfirmed.discard((tp.topic, tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None, "bind() the listener to its subscriber first"
        consumer = self._consumer()
        await self._pipeline.drain()  # its offsets are stored before they are read
        try:
            stored = await self._sink.stored_offsets(self._topic)  # waits out outages
            unknown = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
            # A concrete offset, not seek_to_beginning(): that one resets lazily and may
            # rewind again after the first batch was already fetched.
            beginnings = await consumer.beginning_offsets(unknown) if unknown else {}
            for tp in assigned:
                offset = stored.get((tp.topic, tp.partition), beginnings.get(tp))
                if offset is None:  # no record was ever written to it: nothing to skip
                    offset = 0
                consumer.seek(tp, offset)
                self.next_offsets[(tp.topic, tp.partition)] = offset
                self._unconfirmed.add((tp.topic, tp.partition))
        except Exception:
            # Kafka's committed offsets trail the database's (they are committed after
            # it): consuming from them only redoes idempotent work. Never stall.
            log.exception("seek to the stored offsets failed; consuming from Kafka's")
            for tp in assigned:
                self.next_offsets.pop((tp.topic, tp.partition), None)
            self.assigned |= set(assigned)
            return
        self.assigned |= set(assigned)  # after the seek: the subscriber now takes them
        log.info(
            "assigned %s; resuming from stored offsets %s",
            sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
            {f"{t}/{p}": o for (t, p), o in stored.items()},
        )
