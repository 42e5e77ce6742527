from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest

from api.db import Database
from api.formats import format_duration
from services.store import read_sql
from tests.support.display import format_time


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


def _shown(db_url: str, zone: str, moment: datetime) -> str:
    """`moment` as an API session in `zone` answers it (`api.db`, `read_sql.display_time`)."""
    options = Database(db_url, timezone=zone).options
    with psycopg.connect(db_url, options=options) as connection:
        row = connection.execute(
            f"SELECT {read_sql.display_time('%(moment)s::timestamptz')}", {"moment": moment}
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_times_are_shown_in_the_zone_without_fractions(db_url: str) -> None:
    moment = datetime(2020, 5, 8, 6, 15, 38, 999_999, tzinfo=UTC)
    assert _shown(db_url, "Asia/Shanghai", moment) == "2020-05-08 14:15:38"
    assert _shown(db_url, "UTC", moment) == "2020-05-08 06:15:38"
    other = moment.astimezone(timezone(timedelta(hours=-5)))
    assert _shown(db_url, "Asia/Shanghai", other) == "2020-05-08 14:15:38"


def test_a_day_boundary_in_the_zone(db_url: str) -> None:
    moment = datetime(2020, 12, 31, 16, 0, 0, tzinfo=UTC)
    assert _shown(db_url, "Asia/Shanghai", moment) == "2021-01-01 00:00:00"


def test_the_oracle_of_the_tests_agrees(db_url: str) -> None:
    """The Python display the API tests compare answers with is PostgreSQL's, for
    instants with and without fractions, on both sides of midnight and of a year."""
    zone = "Asia/Shanghai"
    for moment in (
        datetime(2020, 5, 8, 6, 15, 38, 999_999, tzinfo=UTC),
        datetime(2020, 12, 31, 15, 59, 59, 500_000, tzinfo=UTC),
        datetime(2020, 12, 31, 16, 0, 0, tzinfo=UTC),
        datetime(1999, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    ):
        assert _shown(db_url, zone, moment) == format_time(moment, ZoneInfo(zone))
