"""The notifier's lapse schedule, with its SQL replaced by fakes: what the packs a batch
changed schedule (within the horizon only), what a pass hands to `publish_due`, and what
a failing pass puts back or leaves out. The SQL itself: tests/integration/test_lapse_notifier.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from projections import rules
from services.consumer import notices
from services.consumer.notices import Due, ExhaustionNotifier, lapse_payload
from services.settings import Settings

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)


def notifier(thresholds: str = "") -> ExhaustionNotifier:
    settings = Settings(low_balance_seconds=thresholds)
    return ExhaustionNotifier(settings, broker=None, rescan_seconds=30, horizon_seconds=90)  # type: ignore[arg-type]


def test_the_lapse_notice_id_is_derived_from_pack_session_and_instant() -> None:
    at = datetime(2024, 5, 1, 20, 31, tzinfo=UTC)
    notice_id = rules.lapse_notice_id(1001, 42, at)
    assert notice_id.startswith("lapsed-1001-42-") and len(notice_id) == len("lapsed-1001-42-") + 16
    shanghai = at.astimezone(datetime.fromisoformat("2024-05-01T00:00:00+08:00").tzinfo)
    assert rules.lapse_notice_id(1001, 42, shanghai) == notice_id  # the zone is no fact
    others = {
        rules.lapse_notice_id(1002, 42, at),
        rules.lapse_notice_id(1001, 43, at),
        rules.lapse_notice_id(1001, 42, at + timedelta(microseconds=1)),
    }
    assert notice_id not in others and len(others) == 3
    assert notice_id != rules.exhaustion_notice_id(1001, at)


def test_the_lapse_payload_is_the_contracts_event() -> None:
    notice_id, payload = lapse_payload((7, 71, 2**63 - 1, T0))
    assert notice_id == rules.lapse_notice_id(7, 2**63 - 1, T0)
    assert payload == {
        "specversion": "1.0",
        "id": notice_id,
        "source": "infinite/ledger",
        "time": T0.isoformat(),
        "subject": "7",
        "datacontenttype": "application/json",
        "type": "infinite.training.lapsed",
        "data": {"userPackId": 7, "trainId": 71, "logId": 2**63 - 1, "lapsedAt": T0.isoformat()},
    }


async def test_changed_packs_schedule_their_next_lapse_within_the_horizon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[int]] = []

    async def next_lapses(conn: Any, packs: list[int]) -> list[tuple[int, datetime]]:
        asked.append(packs)
        return [(1, T0 + 2 * S), (2, T0 + 90 * S), (3, T0 + 91 * S), (4, T0 - 3600 * S)]

    async def next_lows(conn: Any, packs: list[int]) -> list[tuple[int, datetime]]:
        raise AssertionError("no thresholds: no crossings to look up")

    monkeypatch.setattr(notices.lapse_sql, "next_lapses", next_lapses)
    monkeypatch.setattr(notices.notice_sql, "next_lows", next_lows)
    n = notifier()
    n._changed = {4, 3, 2, 1}
    await n._schedule_changed(None, T0)  # type: ignore[arg-type]
    assert asked == [[1, 2, 3, 4]]
    # Beyond the horizon (90 s): left to a rescan; long past: due at once.
    assert [n.lapses.when(p) for p in (1, 2, 3, 4)] == [
        T0 + 2 * S,
        T0 + 90 * S,
        None,
        T0 - 3600 * S,
    ]
    assert n._changed == set() and len(n.lows) == 0
    assert n.lapses.pop_due(T0, 10) == [4]


async def test_changed_packs_are_kept_when_the_look_up_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(conn: Any, packs: list[int]) -> list[tuple[int, datetime]]:
        raise psycopg.OperationalError("gone")

    monkeypatch.setattr(notices.lapse_sql, "next_lapses", down)
    n = notifier()
    n._changed = {5, 6}
    with pytest.raises(psycopg.OperationalError):
        await n._schedule_changed(None, T0)  # type: ignore[arg-type]
    n._changed.add(7)
    assert n._changed == {5, 6, 7}  # looked up again on the next pass


class FakePublish:
    """`publish_due`: records what each call was given; raises for the packs in `fail`."""

    def __init__(self, fail: dict[int, BaseException] | None = None) -> None:
        self.calls: list[Due] = []
        self.fail = fail or {}

    async def __call__(
        self,
        conn: Any,
        broker: Any,
        topic: str,
        now: datetime,
        exhaustions: list[int],
        lows: list[int] | None = None,
        lapses: list[int] | None = None,
    ) -> int:
        due = Due(list(exhaustions), list(lows or []), list(lapses or []))
        self.calls.append(due)
        for pack in (*due.exhaustions, *due.lows, *due.lapses):
            if pack in self.fail:
                raise self.fail[pack]
        return due.total


async def no_rescan(conn: Any, now: datetime) -> None:
    return None


def scheduled(n: ExhaustionNotifier, now: datetime) -> ExhaustionNotifier:
    n.schedule.watch(1, now - S)
    n.lapses.watch(2, now - S)
    n.lapses.watch(3, now - S)
    n.lapses.watch(4, now + 3600 * S)  # not due
    return n


async def test_a_pass_hands_the_due_lapses_over(monkeypatch: pytest.MonkeyPatch) -> None:
    publish = FakePublish()
    monkeypatch.setattr(notices, "publish_due", publish)
    n = notifier()
    monkeypatch.setattr(n, "_rescan", no_rescan)
    now = datetime.now(UTC)
    scheduled(n, now)
    assert await n._pass(None) == 3  # type: ignore[arg-type]
    assert publish.calls == [Due([1], [], [2, 3])]
    assert 2 not in n.lapses and n.lapses.when(4) == now + 3600 * S
    # Their next lapses (another session of the pack, or a stale entry's true instant)
    # are looked up on the next pass.
    assert n._changed == {2, 3}


async def test_a_lapse_that_fails_alone_is_left_out_the_others_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish = FakePublish({2: ValueError("a row the notifier cannot read")})
    monkeypatch.setattr(notices, "publish_due", publish)
    n = notifier()
    monkeypatch.setattr(n, "_rescan", no_rescan)
    now = datetime.now(UTC)
    scheduled(n, now)
    assert await n._pass(None) == 2  # type: ignore[arg-type]
    assert publish.calls == [
        Due([1], [], [2, 3]),
        Due([1], [], []),
        Due([], [], [2]),
        Due([], [], [3]),
    ]
    assert 2 not in n.lapses  # left out (logged), not retried on every pass
    assert n._changed == {3}  # nor looked up again


async def test_an_outage_puts_the_due_lapses_back(monkeypatch: pytest.MonkeyPatch) -> None:
    publish = FakePublish({2: psycopg.OperationalError("server closed the connection")})
    monkeypatch.setattr(notices, "publish_due", publish)
    n = notifier()
    monkeypatch.setattr(n, "_rescan", no_rescan)
    now = datetime.now(UTC)
    scheduled(n, now)
    with pytest.raises(psycopg.OperationalError):
        await n._pass(None)  # type: ignore[arg-type]
    assert len(publish.calls) == 1  # an outage: no pass one by one
    assert {p for p in (2, 3) if p in n.lapses} == {2, 3}
    assert 1 in n.schedule  # the exhaustion too
    later = datetime.now(UTC)
    assert n.lapses.pop_due(later, 10) == [2, 3]


def test_due_one_by_one() -> None:
    due = Due([1], [2, 3], [4])
    assert due.total == 4
    assert due.each() == [Due([1], [], []), Due([], [2], []), Due([], [3], []), Due([], [], [4])]


async def test_a_rescan_reads_the_lapses_page_by_page_and_keeps_newer_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages: list[tuple[datetime, int]] = []
    now = datetime.now(UTC)

    async def lapses_until(
        conn: Any, until: datetime, after: tuple[datetime, int], limit: int
    ) -> list[tuple[int, datetime]]:
        assert until == now + 90 * S and limit == 2
        pages.append(after)
        backlog = [(p, now - (10 - p) * S) for p in range(1, 6)]  # 5 packs, 2 a page
        return [(p, at) for p, at in backlog if (at, p) > after][:limit]

    async def exhaustions_until(*args: Any) -> list[tuple[int, datetime]]:
        return []

    monkeypatch.setattr(notices.lapse_sql, "lapses_until", lapses_until)
    monkeypatch.setattr(notices.notice_sql, "exhaustions_until", exhaustions_until)
    n = ExhaustionNotifier(
        Settings(low_balance_seconds=""),
        broker=None,  # type: ignore[arg-type]
        rescan_seconds=30,
        horizon_seconds=90,
        limit=2,
    )
    n.lapses.watch(3, now + 5 * S)  # a batch scheduled pack 3 meanwhile: newer
    for _ in range(4):
        await n._rescan(None, now)  # type: ignore[arg-type]
    # Three pages (2, 2, 1), one per pass; then nothing until the next rescan is due.
    assert [after[1] for after in pages] == [-(2**63), 2, 4]
    assert [n.lapses.when(p) for p in range(1, 6)] == [
        now - 9 * S,
        now - 8 * S,
        now + 5 * S,
        now - 6 * S,
        now - 5 * S,
    ]
