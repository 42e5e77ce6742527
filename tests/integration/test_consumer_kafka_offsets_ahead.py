"""A consumer group whose offsets in Kafka are ahead of the database's (Kafka's are only
informational; an older version of the consumer could leave them so): the consumer
resumes from the database's and skips nothing. When the first fetch runs from Kafka's
offsets before the seek takes effect (a race this test does not force: in its runs the
seek came first), that batch is dropped and fetched again from the database's offsets;
that rule is tested in tests/unit/test_fresh_records.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.support.consumer_process import ConsumerProcess
from tests.support.exactly_once import PacedProducer, assert_applied_exactly_once, wait_caught_up
from tests.support.streams import stream


async def commit_halfway(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """Commit, for `group`, half of each partition's end offset to Kafka."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        places = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(places)
        halves = {place: end // 2 for place, end in ends.items()}
        await consumer.commit(halves)
        return {place.partition: offset for place, offset in halves.items()}
    finally:
        await consumer.stop()


@pytest.mark.slow
def test_kafka_offsets_ahead_of_the_database_skip_nothing(
    kafka_bootstrap: str, ledger_database: str, unique_topic: str, tmp_path: Path
) -> None:
    events = stream(packs=120, events_per_pack=40, seed=77, tag="ahead-")
    with PacedProducer(kafka_bootstrap, unique_topic, events, allowed=len(events)) as producer:
        producer.finish()
    group = f"ledger-test-{uuid.uuid4().hex[:8]}"
    halves = asyncio.run(commit_halfway(kafka_bootstrap, unique_topic, group))
    assert len(halves) == 4 and all(offset > 0 for offset in halves.values()), halves

    consumer = ConsumerProcess(
        bootstrap=kafka_bootstrap,
        database_url=ledger_database,
        topic=unique_topic,
        group=group,
        log=tmp_path / "consumer.log",
    )
    try:
        consumer.start()
        ends = wait_caught_up(ledger_database, kafka_bootstrap, unique_topic, 90, consumer.tail)
    finally:
        consumer.stop()
    assert_applied_exactly_once(ledger_database, unique_topic, events, ends)
