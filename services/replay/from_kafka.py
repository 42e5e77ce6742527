"""`ledger replay --from-kafka`: the ledger itself rebuilt from the topic's full history.

Into an empty, migrated database: every partition of the events topic is read from its
beginning up to the end offset it had when the rebuild started, through the consumer's
own transaction (`services.consumer.ingest.ingest`): events are appended once by `id`,
refused records are kept with their reason, the read models are brought up to date and
the offsets stored, batch by batch. Afterwards `ledger consume` (same consumer group)
resumes exactly where the rebuild stopped.

An interrupted rebuild is resumed by running it again: it starts from the offsets the
database stored. A database whose ledger holds events but no stored offsets for this
group is refused: that is not a rebuild.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from projections.terms import DEFAULT_TERMS, Terms
from services.consumer.ingest import ingest
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from services.replay.rebuild import progress_bar
from services.store import ledger_sql
from services.store.connection import Conn, connect

log = logging.getLogger("ledger.replay")


class NotEmptyError(RuntimeError):
    """The database already holds a ledger that this rebuild did not start."""


class TopicMissingError(RuntimeError):
    """The events topic does not exist."""


@dataclass(slots=True)
class KafkaRebuildReport:
    records: int = 0
    appended: int = 0
    duplicates: int = 0
    refused: int = 0
    resumed: bool = False
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def _ledger_is_empty(conn: Conn) -> bool:
    cursor = await conn.execute("SELECT NOT EXISTS (SELECT 1 FROM ledger_events)")
    row = await cursor.fetchone()
    return bool(row and row[0])


async def rebuild_from_kafka(
    database_url: str,
    bootstrap_servers: str,
    topic: str,
    group: str,
    *,
    batch_max_records: int = 5000,
    progress: bool = True,
    terms: Terms = DEFAULT_TERMS,
) -> KafkaRebuildReport:
    report = KafkaRebuildReport()
    started = time.perf_counter()
    conn = await connect(database_url, application_name="ledger-replay-kafka")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        client_id="ledger-replay",
    )
    try:
        stored = await ledger_sql.load_offsets(conn, group, topic)
        if not stored and not await _ledger_is_empty(conn):
            raise NotEmptyError(
                "the database already holds ledger events and no offsets of consumer group "
                f"{group!r} on {topic!r}: rebuild into an empty, migrated database"
            )
        report.resumed = bool(stored)
        partitions = await _partitions(bootstrap_servers, topic)
        await consumer.start()
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        remaining: dict[TopicPartition, int] = {}
        total = 0
        for tp in partitions:
            start = max(stored.get((tp.topic, tp.partition), 0), beginnings[tp])
            consumer.seek(tp, start)
            if start < ends[tp]:
                remaining[tp] = ends[tp]
                total += ends[tp] - start
        log.info(
            "rebuilding from %s: %d records in %d partitions%s",
            topic,
            total,
            len(partitions),
            " (resuming from stored offsets)" if stored else "",
        )
        cache = StateCache()
        with progress_bar(total, "from kafka", progress) as bar:
            while remaining:
                fetched = await consumer.getmany(
                    *remaining, timeout_ms=1000, max_records=batch_max_records
                )
                records = [
                    SourceRecord(m.topic, m.partition, m.offset, m.key, m.value, m.headers)
                    for tp, messages in fetched.items()
                    for m in messages
                    if m.offset < ends[tp]  # appended after the start: the consumer's part
                ]
                if records:
                    outcome = await ingest(conn, group, records, cache, terms=terms)
                    report.records += len(records)
                    report.appended += outcome.appended
                    report.duplicates += outcome.duplicates
                    report.refused += len(outcome.refused)
                    bar.update(len(records))
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
    finally:
        await consumer.stop()
        await conn.close()
    report.seconds = time.perf_counter() - started
    return report


async def _partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ledger-replay")
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description["error_code"] or not description["partitions"]:
        raise TopicMissingError(f"topic {topic!r} does not exist")
    numbers = sorted(int(item["partition"]) for item in description["partitions"])
    return [TopicPartition(topic, number) for number in numbers]
