"""The rows of the API's statements (`services.store.read_sql`), read by column name.

Each dataclass has a field per column of its statement, named as the column; psycopg's
`class_row` builds one per row, so a column moved in a SELECT moves nothing here, and a
column renamed there fails at once (an unexpected keyword), not as a shifted value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class PackDetailRow:
    """A pack as of the read (`PACK_DETAIL`)."""

    user_pack_id: int
    pack_name: str
    duration_type: str
    buy_datetime: datetime
    node_list: list[dict[str, Any]]
    remaining: int
    status: str
    exhausts_at: datetime | None  # the forecast: see read_sql
    open_sessions: int  # running at the read: a lapsed one is not


@dataclass(frozen=True, slots=True)
class PackPageRow(PackDetailRow):
    """A pack of one page (`pack_list`): the detail's columns and the number of matching
    packs."""

    total: int


@dataclass(frozen=True, slots=True)
class PackStreamRow(PackDetailRow):
    """A pack a change notification names (`PACKS_BY_ID`), with its owner."""

    user_id: int


@dataclass(frozen=True, slots=True)
class RecordPageRow:
    """A usage record of one page (`record_list`), with the number of matching records."""

    total: int
    log_id: int
    user_pack_id: int
    train_id: int
    train_name: str
    user_name: str
    start_time: datetime
    end_time: datetime | None  # its stop, or its lease end once passed (it lapsed)
    seconds: int
    lease_ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecordDetailRow:
    """A usage record with its pack (`RECORD_DETAIL`)."""

    train_id: int
    train_name: str
    user_id: int
    user_name: str
    start_time: datetime
    end_time: datetime | None  # its stop, or its lease end once passed (it lapsed)
    seconds: int
    lease_ends_at: datetime | None
    user_pack_id: int
    pack_name: str
    node_list: list[dict[str, Any]]
    remaining: int


@dataclass(frozen=True, slots=True)
class CountRow:
    """`SELECT count(*)` (`pack_count`, `record_count`)."""

    count: int


PACK_DETAILS = class_row(PackDetailRow)
PACK_PAGE = class_row(PackPageRow)
PACK_STREAM = class_row(PackStreamRow)
RECORD_PAGE = class_row(RecordPageRow)
RECORD_DETAILS = class_row(RecordDetailRow)
COUNT = class_row(CountRow)
