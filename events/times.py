"""RFC 3339 times of the wire contract: the text rules, leap seconds and the range.

CONTRACT.md section 1: every time in an event must fall, in UTC, between 0001-01-02 and
9999-12-30, so that every display zone can show it; a leap second (`:60`) is read as
the last microsecond of the minute's 59th second.

The range is read as whole calendar days, both ends included: from
0001-01-02T00:00:00Z up to 9999-12-30T23:59:59.999999Z (everything before
9999-12-31T00:00:00Z). Any zone's offset is less than a day, so each such instant is
still a `datetime` once shown in any zone (docs/decisions.md).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""An RFC 3339 date-time with an offset (`Z` or `+hh:mm`), as the contract requires."""

_RFC3339 = re.compile(RFC3339_PATTERN)

EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
"""The first instant an event may carry."""
END = datetime(9999, 12, 31, tzinfo=UTC)
"""The first instant after the range: times must come before it."""

OUT_OF_RANGE = (
    "is outside the contract's range: it must fall, in UTC, between "
    "0001-01-02T00:00:00Z and 9999-12-30T23:59:59.999999Z"
)

_SECONDS = slice(17, 19)  # `ss` in `yyyy-mm-ddThh:mm:ss`, which the pattern guarantees
_LEAP_SECOND = "60"
_LAST_MICROSECOND = "59.999999"
_SECONDS_PER_DAY = 86_400
_EARLIEST_SECOND = date(1, 1, 2).toordinal() * _SECONDS_PER_DAY
_END_SECOND = date(9999, 12, 31).toordinal() * _SECONDS_PER_DAY


def rfc3339_text(value: Any) -> Any:
    """Checks a time as sent; hands pydantic a text it parses to the contract's instant.

    Times travel as RFC 3339 strings with an offset; numbers (epoch seconds) are refused.
    """
    if isinstance(value, datetime):  # built in Python (tests, the ledger's own notices)
        if value.tzinfo is not None and not EARLIEST <= value < END:
            raise ValueError(f"{value.isoformat()} {OUT_OF_RANGE}")
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string with an offset")
    if not _RFC3339.match(value):
        if _RFC3339.match(value + "Z"):
            raise ValueError(f"{value!r} has no offset: add 'Z' or '+hh:mm'")
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp like 2024-05-01T08:30:00+08:00")
    text = value
    if text[_SECONDS] == _LEAP_SECOND:
        text = _without_leap_second(text)
    # Only the first and the last year hold instants near the ends; a string comparison
    # of the year keeps the common path to one slice.
    if not "0001" < text[:4] < "9999" and not _in_range(text):
        raise ValueError(f"{value!r} {OUT_OF_RANGE}")
    return text


def _without_leap_second(text: str) -> str:
    """`hh:mm:60[.fff]` -> `hh:mm:59.999999`, the offset kept."""
    rest = text[19:]
    if rest.startswith("."):
        rest = rest.lstrip(".0123456789")
    return text[:17] + _LAST_MICROSECOND + rest


def _in_range(text: str) -> bool:
    """Whether an RFC 3339 text (pattern-checked, no leap second) lies in the range.

    Worked out in whole seconds from the fields, because the instant itself may not be a
    `datetime` in UTC (9999-12-31T23:59:59-01:00 is after year 9999 there). Whole seconds
    suffice: a fraction never moves an instant across 00:00:00 of a day. A date that does
    not exist (month 13) is left for pydantic to name.
    """
    year = int(text[0:4])
    if year == 0:  # before the calendar of Python and of the contract
        return False
    try:
        day = date(year, int(text[5:7]), int(text[8:10]))
    except ValueError:
        return True
    hours, minutes, seconds = int(text[11:13]), int(text[14:16]), int(text[17:19])
    local = day.toordinal() * _SECONDS_PER_DAY + hours * 3600 + minutes * 60 + seconds
    return _EARLIEST_SECOND <= local - _offset_seconds(text) < _END_SECOND


def _offset_seconds(text: str) -> int:
    if text[-1] in "Zz":
        return 0
    sign = -1 if text[-6] == "-" else 1
    return sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
