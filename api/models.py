"""The request and answer shapes, for the OpenAPI document only.

Requests are validated by hand (`api.params`) so that every violation is reported in the
contract's envelope; these models describe the same rules to readers and fuzzers.
Answers are built by `api.views`; the models state their exact JSON types.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.params import MAX_PAGE_SIZE
from api.validation import ID_MAX, INT32_MAX

DIGITS = r"^[0-9]+$"
TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"

DigitString = Annotated[str, Field(pattern=DIGITS, description="a positive integer as digits")]
TimeString = Annotated[str, Field(pattern=TIME, description="yyyy-MM-dd HH:mm:ss")]
IdNumber = Annotated[int, Field(ge=1, le=ID_MAX)]
IdInput = IdNumber | Annotated[str, Field(pattern=DIGITS, max_length=19)]
AS_OF_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"|[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
)
AsOfInput = Annotated[
    str,
    Field(
        pattern=AS_OF_TIME,
        description=(
            "Extension of the platform's document (time travel, docs/api.md): answer as "
            "of this past instant, from the events' times. `yyyy-MM-dd HH:mm:ss` in the "
            "API's zone, or RFC 3339 with an offset; null or empty: now. Malformed: "
            "typeMismatch; after now: max."
        ),
        examples=["2024-05-01 08:00:00", "2024-05-01T00:00:00Z"],
    ),
]
PageNum = Annotated[int, Field(ge=1, le=INT32_MAX)]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]
Sort = Literal["asc", "desc", "ASC", "DESC", ""]

# Spelled out for type checkers; tests/api check them against api.params.
StatusInput = Literal[
    "status.free",
    "status.training",
    "status.outOfTime",
    "userPackStatus.free",
    "userPackStatus.training",
    "userPackStatus.outOfTime",
]
DurationTypeInput = Literal[
    "type.timing", "type.activity", "packDurationType.timing", "packDurationType.activity"
]
PackOrderKey = Literal[
    "", "userPackId", "packName", "userPackStatus", "packDurationType", "duration", "buyDatetime"
]
RecordOrderKey = Literal[
    "",
    "logId",
    "usageRecordId",
    "trainName",
    "userName",
    "duration",
    "createTime",
    "endTime",
    "finishTime",
]
RuleName = Literal["notNull", "notBlank", "typeMismatch", "min", "max", "inEnum", "malformedJson"]
Status = Literal["status.free", "status.training", "status.outOfTime"]
DurationType = Literal["type.timing", "type.activity"]

# --- requests -----------------------------------------------------------------------------


class PackOrder(BaseModel):
    key: PackOrderKey = Field(default="", description="empty: the default order")
    sort: Sort = Field(default="", description="asc or desc; empty: asc")


class RecordOrder(BaseModel):
    key: RecordOrderKey = Field(default="", description="empty: the default order")
    sort: Sort = Field(default="", description="asc or desc; empty: asc")


class UserPackListRequest(BaseModel):
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
    isFreeStatus: bool | None = Field(
        default=None, description="true: only packs a training can start on now (status.free)"
    )
    userPackStatus: StatusInput | None = None
    packDurationType: DurationTypeInput | None = None
    pageNum: PageNum | None = 1
    pageSize: PageSize | None = 10
    asOf: AsOfInput | None = None


class UserPackDetailRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"userPackId": 234}})

    userPackId: IdInput
    asOf: AsOfInput | None = None


class TrainPackLogListRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {"order": [{"key": "", "sort": ""}], "pageNum": 1, "pageSize": 10}
        }
    )

    order: list[RecordOrder] = Field(description="default: createTime desc")
    pageNum: PageNum
    pageSize: PageSize
    packId: IdInput | None = Field(default=None, description="only this pack's records")
    asOf: AsOfInput | None = None


class TrainPackLogDetailRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"logId": 135646135}})

    logId: IdInput
    asOf: AsOfInput | None = None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    UserPackListRequest,
    UserPackDetailRequest,
    TrainPackLogListRequest,
    TrainPackLogDetailRequest,
)

# --- answers ------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Node(_Strict):
    nodeId: int
    nodeName: str
    nodeType: Literal["nodeType.master", "nodeType.worker"]
    cpuCount: int
    gpuCount: int
    memorySize: int


class DetailNode(Node):
    nodeCount: Literal[1]


class UserPackListItem(_Strict):
    userPackId: DigitString
    packName: str
    userPackStatus: Status
    packDurationType: DurationType
    duration: Annotated[DigitString, Field(description="remaining seconds, as of the request")]
    buyDatetime: TimeString
    nodeList: list[Node]


class UserPackListData(_Strict):
    total: DigitString
    pageCurrent: int
    pageSize: int
    pageTotal: int
    userPackList: list[UserPackListItem]


class UserPackDetailData(_Strict):
    userPackId: int
    packName: str
    userPackStatus: Status
    packDurationType: DurationType
    purchasingTime: TimeString
    buyDatetime: TimeString
    duration: Annotated[int, Field(description="remaining seconds, as of the request")]
    nodeList: list[Node]


class TrainPackLogItem(_Strict):
    usageRecordId: DigitString
    logId: DigitString
    packId: DigitString
    trainId: DigitString
    trainName: str
    userName: str
    duration: Annotated[str, Field(description="D天H时M分S秒, so far while running")]
    createTime: TimeString
    endTime: TimeString | None
    finishTime: TimeString | None


class TrainPackLogListData(_Strict):
    list: list[TrainPackLogItem]
    pageCurrent: int
    pageSize: int
    pageTotal: int
    total: int


class LogPack(_Strict):
    packId: int
    packName: str
    residueDuration: Annotated[str, Field(description="the pack's remaining time, D天H时M分S秒")]
    nodeList: list[DetailNode]


class TrainPackLogDetailData(_Strict):
    trainId: int
    trainName: str
    pack: LogPack
    userId: int
    userName: str
    duration: Annotated[int, Field(description="session seconds, so far while running")]
    startTime: TimeString
    endTime: TimeString | None


class UserPackListAnswer(_Strict):
    code: Literal["General.Success"]
    data: UserPackListData
    msg: str


class UserPackDetailAnswer(_Strict):
    code: Literal["General.Success"]
    data: UserPackDetailData
    msg: str


class TrainPackLogListAnswer(_Strict):
    code: Literal["General.Success"]
    data: TrainPackLogListData
    msg: str


class TrainPackLogDetailAnswer(_Strict):
    code: Literal["General.Success"]
    data: TrainPackLogDetailData
    msg: str


class RuleViolated(_Strict):
    ruleViolated: dict[str, list[RuleName]]


class ParameterInvalidAnswer(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "code": "General.ParameterInvalid",
                "data": {"ruleViolated": {"userPackId": ["notNull"]}},
                "msg": "request params[userPackId] notNull.",
            }
        }
    )

    code: Literal["General.ParameterInvalid"]
    data: RuleViolated
    msg: Annotated[str, Field(description="request params[FIELD] RULE., the first violation")]


class Empty(_Strict):
    pass


class FailureAnswer(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {"code": "General.TokenInvalid", "data": {}, "msg": "账户Token无效"}
        }
    )

    code: Literal[
        "General.Failure",
        "General.InternalServerError",
        "General.RpcServerError",
        "General.TokenExpired",
        "General.TokenInvalid",
        "General.Unauthorized",
        "General.NotFound",
    ]
    data: Empty
    msg: str


class HealthAnswer(_Strict):
    code: Literal["General.Success"]
    data: Empty
    msg: str
