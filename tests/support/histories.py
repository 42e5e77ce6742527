"""Random histories of one timing pack, for property tests against brute force."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import strategies as st

from events.envelope import AdjustedEvent, AnyPackEvent, PurchasedEvent
from tests.unit.event_factory import T0, adjusted, heartbeat, purchased, started
from tests.unit.event_factory import stopped as stopped_event


@st.composite
def histories(draw: st.DrawFn, leases: bool = False) -> tuple[list[AnyPackEvent], datetime]:
    """Events of one timing pack in time order, and a `now` at or after the last one.
    With `leases`, starts may have a lease (short: sessions lapse between events and
    before `now`) and heartbeats renew them."""
    granted = draw(st.integers(0, 40))
    events: list[AnyPackEvent] = [purchased(0, seconds=granted)]
    open_trains: set[int] = set()
    moment = 0.0
    kinds = ["start", "start", "stop", "adjust"] + (["beat", "beat"] if leases else [])
    for _ in range(draw(st.integers(0, 8 if leases else 6))):
        moment += draw(st.sampled_from([0, 0.25, 1, 3.5, 7, 20])) + draw(
            st.integers(0, 999_999).map(lambda us: us / 1e6)
        )
        kind = draw(st.sampled_from(kinds))
        train = draw(st.integers(1, 3))
        if kind == "start":
            lease = draw(st.sampled_from([None, 2, 5, 12])) if leases else None
            events.append(started(moment, train, lease=lease))
            open_trains.add(train)
        elif kind == "beat":
            events.append(heartbeat(moment, train))
        elif kind == "stop" and train in open_trains:
            events.append(stopped_event(moment, train))
            open_trains.discard(train)
        else:
            events.append(adjusted(moment, draw(st.sampled_from([-30, -5, -1, 2, 15]))))
    now = T0 + timedelta(seconds=moment + draw(st.sampled_from([0, 0.5, 2, 9.999, 30, 80])))
    return events, now


def every_grant(events: list[AnyPackEvent]) -> int:
    """The seconds of every purchase and positive adjustment: no session of the history
    can use more, so a brute force that steps a session's whole seconds up to this bound
    sees every instant it can exhaust the pack or cross a threshold. (Not `granted`,
    which negative adjustments lower: a session may use seconds granted before them.)"""
    total = 0
    for event in events:
        if isinstance(event, PurchasedEvent):
            total += event.data.durationSeconds or 0
        elif isinstance(event, AdjustedEvent):
            total += max(event.data.deltaSeconds, 0)
    return total
