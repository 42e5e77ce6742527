"""CloudEvents binary content mode (Kafka protocol binding) read as the structured event.

In binary mode the attributes travel as record headers `ce_<name>` (UTF-8 text), the
`content-type` header is the `datacontenttype` and the value is `data`. The ledger turns
such a record into the structured JSON event it stands for, `{<attributes>, "data":
<value>}`, and from there everything is as for a structured record: the same parser,
the same refusal reasons, the same stored envelope, replay and verify unchanged.

Which mode a record uses (the binding's rule, made cheap for the common case): a
`content-type` starting with `application/cloudevents` is structured; otherwise a
`ce_specversion` header means binary; otherwise structured (the value is the whole
event). Structured records are the hot path: `is_binary` only looks at header names,
and a record without headers never gets here.

The record key is not an attribute: producers put the `partitionkey` extension there
(the official SDKs do), but the ledger already has the pack in `data.userPackId`. A
`ce_partitionkey` header is kept like any other extension.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from pydantic_core import from_json

from events.parse import Refusal

Headers = Sequence[tuple[str, bytes]]
"""Kafka record headers as the clients give them: (name, raw value), in order."""

SPECVERSION_HEADER = "ce_specversion"
ATTRIBUTE_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
STRUCTURED_MEDIA_TYPE = "application/cloudevents"
DATA_MEDIA_TYPE = "application/json"


def structured_value(headers: Headers, value: bytes | None) -> bytes | Refusal | None:
    """A record's value as the structured event: the value itself, or for a binary-mode
    record the event its headers and value stand for (or why they are not one)."""
    for name, _ in headers:  # the hot path: one look at each name (~0.1 us a record)
        if name == SPECVERSION_HEADER:
            return as_structured(headers, value) if is_binary(headers) else value
    return value


def is_binary(headers: Headers) -> bool:
    """Whether a record with these headers is in binary content mode (see above)."""
    for name, _ in headers:
        if name == SPECVERSION_HEADER:
            content_type = _content_type(headers)
            return content_type is None or not _media_type(content_type).startswith(
                STRUCTURED_MEDIA_TYPE
            )
    return False


def as_structured(headers: Headers, value: bytes | None) -> bytes | Refusal:
    """A binary-mode record -> the structured event's JSON (UTF-8), or why it cannot be
    one. The attributes come first, in header order, then `data`: the value's bytes as
    sent, once they are known to be exactly one JSON document (else they could add
    attributes)."""
    attributes: dict[str, str] = {}
    for name, raw in headers:
        if not name.startswith(ATTRIBUTE_PREFIX):
            continue
        attribute = name[len(ATTRIBUTE_PREFIX) :]
        if not attribute or attribute in ("data", "data_base64"):
            return Refusal(f"binary content mode: header {name!r} is not an attribute")
        if attribute in attributes:
            return Refusal(f"binary content mode: header {name!r} appears more than once")
        text = _utf8(name, raw)
        if isinstance(text, Refusal):
            return text
        attributes[attribute] = text
    content_type = _content_type(headers)
    if content_type is not None:
        text = _utf8(CONTENT_TYPE, content_type)
        if isinstance(text, Refusal):
            return text
        if _media_type(content_type) != DATA_MEDIA_TYPE:
            return Refusal(
                f"binary content mode: content-type {text!r} is not {DATA_MEDIA_TYPE}"
                " (the value must be data as JSON)"
            )
        attributes["datacontenttype"] = text
    head = orjson.dumps(attributes)
    if value is None:  # no `data`: refused by the parser as for a structured event
        return head
    try:
        from_json(value)
    except ValueError as error:
        return Refusal(f"not valid JSON: the value (data, binary content mode): {error}")
    glue = b"," if attributes else b""
    return b"".join((head[:-1], glue, b'"data":', value, b"}"))


def _content_type(headers: Headers) -> bytes | None:
    for name, raw in headers:
        if name.lower() == CONTENT_TYPE:
            return raw
    return None


def _media_type(raw: bytes) -> str:
    """`Application/JSON; charset=utf-8` -> `application/json`."""
    return raw.split(b";", 1)[0].strip().lower().decode("latin-1")


def _utf8(name: str, raw: bytes | None) -> str | Refusal:
    if raw is None:
        return Refusal(f"binary content mode: header {name!r} has no value")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Refusal(f"binary content mode: header {name!r} is not UTF-8 text ({error.reason})")
