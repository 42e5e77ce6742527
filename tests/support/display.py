"""The contract's display of a time, computed in Python: the oracle the API's answers
(formatted by PostgreSQL, `services.store.read_sql.display_time`) are checked against."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def format_time(moment: datetime, zone: ZoneInfo) -> str:
    """`yyyy-MM-dd HH:mm:ss` in `zone`; fractions of a second are dropped."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def format_optional_time(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else format_time(moment, zone)
