"""CloudEvents binary content mode: a binary record is read as the structured event it
stands for - same event, same stored envelope, same refusal reason (events/binary.py)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from cloudevents.v1.http import CloudEvent
from cloudevents.v1.kafka import to_binary, to_structured
from hypothesis import given, settings
from hypothesis import strategies as st

from events.binary import Headers, is_binary, structured_value
from events.nul import NUL_REASON
from events.parse import Refusal, parse_event
from events.publisher import encode_record
from services.consumer.dead_letters import copy_headers
from services.consumer.parsing import sort_out
from services.consumer.records import SourceRecord
from tests.support.examples import examples
from tests.unit.contract_cases import ADJUSTED, ALL_CASES, KINDS, STARTED, Case, base

KEY = b"1001"


def as_binary(event: dict[str, Any]) -> tuple[list[tuple[str, bytes]], bytes | None]:
    """The binary-mode record (headers, value) of a structured event whose attributes are
    all strings: what a producer in binary mode sends for it."""
    headers = [("ce_specversion", b"1.0")] if "specversion" not in event else []
    for name, value in event.items():
        if name == "data":
            continue
        header = "content-type" if name == "datacontenttype" else f"ce_{name}"
        headers.append((header, value.encode()))
    value = json.dumps(event["data"]).encode() if "data" in event else None
    return headers, value


def binary_representable(event: Any) -> bool:
    """Binary mode carries attributes as text: a structured event with a non-string
    attribute (a number for `id`, a null `subject`) has no binary twin."""
    return (
        isinstance(event, dict)
        and event.get("specversion") == "1.0"  # else it is not binary (no ce_specversion)
        and all(isinstance(value, str) for name, value in event.items() if name != "data")
    )


def read(headers: Headers, value: bytes | None) -> tuple[Any, bytes | None]:
    """(the event or the refusal, the structured JSON it was read from) of one record."""
    structured = structured_value(headers, value)
    if isinstance(structured, Refusal):
        return structured, None
    return parse_event(structured), structured


def _structured_of(case: Case) -> Any:
    try:
        return None if case.value is None else json.loads(case.value)
    except ValueError:
        return None


TWINS = [case for case in ALL_CASES if binary_representable(_structured_of(case))]


def test_most_contract_cases_have_a_binary_twin() -> None:
    assert len(TWINS) > len(ALL_CASES) // 2
    assert any(case.accepted for case in TWINS) and any(not case.accepted for case in TWINS)


@pytest.mark.parametrize("case", TWINS, ids=lambda case: case.label)
def test_binary_twin_gives_the_same_event_envelope_and_reason(case: Case) -> None:
    assert case.value is not None
    event = json.loads(case.value)
    headers, value = as_binary(event)
    assert is_binary(headers)
    got, envelope = read(headers, value)
    want = parse_event(case.value)
    assert got == want
    if not isinstance(want, Refusal):
        assert envelope is not None
        assert orjson.loads(envelope) == event  # the structured event, attribute for attribute


# Attribute values a producer might send, good and bad.
_ATTRIBUTE_VALUES: dict[str, list[str]] = {
    "specversion": ["1.0", "0.3", ""],
    "id": ["e-1", "", "x" * 129, "ünïcode-id"],
    "source": ["scheduler/a", ""],
    "type": [*KINDS, "infinite.pack.sold", ""],
    "time": [
        "2026-11-01T08:00:00+08:00",
        "2026-11-01T00:00:00Z",
        "yesterday",
        "0001-01-01T00:00:00Z",
    ],
    "subject": ["1001", "0001001", "2002", ""],
    "datacontenttype": ["application/json"],
}


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A contract event with attributes dropped, changed or added, and its data maybe
    broken: any record a binary producer could send."""
    event = base(draw(st.sampled_from(KINDS)))
    for name, choices in _ATTRIBUTE_VALUES.items():
        action = draw(st.sampled_from(["keep", "keep", "drop", "change"]))
        if action == "drop" and name != "specversion":
            event.pop(name, None)
        elif action == "change":
            event[name] = draw(st.sampled_from(choices))
    for name in draw(st.lists(st.sampled_from(["traceparent", "partitionkey", "region"]))):
        event[name] = draw(st.text(max_size=8))
    data_change = draw(st.sampled_from(["keep", "drop", "null", "list", "drop-pack", "bad-id"]))
    if data_change == "drop":
        del event["data"]
    elif data_change == "null":
        event["data"] = None
    elif data_change == "list":
        event["data"] = [1, 2]
    elif data_change == "drop-pack":
        del event["data"]["userPackId"]
    elif data_change == "bad-id":
        event["data"]["userPackId"] = draw(st.sampled_from(["abc", -1, 2**63, 1.5]))
    return event


