"""Records that the parser accepts but whose application fails, made reproducible by
triggers: the ledger insert of some event ids raises, and so does the usage record a
start opens. Stands for any value the database will not store, any bug in applying one
record: the consumer must refuse exactly those records and apply the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from tests.support.db import actual_rows, query, scalar
from tests.support.streams import expected_rows


def install(
    url: str,
    ledger_ids: Sequence[str],
    usage_start_ids: Sequence[str] = (),
    *,
    outage_at_hit: int | None = None,
) -> None:
    """Make the ledger insert of `ledger_ids`, and the usage record of the starts
    `usage_start_ids`, raise. With `outage_at_hit`, the n-th time a poison ledger insert
    is tried (counted in the sequence `poison_hits`), its session is killed instead: a
    database outage."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE poison_hits")
        outage = (
            ""
            if outage_at_hit is None
            else f"IF nextval('poison_hits') = {outage_at_hit} THEN"
            " PERFORM pg_terminate_backend(pg_backend_pid()); END IF;"
        )
        for table, column, ids, extra in (
            ("ledger_events", "event_id", ledger_ids, outage),
            ("usage_records", "start_event_id", usage_start_ids, ""),
        ):
            listed = ", ".join(f"'{i}'" for i in ids) or "NULL"
            conn.execute(
                f"""
                CREATE FUNCTION poison_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.{column} IN ({listed}) THEN
                        {extra}
                        RAISE EXCEPTION 'poison record %', NEW.{column};
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER poison BEFORE INSERT ON {table}
                    FOR EACH ROW EXECUTE FUNCTION poison_{table}();
                """
            )


def remove(url: str) -> None:
    """The fix: the records apply again."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER poison ON ledger_events")
        conn.execute("DROP TRIGGER poison ON usage_records")


def assert_projected_without(url: str, events: list[dict[str, Any]], poison: set[str]) -> None:
    """The ledger holds every event but the poison ones, once; the read models are what
    the pure fold makes of exactly those."""
    kept = [item for item in events if item["id"] not in poison]
    ids = {item["id"] for item in kept}
    assert {r[0] for r in query(url, "SELECT event_id FROM ledger_events")} == ids
    assert scalar(url, "SELECT count(*) FROM ledger_events") == len(ids)
    want_packs, want_usage = expected_rows(kept)
    got_packs, got_usage = actual_rows(url)
    assert got_packs == want_packs
    assert got_usage == want_usage


def refused_ids(url: str) -> list[tuple[str, str]]:
    """(event id, reason) of every refused record, in offset order per partition."""
    rows = query(
        url,
        "SELECT record_value, reason FROM refused_records ORDER BY kafka_partition, kafka_offset",
    )
    return [(json.loads(bytes(value))["id"], reason) for value, reason in rows]
