"""Each endpoint's request: the one statement of what it accepts, as pydantic models.

The same models validate the requests (`api.validation.validate`, which answers every
violation in the contract's rules) and describe them in the OpenAPI document
(`api.openapi`). Fields carry the contract's names as aliases and the reads' names as
attributes; a model's field order is the order of the checks (`msg` names the first).
The field types that pydantic has no word for are in `api.inputs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from api.inputs import (
    AsOf,
    BlankIsNull,
    DurationTypeFilter,
    EntityId,
    NotBlank,
    NotNull,
    PageNum,
    PageSize,
    Sort,
    StatusFilter,
    null_is,
    order_key,
)

DEFAULT_PAGE_NUM = 1
DEFAULT_PAGE_SIZE = 10

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

SortOrder = tuple[tuple[str, bool], ...]
"""(sort key, descending?) pairs, the first the most significant."""


class RequestBody(BaseModel):
    """A request's JSON object. Unknown fields are ignored, as they always were.

    A missing field is read as null, as the contract's rules read it (`notNull`: missing
    or null; `notBlank`: missing, null or empty): so a required field's type alone
    (`NotNull`, `NotBlank`) says which rule its absence breaks.
    """

    model_config = ConfigDict(extra="ignore")
    required_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.required_fields = frozenset(
            info.alias or name for name, info in cls.model_fields.items() if info.is_required()
        )

    @model_validator(mode="before")
    @classmethod
    def _missing_is_null(cls, body: Any) -> Any:
        if isinstance(body, dict) and not cls.required_fields <= body.keys():
            return {**dict.fromkeys(cls.required_fields), **body}
        return body


class _OrderEntry(BaseModel):
    # `sort` is declared before `key` (in the subclasses): an entry that breaks both
    # reports `order.sort` first, as the checks always have.
    sort: Sort = Field(default="asc", description="asc or desc, any case; empty: asc")
    key: str


class PackOrder(_OrderEntry):
    key: Annotated[str, order_key(PACK_ORDER_KEYS)] = Field(
        default="", description="empty: the default order"
    )


class RecordOrder(_OrderEntry):
    key: Annotated[str, order_key(RECORD_ORDER_KEYS)] = Field(
        default="", description="empty: the default order"
    )


def sort_order(entries: Iterable[_OrderEntry], keys: Mapping[str, str]) -> SortOrder:
    """The entries' sort keys: an empty key is skipped, a key given twice counts where it
    first appears."""
    chosen: dict[str, bool] = {}
    for entry in entries:
        if entry.key:
            chosen.setdefault(keys[entry.key], entry.sort == "desc")
    return tuple(chosen.items())


class UserPackListRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "order": [{"key": "packName", "sort": "asc"}],
                "isFreeStatus": False,
                "userPackStatus": "userPackStatus.free",
                "packDurationType": "packDurationType.timing",
                "pageNum": 1,
                "pageSize": 10,
            }
        }
    )

    order: list[PackOrder] | None = Field(default=None, description="default: buyDatetime desc")
    only_free: StrictBool | None = Field(
        default=None,
        alias="isFreeStatus",
        description="true: only packs a training can start on now (status.free)",
    )
    status: StatusFilter = Field(default=None, alias="userPackStatus")
    duration_type: DurationTypeFilter = Field(default=None, alias="packDurationType")
    page_num: Annotated[PageNum, null_is(DEFAULT_PAGE_NUM, PageNum)] = Field(
        default=DEFAULT_PAGE_NUM, alias="pageNum"
    )
    page_size: Annotated[PageSize, null_is(DEFAULT_PAGE_SIZE, PageSize)] = Field(
        default=DEFAULT_PAGE_SIZE, alias="pageSize"
    )
    as_of: AsOf = Field(default=None, alias="asOf")

    @property
    def sort_order(self) -> SortOrder:
        return sort_order(self.order or (), PACK_ORDER_KEYS)


class UserPackDetailRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"example": {"userPackId": 234}})

    user_pack_id: Annotated[EntityId, NotNull] = Field(alias="userPackId")
    as_of: AsOf = Field(default=None, alias="asOf")


class TrainPackLogListRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {"order": [{"key": "", "sort": ""}], "pageNum": 1, "pageSize": 10}
        }
    )

    order: Annotated[list[RecordOrder], NotNull] = Field(description="default: createTime desc")
    page_num: Annotated[PageNum, NotNull] = Field(alias="pageNum")
    page_size: Annotated[PageSize, NotNull] = Field(alias="pageSize")
    user_pack_id: Annotated[EntityId | None, BlankIsNull] = Field(
        default=None, alias="packId", description="only this pack's records"
    )
    as_of: AsOf = Field(default=None, alias="asOf")

    @property
    def sort_order(self) -> SortOrder:
        return sort_order(self.order, RECORD_ORDER_KEYS)


class TrainPackLogDetailRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"example": {"logId": 135646135}})

    log_id: Annotated[EntityId, NotBlank] = Field(alias="logId")
    as_of: AsOf = Field(default=None, alias="asOf")


REQUEST_MODELS: tuple[type[RequestBody], ...] = (
    UserPackListRequest,
    UserPackDetailRequest,
    TrainPackLogListRequest,
    TrainPackLogDetailRequest,
)
