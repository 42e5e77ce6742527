"""Rows in PostgreSQL's COPY text format, built in one pass.

psycopg's `write_row` adapts value by value; for batches of thousands of rows building
the text ourselves is several times faster. Only the types the ledger writes are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
NULL = "\\N"


class JsonValue:
    """Marks a value to be written as JSON (for json/jsonb columns)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def field(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JsonValue):
        return orjson.dumps(value.value).decode().translate(_ESCAPES)
    if isinstance(value, list | tuple):
        return _array(value).translate(_ESCAPES)
    raise TypeError(f"no COPY text form for {type(value).__name__}")


def _array(items: Sequence[object]) -> str:
    parts = []
    for item in items:
        if isinstance(item, int):
            parts.append(str(item))
        elif isinstance(item, datetime):
            parts.append(f'"{item.isoformat()}"')
        else:
            raise TypeError(f"no array element form for {type(item).__name__}")
    return "{" + ",".join(parts) + "}"


def rows_text(rows: Iterable[Sequence[object]]) -> bytes:
    return "".join("\t".join(map(field, row)) + "\n" for row in rows).encode()
