"""Parsing Kafka record values into events, refusing bad ones with a precise reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from events.envelope import INBOUND_TYPES, AnyPackEvent, PackEvent
from events.nul import nul_refusal

_ADAPTER: TypeAdapter[AnyPackEvent] = TypeAdapter(PackEvent)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a record was not accepted into the ledger."""

    reason: str


def parse_event(value: bytes | str | None) -> AnyPackEvent | Refusal:
    """One record value -> an event, or the reason it is refused. Never raises.

    Besides the contract's rules, one of the ledger's store: PostgreSQL's jsonb cannot
    hold U+0000 in a string, so an event carrying it cannot be kept as it arrived.
    """
    if value is None:
        return Refusal("empty record: no value")
    nul = nul_refusal(value)
    if nul is not None:
        return Refusal(nul)
    try:
        return _ADAPTER.validate_json(value)
    except ValidationError as error:
        return Refusal(describe(error))


def parse_object(obj: Any) -> AnyPackEvent:
    """A decoded JSON object (e.g. an envelope stored in the ledger) -> an event."""
    return _ADAPTER.validate_python(obj)


def parse_stored(text: str) -> AnyPackEvent:
    """An envelope stored in the ledger, as JSON text (`envelope::text`) -> an event.
    Faster than decoding the JSON first and validating the object (`parse_object`)."""
    return _ADAPTER.validate_json(text)


def describe(error: ValidationError) -> str:
    """A one-line, operator-readable reason naming every offending field."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        kind = item["type"]
        location = _location(item["loc"])
        if kind == "json_invalid":
            return f"not valid JSON: {item['msg']}"
        if kind in ("dict_type", "model_type", "model_attributes_type") and not location:
            return "not a CloudEvent: the value is not a JSON object"
        if kind == "union_tag_not_found":
            return "not a CloudEvent: missing attribute 'type'"
        if kind == "union_tag_invalid":
            tag = item.get("ctx", {}).get("tag")
            return f"unknown type {tag!r}: expected one of {', '.join(INBOUND_TYPES)}"
        problems.append(f"{location or 'event'}: {_message(item)}")
    return "; ".join(problems)


def _location(loc: tuple[int | str, ...]) -> str:
    # The first element is the union tag (the type); drop it.
    if loc and str(loc[0]).startswith("infinite."):
        loc = loc[1:]
    return ".".join(str(part) for part in loc)


def _message(item: Any) -> str:
    msg = str(item["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg
