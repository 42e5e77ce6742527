"""Lapses as reads see them: the sessions whose lease ended, as pure functions of a pack's
state (or its usage records) and `now`.

The fold closes a lapsed session once an event at or after its lease end is applied
(`projections.fold`); until then the state keeps it open, and a read at `now` takes a
session whose lease end is `<= now` as lapsed at its lease end (CONTRACT.md section 2).
Both kinds give a `Lapse`, whose notice id (`rules.lapse_notice_id`) depends on the
facts only, so a lapse is announced once whichever way it is found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from projections import rules
from projections.state import PackState, UsageRecord


@dataclass(frozen=True, slots=True)
class Lapse:
    user_pack_id: int
    train_id: int
    log_id: int
    lapsed_at: datetime  # the session's lease end

    @property
    def notice_id(self) -> str:
        return rules.lapse_notice_id(self.user_pack_id, self.log_id, self.lapsed_at)


def lapses(state: PackState, now: datetime) -> list[Lapse]:
    """The open sessions of `state` that have lapsed by `now` (lease end `<= now`) - the
    fold has not closed them yet - in fold order: by lease end, then by trainId."""
    found = [
        Lapse(state.user_pack_id, record.train_id, record.log_id, record.lease_ends_at)
        for record in state.open_sessions.values()
        if record.lease_ends_at is not None and record.lease_ends_at <= now
    ]
    return sorted(found, key=lambda lapse: (lapse.lapsed_at, lapse.train_id))


def running_train_ids(state: PackState, at: datetime) -> list[int]:
    """The trainIds of the open sessions still running at `at` (not lapsed), in the
    state's order; the SQL `ledger_running_train_ids` of the pack's row gives the same."""
    return [
        train_id
        for train_id, record in state.open_sessions.items()
        if record.lease_ends_at is None or record.lease_ends_at > at
    ]


def is_lapse(record: UsageRecord) -> bool:
    """Whether a closed record was closed by its lease end (not by a stop)."""
    return record.stop_reason == rules.LEASE_EXPIRED and record.stop_event_id is None


def closed_lapses(user_pack_id: int, records: Iterable[UsageRecord]) -> list[Lapse]:
    """The lapses the fold applied among `records` (e.g. the changes of a batch)."""
    return [
        Lapse(user_pack_id, record.train_id, record.log_id, record.end_time)
        for record in records
        if record.end_time is not None and is_lapse(record)
    ]
