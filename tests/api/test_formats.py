from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from api.formats import format_duration, format_time


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0秒"),
        (1, "1秒"),
        (59, "59秒"),
        (60, "1分0秒"),
        (61, "1分1秒"),
        (3599, "59分59秒"),
        (3600, "1时0分0秒"),
        (3661, "1时1分1秒"),
        (86399, "23时59分59秒"),
        (86400, "1天0时0分0秒"),
        (86400 + 5 * 3600 + 30 * 60 + 15, "1天5时30分15秒"),
        (400 * 86400 + 1, "400天0时0分1秒"),
        (-5, "0秒"),
    ],
)
def test_durations_leave_out_leading_zero_units(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_times_are_shown_in_the_zone_without_fractions() -> None:
    moment = datetime(2020, 5, 8, 6, 15, 38, 999_999, tzinfo=UTC)
    assert format_time(moment, ZoneInfo("Asia/Shanghai")) == "2020-05-08 14:15:38"
    assert format_time(moment, ZoneInfo("UTC")) == "2020-05-08 06:15:38"
    other = moment.astimezone(timezone(timedelta(hours=-5)))
    assert format_time(other, ZoneInfo("Asia/Shanghai")) == "2020-05-08 14:15:38"


def test_a_day_boundary_in_the_zone() -> None:
    moment = datetime(2020, 12, 31, 16, 0, 0, tzinfo=UTC)
    assert format_time(moment, ZoneInfo("Asia/Shanghai")) == "2021-01-01 00:00:00"
