"""How times and durations are written in answers."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def format_time(moment: datetime, zone: ZoneInfo) -> str:
    """`yyyy-MM-dd HH:mm:ss` in `zone`; fractions of a second are dropped.

    (isoformat is twice as fast as strftime; and `astimezone` returns its datetime
    as it is when the database already answered in `zone`.)
    """
    return moment.astimezone(zone).isoformat(" ", "seconds")[:19]


def format_optional_time(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else format_time(moment, zone)


def format_duration(seconds: int) -> str:
    """`D天H时M分S秒`, leading zero units left out: `0秒`, `59秒`, `1时0分0秒`, `1天5时30分15秒`."""
    seconds = max(0, seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}天{hours}时{minutes}分{secs}秒"
    if hours:
        return f"{hours}时{minutes}分{secs}秒"
    if minutes:
        return f"{minutes}分{secs}秒"
    return f"{secs}秒"
