"""A pack's state as JSON, stored beside its read model so the next event applies to it.

Closed sessions are not part of it: they never influence later events and live in the
usage records. Only open sessions, the counters and the last applied instant are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.payloads import DurationType, Node
from projections.codegen import compiled
from projections.state import (
    AUDIT_FIELDS,
    OPEN_SESSION_FIELDS,
    STATE_FIELDS,
    Audit,
    Kind,
    PackState,
    Purchase,
    UsageRecord,
    time_text,
)

VERSION = 4
"""2 adds `maxPosition`; 3 drops `lastPosition` (arrival no longer orders the fold); 4 adds
leases (`leaseSeconds`, `leaseEndsAt` of each open session) and the audit's
`orphanHeartbeats`. Older documents are still read: a version 1 document's maxPosition is
taken to be its lastPosition (a resume that finds the guess wrong re-folds, see
`projections.resume`); before version 4 no session had a lease and no heartbeat was kept."""
READABLE = (1, 2, 3, VERSION)

LATER_KEYS = frozenset({"leaseSeconds", "leaseEndsAt", "orphanHeartbeats"})
"""Keys a document of an older version may lack: absent, the field keeps its default."""


def _dumped(owner: str, name: str, kind: Kind, text: str) -> str:
    """The expression that gives field `name` of `owner` as JSON."""
    value = f"{owner}.{name}"
    if kind is Kind.PURCHASE:
        return f"_purchase_to_json({value}, with_purchase)"
    if kind is Kind.SESSIONS:
        return f"[_open_to_json(record) for record in {value}.values()]"
    if kind is Kind.AUDIT:  # copies: the document must not change as the state moves on
        return "{" + ", ".join(f"{k!r}: list({value}.{n})" for n, k, _ in AUDIT_FIELDS) + "}"
    if kind is Kind.TIME:
        return f"{owner}.{text}()" if text else f"_time({value})"
    if kind is Kind.LOWS:
        return f"_lows_to_json({value})"
    return value


def _dict_source(
    function: str, owner: str, cls: type, declared: list[tuple[str, str, Kind]], head: str = ""
) -> str:
    items = ", ".join(
        f"{key!r}: {_dumped(owner, name, kind, time_text(cls, name))}"
        for name, key, kind in declared
    )
    return f"def {function}({owner}, with_purchase=True):\n    return {{{head}{items}}}\n"


_NAMESPACE: dict[str, Any] = {}
to_snapshot = compiled(
    "to_snapshot",
    _dict_source("to_snapshot", "state", PackState, STATE_FIELDS, head="'v': VERSION, "),
    _NAMESPACE,
)
to_snapshot.__doc__ = """The state as JSON, field by field as `projections.state` declares
them. Without the purchase (which the pack's read model already holds in its columns) only
a reference to it is kept: the consumer's hot path."""
_open_to_json = compiled(
    "_open_to_json",
    _dict_source("_open_to_json", "record", UsageRecord, OPEN_SESSION_FIELDS),
    _NAMESPACE,
)


def from_snapshot(doc: dict[str, Any], columns: PurchaseColumns | None = None) -> PackState:
    """The state back from JSON; a snapshot written without its purchase needs the
    read model's purchase `columns`."""
    version = doc.get("v")
    if version not in READABLE:
        raise ValueError(f"unknown snapshot version {version!r}")
    if version == 1:  # before maxPosition: the last position stands in for it
        doc = {**doc, "maxPosition": doc["lastPosition"]}
    values: dict[str, Any] = {}
    for name, key, kind in STATE_FIELDS:
        if kind is Kind.LOWS:  # a later addition: a document without it has no thresholds
            values[name] = _lows_from_json(doc.get(key))
            continue
        item = doc[key]
        if kind is Kind.PURCHASE:
            values[name] = _purchase_from_json(item, columns)
        elif kind is Kind.SESSIONS:
            records = (_open_from_json(record) for record in item)
            values[name] = {record.train_id: record for record in records}
        elif kind is Kind.AUDIT:
            values[name] = Audit(*(list(item.get(key, ())) for _, key, _ in AUDIT_FIELDS))
        elif kind is Kind.TIME:
            values[name] = _parse_time(item)
        else:
            values[name] = item
    return PackState(**values)


@dataclass(frozen=True, slots=True)
class PurchaseColumns:
    """The purchase as the pack's read model stores it."""

    user_id: int
    user_name: str | None
    pack_name: str
    duration_type: str
    buy_datetime: datetime
    activity_end_time: datetime | None
    node_list: list[dict[str, Any]]

    def purchase(self, ref: dict[str, Any]) -> Purchase:
        return Purchase(
            event_id=ref["eventId"],
            position=int(ref["position"]),
            user_id=self.user_id,
            user_name=self.user_name,
            pack_name=self.pack_name,
            duration_type=DurationType(self.duration_type),
            duration_seconds=int(ref["durationSeconds"]),
            activity_end_time=self.activity_end_time,
            buy_datetime=self.buy_datetime,
            nodes=tuple(Node.model_validate(node) for node in self.node_list),
        )


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


Lows = tuple[tuple[int, bool, tuple[datetime, ...]], ...]


def _lows_to_json(lows: Lows) -> dict[str, Any]:
    return {
        str(threshold): {"armed": armed, "crossings": [at.isoformat() for at in crossings]}
        for threshold, armed, crossings in lows
    }


def _lows_from_json(doc: dict[str, Any] | None) -> Lows:
    if not doc:
        return ()
    return tuple(
        sorted(
            (
                int(threshold),
                bool(item["armed"]),
                tuple(map(datetime.fromisoformat, item["crossings"])),
            )
            for threshold, item in doc.items()
        )
    )


def _purchase_to_json(purchase: Purchase | None, whole: bool) -> dict[str, Any] | None:
    if purchase is None:
        return None
    if not whole:
        return {
            "eventId": purchase.event_id,
            "position": purchase.position,
            "durationSeconds": purchase.duration_seconds,
            "inColumns": True,
        }
    return {
        "eventId": purchase.event_id,
        "position": purchase.position,
        "userId": purchase.user_id,
        "userName": purchase.user_name,
        "packName": purchase.pack_name,
        "durationType": purchase.duration_type.value,
        "durationSeconds": purchase.duration_seconds,
        "activityEndTime": _time(purchase.activity_end_time),
        "buyDatetime": _time(purchase.buy_datetime),
        "nodes": [node.model_dump(mode="json") for node in purchase.nodes],
    }


def _purchase_from_json(
    doc: dict[str, Any] | None, columns: PurchaseColumns | None
) -> Purchase | None:
    if doc is None:
        return None
    if doc.get("inColumns"):
        if columns is None:
            raise ValueError("this snapshot keeps its purchase in the read model's columns")
        return columns.purchase(doc)
    buy = _parse_time(doc["buyDatetime"])
    assert buy is not None
    return Purchase(
        event_id=doc["eventId"],
        position=int(doc["position"]),
        user_id=int(doc["userId"]),
        user_name=doc["userName"],
        pack_name=doc["packName"],
        duration_type=DurationType(doc["durationType"]),
        duration_seconds=int(doc["durationSeconds"]),
        activity_end_time=_parse_time(doc["activityEndTime"]),
        buy_datetime=buy,
        nodes=tuple(Node.model_validate(node) for node in doc["nodes"]),
    )


def _open_from_json(doc: dict[str, Any]) -> UsageRecord:
    values: dict[str, Any] = {}
    for name, key, kind in OPEN_SESSION_FIELDS:
        if key in LATER_KEYS and key not in doc:
            continue
        item = doc[key]
        values[name] = _parse_time(item) if kind is Kind.TIME else item
    return UsageRecord(**values)


_NAMESPACE.update(
    VERSION=VERSION,
    _time=_time,
    _purchase_to_json=_purchase_to_json,
    _open_to_json=_open_to_json,
    _lows_to_json=_lows_to_json,
)
