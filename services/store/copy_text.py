"""Rows in PostgreSQL's COPY text format, built in one pass.

psycopg's `write_row` adapts value by value; for batches of thousands of rows building
the text ourselves is several times faster. Each writer formats its columns with the
helpers below, which know the one type they are given (no per-value dispatch).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def text(value: str | None) -> str:
    if value is None:
        return NULL
    if "\\" in value or "\n" in value or "\t" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def integer(value: int | None) -> str:
    return NULL if value is None else str(value)


def timestamp(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


def json_value(value: Any) -> str:
    # orjson never writes a raw newline, tab or carriage return; only backslashes need care.
    dumped = orjson.dumps(value).decode()
    return dumped.replace("\\", "\\\\") if "\\" in dumped else dumped


def integer_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def timestamp_array(values: Iterable[datetime]) -> str:
    return iso_array([value.isoformat() for value in values])


def iso_array(texts: list[str]) -> str:
    """A timestamptz[] literal of times already in ISO 8601 text (`datetime.isoformat`)."""
    return '{"' + '","'.join(texts) + '"}' if texts else "{}"


def optional_timestamp_array(values: Iterable[datetime | None]) -> str:
    """A timestamptz[] literal whose elements may be NULL."""
    return optional_iso_array([None if v is None else v.isoformat() for v in values])


def optional_iso_array(texts: list[str | None]) -> str:
    """`iso_array` of times some of which are None (NULL elements)."""
    if not texts:
        return "{}"
    return "{" + ",".join(["NULL" if t is None else f'"{t}"' for t in texts]) + "}"


def int_array(values: Iterable[int]) -> str:
    """A bigint[] literal (for a `%s::bigint[]` parameter): several times faster than
    psycopg adapting a list of thousands of ints (its dumper works element by element)."""
    return "{" + ",".join(map(str, values)) + "}"


def text_array(values: Iterable[str]) -> str:
    """A text[] literal (for a `%s::text[]` parameter): building it here is several
    times faster than psycopg adapting a list of thousands of strings."""
    return (
        "{"
        + ",".join(
            '"'
            + (v.replace("\\", "\\\\").replace('"', '\\"') if "\\" in v or '"' in v else v)
            + '"'
            for v in values
        )
        + "}"
    )


def lines(rows: Iterable[Iterable[str]]) -> bytes:
    """Join already formatted columns into COPY text."""
    joined = ["\t".join(row) for row in rows]
    return ("\n".join(joined) + "\n").encode() if joined else b""
