"""The event-id race (another writer appended the same id between a batch's look-up and
its COPY) is retried at once, a few times; past them it is the batch's content and the
record is refused. In process, through the consumer's `LedgerSink`, on the real database:
a trigger raises the same error the race raises (unique_violation on the event-id key)."""

from __future__ import annotations

import json

import psycopg
import pytest

from services.consumer.parsing import parsed
from services.consumer.records import SourceRecord
from services.consumer.sink import LedgerSink
from tests.support.db import query, scalar
from tests.support.streams import stream


def lose_the_race(url: str, event_id: str, times: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            CREATE SEQUENCE races;
            CREATE FUNCTION lose_the_race() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.event_id = '{event_id}' AND nextval('races') <= {times} THEN
                    RAISE unique_violation USING MESSAGE = 'duplicate key value',
                        CONSTRAINT = 'ledger_events_event_id_key';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER lose_the_race BEFORE INSERT ON ledger_events
                FOR EACH ROW EXECUTE FUNCTION lose_the_race();
            """
        )


@pytest.mark.parametrize(("losses", "refused"), [(2, False), (1000, True)])
async def test_a_lost_race_is_retried_then_refused(
    ledger_database: str, losses: int, refused: bool
) -> None:
    events = stream(packs=3, events_per_pack=8, seed=91, tag="race-")
    target = events[5]["id"]
    lose_the_race(ledger_database, target, losses)
    records = [
        SourceRecord("t", 0, offset, None, json.dumps(item).encode())
        for offset, item in enumerate(events)
    ]
    sink = LedgerSink(ledger_database, "races", max_backoff=0.2)
    try:
        outcome = await sink.commit_parsed(parsed(records))
    finally:
        await sink.close()
    ids = {item["id"] for item in events}
    in_ledger = {r[0] for r in query(ledger_database, "SELECT event_id FROM ledger_events")}
    reasons = [r[0] for r in query(ledger_database, "SELECT reason FROM refused_records")]
    if refused:
        assert in_ledger == ids - {target}
        assert len(reasons) == sum(item["id"] == target for item in events)
        assert all(r.startswith("apply failed: UniqueViolation: duplicate key") for r in reasons)
        assert outcome.split_attempts > 0
    else:
        assert in_ledger == ids
        assert reasons == []
        assert outcome.split_attempts == 0  # retried whole, never split
        assert scalar(ledger_database, "SELECT last_value FROM races") == losses + 1
    assert scalar(ledger_database, "SELECT next_offset FROM consumer_offsets") == len(events)
