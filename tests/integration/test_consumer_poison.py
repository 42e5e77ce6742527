"""No record stops the stream: a record the parser accepts but whose application fails
(here made to fail by a trigger, for a few event ids) is refused with the error as its
reason, and the records around it - on its own partition, after it - are applied. The
batch holding it is split (`services/consumer/split.py`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.replay.verify import verify
from tests.support import poison
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import query, scalar
from tests.support.exactly_once import PacedProducer, stored_offsets, topic_ends, wait_caught_up
from tests.support.kafka import produce, read_all
from tests.support.streams import envelope, purchase, stream
from tests.support.waiting import wait_until


def _starts(events: list[dict[str, object]]) -> list[str]:
    return [str(e["id"]) for e in events if e["type"] == "infinite.training.started"]


def _others(events: list[dict[str, object]]) -> list[str]:
    return [str(e["id"]) for e in events if e["type"] != "infinite.pack.purchased"]


def _records_of(events: list[dict[str, object]], ids: set[str]) -> int:
    return sum(1 for e in events if e["id"] in ids)


def test_poison_records_mid_stream_are_refused_and_the_stream_goes_on(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    url = ledger_database
    events = stream(packs=40, events_per_pack=30, seed=71, tag="mid-")
    others = _others(events)
    # Spread over the stream; each pack's later events follow on the same partition.
    in_ledger = [others[len(others) // 5], others[len(others) // 2], others[-40]]
    in_usage = [_starts(events)[len(_starts(events)) // 3]]
    bad = set(in_ledger) | set(in_usage)
    poison.install(url, in_ledger, in_usage)
    with PacedProducer(
        kafka_bootstrap, unique_topic, events, allowed=200, chunk=100, pause=0.05
    ) as producer:
        consumer = consumer_factory()
        consumer.start()
        wait_until(lambda: scalar(url, "SELECT count(*) FROM ledger_events") > 0, 30, "progress")
        producer.finish()
        ends = wait_caught_up(url, kafka_bootstrap, unique_topic, 120, consumer.tail)
    assert consumer.process is not None and consumer.process.poll() is None, consumer.tail()

    poison.assert_projected_without(url, events, bad)
    refused = poison.refused_ids(url)
    assert len(refused) == _records_of(events, bad)  # a redelivered copy is refused too
    assert {event_id for event_id, _ in refused} == bad
    for event_id, reason in refused:
        assert reason.startswith("apply failed: RaiseException: poison "), reason
        assert event_id in reason
    assert stored_offsets(url, unique_topic) == ends  # every partition passed its poison
    report = verify(url, progress=False)
    assert report.clean, report.summary()
    consumer.stop()
    log = consumer.log.read_text(errors="replace")
    assert "splitting it to find the records at fault" in log
    assert " failed; rewinding and backing off" not in log, log[-3000:]


async def test_several_poison_records_in_one_batch_and_an_outage_while_splitting(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    url = ledger_database
    events = stream(packs=30, events_per_pack=25, seed=72, tag="many-")
    others = _others(events)
    bad = {others[i] for i in range(7, len(others), len(others) // 9)}
    # The second time a poison record is tried (the batch's first split attempts), its
    # database session is killed: an outage in the middle of the split.
    poison.install(url, sorted(bad), outage_at_hit=2)
    await produce(kafka_bootstrap, unique_topic, list(events))  # all there: large batches
    consumer = consumer_factory()
    consumer.start()
    ends = {p: o for p, o in topic_ends(kafka_bootstrap, unique_topic).items() if o > 0}
    wait_until(
        lambda: stored_offsets(url, unique_topic) == ends,
        120,
        f"offsets {ends}, have {stored_offsets(url, unique_topic)}\n{consumer.tail()}",
    )
    poison.assert_projected_without(url, events, bad)
    refused = poison.refused_ids(url)
    assert len(refused) == _records_of(events, bad)
    assert {event_id for event_id, _ in refused} == bad
    assert verify(url, progress=False).clean
    dlq = await read_all(kafka_bootstrap, f"{unique_topic}.dlq", 30, expect=len(refused))
    assert sorted(r.value for r in dlq) == sorted(
        bytes(r[0]) for r in query(url, "SELECT record_value FROM refused_records")
    )
    reasons = {dict(r.headers)["ledger-refusal-reason"].decode() for r in dlq}
    assert all(reason.startswith("apply failed: RaiseException: poison") for reason in reasons)
    consumer.stop()
    log = consumer.log.read_text(errors="replace")
    assert scalar(url, "SELECT last_value FROM poison_hits") > len(bad)
    assert "database unavailable" in log, log[-3000:]  # the outage was waited out


async def test_a_start_at_the_end_of_time_is_refused_and_its_pack_goes_on(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    """Whether the parser refuses it (the contract's range) or its application fails
    (the exhaustion instant overflows), the record ends refused and the others apply."""
    url = ledger_database
    at = datetime.now(UTC) - timedelta(hours=1)
    pack = {"userPackId": 7, "userId": 9, "userName": "u"}
    end_of_time = {
        **envelope(
            "start-at-the-end",
            "infinite.training.started",
            at,
            {**pack, "trainId": 71, "trainName": "late"},
        ),
        "time": "9999-12-31T23:59:59-01:00",
    }
    events = [
        purchase(7, 9, at, 3600),
        envelope(
            "start-1",
            "infinite.training.started",
            at + timedelta(minutes=1),
            {**pack, "trainId": 72, "trainName": "a"},
        ),
        end_of_time,
        envelope(
            "stop-1",
            "infinite.training.stopped",
            at + timedelta(minutes=11),
            {"userPackId": 7, "trainId": 72},
        ),
        envelope(
            "adjust-1",
            "infinite.pack.adjusted",
            at + timedelta(minutes=12),
            {"userPackId": 7, "deltaSeconds": 60, "reason": "top-up"},
        ),
    ]
    await produce(kafka_bootstrap, unique_topic, list(events))
    consumer = consumer_factory()
    consumer.start()
    wait_until(
        lambda: (
            scalar(url, "SELECT count(*) FROM refused_records") == 1
            and scalar(url, "SELECT count(*) FROM ledger_events") == 4
        ),
        60,
        f"one refused, four applied\n{consumer.tail()}",
    )
    poison.assert_projected_without(url, events, {"start-at-the-end"})
    assert query(url, "SELECT granted, charged FROM packs") == [(3660, 600)]
    ends = {p: o for p, o in topic_ends(kafka_bootstrap, unique_topic).items() if o > 0}
    wait_until(lambda: stored_offsets(url, unique_topic) == ends, 30, "offsets")
    assert verify(url, progress=False).clean
    consumer.stop()