@settings(max_examples=examples(300), deadline=None)
@given(mutated_events())
def test_binary_and_structured_agree_on_any_event(event: dict[str, Any]) -> None:
    headers, value = as_binary(event)
    got, envelope = read(headers, value)
    want = parse_event(json.dumps(event).encode())
    assert got == want
    if not isinstance(want, Refusal):
        assert envelope is not None and orjson.loads(envelope) == event


def _binary_of(kind: str, **changes: Any) -> tuple[list[tuple[str, bytes]], bytes | None]:
    return as_binary({**base(kind), "datacontenttype": "application/json", **changes})


def test_missing_type_header_is_refused_as_a_missing_type_attribute() -> None:
    headers, value = _binary_of(STARTED)
    headers = [(name, raw) for name, raw in headers if name != "ce_type"]
    refusal, _ = read(headers, value)
    structured = base(STARTED)
    del structured["type"]
    assert refusal == Refusal("not a CloudEvent: missing attribute 'type'")
    assert refusal == parse_event(json.dumps(structured))


@pytest.mark.parametrize("attribute", ["id", "source", "time"])
def test_missing_required_headers_are_refused_like_missing_attributes(attribute: str) -> None:
    headers, value = _binary_of(ADJUSTED)
    headers = [(name, raw) for name, raw in headers if name != f"ce_{attribute}"]
    refusal, _ = read(headers, value)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == f"{attribute}: Field required"


def test_no_value_is_an_event_without_data() -> None:
    headers, _ = _binary_of(ADJUSTED)
    structured = base(ADJUSTED)
    del structured["data"]
    assert read(headers, None)[0] == parse_event(json.dumps(structured))
    assert read(headers, None)[0] == Refusal("data: Field required")


def test_a_value_that_is_not_json_is_refused_as_such() -> None:
    headers, _ = _binary_of(ADJUSTED)
    refusal, _ = read(headers, b"{not json")
    assert isinstance(refusal, Refusal)
    assert refusal.reason.startswith("not valid JSON: the value (data, binary content mode)")


def test_a_value_cannot_smuggle_attributes_into_the_event() -> None:
    # Pasted as `data` unchecked, this would add a second `type` to the event.
    headers, _ = _binary_of(ADJUSTED)
    data = json.dumps(base(ADJUSTED)["data"])
    refusal, _ = read(headers, f'{data}, "type": "infinite.pack.sold"'.encode())
    assert isinstance(refusal, Refusal)
    assert refusal.reason.startswith("not valid JSON")


def test_a_header_that_is_not_utf8_is_refused_naming_it() -> None:
    headers, value = _binary_of(STARTED)
    headers = [(name, b"\xffcluster" if name == "ce_source" else raw) for name, raw in headers]
    refusal, _ = read(headers, value)
    assert isinstance(refusal, Refusal)
    assert refusal.reason.startswith("binary content mode: header 'ce_source' is not UTF-8 text")


def test_a_repeated_attribute_header_is_refused() -> None:
    headers, value = _binary_of(STARTED)
    refusal, _ = read([*headers, ("ce_id", b"another-id")], value)
    assert refusal == Refusal("binary content mode: header 'ce_id' appears more than once")


def test_a_data_header_is_refused() -> None:
    headers, value = _binary_of(STARTED)
    refusal, _ = read([*headers, ("ce_data", b"{}")], value)
    assert refusal == Refusal("binary content mode: header 'ce_data' is not an attribute")


