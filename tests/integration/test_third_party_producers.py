"""Producers no one here wrote, through the real broker and the real `ledger consume`, into
the real database, read back through the API: the official CloudEvents Python SDK (both
content modes, sent by aiokafka) and Kafka's own console producer (both modes).

What they publish must answer exactly what the same events answer when the ledger's own
path (structured JSON, parsed and ingested in process) applies them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from cloudevents.v1.http import CloudEvent
from cloudevents.v1.kafka import KafkaMessage, to_binary, to_structured

from services.consumer.ingest import ingest
from services.consumer.records import SourceRecord
from services.infra.testing import run_coroutine, temporary_database
from services.replay.from_kafka import rebuild_from_kafka
from services.replay.verify import verify
from services.store.connection import connect
from services.store.migrate import migrate
from tests.integration.test_replay import api_answers, distinct_ids, wait_applied
from tests.support.console_producer import console_produce
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import actual_rows, query, scalar
from tests.support.kafka import read_all
from tests.support.streams import expected_rows, stream
from tests.support.waiting import wait_until

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]
"""(key, value, headers) of one Kafka record."""


def sdk_event(event: dict[str, Any]) -> CloudEvent:
    """The event as a scheduler on the SDK builds it: `partitionkey` (the SDK's record
    key) is the userPackId, as the contract wants the key."""
    attributes = {name: value for name, value in event.items() if name != "data"}
    attributes["datacontenttype"] = "application/json"  # the SDK's binary mode needs it
    attributes["partitionkey"] = str(int(event["data"]["userPackId"]))
    return CloudEvent(attributes, event["data"])


def sdk_record(message: KafkaMessage) -> Record:
    key = message.key.encode() if isinstance(message.key, str) else message.key
    value = message.value.encode() if isinstance(message.value, str) else message.value
    return key, value, list(message.headers.items())


async def send(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def our_own_answers(database_url: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The API's answers for `events` applied the ledger's own way (structured records,
    ingested in process) to a database of their own."""

    async def apply(url: str) -> None:
        records = [
            SourceRecord("own", 0, offset, None, json.dumps(event).encode())
            for offset, event in enumerate(events)
        ]
        conn = await connect(url)
        try:
            await ingest(conn, "own", records)
        finally:
            await conn.close()

    with temporary_database(database_url, "own") as url:
        migrate(url)
        run_coroutine(lambda: apply(url))
        return run_coroutine(lambda: api_answers(url))


def assert_answers_like_our_own(
    ledger_database: str, database_url: str, events: list[dict[str, Any]]
) -> None:
    assert actual_rows(ledger_database) == expected_rows(events)
    answers = run_coroutine(lambda: api_answers(ledger_database))
    packs = {int(e["data"]["userPackId"]) for e in events}
    assert int(answers["admin packs"]["total"]) == len(packs)
    assert answers["admin logs"]["list"], "the streams run trainings: usage records exist"
    assert answers == our_own_answers(database_url, events)
    assert verify(ledger_database, progress=False).clean  # the pure fold of the envelopes


def test_sdk_events_in_both_modes_become_facts_read_through_the_api(
    kafka_bootstrap: str,
    database_url: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=20, events_per_pack=12, seed=31, tag="sdk-")
    # Every pack gets both modes: one event in binary mode, the next structured, ...
    records = [
        sdk_record((to_binary if n % 2 == 0 else to_structured)(sdk_event(event)))
        for n, event in enumerate(events)
    ]
    assert all(key is not None for key, _, _ in records)
    no_type = sdk_record(to_binary(sdk_event(events[0])))
    no_type = (no_type[0], no_type[1], [(n, v) for n, v in no_type[2] if n != "ce_type"])
    run_coroutine(lambda: send(kafka_bootstrap, unique_topic, [*records, no_type]))

    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(events), consumer)
    wait_until(
        lambda: scalar(ledger_database, "SELECT count(*) FROM refused_records") == 1,
        30,
        f"the refusal\n{consumer.tail()}",
    )
    assert_answers_like_our_own(ledger_database, database_url, events)

    # A binary event is stored as the structured event it stands for.
    first = events[0]
    (stored,) = query(
        ledger_database,
        "SELECT envelope::text FROM ledger_events WHERE event_id = %s",
        (first["id"],),
    )
    assert orjson.loads(stored[0]) == {**first, "datacontenttype": "application/json"}

    (reason,) = query(ledger_database, "SELECT reason FROM refused_records")
    assert reason[0] == "not a CloudEvent: missing attribute 'type'"
    (dead,) = run_coroutine(lambda: read_all(kafka_bootstrap, f"{unique_topic}.dlq", 30, expect=1))
    assert (dead.key, dead.value) == (no_type[0], no_type[1])
    assert list(dead.headers)[: len(no_type[2])] == no_type[2]  # the record's own, in order
    assert dict(dead.headers)["ledger-refusal-reason"] == reason[0].encode()


def test_console_producer_lines_become_facts_read_through_the_api(
    kafka_bootstrap: str,
    database_url: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=8, events_per_pack=10, seed=32, tag="console-")
    structured = events[::2]
    binary = events[1::2]

    def key(event: dict[str, Any]) -> str:
        return str(int(event["data"]["userPackId"]))

    # kafka-console-producer.sh --reader-property parse.key=true --reader-property
    # key.separator='|' : each line is `key|event`.
    console_produce(
        kafka_bootstrap,
        unique_topic,
        [f"{key(e)}|{json.dumps(e)}" for e in structured],
        {"parse.key": "true", "key.separator": "|"},
    )

    # Binary content mode: `ce_name:value,...|key|data` (parse.headers=true).
    def headers(event: dict[str, Any]) -> str:
        pairs = [f"ce_{n}:{v}" for n, v in event.items() if n != "data"]
        return ",".join([*pairs, "content-type:application/json"])

    console_produce(
        kafka_bootstrap,
        unique_topic,
        [f"{headers(e)}|{key(e)}|{json.dumps(e['data'])}" for e in binary],
        {
            "parse.key": "true",
            "parse.headers": "true",
            "key.separator": "|",
            "headers.delimiter": "|",
        },
    )

    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(events), consumer)
    assert scalar(ledger_database, "SELECT count(*) FROM refused_records") == 0
    assert_answers_like_our_own(ledger_database, database_url, events)


def test_rebuild_from_kafka_reads_binary_records(
    kafka_bootstrap: str, ledger_database: str, unique_topic: str
) -> None:
    events = stream(packs=10, events_per_pack=8, seed=33, tag="rebuild-")
    records = [
        sdk_record((to_binary if n % 3 else to_structured)(sdk_event(event)))
        for n, event in enumerate(events)
    ]
    run_coroutine(lambda: send(kafka_bootstrap, unique_topic, records))
    report = run_coroutine(
        lambda: rebuild_from_kafka(
            ledger_database, kafka_bootstrap, unique_topic, "rebuild", progress=False
        )
    )
    assert (report.records, report.refused) == (len(events), 0)
    assert report.appended == distinct_ids(events)
    assert actual_rows(ledger_database) == expected_rows(events)
    assert verify(ledger_database, progress=False).clean
