"""The forecast fields (`exhaustsAt`, `burnRate`) of the list and the detail, exact to the
second against a brute-force scan of the Python rules.

Histories of one pack are drawn (a purchase, adjustments of both signs, starts and stops
of a few trainings, at instants with microseconds), folded by the pure fold and written
as the consumer writes them; the API is asked at a drawn `now` after the last event.
The brute force knows nothing of `exhaustion_instant`: it evaluates "a session is open
and `remaining` is 0" at every instant where that can change (each event, each whole
second after each start), from the fold of the events up to that instant. Within one
instant it follows the contract's fold order: the stops of the instant close their sessions
before its starts open new ones, so when they close every running session the exhaustion
under way ends there, and a restart at that instant begins a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from events.envelope import AnyPackEvent, StoppedEvent
from projections import rules
from projections.fold import fold, remaining_at, status_at
from projections.read_models import pack_row
from projections.state import PackState
from services.store import projection_sql
from services.store.connection import connect
from tests.api.support import PACK_DETAIL, PACK_LIST, FixedClock, asgi_client, bearer, ok
from tests.support.display import format_optional_time
from tests.support.examples import examples
from tests.support.histories import every_grant, histories
from tests.unit.event_factory import (
    OWNER,
    PACK,
    T0,
    adjusted,
    entries,
    purchased,
    started,
    stopped,
)

ZONE = ZoneInfo("Asia/Shanghai")
SECOND = timedelta(seconds=1)


def _state_at(events: list[AnyPackEvent], instant: datetime) -> PackState:
    return fold(PACK, entries(e for e in events if e.time <= instant)).state


def _running(state: PackState, instant: datetime) -> int:
    """Open sessions still running at `instant`: a session whose lease ended has lapsed."""
    return rules.running_at(state.open_lease_ends, instant)


def _exhausted(state: PackState, instant: datetime) -> bool:
    return _running(state, instant) > 0 and remaining_at(state, instant) == 0


def _lease_ends(events: list[AnyPackEvent]) -> set[datetime]:
    """Every lease end the sessions ever had: where a session may stop running."""
    ends: set[datetime] = set()
    for event in events:
        state = _state_at(events, event.time)
        ends |= {end for end in state.open_lease_ends if end is not None}
    return ends


def _stops_end_every_session(events: list[AnyPackEvent], instant: datetime) -> bool:
    """Whether the stops at `instant`, applied before its starts (fold order), leave no
    session running: those open before it whose lease ends at it or later (a lapse due at
    an instant comes after its events), less the trainings its stops close."""
    before = fold(PACK, entries(e for e in events if e.time < instant)).state
    stopped = {e.data.trainId for e in events if e.time == instant and isinstance(e, StoppedEvent)}
    running = {
        train
        for train, record in before.open_sessions.items()
        if record.lease_ends_at is None or record.lease_ends_at >= instant
    }
    return not running - stopped


def brute_force_exhausts_at(events: list[AnyPackEvent], now: datetime) -> datetime | None:
    """The start of the exhaustion under way at `now`, or the first instant after `now`
    at which the sessions open at `now` exhaust the pack; None if neither."""
    final = _state_at(events, now)
    budget = every_grant(events) + 2
    steps = {
        event.time + SECOND * k
        for event in events
        if event.type.endswith("started")
        for k in range(budget)
    }
    instants = sorted(steps | {event.time for event in events} | _lease_ends(events) | {now})
    past = [t for t in instants if t <= now]
    if _exhausted(final, now):
        start = now
        for instant in reversed(past):
            if not _exhausted(_state_at(events, instant), instant):
                break
            start = instant
            if _stops_end_every_session(events, instant):
                break
        return start
    if not _running(final, now):
        return None
    for instant in (t for t in instants if t > now):
        if remaining_at(final, instant) == 0:
            return instant
    return None


def _burn_rate(events: list[AnyPackEvent], now: datetime) -> int:
    state = _state_at(events, now)
    return _running(state, now) if remaining_at(state, now) > 0 else 0


async def _write(url: str, state: PackState) -> None:
    conn = await connect(url)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM packs")
            await projection_sql.write_packs(conn, [pack_row(state)])
    finally:
        await conn.close()


async def _read(app: FastAPI) -> tuple[dict[str, object], dict[str, object]]:
    async with asgi_client(app) as client:
        listed = await ok(client, PACK_LIST, {}, bearer(OWNER))
        detail = await ok(client, PACK_DETAIL, {"userPackId": PACK}, bearer(OWNER))
    (item,) = listed["userPackList"]
    return item, detail


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_forecast_is_exact_to_the_second(
    history: tuple[list[AnyPackEvent], datetime],
    db_url: str,
    make_app: Callable[..., FastAPI],
    clock: FixedClock,
) -> None:
    events, now = history
    state = fold(PACK, entries(events)).state
    asyncio.run(_write(db_url, state))
    clock.set(now)
    item, detail = asyncio.run(_read(make_app()))
    expected = format_optional_time(brute_force_exhausts_at(events, now), ZONE)
    assert item["exhaustsAt"] == detail["exhaustsAt"] == expected
    assert item["burnRate"] == detail["burnRate"] == _burn_rate(events, now)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(leases=True))
def test_forecast_with_leases_is_exact_to_the_second(
    history: tuple[list[AnyPackEvent], datetime],
    db_url: str,
    make_app: Callable[..., FastAPI],
    clock: FixedClock,
) -> None:
    """Sessions stop using the pack at their lease end (CONTRACT.md "Forecast"): no
    exhaustion when every lease ends first, none shown once every session lapsed."""
    events, now = history
    state = fold(PACK, entries(events)).state
    asyncio.run(_write(db_url, state))
    clock.set(now)
    item, detail = asyncio.run(_read(make_app()))
    expected = format_optional_time(brute_force_exhausts_at(events, now), ZONE)
    assert item["exhaustsAt"] == detail["exhaustsAt"] == expected
    assert item["burnRate"] == detail["burnRate"] == _burn_rate(events, now)
    assert item["userPackStatus"] == status_at(state, now)


def test_a_restart_at_the_stop_instant_on_an_empty_pack_begins_a_new_exhaustion(
    db_url: str, make_app: Callable[..., FastAPI], clock: FixedClock
) -> None:
    """Found by the property above: a pack with nothing left, train 1 running since 0,
    stopped and restarted at 1. The stop closes the only session before the restart opens
    a new one (fold order), so the exhaustion of the first session ended at 1 and the
    restart's began at 1: `exhaustsAt` is 1, not 0."""
    events: list[AnyPackEvent] = [
        purchased(0, seconds=0),
        started(0, 1),
        started(1, 1),
        stopped(1, 1),
    ]
    now = T0 + SECOND
    assert brute_force_exhausts_at(events, now) == now
    asyncio.run(_write(db_url, fold(PACK, entries(events)).state))
    clock.set(now)
    item, detail = asyncio.run(_read(make_app()))
    assert item["exhaustsAt"] == detail["exhaustsAt"] == format_optional_time(now, ZONE)
    assert (item["userPackStatus"], item["burnRate"]) == ("status.outOfTime", 0)


