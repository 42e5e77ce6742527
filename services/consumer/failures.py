"""Why a batch failed: an outage (wait and retry the same batch), a race with another
writer (retry at once, a few times), or its content (split it and refuse the records
that fail on their own: `services/consumer/split.py`).

Outages are psycopg's OperationalError (server gone, restarting, deadlock, serialization
failure, statement cancelled, disk full...) and InterfaceError (connection closed), and
Kafka's errors. SQLSTATE class 42 (an undefined table or column, a missing privilege) is
waited out like an outage too: the database is not in a state to serve any record, and
refusing every record until an operator fixes it would be worse than waiting. Anything
else is the batch's content: DataError, IntegrityError (but the one race below),
a trigger's RAISE, and every Python exception (OverflowError, ValueError, a bug).
"""

from __future__ import annotations

import psycopg
from aiokafka.errors import KafkaError

# psycopg's errors when the server is gone, restarting or refusing connections.
DATABASE_DOWN: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
OUTAGE: tuple[type[BaseException], ...] = (*DATABASE_DOWN, KafkaError)

# The unique constraint on the ledger's event id, which a concurrent writer of the same
# id trips between the batch's look-up of known ids and its COPY (ledger_sql.py).
EVENT_ID_KEY = "ledger_events_event_id_key"

RACE_RETRIES = 3
"""Immediate retries of a batch that lost the event-id race; past them, it is content
(a retry finds the other writer's id, so a fourth loss is not a race)."""


def is_outage(error: BaseException) -> bool:
    if isinstance(error, OUTAGE):
        return True
    return isinstance(error, psycopg.Error) and (error.sqlstate or "").startswith("42")


def is_race(error: BaseException) -> bool:
    return (
        isinstance(error, psycopg.errors.UniqueViolation)
        and error.diag.constraint_name == EVENT_ID_KEY
    )


def is_content(error: BaseException) -> bool:
    """A failure caused by what the batch holds (the default for anything unknown)."""
    return not is_outage(error) and not is_race(error)


def reason(error: BaseException) -> str:
    """The refusal reason for a record whose application failed: type and message."""
    message = str(error).strip().splitlines()
    text = message[0] if message else ""
    # A reason is stored as text: no NUL (PostgreSQL refuses it), bounded length.
    return f"apply failed: {type(error).__name__}: {text}".replace("\x00", "\\x00")[:1000]
