"""The answers' shapes, for the OpenAPI document: their exact JSON types.

Answers are built by `api.views`; requests are stated (validated and documented) by the
models of `api.params`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.inputs import DurationType, Status
from api.validation import Rule

DIGITS = r"^[0-9]+$"
TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"

DigitString = Annotated[str, Field(pattern=DIGITS, description="a positive integer as digits")]
TimeString = Annotated[str, Field(pattern=TIME, description="yyyy-MM-dd HH:mm:ss")]

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


class Forecast(_Strict):
    """The extension fields of a pack (CONTRACT.md section 3): clients may ignore them."""

    exhaustsAt: Annotated[
        TimeString | None,
        Field(
            description="when the open sessions, as they stand now, drive `duration` to 0"
            " (the exhaustion's instant once it happened); null without an open session"
            " or for an activity pack"
        ),
    ]
    burnRate: Annotated[
        int,
        Field(
            description="seconds of budget used per second now: the open sessions of a"
            " timing pack with time left; 0 otherwise"
        ),
    ]


class UserPackListItem(Forecast):
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


class UserPackDetailData(Forecast):
    userPackId: int
    packName: str
    userPackStatus: Status
    packDurationType: DurationType
    purchasingTime: TimeString
    buyDatetime: TimeString
    duration: Annotated[int, Field(description="remaining seconds, as of the request")]
    nodeList: list[Node]


LeaseEndsAt = Annotated[
    TimeString | None,
    Field(
        description=(
            "Extension: when the session's lease ends (its last heartbeat + leaseSeconds), "
            "null without a lease. A session still open when it passes lapsed then: its "
            "endTime is this instant."
        )
    ),
]


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
    leaseEndsAt: LeaseEndsAt


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
    leaseEndsAt: LeaseEndsAt


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
    ruleViolated: dict[str, list[Rule]]


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