def test_nul_in_a_header_is_refused_as_in_a_structured_event() -> None:
    headers, value = _binary_of(STARTED, source="cluster\x00a")
    structured = {**base(STARTED), "source": "cluster\x00a"}
    refusal = read(headers, value)[0]
    assert refusal == parse_event(json.dumps(structured))
    assert isinstance(refusal, Refusal) and NUL_REASON in refusal.reason


@pytest.mark.parametrize(
    "content_type", [b"application/json", b"application/json; charset=utf-8", b"Application/JSON"]
)
def test_binary_content_type_json_variants_are_accepted(content_type: bytes) -> None:
    headers, value = _binary_of(STARTED)
    headers = [(n, content_type if n == "content-type" else raw) for n, raw in headers]
    event, envelope = read(headers, value)
    assert not isinstance(event, Refusal)
    assert envelope is not None
    assert orjson.loads(envelope)["datacontenttype"] == content_type.decode()


def test_binary_without_content_type_is_accepted_without_datacontenttype() -> None:
    structured = base(STARTED)
    assert "datacontenttype" not in structured
    headers, value = as_binary(structured)
    assert all(name != "content-type" for name, _ in headers)
    event, envelope = read(headers, value)
    assert event == parse_event(json.dumps(structured))
    assert envelope is not None and "datacontenttype" not in orjson.loads(envelope)


def test_binary_content_type_that_is_not_json_is_refused() -> None:
    headers, value = _binary_of(STARTED)
    headers = [(n, b"text/plain" if n == "content-type" else raw) for n, raw in headers]
    refusal, _ = read(headers, value)
    assert isinstance(refusal, Refusal)
    assert "content-type 'text/plain' is not application/json" in refusal.reason


def test_cloudevents_content_type_means_structured_even_with_ce_headers() -> None:
    # The binding: a content-type of application/cloudevents... is structured mode.
    value = json.dumps(base(STARTED)).encode()
    headers = [("ce_specversion", b"1.0"), ("content-type", b"application/cloudevents+json")]
    assert not is_binary(headers)
    assert structured_value(headers, value) is value


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("content-type", b"application/cloudevents+json; charset=UTF-8")],
        [("content-type", b"application/json")],
        [("traceparent", b"00-abc"), ("ce_type", b"ignored without ce_specversion")],
    ],
    ids=["none", "cloudevents+json", "json", "no-specversion"],
)
def test_structured_records_are_read_as_their_value(headers: list[tuple[str, bytes]]) -> None:
    value = json.dumps(base(STARTED)).encode()
    accepted, refused = sort_out([SourceRecord("t", 0, 0, KEY, value, headers)])
    assert refused == []
    assert accepted[0].staged.envelope == value.decode()


def test_partitionkey_header_is_kept_and_the_key_is_not_an_attribute() -> None:
    headers, value = _binary_of(STARTED, partitionkey="1001")
    accepted, refused = sort_out([SourceRecord("t", 0, 0, b"other-key", value, headers)])
    assert refused == []
    envelope = orjson.loads(accepted[0].staged.envelope)
    assert envelope["partitionkey"] == "1001"
    headers = [(name, raw) for name, raw in headers if name != "ce_partitionkey"]
    accepted, _ = sort_out([SourceRecord("t", 0, 0, KEY, value, headers)])
    assert "partitionkey" not in orjson.loads(accepted[0].staged.envelope)


def test_sort_out_stores_the_canonical_envelope_and_refuses_with_the_record_as_it_came() -> None:
    event = base(STARTED)
    headers, value = as_binary(event)
    no_type = [(name, raw) for name, raw in headers if name != "ce_type"]
    accepted, refused = sort_out(
        [
            SourceRecord("t", 0, 0, KEY, value, headers),
            SourceRecord("t", 0, 1, KEY, value, no_type),
            SourceRecord("t", 0, 2, KEY, json.dumps(event).encode()),
        ]
    )
    binary, structured = accepted
    assert orjson.loads(binary.staged.envelope) == orjson.loads(structured.staged.envelope)
    assert binary.event == structured.event
    assert binary.staged.event_id == event["id"]
    (refusal,) = refused
    assert refusal.reason == "not a CloudEvent: missing attribute 'type'"
    assert (refusal.key, refusal.value, refusal.headers) == (KEY, value, no_type)


