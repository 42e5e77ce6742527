"""The state of one pack, as the fold leaves it: what the read models are made of.

Each field of `PackState` and `UsageRecord` declares, once, how it persists (`kept`):
its key in the pack's JSON snapshot (`projections.snapshot`) and its kind, which says
how the field is written to JSON and read back and how `detached` copies it. A field
declared `derived` is a memo the fold recomputes; it is copied as is and never stored.
Adding a field to a pack's state is then: the declaration here, the rule that sets it
(`projections.fold`), and - if a read needs it - its column (`projections.read_models`,
a migration).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any

from events.payloads import DurationType, Node
from projections.codegen import compiled


class Kind(Enum):
    """How a persisted field is written to JSON, read back, and copied by `detached`."""

    VALUE = "value"  # an int or a str: JSON as it is, shared by copies
    TIME = "time"  # a datetime or None: ISO 8601 text, shared by copies (immutable)
    PURCHASE = "purchase"  # frozen; the snapshot may keep it in the read model's columns
    SESSIONS = "sessions"  # open sessions by trainId: each copied (a stop closes it in place)
    AUDIT = "audit"  # lists that grow in place: copied
    LOWS = "lows"  # low-balance thresholds: a tuple of pairs, replaced, never changed in place
    DERIVED = "derived"  # a memo: copied as is, never stored


def kept(key: str, kind: Kind = Kind.VALUE, text: str = "") -> dict[str, Any]:
    """The metadata of a persisted field: its snapshot `key` and its `kind`; `text`, for
    a time, names a method that gives its ISO 8601 text made once (a memo)."""
    return {"key": key, "kind": kind, "text": text}


DERIVED: dict[str, Any] = {"key": None, "kind": Kind.DERIVED}


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
    """One session of one training on one pack. The fields declared `kept` are those of
    an open session in the snapshot; a stop sets the others."""

    log_id: int = field(metadata=kept("logId"))
    train_id: int = field(metadata=kept("trainId"))
    train_name: str = field(metadata=kept("trainName"))
    user_id: int = field(metadata=kept("userId"))
    user_name: str = field(metadata=kept("userName"))
    start_time: datetime = field(metadata=kept("startTime", Kind.TIME, text="start_text"))
    start_event_id: str = field(metadata=kept("startEventId"))
    # The session's lease (its start's `leaseSeconds`, else the default of the fold's
    # terms), None without one; and when it ends now: the start, then each heartbeat,
    # pushes it to `max(lease end, time + lease)` (`rules.lease_end`).
    lease_seconds: int | None = field(default=None, metadata=kept("leaseSeconds"))
    lease_ends_at: datetime | None = field(default=None, metadata=kept("leaseEndsAt", Kind.TIME))
    end_time: datetime | None = None
    stop_event_id: str | None = None
    stop_reason: str | None = None
    charged_seconds: int | None = None
    overrun_seconds: int | None = None
    # Derived: start_time.isoformat(), kept once made (`start_text`): an open session's
    # start is written with its pack's read model after every event of the pack.
    start_iso: str = field(default="", compare=False, repr=False, metadata=DERIVED)

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

    conflicting_purchases: list[str] = field(
        default_factory=list, metadata=kept("conflictingPurchases")
    )
    duplicate_starts: list[str] = field(default_factory=list, metadata=kept("duplicateStarts"))
    orphan_stops: list[str] = field(default_factory=list, metadata=kept("orphanStops"))
    # Heartbeats of a training with no open session: lapsed, stopped, or not started yet.
    # (A heartbeat of an open session without a lease changes nothing either, but it is
    # the common case of a scheduler that heartbeats every training: not listed.)
    orphan_heartbeats: list[str] = field(default_factory=list, metadata=kept("orphanHeartbeats"))


@dataclass(slots=True)
class PackState:
    """Everything needed to apply the next event of a pack and to answer reads."""

    user_pack_id: int = field(metadata=kept("userPackId"))
    purchase: Purchase | None = field(default=None, metadata=kept("purchase", Kind.PURCHASE))
    adjustments: int = field(default=0, metadata=kept("adjustments"))  # sum of deltaSeconds
    charged: int = field(default=0, metadata=kept("charged"))
    open_sessions: dict[int, UsageRecord] = field(
        default_factory=dict, metadata=kept("open", Kind.SESSIONS)
    )
    # Event time of the last applied event.
    last_time: datetime | None = field(default=None, metadata=kept("lastTime", Kind.TIME))
    # The largest ledger position applied (snapshots resume from it).
    max_position: int = field(default=0, metadata=kept("maxPosition"))
    # Set while an exhaustion lasts.
    exhausted_since: datetime | None = field(
        default=None, metadata=kept("exhaustedSince", Kind.TIME)
    )
    # Per low-balance threshold T (`Terms.low_balance_seconds`), ascending: (T, armed,
    # crossings). `armed` while remaining stands above T; `crossings`: the instants it
    # fell to T or below, the last `rules.LOW_CROSSINGS_KEPT` of them (kept after a top-up
    # re-arms it, so that a crossing and its re-arm in one batch still reach the
    # notifier, which announces each once). A threshold left out stands at or below T
    # and never crossed it (it never was above since the purchase, or was configured
    # after this state was stored); it is armed once remaining rises above T.
    lows: tuple[tuple[int, bool, tuple[datetime, ...]], ...] = field(
        default=(), metadata=kept("lows", Kind.LOWS)
    )
    event_count: int = field(default=0, metadata=kept("eventCount"))
    audit: Audit = field(default_factory=Audit, metadata=kept("audit", Kind.AUDIT))
    # Memo of fold.exhausts_at and of the crossings ahead of fold.low_crossings
    # ((threshold, instant)): derived, recomputed after each applied event.
    due: datetime | None = field(default=None, compare=False, repr=False, metadata=DERIVED)
    crossings_ahead: tuple[tuple[int, datetime], ...] = field(
        default=(), compare=False, repr=False, metadata=DERIVED
    )
    due_known: bool = field(default=False, compare=False, repr=False, metadata=DERIVED)

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

    @property
    def open_lease_ends(self) -> list[datetime | None]:
        """The lease end of each open session (None: no lease), beside `open_starts`."""
        return [session.lease_ends_at for session in self.open_sessions.values()]

    @property
    def open_spans(self) -> list[tuple[datetime, datetime | None]]:
        """(start, lease end or None) of each open session."""
        return [(s.start_time, s.lease_ends_at) for s in self.open_sessions.values()]


def persisted(cls: type) -> list[tuple[str, str, Kind]]:
    """(attribute, snapshot key, kind) of each field of `cls` the snapshot keeps."""
    return [
        (f.name, f.metadata["key"], f.metadata["kind"])
        for f in fields(cls)
        if f.metadata and f.metadata["kind"] is not Kind.DERIVED
    ]


def time_text(cls: type, name: str) -> str:
    """The method of `cls` that gives field `name`'s ISO text once made, or ''."""
    return str(next(f for f in fields(cls) if f.name == name).metadata.get("text", ""))


