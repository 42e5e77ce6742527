"""Identifier and time types shared by every event of the wire contract."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from events.times import RFC3339_PATTERN, rfc3339_text

MAX_ID = 2**63 - 1

DIGITS_PATTERN = r"^0*[1-9][0-9]{0,18}$"
"""A string of decimal digits naming a positive integer (the JSON Schema's view of an id)."""

_ID_DIGITS = len(str(MAX_ID))
"""Digits of the largest id: a digit string with more significant digits is too large."""


def _digits_to_int(value: Any) -> Any:
    """Ids travel as JSON numbers or as strings of decimal digits (leading zeros allowed)."""
    if type(value) is int:  # a JSON number, the common case (not a bool: its type is bool)
        return value
    if isinstance(value, bool):  # JSON true is not an id
        raise ValueError("must be a positive integer or a string of digits")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be a positive integer or a string of digits")
        return digits_value(value)
    if isinstance(value, float):
        # Unlike counts, an id is not read from `12.0`: a fraction-notation number past
        # 2^53 has lost digits already, and would name another pack (docs/decisions.md).
        if value.is_integer():
            raise ValueError("must be written without a fraction part (12, not 12.0)")
        raise ValueError("must be an integer, not a fraction")
    return value


def digits_value(digits: str) -> int:
    """The integer a string of ASCII digits names, any number of leading zeros included.

    Past 19 significant digits it is above every id, and MAX_ID + 1 stands for it: `int()`
    of a long string is slow, and refused beyond 4300 digits, although `"000...076"` of
    any length is 76.
    """
    significant = digits.lstrip("0")
    if len(significant) > _ID_DIGITS:
        return MAX_ID + 1
    return int(significant or "0")


def _json_integer(value: Any) -> Any:
    """Counts are JSON integers, as the JSON Schema's `type: integer` says: `3600.0` is the
    number 3600; fractions, strings (pydantic's lax mode would read `"600"`) and booleans
    are refused."""
    if type(value) is int:  # the common case first
        return value
    if isinstance(value, bool):  # its type is a subclass of int: JSON true is not 1
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError("must be an integer, not a fraction")
    if isinstance(value, str):
        raise ValueError("must be a JSON number, not a string")
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

Seconds = Annotated[int, Field(ge=-MAX_SECONDS, le=MAX_SECONDS), BeforeValidator(_json_integer)]
"""A number of seconds, positive or negative, within +/- MAX_SECONDS."""

NonNegativeSeconds = Annotated[int, Field(ge=0, le=MAX_SECONDS), BeforeValidator(_json_integer)]
"""A number of seconds from 0 to MAX_SECONDS."""

NonNegative = Annotated[int, Field(ge=0), BeforeValidator(_json_integer)]
"""A JSON integer >= 0."""

MAX_LEASE_SECONDS = 86_400
"""A lease of at most a day: a session whose scheduler went silent is charged at most this
long past its last heartbeat."""

LeaseSeconds = Annotated[int, Field(ge=1, le=MAX_LEASE_SECONDS), BeforeValidator(_json_integer)]
"""A session's lease: a JSON integer from 1 to MAX_LEASE_SECONDS."""

EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(rfc3339_text),
    PlainSerializer(lambda t: t.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
"""An RFC 3339 timestamp with an offset, in the contract's range (events/times.py)."""