def test_dead_letter_copies_keep_every_header_as_it_came() -> None:
    own = [("ce_id", b"\xff"), ("x", b"1"), ("x", b"2"), ("ledger-refusal-reason", b"earlier")]
    value = json.dumps(base(STARTED)["data"]).encode()  # no ce_specversion: refused
    (refusal,) = sort_out([SourceRecord("t", 3, 9, KEY, value, own)])[1]
    copied = copy_headers(refusal)
    assert copied[:3] == own[:3]
    assert dict(copied[3:]) == {
        "ledger-refusal-reason": refusal.reason.encode(),
        "ledger-source-topic": b"t",
        "ledger-source-partition": b"3",
        "ledger-source-offset": b"9",
    }


# The official CloudEvents SDK (PyPI `cloudevents`), both of its Kafka content modes.


def sdk_event(kind: str = STARTED) -> CloudEvent:
    """The contract's event built with the SDK; its `to_binary` needs a datacontenttype,
    and its key mapper takes the record key from `partitionkey`."""
    event = {**base(kind), "datacontenttype": "application/json"}
    data = event.pop("data")
    return CloudEvent({**event, "partitionkey": str(data["userPackId"])}, data)


@pytest.mark.parametrize("kind", KINDS)
def test_sdk_binary_and_structured_records_give_the_same_fact(kind: str) -> None:
    event = sdk_event(kind)
    read_back = []
    for message in (to_binary(event), to_structured(event)):
        assert message.key == b"1001" or message.key == "1001"  # from partitionkey
        headers = [(name, raw) for name, raw in message.headers.items()]
        value = message.value if isinstance(message.value, bytes) else message.value.encode()
        accepted, refused = sort_out([SourceRecord("t", 0, 0, KEY, value, headers)])
        assert refused == []
        read_back.append(accepted[0].event)
    binary, structured = read_back
    assert binary == parse_event(
        json.dumps({**base(kind), "datacontenttype": "application/json"}).encode()
    )
    # The SDK moves `datacontenttype` to the content-type header in structured mode and
    # `partitionkey` to the key in binary mode: the attributes the fact does not use.
    moved = {"datacontenttype", "partitionkey"}
    assert binary.model_dump(exclude=moved) == structured.model_dump(exclude=moved)


def test_sdk_binary_record_missing_type_is_refused_like_structured() -> None:
    event = sdk_event()
    message = to_binary(event)
    headers = [(name, raw) for name, raw in message.headers.items() if name != "ce_type"]
    (refusal,) = sort_out([SourceRecord("t", 0, 0, KEY, message.value, headers)])[1]
    assert refusal.reason == "not a CloudEvent: missing attribute 'type'"


# The ledger's own publisher in binary mode.


@pytest.mark.parametrize("kind", KINDS)
def test_publisher_binary_records_read_as_the_structured_ones(kind: str) -> None:
    event = {**base(kind), "datacontenttype": "application/json", "traceparent": "00-abc-def-01"}
    key, value, headers = encode_record(event, "binary")
    assert key == KEY
    assert ("content-type", b"application/json") in headers
    assert ("ce_traceparent", b"00-abc-def-01") in headers
    assert orjson.loads(value) == event["data"]
    s_key, s_value, s_headers = encode_record(event)
    assert s_headers == [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    (binary,), _ = sort_out([SourceRecord("t", 0, 0, key, value, headers)])
    (structured,), _ = sort_out([SourceRecord("t", 0, 1, s_key, s_value, s_headers)])
    assert binary.event == structured.event
    assert orjson.loads(binary.staged.envelope) == orjson.loads(structured.staged.envelope)