def check_declared(cls: type, *, set_later: tuple[str, ...] = ()) -> None:
    """Raise unless every field of `cls` declares how it persists (`kept` or `DERIVED`),
    but the fields `set_later` (a usage record's end fields, None while it is open)."""
    undeclared = [f.name for f in fields(cls) if not f.metadata and f.name not in set_later]
    if undeclared:
        raise TypeError(f"{cls.__name__}: declare how {undeclared} persist (kept or DERIVED)")


check_declared(PackState)
check_declared(Audit)
check_declared(
    UsageRecord,
    set_later=("end_time", "stop_event_id", "stop_reason", "charged_seconds", "overrun_seconds"),
)

STATE_FIELDS = persisted(PackState)
OPEN_SESSION_FIELDS = persisted(UsageRecord)
AUDIT_FIELDS = persisted(Audit)


def _copy_of(name: str, kind: Kind) -> str:
    if kind is Kind.SESSIONS:
        return f"{{train: open_record(record) for train, record in state.{name}.items()}}"
    if kind is Kind.AUDIT:
        lists = ", ".join(f"list(state.{name}.{item})" for item, _, _ in AUDIT_FIELDS)
        return f"Audit({lists})"
    return f"state.{name}"  # immutable values, frozen purchases, memos


detached = compiled(
    "detached",
    "def detached(state):\n    return PackState("
    + ", ".join(_copy_of(f.name, f.metadata["kind"]) for f in fields(PackState))  # in order
    + ")\n",
    {"PackState": PackState, "Audit": Audit},
)
detached.__doc__ = """A copy of `state` to apply further events to, leaving `state` as it is
(applying events changes the open sessions' records and the audit lists in place). Made
from the fields' declarations: a new field cannot be forgotten."""

open_record = compiled(
    "open_record",
    "def open_record(state):\n    return UsageRecord("
    + ", ".join(
        f"state.{f.name}" if f.default is MISSING else f"{f.name}=state.{f.name}"
        for f in fields(UsageRecord)
        if f.metadata  # kept fields (positional, first) and memos
    )
    + ")\n",
    {"UsageRecord": UsageRecord},
)
open_record.__doc__ = """A copy of an open session's record: its kept fields and memos (the
end fields stay None: a stop sets them)."""
detached.__globals__["open_record"] = open_record
