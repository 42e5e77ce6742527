"""The path of one batch through `ledger consume`, top to bottom.

The FastStream subscriber (`app.py`) hands each fetched batch to `BatchFlow.handle`:

1. **fresh records only** (`offsets.SeekToStoredOffsets.fresh`): none of a partition
   whose seek to its stored offset is not done, none already handed to a commit;
2. **parse** (`parsing.parse_batch`): events accepted, the others refused with a reason;
3. **plan ahead** (`ahead.plan_ahead`), on what the batch in flight leaves (its
   `Handoff`), while it commits;
4. **settle** the batch in flight (`pipeline.CommitPipeline`): if it failed, a batch
   fetched behind it is dropped and rewound, and one planned on its states is planned
   in its transaction instead (so is one planned on a handoff made void by a retry);
5. **commit** in the background (`committer.Committer`: retries, split of records at
   fault; `transaction.BatchTransaction`: lock and check, write, store the offsets), so
   that FastStream fetches the next batch while the database works;
6. **report** once committed: the notifier's schedule, stats, metrics, refused records
   to the DLQ, Kafka's informational offsets (never ahead of the database's; committed
   beside the next batch, `close` waits for the last). A batch whose commit failed
   rewinds its partitions and backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.consumer import metrics
from services.consumer.ahead import NOTHING_IN_FLIGHT, Ahead, Handoff
from services.consumer.dead_letters import DeadLetters
from services.consumer.notices import ExhaustionNotifier
from services.consumer.offsets import SeekToStoredOffsets
from services.consumer.outcome import BatchOutcome
from services.consumer.parsing import ParsedBatch, parse_batch
from services.consumer.pipeline import CommitPipeline, fetched_behind, rewind
from services.consumer.records import Place, SourceRecord
from services.consumer.sink import LedgerSink
from services.consumer.stats import ConsumerStats
from services.retry import Backoff

log = logging.getLogger("ledger.consumer")


class BatchFlow:
    def __init__(
        self,
        *,
        sink: LedgerSink,
        listener: SeekToStoredOffsets,
        pipeline: CommitPipeline,
        notifier: ExhaustionNotifier,
        dead_letters: DeadLetters,
        consumer: Callable[[], Any],  # the subscriber's AIOKafkaConsumer
        stats: ConsumerStats | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.sink = sink
        self.listener = listener
        self.pipeline = pipeline
        self.notifier = notifier
        self.dead_letters = dead_letters
        self.consumer = consumer
        self.stats = stats or ConsumerStats()
        self.backoff = backoff or Backoff(0.2, 30.0)
        self._kafka_offsets: dict[Place, int] = {}  # committed batches' offsets not sent yet
        self._kafka_commits: asyncio.Task[None] | None = None

    async def close(self, grace: float = 5.0) -> None:
        """At shutdown, once the pipeline stopped: the last Kafka offsets sent, waited for
        up to `grace` seconds (aiokafka retries a commit while no coordinator answers;
        the offsets are informational, and the database has them)."""
        task = self._kafka_commits
        if task is None:
            return
        await asyncio.wait([task], timeout=grace)
        if not task.done():
            log.warning("Kafka's informational offsets not sent within %.0f s at shutdown", grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def handle(self, fetched: list[SourceRecord]) -> None:
        """One fetched batch: from the records to its commit started (steps 1-5)."""
        records = self.listener.fresh(fetched)  # 1
        if not records:
            return
        batch = await parse_batch(records)  # 2: while the previous batch commits
        previous = self.pipeline.handoff
        ahead = await self._plan_ahead(batch, previous)  # 3
        failed = await self.pipeline.settle()  # 4
        if failed and fetched_behind(records, failed):
            # Fetched before the failed batch rewound: these records follow its records.
            log.info("dropped a batch of %d records fetched behind a failed one", len(records))
            self.listener.rewound(rewind(self.consumer(), records, failed))
            return
        if failed or (previous is not None and previous.void):
            ahead = None  # planned on states that are not the stored ones
        self.listener.handed(batch.offsets)
        handoff = Handoff()
        self.pipeline.start(self._commit(batch, ahead, handoff), batch.offsets, handoff)  # 5

    async def _plan_ahead(self, batch: ParsedBatch, previous: Handoff | None) -> Ahead | None:
        """The batch planned on what the batch in flight leaves, once its plan is made
        (None: it ended without one, and this batch is planned in its transaction)."""
        before = NOTHING_IN_FLIGHT if previous is None else await previous.wait()
        return None if before is None else await self.sink.plan_ahead(batch, before)

    async def _commit(self, batch: ParsedBatch, ahead: Ahead | None, handoff: Handoff) -> bool:
        """Commit a parsed batch and report it; False (its partitions rewound, after a
        backoff) when it failed."""
        started = time.perf_counter()
        try:
            outcome = await self.sink.commit_parsed(batch, ahead, handoff)
        except Exception:
            # Not an outage (the sink waits those out): a bug or a state the database
            # refuses. Nothing was committed; rewind to the batch and back off, so the
            # records are neither lost nor retried in a hot loop.
            log.exception(
                "batch of %d records failed; rewinding and backing off", len(batch.records)
            )
            self.listener.rewound(rewind(self.consumer(), batch.records))
            await self.backoff.wait()
            return False
        self.backoff.reset()
        try:
            await self._report(batch, outcome, time.perf_counter() - started)  # 6
        except Exception:  # the batch is committed: a report that fails must not undo that
            log.exception("reporting a committed batch failed")
        return True

    async def _report(self, batch: ParsedBatch, outcome: BatchOutcome, seconds: float) -> None:
        """What follows a commit: the notifier's schedule, stats and metrics, the refused
        records to the DLQ, Kafka's informational offsets."""
        consumer = self.consumer()
        self.notifier.watch(outcome.exhaustions)
        self.notifier.watch_crossings(outcome.crossings)
        self.stats.add(outcome, seconds)
        metrics.observe_batch(outcome, seconds)
        metrics.observe_lag(lags(consumer, batch.offsets))
        for refused in outcome.refused:
            log.warning(
                "refused %s/%d@%d: %s",
                refused.kafka_topic,
                refused.kafka_partition,
                refused.kafka_offset,
                refused.reason,
            )
            await self.dead_letters.publish(refused)
        self._commit_kafka_offsets(batch.offsets)

    def _commit_kafka_offsets(self, offsets: Mapping[Place, int]) -> None:
        """Kafka's informational offsets of a committed batch, sent beside the next batch:
        awaited here they held each batch's cycle ~2 ms (docs/consumer.md). One commit at
        a time, in batch order; offsets that arrive meanwhile go in the next one."""
        self._kafka_offsets.update(offsets)
        if self._kafka_commits is None or self._kafka_commits.done():
            self._kafka_commits = asyncio.create_task(
                self._send_kafka_offsets(), name="ledger-kafka-offsets"
            )

    async def _send_kafka_offsets(self) -> None:
        while self._kafka_offsets:
            offsets, self._kafka_offsets = self._kafka_offsets, {}
            consumer = self.consumer()
            try:  # informational only: the database holds the offsets that count
                await consumer.commit(kafka_offsets(consumer, offsets))
            except KafkaError as error:
                log.debug("kafka offset commit skipped: %s", error)
            except Exception:  # the batches are committed: this must not end the loop
                log.exception("committing Kafka's informational offsets failed")


def kafka_offsets(consumer: Any, offsets: Mapping[Place, int]) -> dict[TopicPartition, int]:
    """The offsets to commit to Kafka for a committed batch: its own next `offsets`, of
    the partitions still assigned. Not the consumer's positions: the next batch is
    fetched while this one commits, and Kafka's offsets must never pass the database's
    (a restarted consumer's first fetch starts from Kafka's offsets before its seek to
    the database's completes; ahead of them, it would skip records)."""
    assigned = consumer.assignment()
    return {
        place: offset
        for (topic, partition), offset in offsets.items()
        if (place := TopicPartition(topic, partition)) in assigned
    }


def lags(consumer: Any, offsets: Mapping[Place, int]) -> dict[int, int]:
    """Per partition of a batch (its next `offsets`) still assigned (a batch commits in
    the background: a rebalance may have moved some): how far it is from the high
    watermark."""
    assigned = consumer.assignment()
    result = {}
    for (topic, partition), offset in offsets.items():
        place = TopicPartition(topic, partition)
        if place not in assigned:
            continue
        highwater = consumer.highwater(place)
        if highwater is not None:
            result[partition] = max(0, highwater - offset)
    return result
