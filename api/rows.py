"""The rows of the API's statements (`services.store.read_sql`), read by column name.

Each dataclass has a field per column of its statement, named as the column; `named_row`
builds one per row, so a column moved in a SELECT moves nothing here, and a column
renamed or missing there fails at once (naming both lists), not as a shifted value.

The rows are not frozen: a frozen dataclass sets each field through
`object.__setattr__`, several times slower to build (a page builds ten rows a request).
Treat them as read-only all the same. Times come as the contract's text (`*_text`:
`services.store.read_sql.display_time`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from psycopg import AsyncCursor

T = TypeVar("T")


@dataclass(slots=True)
class PackDetailRow:
    """A pack as of the read (`PACK_DETAIL`)."""

    user_pack_id: int
    pack_name: str
    duration_type: str
    buy_text: str
    node_list: list[dict[str, Any]]
    remaining: int
    status: str
    exhausts_text: str | None  # the forecast: see read_sql
    open_sessions: int  # running at the read: a lapsed one is not


@dataclass(slots=True)
class PackPageRow(PackDetailRow):
    """A pack of one page (`pack_list`): the detail's columns and the number of matching
    packs."""

    total: int


@dataclass(slots=True)
class PackStreamRow(PackDetailRow):
    """A pack a change notification names (`PACKS_BY_ID`), with its owner."""

    user_id: int


@dataclass(slots=True)
class RecordPageRow:
    """A usage record of one page (`record_list`), with the number of matching records."""

    total: int
    log_id: int
    user_pack_id: int
    train_id: int
    train_name: str
    user_name: str
    start_text: str
    end_text: str | None  # its stop, or its lease end once passed (it lapsed)
    seconds: int
    lease_ends_text: str | None


@dataclass(slots=True)
class RecordDetailRow:
    """A usage record with its pack (`RECORD_DETAIL`)."""

    train_id: int
    train_name: str
    user_id: int
    user_name: str
    start_text: str
    end_text: str | None  # its stop, or its lease end once passed (it lapsed)
    seconds: int
    lease_ends_text: str | None
    user_pack_id: int
    pack_name: str
    node_list: list[dict[str, Any]]
    remaining: int


@dataclass(slots=True)
class CountRow:
    """`SELECT count(*)` (`pack_count`, `record_count`)."""

    count: int


def named_row(cls: type[T]) -> Callable[[AsyncCursor[Any]], Callable[[Sequence[Any]], T]]:
    """A psycopg row factory: each row as `cls`, its fields matched to the columns by
    name once per statement (psycopg's `class_row` matches them on every row, through a
    dict of keyword arguments: measurably slower on the API's hot path). The names are
    read from the result itself (`fname`: 1 us a statement of ten columns, against 11 us
    for building `cursor.description`)."""
    wanted = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    wanted_bytes = tuple(name.encode() for name in wanted)

    def factory(cursor: AsyncCursor[Any]) -> Callable[[Sequence[Any]], T]:
        result = cursor.pgresult
        got = () if result is None else tuple(result.fname(i) for i in range(result.nfields))
        if got == wanted_bytes:
            return lambda values: cls(*values)
        names = tuple((name or b"").decode() for name in got)
        if sorted(names) != sorted(wanted):
            raise TypeError(f"{cls.__name__} has the fields {wanted}, the statement {names}")
        order = [names.index(name) for name in wanted]
        return lambda values: cls(*(values[i] for i in order))

    return factory


PACK_DETAILS = named_row(PackDetailRow)
PACK_PAGE = named_row(PackPageRow)
PACK_STREAM = named_row(PackStreamRow)
RECORD_PAGE = named_row(RecordPageRow)
RECORD_DETAILS = named_row(RecordDetailRow)
COUNT = named_row(CountRow)
