"""Rows of the read models as the contract's JSON: names, JSON types, formats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.formats import format_duration
from api.rows import PackDetailRow, PackPageRow, RecordDetailRow, RecordPageRow
from projections.rules import burn_rate


def page_total(total: int, page_size: int) -> int:
    return -(-total // page_size)


NODE_KEYS = ("nodeId", "nodeName", "nodeType", "cpuCount", "gpuCount", "memorySize")
_NODE_KEY_SET = frozenset(NODE_KEYS)


def node(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored node (the consumer keeps them in the contract's names and JSON types):
    as stored when it has exactly the contract's fields, else reduced to them."""
    if entry.keys() == _NODE_KEY_SET:
        return entry
    return {key: entry.get(key) for key in NODE_KEYS}


def detail_node(entry: dict[str, Any]) -> dict[str, Any]:
    """A node of the usage-record detail: one node per entry, so `nodeCount` is 1."""
    return {**node(entry), "nodeCount": 1}


def forecast(row: PackDetailRow) -> dict[str, Any]:
    """The extension fields of a pack (list, detail, stream): `exhaustsAt`, `burnRate`."""
    return {
        "exhaustsAt": row.exhausts_text,
        "burnRate": burn_rate(row.duration_type, row.remaining, row.open_sessions),
    }


def pack_list_item(row: PackDetailRow) -> dict[str, Any]:
    return {
        "userPackId": str(row.user_pack_id),
        "packName": row.pack_name,
        "userPackStatus": row.status,
        "packDurationType": row.duration_type,
        "duration": str(row.remaining),
        "buyDatetime": row.buy_text,
        "nodeList": [node(entry) for entry in row.node_list],
        **forecast(row),
    }


def pack_list(
    rows: Sequence[PackPageRow], total: int, page_num: int, page_size: int
) -> dict[str, Any]:
    return {
        "total": str(total),
        "pageCurrent": page_num,
        "pageSize": page_size,
        "pageTotal": page_total(total, page_size),
        "userPackList": [pack_list_item(row) for row in rows],
    }


def pack_detail(row: PackDetailRow) -> dict[str, Any]:
    bought = row.buy_text
    return {
        "userPackId": row.user_pack_id,
        "packName": row.pack_name,
        "userPackStatus": row.status,
        "packDurationType": row.duration_type,
        "purchasingTime": bought,
        "buyDatetime": bought,
        "duration": row.remaining,
        "nodeList": [node(entry) for entry in row.node_list],
        **forecast(row),
    }


def record_list_item(row: RecordPageRow) -> dict[str, Any]:
    ended = row.end_text
    log_id = str(row.log_id)
    return {
        "usageRecordId": log_id,
        "logId": log_id,
        "packId": str(row.user_pack_id),
        "trainId": str(row.train_id),
        "trainName": row.train_name,
        "userName": row.user_name,
        "duration": format_duration(row.seconds),
        "createTime": row.start_text,
        "endTime": ended,
        "finishTime": ended,
        "leaseEndsAt": row.lease_ends_text,
    }


def record_list(
    rows: Sequence[RecordPageRow], total: int, page_num: int, page_size: int
) -> dict[str, Any]:
    return {
        "list": [record_list_item(row) for row in rows],
        "pageCurrent": page_num,
        "pageSize": page_size,
        "pageTotal": page_total(total, page_size),
        "total": total,
    }


def record_detail(row: RecordDetailRow) -> dict[str, Any]:
    return {
        "trainId": row.train_id,
        "trainName": row.train_name,
        "pack": {
            "packId": row.user_pack_id,
            "packName": row.pack_name,
            "residueDuration": format_duration(row.remaining),
            "nodeList": [detail_node(entry) for entry in row.node_list],
        },
        "userId": row.user_id,
        "userName": row.user_name,
        "duration": row.seconds,
        "startTime": row.start_text,
        "endTime": row.end_text,
        "leaseEndsAt": row.lease_ends_text,
    }
