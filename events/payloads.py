"""The `data` of each event type (CONTRACT.md section 1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.ids import (
    EntityId,
    EventTime,
    LeaseSeconds,
    NonNegative,
    NonNegativeSeconds,
    Seconds,
)


class _Data(BaseModel):
    # Unknown fields are tolerated so producers can add information without breaking us.
    model_config = ConfigDict(extra="ignore", frozen=True)


class DurationType(StrEnum):
    TIMING = "type.timing"
    ACTIVITY = "type.activity"


class NodeType(StrEnum):
    MASTER = "nodeType.master"
    WORKER = "nodeType.worker"


class Node(_Data):
    nodeId: EntityId
    nodeName: str = Field(max_length=255)
    nodeType: NodeType
    cpuCount: NonNegative
    gpuCount: NonNegative
    memorySize: NonNegative


class PackPurchased(_Data):
    # The JSON Schema states the same rule as `_duration_matches_type`.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "properties": {"packDurationType": {"const": "type.timing"}},
                "required": ["packDurationType"],
            },
            "then": {
                "required": ["durationSeconds"],
                "properties": {
                    "durationSeconds": {"type": "integer"},
                    "activityEndTime": {"type": "null"},
                },
            },
        }
    )

    userPackId: EntityId
    userId: EntityId
    userName: str | None = Field(default=None, max_length=255)
    packName: str = Field(min_length=1, max_length=255)
    packDurationType: DurationType
    durationSeconds: NonNegativeSeconds | None = None
    activityEndTime: EventTime | None = None
    buyDatetime: EventTime | None = None
    nodeList: list[Node]

    @model_validator(mode="after")
    def _duration_matches_type(self) -> Self:
        if self.packDurationType is DurationType.TIMING:
            if self.durationSeconds is None:
                raise ValueError("durationSeconds is required for type.timing")
            if self.activityEndTime is not None:
                raise ValueError("activityEndTime is only allowed for type.activity")
        return self


class PackAdjusted(_Data):
    userPackId: EntityId
    deltaSeconds: Seconds = Field(json_schema_extra={"not": {"const": 0}})
    reason: str = Field(max_length=1000)

    @model_validator(mode="after")
    def _non_zero(self) -> Self:
        if self.deltaSeconds == 0:
            raise ValueError("deltaSeconds must not be 0")
        return self


class TrainingStarted(_Data):
    userPackId: EntityId
    trainId: EntityId
    trainName: str = Field(min_length=1, max_length=1000)
    userId: EntityId
    userName: str = Field(max_length=255)
    # Optional: without it the setting LEDGER_DEFAULT_LEASE_SECONDS applies (none by
    # default: the session stays open until its stop).
    leaseSeconds: LeaseSeconds | None = None


class TrainingHeartbeat(_Data):
    """The training is still running at the event's time: its session's lease is renewed."""

    userPackId: EntityId
    trainId: EntityId


class TrainingStopped(_Data):
    userPackId: EntityId
    trainId: EntityId
    reason: str | None = Field(default=None, max_length=1000)


class PackExhausted(_Data):
    """Published by the ledger: open sessions drove a timing pack's remaining time to 0."""

    userPackId: EntityId
    trainIds: list[EntityId]
    exhaustedAt: EventTime


class PackLow(_Data):
    """Published by the ledger: a timing pack's remaining time fell to a low-balance
    threshold (`LEDGER_LOW_BALANCE_SECONDS`) or below."""

    userPackId: EntityId
    thresholdSeconds: int = Field(ge=1)
    crossedAt: EventTime
    trainIds: list[EntityId]
    exhaustsAt: EventTime | None


class TrainingLapsed(_Data):
    """Published by the ledger: a session's lease ended before its stop came, so the
    session ended then, as if stopped with reason `leaseExpired` (CONTRACT.md section 2)."""

    userPackId: EntityId
    trainId: EntityId
    logId: EntityId
    lapsedAt: EventTime
