"""`ledger consume`: the FastStream application wiring the broker to the ledger.

The subscriber only converts and parses records and hands them to the sink through the
`pipeline` (a batch commits while the next one is parsed); everything else lives in
`ingest` (the transaction), `offsets` (seek on assignment) and `notices` (exhaustion).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from services.consumer import metrics
from services.consumer.ahead import NOTHING_IN_FLIGHT, Ahead, Handoff
from services.consumer.backoff import Backoff
from services.consumer.ingest import BatchOutcome
from services.consumer.notices import ExhaustionNotifier
from services.consumer.offsets import SeekToStoredOffsets
from services.consumer.parsing import ParsedBatch, parse_batch
from services.consumer.pipeline import CommitPipeline, fetched_behind, rewind
from services.consumer.records import Place, SourceRecord
from services.consumer.sink import LedgerSink
from services.consumer.stats import ConsumerStats
from services.consumer.topics import ensure_topics
from services.settings import Settings

log = logging.getLogger("ledger.consumer")


async def _no_decoding(message: Any) -> None:
    # The handler reads the raw records; skip FastStream's JSON decoding of each body.
    return None


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


def _lags(consumer: Any, offsets: Mapping[Place, int]) -> dict[int, int]:
    """Per partition of a batch (its next `offsets`) still assigned (a batch commits in
    the background: a rebalance may have moved some): how far it is from the high
    watermark."""
    assigned = consumer.assignment()
    lags = {}
    for (topic, partition), offset in offsets.items():
        place = TopicPartition(topic, partition)
        if place not in assigned:
            continue
        highwater = consumer.highwater(place)
        if highwater is not None:
            lags[partition] = max(0, highwater - offset)
    return lags


def build_app(settings: Settings) -> FastStream:
    # FastStream logs every batch at INFO; keep that for debugging only.
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id="ledger-consume",
        logger=logging.getLogger("ledger.faststream"),  # through our handlers (JSON)
        log_level=logging.DEBUG,
    )
    sink = LedgerSink(settings.psycopg_url, settings.consumer_group)
    notifier = ExhaustionNotifier(settings, broker)  # validates its horizon and period
    pipeline = CommitPipeline()
    listener = SeekToStoredOffsets(sink, settings.events_topic, pipeline)
    subscriber = broker.subscriber(
        settings.events_topic,
        group_id=settings.consumer_group,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=100,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        listener=listener,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        decoder=_no_decoding,
    )
    listener.bind(lambda: subscriber.consumer)
    backoff = Backoff()
    stats = ConsumerStats()

    async def commit_and_report(batch: ParsedBatch, ahead: Ahead | None, handoff: Handoff) -> bool:
        """Commit a parsed batch (maybe planned `ahead`) and do what follows a commit;
        False (and the batch's partitions rewound) when it failed."""
        records = batch.records
        started = time.perf_counter()
        try:
            outcome = await sink.commit_parsed(batch, ahead, handoff)
        except Exception:
            # Not an outage (the sink waits those out): a bug or a state the database
            # refuses. Nothing was committed; rewind to the batch and back off, so the
            # records are neither lost nor retried in a hot loop.
            log.exception("batch of %d records failed; rewinding and backing off", len(records))
            assert subscriber.consumer is not None  # it delivered this batch
            listener.rewound(rewind(subscriber.consumer, records))
            await backoff.wait()
            return False
        backoff.reset()
        try:
            await report(batch, outcome, time.perf_counter() - started)
        except Exception:  # the batch is committed: a report that fails must not undo that
            log.exception("reporting a committed batch failed")
        return True

    async def report(batch: ParsedBatch, outcome: BatchOutcome, seconds: float) -> None:
        """What follows a commit: the notifier's schedule, stats and metrics, the refused
        records to the DLQ, Kafka's informational offsets."""
        notifier.watch(outcome.exhaustions)
        stats.add(outcome, seconds)
        metrics.observe_batch(outcome, seconds)
        metrics.observe_lag(_lags(subscriber.consumer, batch.offsets))
        for refused in outcome.refused:
            log.warning(
                "refused %s/%d@%d: %s",
                refused.kafka_topic,
                refused.kafka_partition,
                refused.kafka_offset,
                refused.reason,
            )
            await broker.publish(
                refused.value,
                topic=settings.dlq_topic,
                key=refused.key,
                headers={
                    "ledger-refusal-reason": refused.reason,
                    "ledger-source-topic": refused.kafka_topic,
                    "ledger-source-partition": str(refused.kafka_partition),
                    "ledger-source-offset": str(refused.kafka_offset),
                },
            )
        try:  # informational only: the database holds the offsets that count
            assert subscriber.consumer is not None  # it delivered this batch
            await subscriber.consumer.commit(kafka_offsets(subscriber.consumer, batch.offsets))
        except KafkaError as error:
            log.debug("kafka offset commit skipped: %s", error)

    @subscriber
    async def on_batch(msg: KafkaMessage) -> None:
        raw = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        # Only records of partitions already sought to their stored offsets, and none
        # this process already handed to a commit: a fetch can run between an assignment
        # and the seek (which waits for the database), and those records come again.
        records = listener.fresh(
            [SourceRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in raw]
        )
        if not records:
            return
        batch = await parse_batch(records)  # while the previous batch commits
        # Planned on what the batch in flight leaves, while it writes and commits.
        previous = pipeline.handoff
        before = NOTHING_IN_FLIGHT if previous is None else await previous.wait()
        ahead = None if before is None else await sink.plan_ahead(batch, before)
        failed = await pipeline.settle()
        if failed and fetched_behind(records, failed):
            # Fetched before the failed batch rewound: these records follow its records.
            log.info("dropped a batch of %d records fetched behind a failed one", len(records))
            assert subscriber.consumer is not None  # it delivered this batch
            listener.rewound(rewind(subscriber.consumer, records, failed))
            return
        if failed or (previous is not None and previous.void):
            ahead = None  # planned on states that are not the stored ones
        listener.handed(batch.offsets)
        handoff = Handoff()
        pipeline.start(commit_and_report(batch, ahead, handoff), batch.offsets, handoff)

    async def create_topics() -> None:
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [settings.events_topic, settings.dlq_topic, settings.out_topic],
        )

    app = FastStream(broker)
    app.on_startup(create_topics)
    app.after_startup(notifier.start)
    app.on_shutdown(pipeline.stop)  # the batch in flight commits before the broker closes
    app.on_shutdown(notifier.stop)
    app.after_shutdown(sink.close)
    return app
