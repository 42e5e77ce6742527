"""CloudEvents 1.0 envelopes (structured JSON mode), one model per event type.

The four inbound types form a union discriminated by `type`, so one pass of pydantic's
JSON parser validates envelope and data together.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.ids import EventTime
from events.payloads import (
    PackAdjusted,
    PackExhausted,
    PackPurchased,
    TrainingStarted,
    TrainingStopped,
)

PURCHASED = "infinite.pack.purchased"
ADJUSTED = "infinite.pack.adjusted"
STARTED = "infinite.training.started"
STOPPED = "infinite.training.stopped"
EXHAUSTED = "infinite.pack.exhausted"

INBOUND_TYPES = (PURCHASED, ADJUSTED, STARTED, STOPPED)


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
        if self.subject is not None and data is not None and self.subject != str(data.userPackId):
            raise ValueError(
                f"subject {self.subject!r} does not match data.userPackId {data.userPackId}"
            )
        return self


class PurchasedEvent(_Envelope):
    type: Literal["infinite.pack.purchased"]
    data: PackPurchased


class AdjustedEvent(_Envelope):
    type: Literal["infinite.pack.adjusted"]
    data: PackAdjusted


class StartedEvent(_Envelope):
    type: Literal["infinite.training.started"]
    data: TrainingStarted


class StoppedEvent(_Envelope):
    type: Literal["infinite.training.stopped"]
    data: TrainingStopped


PackEvent = Annotated[
    PurchasedEvent | AdjustedEvent | StartedEvent | StoppedEvent,
    Field(discriminator="type"),
]
"""Any inbound event of the contract."""

AnyPackEvent = PurchasedEvent | AdjustedEvent | StartedEvent | StoppedEvent


class ExhaustedEvent(BaseModel):
    """The notice the ledger publishes on `pack-events.out`."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = "infinite/ledger"
    type: Literal["infinite.pack.exhausted"] = "infinite.pack.exhausted"
    time: EventTime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"
    data: PackExhausted
