"""Identifier and time types shared by every event of the wire contract."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

MAX_ID = 2**63 - 1

DIGITS_PATTERN = r"^0*[1-9][0-9]{0,18}$"
"""A string of decimal digits naming a positive integer (the JSON Schema's view of an id)."""

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""An RFC 3339 date-time with an offset (`Z` or `+hh:mm`), as the contract requires."""

_RFC3339 = re.compile(RFC3339_PATTERN)


def _digits_to_int(value: Any) -> Any:
    """Ids travel as JSON numbers or as strings of decimal digits."""
    if type(value) is int:  # a JSON number, the common case (not a bool: its type is bool)
        return value
    if isinstance(value, bool):  # JSON true is not an id
        raise ValueError("must be a positive integer or a string of digits")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be a positive integer or a string of digits")
        return int(value)
    if isinstance(value, float):
        raise ValueError("must be an integer, not a fraction")
    return value


def _rfc3339_text(value: Any) -> Any:
    """Times travel as RFC 3339 strings with an offset; numbers (epoch seconds) are refused."""
    if isinstance(value, datetime):  # built in Python (tests, the ledger's own notices)
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string with an offset")
    if not _RFC3339.match(value):
        if _RFC3339.match(value + "Z"):
            raise ValueError(f"{value!r} has no offset: add 'Z' or '+hh:mm'")
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp like 2024-05-01T08:30:00+08:00")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would otherwise read JSON true as 1
        raise ValueError("must be an integer, not a boolean")
    return value


EntityId = Annotated[
    int,
    Field(ge=1, le=MAX_ID),
    BeforeValidator(_digits_to_int),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                {"type": "string", "pattern": DIGITS_PATTERN},
            ],
            "description": "A positive integer below 2^63, as a JSON number or a string of digits.",
            "examples": [42, "42"],
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_ID}, mode="serialization"),
]
"""A positive integer below 2^63, given as a JSON number or a string of digits."""

MAX_SECONDS = 10**12
"""About 31,700 years: durations beyond it are refused, so that any sum of them stays far
inside PostgreSQL's bigint and Python's datetime range."""

Seconds = Annotated[int, Field(ge=-MAX_SECONDS, le=MAX_SECONDS), BeforeValidator(_not_bool)]
"""A number of seconds, positive or negative, within +/- MAX_SECONDS."""

NonNegativeSeconds = Annotated[int, Field(ge=0, le=MAX_SECONDS), BeforeValidator(_not_bool)]
"""A number of seconds from 0 to MAX_SECONDS."""

NonNegative = Annotated[int, Field(ge=0), BeforeValidator(_not_bool)]
"""An integer >= 0 that is not a JSON boolean."""

EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    PlainSerializer(lambda t: t.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
"""An RFC 3339 timestamp with an offset."""
