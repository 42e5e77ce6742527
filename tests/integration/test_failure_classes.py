"""How the consumer classifies a failed batch (`services/consumer/failures.py`), on errors
the real PostgreSQL raises: an outage is waited out, the event-id race retried, anything
else is the batch's content (split, and the records at fault refused)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from services.consumer import failures


def error_of(url: str, *statements: str) -> BaseException:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements[:-1]:
            conn.execute(statement)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(statements[-1])
    return caught.value


LEDGER_ROW = (
    "INSERT INTO ledger_events (event_id, user_pack_id, event_type, event_time, source,"
    " envelope) VALUES ('e-1', 1, 't', now(), 's', '{}')"
)


@pytest.mark.parametrize(
    ("statements", "kind"),
    [
        ((LEDGER_ROW, LEDGER_ROW), "race"),
        (("SELECT 'x'::integer",), "content"),  # DataError
        (("SELECT 1/0",), "content"),  # DataError too
        (("DO $$ BEGIN RAISE EXCEPTION 'poison'; END $$",), "content"),  # a trigger's RAISE
        (
            (
                "INSERT INTO consumer_offsets VALUES ('g', 't', 0, 1)",
                "INSERT INTO consumer_offsets VALUES ('g', 't', 0, 1)",
            ),
            "content",  # a unique key other than the event id's
        ),
        (("SELECT * FROM no_such_table",), "outage"),  # class 42: not the record's fault
        ((LEDGER_ROW, "UPDATE ledger_events SET source = 'x'"), "outage"),  # append-only
        (("SELECT pg_terminate_backend(pg_backend_pid())",), "outage"),
        (("SET statement_timeout = 10", "SELECT pg_sleep(1)"), "outage"),
    ],
)
def test_errors_of_the_real_database_are_classified(
    ledger_database: str, statements: tuple[str, ...], kind: str
) -> None:
    error = error_of(ledger_database, *statements)
    kinds: dict[str, Callable[[BaseException], bool]] = {
        "race": failures.is_race,
        "content": failures.is_content,
        "outage": failures.is_outage,
    }
    assert [name for name, test in kinds.items() if test(error)] == [kind], repr(error)


@pytest.mark.parametrize("error", [OverflowError("date value out of range"), ValueError("x")])
def test_python_errors_are_content(error: BaseException) -> None:
    assert failures.is_content(error)
    assert failures.reason(error).startswith(f"apply failed: {type(error).__name__}: ")


def test_a_reason_is_storable_text() -> None:
    reason = failures.reason(ValueError("a\x00b\nsecond line" + "x" * 2000))
    assert "\x00" not in reason and "\n" not in reason and len(reason) <= 1000