def test_negative_adjustments_after_the_exhaustion_leave_its_start_where_it_was(
    db_url: str, make_app: Callable[..., FastAPI], clock: FixedClock
) -> None:
    """Found by the property above (a CI run): 1 s, train 1 running since 0, then at 3.5
    two adjustments of -30 and a repeated start of train 1. The pack ran out at 1 and
    the session is still open: `exhaustsAt` stays 1 (the brute force had stepped the
    session's seconds only up to the `granted` the negative adjustments had lowered)."""
    events: list[AnyPackEvent] = [
        purchased(0, seconds=1),
        started(0, 1),
        adjusted(3.5, -30),
        started(3.5, 1),
        adjusted(3.5, -30),
    ]
    now = T0 + timedelta(seconds=3.5)
    assert brute_force_exhausts_at(events, now) == T0 + SECOND
    asyncio.run(_write(db_url, fold(PACK, entries(events)).state))
    clock.set(now)
    item, detail = asyncio.run(_read(make_app()))
    expected = format_optional_time(T0 + SECOND, ZONE)
    assert item["exhaustsAt"] == detail["exhaustsAt"] == expected
    assert (item["userPackStatus"], item["burnRate"]) == ("status.outOfTime", 0)


def test_a_lease_that_ends_first_forecasts_no_exhaustion(
    db_url: str, make_app: Callable[..., FastAPI], clock: FixedClock
) -> None:
    events: list[AnyPackEvent] = [purchased(0, seconds=3600), started(10, 1, lease=60)]
    asyncio.run(_write(db_url, fold(PACK, entries(events)).state))
    clock.set(T0 + timedelta(seconds=30))
    item, _ = asyncio.run(_read(make_app()))
    assert (item["exhaustsAt"], item["burnRate"], item["userPackStatus"]) == (
        None,
        1,
        "status.training",
    )
    clock.set(T0 + timedelta(seconds=70))  # lapsed at 70, before any later event
    item, _ = asyncio.run(_read(make_app()))
    assert (item["burnRate"], item["userPackStatus"], item["duration"]) == (
        0,
        "status.free",
        "3540",
    )


def test_activity_pack_has_no_forecast(db_url: str, make_app: Callable[..., FastAPI]) -> None:
    events: list[AnyPackEvent] = [purchased(0, activity=True), started(5, 1)]
    asyncio.run(_write(db_url, fold(PACK, entries(events)).state))
    item, detail = asyncio.run(_read(make_app()))
    assert item["userPackStatus"] == "status.training"
    assert (item["exhaustsAt"], item["burnRate"]) == (None, 0)
    assert (detail["exhaustsAt"], detail["burnRate"]) == (None, 0)


def test_running_pack_forecast_is_start_plus_what_is_left(
    db_url: str, make_app: Callable[..., FastAPI], clock: FixedClock
) -> None:
    start = T0 + timedelta(seconds=10)
    events: list[AnyPackEvent] = [purchased(0, seconds=3600), started(10, 1), started(10, 2)]
    asyncio.run(_write(db_url, fold(PACK, entries(events)).state))
    clock.set(start + timedelta(seconds=600))
    item, _ = asyncio.run(_read(make_app()))
    # two sessions share 3600 s: 1800 s after their start
    assert item["exhaustsAt"] == format_optional_time(start + timedelta(seconds=1800), ZONE)
    assert item["burnRate"] == 2
    assert item["duration"] == "2400"
