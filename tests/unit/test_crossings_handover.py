"""The crossings a batch of this process hands to the notifier: those surely ahead are
scheduled from memory, the others looked up; the packs the process's own batches
announce are not looked up for their crossings again (their lapses still are). The SQL
replaced by fakes; the LISTEN routing on real PostgreSQL:
tests/integration/test_own_announcements.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from services.consumer import notices
from services.consumer.notices import CROSSING_SURELY_AHEAD, ExhaustionNotifier
from services.settings import Settings

S = timedelta(seconds=1)


def notifier(thresholds: str = "600") -> ExhaustionNotifier:
    settings = Settings(low_balance_seconds=thresholds)
    return ExhaustionNotifier(settings, broker=None, rescan_seconds=30, horizon_seconds=90)  # type: ignore[arg-type]


def test_a_crossing_surely_ahead_is_scheduled_from_memory_at_the_earliest() -> None:
    n = notifier()
    now = datetime.now(UTC)
    n.watch_crossings([(1, [now + 60 * S, now + 30 * S]), (2, [now + 89 * S])])
    assert n.lows.when(1) == now + 30 * S  # the pack's next crossing
    assert n.lows.when(2) == now + 89 * S
    assert n._changed == set()  # no look-up


def test_a_crossing_under_way_or_near_is_looked_up() -> None:
    n = notifier()
    now = datetime.now(UTC)
    n.watch_crossings(
        [
            (1, [now - 5 * S, now + 60 * S]),  # one under way: maybe recorded already
            (2, [now + CROSSING_SURELY_AHEAD - S]),  # a notifier with a clock ahead may record it
            (3, [now + 200 * S]),  # beyond the horizon (90 s): left to a rescan
            (4, []),  # nothing to announce
        ]
    )
    assert n._changed == {1, 2}
    assert len(n.lows) == 0


def test_no_thresholds_no_crossings_handed_over() -> None:
    n = notifier(thresholds="")
    now = datetime.now(UTC)
    n.watch_crossings([(1, [now + 60 * S]), (2, [now - S])])
    assert len(n.lows) == 0 and n._changed == set()


async def test_own_announcements_look_up_only_their_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: dict[str, list[list[int]]] = {"lows": [], "lapses": []}

    async def next_lows(conn: Any, packs: list[int]) -> list[tuple[int, datetime]]:
        asked["lows"].append(packs)
        return []

    async def next_lapses(conn: Any, packs: list[int]) -> list[tuple[int, datetime]]:
        asked["lapses"].append(packs)
        return []

    monkeypatch.setattr(notices.notice_sql, "next_lows", next_lows)
    monkeypatch.setattr(notices.lapse_sql, "next_lapses", next_lapses)
    n = notifier()
    n._changed = {3, 1}  # announced by another writer (or near a crossing)
    n._lapses_changed = {2, 1}  # announced by this process's batches
    await n._schedule_changed(None, datetime.now(UTC))  # type: ignore[arg-type]
    assert asked == {"lows": [[1, 3]], "lapses": [[1, 2, 3]]}
    assert n._changed == set() and n._lapses_changed == set()


async def test_both_kinds_are_kept_when_the_look_up_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(conn: Any, packs: list[int]) -> list[tuple[int, datetime]]:
        raise psycopg.OperationalError("gone")

    monkeypatch.setattr(notices.notice_sql, "next_lows", down)
    n = notifier()
    n._changed, n._lapses_changed = {5}, {6}
    with pytest.raises(psycopg.OperationalError):
        await n._schedule_changed(None, datetime.now(UTC))  # type: ignore[arg-type]
    assert n._changed == {5} and n._lapses_changed == {6}  # again on the next pass
