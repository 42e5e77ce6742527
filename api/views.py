"""Rows of the read models as the contract's JSON: names, JSON types, formats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from api.formats import format_duration, format_optional_time, format_time

Row = Sequence[Any]


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


def pack_list_item(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    """Row: (user_pack_id, pack_name, duration_type, buy_datetime, node_list, remaining, status)."""
    user_pack_id, pack_name, duration_type, buy_datetime, node_list, remaining, status = row
    return {
        "userPackId": str(user_pack_id),
        "packName": pack_name,
        "userPackStatus": status,
        "packDurationType": duration_type,
        "duration": str(remaining),
        "buyDatetime": format_time(buy_datetime, zone),
        "nodeList": [node(entry) for entry in node_list],
    }


def pack_list(
    rows: Sequence[Row], total: int, page_num: int, page_size: int, zone: ZoneInfo
) -> dict[str, Any]:
    return {
        "total": str(total),
        "pageCurrent": page_num,
        "pageSize": page_size,
        "pageTotal": page_total(total, page_size),
        "userPackList": [pack_list_item(row, zone) for row in rows],
    }


def pack_detail(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    user_pack_id, pack_name, duration_type, buy_datetime, node_list, remaining, status = row
    bought = format_time(buy_datetime, zone)
    return {
        "userPackId": user_pack_id,
        "packName": pack_name,
        "userPackStatus": status,
        "packDurationType": duration_type,
        "purchasingTime": bought,
        "buyDatetime": bought,
        "duration": remaining,
        "nodeList": [node(entry) for entry in node_list],
    }


def record_list_item(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    """Row: (log_id, user_pack_id, train_id, train_name, user_name, start_time, end_time,
    seconds)."""
    log_id, user_pack_id, train_id, train_name, user_name, start_time, end_time, seconds = row
    ended = format_optional_time(end_time, zone)
    return {
        "usageRecordId": str(log_id),
        "logId": str(log_id),
        "packId": str(user_pack_id),
        "trainId": str(train_id),
        "trainName": train_name,
        "userName": user_name,
        "duration": format_duration(seconds),
        "createTime": format_time(start_time, zone),
        "endTime": ended,
        "finishTime": ended,
    }


def record_list(
    rows: Sequence[Row], total: int, page_num: int, page_size: int, zone: ZoneInfo
) -> dict[str, Any]:
    return {
        "list": [record_list_item(row, zone) for row in rows],
        "pageCurrent": page_num,
        "pageSize": page_size,
        "pageTotal": page_total(total, page_size),
        "total": total,
    }


def record_detail(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    """Row: (train_id, train_name, user_id, user_name, start_time, end_time, seconds,
    user_pack_id, pack_name, node_list, remaining)."""
    (
        train_id,
        train_name,
        user_id,
        user_name,
        start_time,
        end_time,
        seconds,
        user_pack_id,
        pack_name,
        node_list,
        remaining,
    ) = row
    started: datetime = start_time
    return {
        "trainId": train_id,
        "trainName": train_name,
        "pack": {
            "packId": user_pack_id,
            "packName": pack_name,
            "residueDuration": format_duration(remaining),
            "nodeList": [detail_node(entry) for entry in node_list],
        },
        "userId": user_id,
        "userName": user_name,
        "duration": seconds,
        "startTime": format_time(started, zone),
        "endTime": format_optional_time(end_time, zone),
    }
