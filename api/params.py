"""Each endpoint's request: which field follows which rule, parsed into a query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from api.validation import INT32_MAX, Checker, Rule

DEFAULT_PAGE_NUM = 1
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100

# Accepted spelling -> the data dictionary's value.
STATUS_SPELLINGS: dict[str, str] = {
    f"{prefix}.{name}": f"status.{name}"
    for prefix in ("status", "userPackStatus")
    for name in ("free", "training", "outOfTime")
}
DURATION_TYPE_SPELLINGS: dict[str, str] = {
    f"{prefix}.{name}": f"type.{name}"
    for prefix in ("type", "packDurationType")
    for name in ("timing", "activity")
}

# Order keys -> sort keys of services.store.read_sql.
PACK_ORDER_KEYS: dict[str, str] = {
    "userPackId": "user_pack_id",
    "packName": "pack_name",
    "userPackStatus": "status",
    "packDurationType": "duration_type",
    "duration": "remaining",
    "buyDatetime": "buy_datetime",
}
RECORD_ORDER_KEYS: dict[str, str] = {
    "logId": "log_id",
    "usageRecordId": "log_id",
    "trainName": "train_name",
    "userName": "user_name",
    "duration": "seconds",
    "createTime": "start_time",
    "endTime": "end_time",
    "finishTime": "end_time",
}


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True, slots=True)
class PackListQuery:
    order: tuple[tuple[str, bool], ...]
    only_free: bool
    status: str | None
    duration_type: str | None
    page: Page
    as_of: datetime | None = None  # time travel: the state at this instant (UTC)


@dataclass(frozen=True, slots=True)
class RecordListQuery:
    order: tuple[tuple[str, bool], ...]
    page: Page
    user_pack_id: int | None
    as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class PackDetailQuery:
    user_pack_id: int
    as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordDetailQuery:
    log_id: int
    as_of: datetime | None = None


AS_OF = "asOf"


def _page(check: Checker, *, required: bool) -> Page:
    rule = Rule.NOT_NULL if required else None
    number = check.integer("pageNum", minimum=1, maximum=INT32_MAX, required=rule)
    size = check.integer("pageSize", minimum=1, maximum=MAX_PAGE_SIZE, required=rule)
    return Page(number or DEFAULT_PAGE_NUM, size or DEFAULT_PAGE_SIZE)


def pack_list(body: dict[str, Any], zone: ZoneInfo, now: datetime) -> PackListQuery:
    check = Checker(body)
    order = check.order("order", PACK_ORDER_KEYS)
    only_free = check.boolean("isFreeStatus")
    status = check.choice("userPackStatus", STATUS_SPELLINGS)
    duration_type = check.choice("packDurationType", DURATION_TYPE_SPELLINGS)
    page = _page(check, required=False)
    as_of = check.instant(AS_OF, zone, now)
    check.finish()
    return PackListQuery(tuple(order or ()), bool(only_free), status, duration_type, page, as_of)


def pack_detail(body: dict[str, Any], zone: ZoneInfo, now: datetime) -> PackDetailQuery:
    check = Checker(body)
    user_pack_id = check.entity_id("userPackId", required=Rule.NOT_NULL)
    as_of = check.instant(AS_OF, zone, now)
    check.finish()
    assert user_pack_id is not None
    return PackDetailQuery(user_pack_id, as_of)


def record_list(body: dict[str, Any], zone: ZoneInfo, now: datetime) -> RecordListQuery:
    check = Checker(body)
    order = check.order("order", RECORD_ORDER_KEYS, required=True)
    page = _page(check, required=True)
    user_pack_id = check.entity_id("packId", blank_is_absent=True)
    as_of = check.instant(AS_OF, zone, now)
    check.finish()
    return RecordListQuery(tuple(order or ()), page, user_pack_id, as_of)


def record_detail(body: dict[str, Any], zone: ZoneInfo, now: datetime) -> RecordDetailQuery:
    check = Checker(body)
    log_id = check.entity_id("logId", required=Rule.NOT_BLANK)
    as_of = check.instant(AS_OF, zone, now)
    check.finish()
    assert log_id is not None
    return RecordDetailQuery(log_id, as_of)
