"""Events through the real broker into the real database, by the real `ledger consume`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.support.api_process import free_port
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import actual_rows, query, scalar
from tests.support.exactly_once import assigned_partitions, assignments, since_last_start
from tests.support.kafka import produce, read_all
from tests.support.metrics import scrape
from tests.support.streams import envelope, expected_rows, purchase, stream
from tests.support.waiting import wait_until

POISON = [
    b"{not json",
    b'["a CloudEvent is an object"]',
    json.dumps(
        {
            "specversion": "1.0",
            "id": "x1",
            "source": "s",
            "type": "infinite.pack.sold",
            "time": "2026-11-01T00:00:00Z",
            "data": {"userPackId": 1},
        }
    ).encode(),
    json.dumps(
        {
            "specversion": "1.0",
            "id": "x2",
            "source": "s",
            "type": "infinite.training.started",
            "time": "2026-11-01T00:00:00Z",
            "data": {"userPackId": 1, "trainId": "abc"},
        }
    ).encode(),
]


async def test_stream_with_poison_records_is_projected_exactly(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=30, events_per_pack=25, seed=11)
    half = len(events) // 2
    # Poison records arrive in the middle of the stream; the stream must go on.
    await produce(kafka_bootstrap, unique_topic, [*events[:half], *POISON, *events[half:]])

    consumer = consumer_factory()
    metrics_port = free_port()
    consumer.env["LEDGER_CONSUMER_METRICS_PORT"] = str(metrics_port)
    consumer.start()
    distinct = len({e["id"] for e in events})
    wait_until(
        lambda: (
            scalar(ledger_database, "SELECT count(*) FROM ledger_events") == distinct
            and scalar(ledger_database, "SELECT count(*) FROM refused_records") == len(POISON)
        ),
        60,
        f"{distinct} ledger events\n{consumer.tail()}",
    )

    want_packs, want_usage = expected_rows(events)
    got_packs, got_usage = actual_rows(ledger_database)
    assert got_packs == want_packs
    assert got_usage == want_usage

    reasons = [
        r[0]
        for r in query(ledger_database, "SELECT reason FROM refused_records ORDER BY kafka_offset")
    ]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1].startswith("not a CloudEvent")
    assert reasons[2].startswith("unknown type 'infinite.pack.sold'")
    assert "data.trainId" in reasons[3]
    raw = query(ledger_database, "SELECT record_value FROM refused_records ORDER BY kafka_offset")
    assert [bytes(r[0]) for r in raw] == POISON

    # The operators' view of the same run, from the consumer's Prometheus endpoint.
    metrics = scrape(metrics_port)
    assert metrics["ledger_events_applied_total"] == distinct
    assert metrics["ledger_events_duplicate_total"] == len(events) - distinct
    assert metrics["ledger_records_refused_total"] == len(POISON)
    assert metrics["ledger_records_consumed_total"] == len(events) + len(POISON)

    dlq = await read_all(kafka_bootstrap, f"{unique_topic}.dlq", 30, expect=len(POISON))
    assert sorted(r.value for r in dlq) == sorted(POISON)
    headers = {k: v.decode() for k, v in dlq[0].headers}
    assert headers["ledger-source-topic"] == unique_topic
    assert headers["ledger-refusal-reason"]


async def test_exhaustion_is_announced_once_within_a_second_or_two(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    consumer = consumer_factory()
    consumer.start()
    # The clock starts once the consumer holds its partitions: "within a second or two"
    # is the notifier's promise to a running consumer, not to one still starting (a
    # loaded machine took over 5 s to start one).
    wait_until(
        lambda: any(assigned_partitions(line) for line in assignments(since_last_start(consumer))),
        60,
        f"partitions assigned\n{consumer.tail()}",
    )
    now = datetime.now(UTC)
    start = envelope(
        "start-1",
        "infinite.training.started",
        now,
        {"userPackId": 5, "trainId": 51, "trainName": "a", "userId": 9, "userName": "u"},
    )
    start2 = envelope(
        "start-2",
        "infinite.training.started",
        now + timedelta(milliseconds=1),
        {"userPackId": 5, "trainId": 52, "trainName": "b", "userId": 9, "userName": "u"},
    )
    # 6 seconds shared by two running trainings: exhausted 3 seconds after they start.
    await produce(
        kafka_bootstrap, unique_topic, [purchase(5, 9, now - timedelta(hours=1), 6), start, start2]
    )

    wait_until(
        lambda: (
            scalar(
                ledger_database,
                "SELECT count(*) FROM exhaustion_notices WHERE published_at IS NOT NULL",
            )
            == 1
        ),
        30,
        f"a published notice\n{consumer.tail()}",
    )
    published, exhausted = query(
        ledger_database, "SELECT published_at, exhausted_at FROM exhaustion_notices"
    )[0]
    # Whole seconds per session: 3 + 3 = 6 once the later start is 3 s old.
    assert exhausted == now + timedelta(seconds=3, milliseconds=1)
    assert published - exhausted < timedelta(seconds=2)

    notices = await read_all(kafka_bootstrap, f"{unique_topic}.out", 3)
    assert len(notices) == 1
    body = json.loads(notices[0].value)
    assert body["type"] == "infinite.pack.exhausted"
    assert body["data"]["userPackId"] == 5
    assert body["data"]["trainIds"] == [51, 52]
    assert notices[0].key == b"5"

    # A restart (like a replay) derives the same notice id: nothing new is published.
    consumer.stop()
    consumer.start()
    await produce(
        kafka_bootstrap,
        unique_topic,
        [
            envelope(
                "adj-0",
                "infinite.pack.adjusted",
                now + timedelta(seconds=1),
                {"userPackId": 7, "deltaSeconds": 5, "reason": "unrelated"},
            )
        ],
    )
    wait_until(
        lambda: scalar(ledger_database, "SELECT count(*) FROM ledger_events") == 4,
        30,
        "the unrelated event",
    )
    assert len(await read_all(kafka_bootstrap, f"{unique_topic}.out", wait_seconds=2)) == 1
