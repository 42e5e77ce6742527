"""A batch the database refuses for a reason other than an outage (here a trigger that
fails a few times mid-stream) is rewound and retried after a back-off. The consumer
parses the next batch while one commits, so the batch fetched behind a failed one must
be dropped and fetched again too: nothing lost, nothing counted twice."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tests.support.consumer_process import ConsumerProcess
from tests.support.db import scalar
from tests.support.exactly_once import (
    PacedProducer,
    applied,
    assert_applied_exactly_once,
    wait_caught_up,
)
from tests.support.streams import stream
from tests.support.waiting import wait_until

FAILURES = 3

# Fails the statement that updates packs, FAILURES times, once the ledger holds more
# than a thousand events. The budget is a sequence: failed transactions do not return it.
INJECT_FAILURES = f"""
CREATE SEQUENCE injected_failures;
CREATE FUNCTION fail_a_few_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM ledger_events) > 1000 THEN
        IF nextval('injected_failures') <= {FAILURES} THEN
            RAISE EXCEPTION 'injected failure';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER fail_a_few_batches BEFORE UPDATE ON packs
    FOR EACH STATEMENT EXECUTE FUNCTION fail_a_few_batches();
"""


@pytest.mark.slow
def test_a_failed_batch_and_the_one_parsed_behind_it_are_retried(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    with psycopg.connect(ledger_database, autocommit=True) as conn:
        conn.execute(INJECT_FAILURES)
    events = stream(packs=150, events_per_pack=40, seed=4242, tag="failed-batch-")
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
    assert scalar(ledger_database, "SELECT last_value FROM injected_failures") > FAILURES
    assert scalar(ledger_database, "SELECT count(*) FROM refused_records") == 0
    assert_applied_exactly_once(ledger_database, unique_topic, events, ends)
