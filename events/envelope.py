"""CloudEvents 1.0 envelopes (structured JSON mode), one model per event type. A record
in binary content mode is first turned into this structured form (events/binary.py).

The five inbound types form a union discriminated by `type`, so one pass of pydantic's
JSON parser validates envelope and data together.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.ids import EventTime, digits_value
from events.payloads import (
    PackAdjusted,
    PackExhausted,
    PackLow,
    PackPurchased,
    TrainingHeartbeat,
    TrainingLapsed,
    TrainingStarted,
    TrainingStopped,
)

PURCHASED = "infinite.pack.purchased"
ADJUSTED = "infinite.pack.adjusted"
STARTED = "infinite.training.started"
STOPPED = "infinite.training.stopped"
HEARTBEAT = "infinite.training.heartbeat"
EXHAUSTED = "infinite.pack.exhausted"
LOW = "infinite.pack.low"
LAPSED = "infinite.training.lapsed"

INBOUND_TYPES = (PURCHASED, ADJUSTED, STARTED, HEARTBEAT, STOPPED)


class _Envelope(BaseModel):
    # CloudEvents extension attributes are allowed and kept.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1)
    time: EventTime
    subject: str | None = None
    datacontenttype: str | None = None

    @model_validator(mode="after")
    def _subject_names_the_pack(self) -> Self:
        data = getattr(self, "data", None)
        if (
            self.subject is not None
            and data is not None
            and not _names(self.subject, data.userPackId)
        ):
            raise ValueError(
                f"subject {self.subject!r} does not match data.userPackId {data.userPackId}"
            )
        return self


def _names(subject: str, user_pack_id: int) -> bool:
    """Whether a subject names the pack: digits compared as numbers (`"0076"` is 76)."""
    if subject == str(user_pack_id):  # the common spelling, without leading zeros
        return True
    return subject.isascii() and subject.isdigit() and digits_value(subject) == user_pack_id


class PurchasedEvent(_Envelope):
    type: Literal["infinite.pack.purchased"]
    data: PackPurchased


class AdjustedEvent(_Envelope):
    type: Literal["infinite.pack.adjusted"]
    data: PackAdjusted


class StartedEvent(_Envelope):
    type: Literal["infinite.training.started"]
    data: TrainingStarted


class HeartbeatEvent(_Envelope):
    type: Literal["infinite.training.heartbeat"]
    data: TrainingHeartbeat


class StoppedEvent(_Envelope):
    type: Literal["infinite.training.stopped"]
    data: TrainingStopped


PackEvent = Annotated[
    PurchasedEvent | AdjustedEvent | StartedEvent | HeartbeatEvent | StoppedEvent,
    Field(discriminator="type"),
]
"""Any inbound event of the contract."""

AnyPackEvent = PurchasedEvent | AdjustedEvent | StartedEvent | HeartbeatEvent | StoppedEvent


class _Notice(BaseModel):
    """The attributes every notice the ledger publishes on `pack-events.out` carries."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = "infinite/ledger"
    time: EventTime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"


class ExhaustedEvent(_Notice):
    """The exhaustion notice."""

    type: Literal["infinite.pack.exhausted"] = "infinite.pack.exhausted"
    data: PackExhausted


class LowEvent(_Notice):
    """The low-balance notice."""

    type: Literal["infinite.pack.low"] = "infinite.pack.low"
    data: PackLow


class LapsedEvent(_Notice):
    """The lapse notice."""

    type: Literal["infinite.training.lapsed"] = "infinite.training.lapsed"
    data: TrainingLapsed
