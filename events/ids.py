"""Identifier and time types shared by every event of the wire contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, PlainSerializer

MAX_ID = 2**63 - 1


def _digits_to_int(value: Any) -> Any:
    """Ids travel as JSON numbers or as strings of decimal digits."""
    if isinstance(value, bool):  # JSON true is not an id
        raise ValueError("must be a positive integer or a string of digits")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be a positive integer or a string of digits")
        return int(value)
    if isinstance(value, float):
        raise ValueError("must be an integer, not a fraction")
    return value


def _require_utc_offset(value: datetime) -> datetime:
    # AwareDatetime already refuses naive times; keep the producer's offset as given.
    return value


EntityId = Annotated[
    int,
    BeforeValidator(_digits_to_int),
    Field(ge=1, le=MAX_ID, json_schema_extra={"examples": [42, "42"]}),
]
"""A positive integer below 2^63, given as a JSON number or a string of digits."""

EventTime = Annotated[
    AwareDatetime,
    AfterValidator(_require_utc_offset),
    PlainSerializer(lambda t: t.isoformat(), return_type=str),
]
"""An RFC 3339 timestamp with an offset."""
