"""A pack's state as JSON, stored beside its read model so the next event applies to it.

Closed sessions are not part of it: they never influence later events and live in the
usage records. Only open sessions, the counters and the last applied key are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.payloads import DurationType, Node
from projections.state import Audit, PackState, Purchase, UsageRecord

VERSION = 2
"""2 adds `maxPosition`; a version 1 document is still read (its maxPosition taken to be
its lastPosition: a resume that finds the guess wrong re-folds, see `projections.resume`)."""


def to_snapshot(state: PackState, *, with_purchase: bool = True) -> dict[str, Any]:
    """The state as JSON. Without the purchase (which the pack's read model already holds
    in its columns) only a reference to it is kept: the consumer's hot path."""
    purchase = state.purchase
    if purchase is not None and not with_purchase:
        purchase_doc: dict[str, Any] | None = {
            "eventId": purchase.event_id,
            "position": purchase.position,
            "durationSeconds": purchase.duration_seconds,
            "inColumns": True,
        }
    else:
        purchase_doc = None if purchase is None else _purchase_to_json(purchase)
    return {
        "v": VERSION,
        "userPackId": state.user_pack_id,
        "purchase": purchase_doc,
        "adjustments": state.adjustments,
        "charged": state.charged,
        "open": [_open_to_json(record) for record in state.open_sessions.values()],
        "lastTime": _time(state.last_time),
        "lastPosition": state.last_position,
        "maxPosition": state.max_position,
        "exhaustedSince": _time(state.exhausted_since),
        "eventCount": state.event_count,
        "audit": {  # copies: the document must not change as the state moves on
            "conflictingPurchases": list(state.audit.conflicting_purchases),
            "duplicateStarts": list(state.audit.duplicate_starts),
            "orphanStops": list(state.audit.orphan_stops),
        },
    }


def from_snapshot(doc: dict[str, Any], columns: PurchaseColumns | None = None) -> PackState:
    """The state back from JSON; a snapshot written without its purchase needs the
    read model's purchase `columns`."""
    if doc.get("v") not in (1, VERSION):
        raise ValueError(f"unknown snapshot version {doc.get('v')!r}")
    purchase_doc = doc["purchase"]
    purchase: Purchase | None
    if purchase_doc is None:
        purchase = None
    elif purchase_doc.get("inColumns"):
        if columns is None:
            raise ValueError("this snapshot keeps its purchase in the read model's columns")
        purchase = columns.purchase(purchase_doc)
    else:
        purchase = _purchase_from_json(purchase_doc)
    state = PackState(
        user_pack_id=int(doc["userPackId"]),
        purchase=purchase,
        adjustments=int(doc["adjustments"]),
        charged=int(doc["charged"]),
        last_time=_parse_time(doc["lastTime"]),
        last_position=int(doc["lastPosition"]),
        max_position=int(doc.get("maxPosition", doc["lastPosition"])),
        exhausted_since=_parse_time(doc["exhaustedSince"]),
        event_count=int(doc["eventCount"]),
        audit=Audit(
            conflicting_purchases=list(doc["audit"]["conflictingPurchases"]),
            duplicate_starts=list(doc["audit"]["duplicateStarts"]),
            orphan_stops=list(doc["audit"]["orphanStops"]),
        ),
    )
    for item in doc["open"]:
        record = _open_from_json(item)
        state.open_sessions[record.train_id] = record
    return state


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


def _purchase_to_json(purchase: Purchase) -> dict[str, Any]:
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


def _purchase_from_json(doc: dict[str, Any]) -> Purchase:
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


def _open_to_json(record: UsageRecord) -> dict[str, Any]:
    return {
        "logId": record.log_id,
        "trainId": record.train_id,
        "trainName": record.train_name,
        "userId": record.user_id,
        "userName": record.user_name,
        "startTime": record.start_text(),
        "startEventId": record.start_event_id,
    }


def _open_from_json(doc: dict[str, Any]) -> UsageRecord:
    return UsageRecord(
        log_id=int(doc["logId"]),
        train_id=int(doc["trainId"]),
        train_name=doc["trainName"],
        user_id=int(doc["userId"]),
        user_name=doc["userName"],
        start_time=datetime.fromisoformat(doc["startTime"]),
        start_event_id=doc["startEventId"],
    )
