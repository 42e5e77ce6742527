"""A batch that fails for a reason other than an outage, and that splitting cannot settle
(here: a poison record mid-stream whose refusal itself fails a few times, by a trigger),
is rewound and retried after a back-off. The consumer parses the next batch while one
commits, so the batch fetched behind a failed one must be dropped and fetched again too:
nothing lost, nothing counted twice; in the end the poison record is refused once.

(A batch that fails only as a whole, or because of records that fail on their own, is
split instead and commits: tests/integration/test_consumer_poison.py.)"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tests.support import poison
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import scalar
from tests.support.exactly_once import PacedProducer, applied, stored_offsets, wait_caught_up
from tests.support.streams import stream
from tests.support.waiting import wait_until

FAILURES = 3

# Fails the insert of a refusal, 2 * FAILURES times: each failed batch tries to store its
# poison record's refusal twice (with its reason, then with the bare error type). The
# budget is a sequence: failed transactions do not return it.
INJECT_FAILURES = f"""
CREATE SEQUENCE injected_failures;
CREATE FUNCTION fail_a_few_refusals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('injected_failures') <= {2 * FAILURES} THEN
        RAISE EXCEPTION 'injected failure';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER fail_a_few_refusals BEFORE INSERT ON refused_records
    FOR EACH ROW EXECUTE FUNCTION fail_a_few_refusals();
"""


@pytest.mark.slow
def test_a_failed_batch_and_the_one_parsed_behind_it_are_retried(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=150, events_per_pack=40, seed=4242, tag="failed-batch-")
    bad = next(e["id"] for e in events[2000:] if e["type"] != "infinite.pack.purchased")
    poison.install(ledger_database, [bad])
    with psycopg.connect(ledger_database, autocommit=True) as conn:
        conn.execute(INJECT_FAILURES)
    # Small batches one after the other: the failures fall mid-stream, with the next
    # batch fetched and parsed while the failing one commits.
    with PacedProducer(
        kafka_bootstrap, unique_topic, events, allowed=300, chunk=200, pause=0.05
    ) as producer:
        consumer = consumer_factory()
        consumer.start()
        wait_until(lambda: applied(ledger_database) > 0, 30, f"progress\n{consumer.tail()}")
        producer.finish()
        ends = wait_caught_up(ledger_database, kafka_bootstrap, unique_topic, 120, consumer.tail)
        assert consumer.process is not None and consumer.process.poll() is None, consumer.tail()
        consumer.stop()

    log = consumer.log.read_text(errors="replace")
    assert log.count(" failed; rewinding and backing off") == FAILURES, log[-3000:]
    assert "injected failure" in log, log[-3000:]
    assert scalar(ledger_database, "SELECT last_value FROM injected_failures") > 2 * FAILURES
    poison.assert_projected_without(ledger_database, events, {bad})
    refused = poison.refused_ids(ledger_database)
    assert [event_id for event_id, _ in refused] == [bad] * sum(e["id"] == bad for e in events)
    assert stored_offsets(ledger_database, unique_topic) == ends
