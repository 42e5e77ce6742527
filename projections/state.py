"""The state of one pack, as the fold leaves it: what the read models are made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from events.payloads import DurationType, Node


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An accepted event with its place in the ledger (`position` = arrival order)."""

    position: int
    event: object  # events.envelope.AnyPackEvent; kept loose to avoid a cycle in typing


@dataclass(frozen=True, slots=True)
class Purchase:
    event_id: str
    position: int
    user_id: int
    user_name: str | None
    pack_name: str
    duration_type: DurationType
    duration_seconds: int
    activity_end_time: datetime | None
    buy_datetime: datetime
    nodes: tuple[Node, ...]


@dataclass(slots=True)
class UsageRecord:
    """One session of one training on one pack."""

    log_id: int
    train_id: int
    train_name: str
    user_id: int
    user_name: str
    start_time: datetime
    start_event_id: str
    end_time: datetime | None = None
    stop_event_id: str | None = None
    stop_reason: str | None = None
    charged_seconds: int | None = None
    overrun_seconds: int | None = None
    # Derived: start_time.isoformat(), kept once made (`start_text`): an open session's
    # start is written with its pack's read model after every event of the pack.
    start_iso: str = field(default="", compare=False, repr=False)

    @property
    def is_open(self) -> bool:
        return self.end_time is None

    def start_text(self) -> str:
        """`start_time.isoformat()`, made once."""
        if not self.start_iso:
            self.start_iso = self.start_time.isoformat()
        return self.start_iso


@dataclass(slots=True)
class Audit:
    """Facts that were kept but changed nothing, counted for operators."""

    conflicting_purchases: list[str] = field(default_factory=list)
    duplicate_starts: list[str] = field(default_factory=list)
    orphan_stops: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PackState:
    """Everything needed to apply the next event of a pack and to answer reads."""

    user_pack_id: int
    purchase: Purchase | None = None
    adjustments: int = 0  # sum of deltaSeconds
    charged: int = 0
    open_sessions: dict[int, UsageRecord] = field(default_factory=dict)  # by trainId
    last_time: datetime | None = None  # event time of the last applied event
    last_position: int = 0
    max_position: int = 0  # the largest ledger position applied (snapshots resume from it)
    exhausted_since: datetime | None = None  # set while an exhaustion lasts
    event_count: int = 0
    audit: Audit = field(default_factory=Audit)
    # Memo of fold.exhausts_at: derived, recomputed after each applied event.
    due: datetime | None = field(default=None, compare=False, repr=False)
    due_known: bool = field(default=False, compare=False, repr=False)

    @property
    def granted(self) -> int:
        base = self.purchase.duration_seconds if self.purchase else 0
        return base + self.adjustments

    @property
    def open_start_texts(self) -> list[str]:
        """The starts of the open sessions as `datetime.isoformat` gives them."""
        return [session.start_text() for session in self.open_sessions.values()]

    @property
    def open_starts(self) -> list[datetime]:
        return [session.start_time for session in self.open_sessions.values()]


def detached(state: PackState) -> PackState:
    """A copy of `state` to apply further events to, leaving `state` as it is (applying
    events changes the open sessions' records and the audit lists in place)."""
    audit = state.audit
    return PackState(
        user_pack_id=state.user_pack_id,
        purchase=state.purchase,  # frozen
        adjustments=state.adjustments,
        charged=state.charged,
        open_sessions={
            train_id: _open_record(record) for train_id, record in state.open_sessions.items()
        },
        last_time=state.last_time,
        last_position=state.last_position,
        max_position=state.max_position,
        exhausted_since=state.exhausted_since,
        event_count=state.event_count,
        audit=Audit(
            list(audit.conflicting_purchases),
            list(audit.duplicate_starts),
            list(audit.orphan_stops),
        ),
        due=state.due,
        due_known=state.due_known,
    )


def _open_record(record: UsageRecord) -> UsageRecord:
    # An open record: its end fields are still None (a stop sets them).
    return UsageRecord(
        record.log_id,
        record.train_id,
        record.train_name,
        record.user_id,
        record.user_name,
        record.start_time,
        record.start_event_id,
        start_iso=record.start_iso,
    )
