"""`ledger consume`: the FastStream application wiring the broker to the ledger.

The subscriber only turns the fetched records into `SourceRecord`s and hands them to
`BatchFlow` (`batch.py`: the whole path of a batch, top to bottom); `offsets` seeks on
assignment, `notices` announces exhaustions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from services.consumer.batch import BatchFlow, kafka_offsets, lags
from services.consumer.dead_letters import DeadLetters
from services.consumer.notices import ExhaustionNotifier
from services.consumer.offsets import SeekToStoredOffsets
from services.consumer.pipeline import CommitPipeline
from services.consumer.records import SourceRecord
from services.consumer.sink import LedgerSink
from services.consumer.topics import ensure_topics
from services.settings import Settings

__all__ = ["build_app", "kafka_offsets", "lags", "subscribe"]

log = logging.getLogger("ledger.consumer")

Handler = Callable[[list[SourceRecord]], Awaitable[None]]


async def _no_decoding(message: Any) -> None:
    # The handler reads the raw records; skip FastStream's JSON decoding of each body.
    return None


def source_records(msg: KafkaMessage) -> list[SourceRecord]:
    """The batch's records (aiokafka gives a tuple, FastStream's test broker a list)."""
    raw = msg.raw_message if isinstance(msg.raw_message, tuple | list) else (msg.raw_message,)
    return [SourceRecord(r.topic, r.partition, r.offset, r.key, r.value, r.headers) for r in raw]


def subscribe(
    broker: KafkaBroker, settings: Settings, listener: SeekToStoredOffsets, handle: Handler
) -> Any:
    """The batch subscriber of the events topic: manual acks (the database stores the
    offsets that count), records handed to `handle` as they came."""
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

    @subscriber
    async def on_batch(msg: KafkaMessage) -> None:
        await handle(source_records(msg))

    return subscriber


def build_app(settings: Settings) -> FastStream:
    # FastStream logs every batch at INFO; keep that for debugging only.
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id="ledger-consume",
        logger=logging.getLogger("ledger.faststream"),  # through our handlers (JSON)
        log_level=logging.DEBUG,
    )
    sink = LedgerSink(settings.psycopg_url, settings.consumer_group, terms=settings.terms)
    # Validates its horizon and period.
    notifier = ExhaustionNotifier(settings, broker, own_writer=sink.writer_pid)
    pipeline = CommitPipeline()
    dead_letters = DeadLetters(settings.kafka_bootstrap_servers, settings.dlq_topic)
    listener = SeekToStoredOffsets(sink, settings.events_topic, pipeline)
    subscriber: Any = None

    def consumer() -> Any:
        assert subscriber is not None and subscriber.consumer is not None  # it delivers
        return subscriber.consumer

    flow = BatchFlow(
        sink=sink,
        listener=listener,
        pipeline=pipeline,
        notifier=notifier,
        dead_letters=dead_letters,
        consumer=consumer,
    )
    subscriber = subscribe(broker, settings, listener, flow.handle)
    listener.bind(lambda: subscriber.consumer)

    async def create_topics() -> None:
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [settings.events_topic, settings.dlq_topic, settings.out_topic],
        )

    app = FastStream(broker)
    app.on_startup(create_topics)
    app.on_startup(dead_letters.start)  # before the subscriber delivers its first batch
    app.after_startup(notifier.start)
    app.on_shutdown(pipeline.stop)  # the batch in flight commits before the broker closes
    app.on_shutdown(flow.close)  # then its Kafka offsets are sent
    app.on_shutdown(notifier.stop)
    app.on_shutdown(dead_letters.stop)  # after the last batch reported its refusals
    app.after_shutdown(sink.close)
    return app
