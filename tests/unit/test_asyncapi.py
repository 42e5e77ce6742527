"""events/asyncapi.yaml: an AsyncAPI 3.0 document whose references all resolve and
whose examples are what the consumer accepts (or, for the DLQ, refuses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from jsonschema import Draft202012Validator

from events.envelope import INBOUND_TYPES, ExhaustedEvent, LapsedEvent, LowEvent
from events.parse import Refusal, parse_event
from services.consumer.dead_letters import copy_headers
from services.settings import Settings
from services.store.ledger_sql import RefusedRecord

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
DOCUMENT = EVENTS_DIR / "asyncapi.yaml"
CLOUDEVENTS = "application/cloudevents+json"
DLQ_HEADERS = {
    "ledger-refusal-reason",
    "ledger-source-topic",
    "ledger-source-partition",
    "ledger-source-offset",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text("utf-8"))
    return loaded


def _pointer(document: Any, fragment: str) -> Any:
    node = document
    for part in [p for p in fragment.lstrip("/").split("/") if p]:
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """The target of a `$ref` of the document: internal, or into a file next to it."""
    location, _, fragment = ref.partition("#")
    if not location:
        return _pointer(doc, fragment)
    path = (DOCUMENT.parent / location).resolve()
    assert path.is_file(), f"{ref}: {path} does not exist"
    return _pointer(json.loads(path.read_text("utf-8")), fragment)


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            elif key not in ("examples",):
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def test_is_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["defaultContentType"] == CLOUDEVENTS
    assert doc["servers"]["local"]["protocol"] == "kafka"
    assert set(doc) <= {
        "asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations",
        "components",
    }  # fmt: skip


def test_channels_are_the_settings_topics(doc: dict[str, Any]) -> None:
    settings = Settings.model_construct()  # the defaults
    addresses = {name: channel["address"] for name, channel in doc["channels"].items()}
    assert addresses == {
        "packEvents": settings.events_topic,
        "packEventsDlq": settings.dlq_topic,
        "packEventsOut": settings.out_topic,
    }
    assert addresses["packEvents"] == "pack-events"
    for channel in doc["channels"].values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert any(ref.startswith("./schema/") for ref in refs)
    for ref in refs:
        assert resolve(doc, ref) is not None, ref


def test_payloads_reference_the_published_schema_files(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    files = {
        m["payload"]["$ref"].split("#")[0] for m in messages.values() if "$ref" in m["payload"]
    }
    assert files == {
        "./schema/pack-event.schema.json",
        "./schema/pack-exhausted.schema.json",
        "./schema/pack-low.schema.json",
        "./schema/training-lapsed.schema.json",
    }
    for path in files:
        assert (EVENTS_DIR / path).is_file()


def test_pack_events_channel_receives_the_four_types(doc: dict[str, Any]) -> None:
    channel = doc["channels"]["packEvents"]
    messages = {name: deref(doc, m) for name, m in channel["messages"].items()}
    assert sorted(m["name"] for m in messages.values()) == sorted(INBOUND_TYPES)
    for message in messages.values():
        assert message["contentType"] == CLOUDEVENTS
        payload = deref(doc, message["payload"])
        assert payload["properties"]["type"]["const"] == message["name"]
        key = deref(doc, message["bindings"]["kafka"]["key"])
        assert key["type"] == "string" and key["pattern"] == "^[0-9]+$"
    operation = doc["operations"]["consumePackEvents"]
    assert operation["action"] == "receive"
    assert resolve(doc, operation["channel"]["$ref"]) is channel
    assert sorted(deref(doc, m)["name"] for m in operation["messages"]) == sorted(INBOUND_TYPES)
    for ref in (m["$ref"] for m in operation["messages"]):
        assert ref.startswith("#/channels/packEvents/messages/")


def test_dlq_and_out_are_sent_by_the_ledger(doc: dict[str, Any]) -> None:
    for name, channel in (
        ("publishRefusals", "packEventsDlq"),
        ("publishExhaustedNotices", "packEventsOut"),
    ):
        operation = doc["operations"][name]
        assert operation["action"] == "send"
        assert operation["channel"]["$ref"] == f"#/channels/{channel}"
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(f"#/channels/{channel}/messages/")
            assert deref(doc, ref)


def test_dlq_headers_are_the_consumers(doc: dict[str, Any]) -> None:
    message = deref(doc, doc["channels"]["packEventsDlq"]["messages"]["refusedRecord"])
    headers = message["headers"]
    assert set(headers["properties"]) == DLQ_HEADERS
    assert set(headers["required"]) == DLQ_HEADERS
    refused = RefusedRecord("pack-events", 2, 1834, b"1001", b"{}", "why", [("x-own", b"1")])
    sent = [name for name, _ in copy_headers(refused)]
    assert sent[0] == "x-own"  # the record's own headers first
    assert sorted(sent[1:]) == sorted(DLQ_HEADERS)
    assert message["headers"]["additionalProperties"]  # the record's own headers


def test_exhausted_notice_message(doc: dict[str, Any]) -> None:
    message = deref(doc, doc["channels"]["packEventsOut"]["messages"]["packExhausted"])
    assert message["name"] == "infinite.pack.exhausted"
    assert message["contentType"] == CLOUDEVENTS
    payload = deref(doc, message["payload"])
    assert payload["properties"]["type"]["const"] == "infinite.pack.exhausted"
    assert deref(doc, message["bindings"]["kafka"]["key"])["pattern"] == "^[0-9]+$"


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((EVENTS_DIR / "schema" / name).read_text("utf-8"))
    return Draft202012Validator(schema)


def test_inbound_examples_are_accepted(doc: dict[str, Any]) -> None:
    validator = _validator("pack-event.schema.json")
    seen = 0
    for name in ("packPurchased", "packAdjusted", "trainingStarted", "trainingStopped"):
        message = doc["components"]["messages"][name]
        assert message["examples"]
        for example in message["examples"]:
            payload = example["payload"]
            assert list(validator.iter_errors(payload)) == []
            event = parse_event(json.dumps(payload))
            assert not isinstance(event, Refusal), event.reason
            assert event.type == message["name"]
            seen += 1
    assert seen >= 5


def test_dlq_example_is_refused_for_the_reason_in_its_header(doc: dict[str, Any]) -> None:
    for example in doc["components"]["messages"]["refusedRecord"]["examples"]:
        refusal = parse_event(json.dumps(example["payload"]))
        assert isinstance(refusal, Refusal)
        assert example["headers"]["ledger-refusal-reason"] == refusal.reason
        assert set(example["headers"]) == DLQ_HEADERS


def test_exhausted_example_is_valid(doc: dict[str, Any]) -> None:
    validator = _validator("pack-exhausted.schema.json")
    for example in doc["components"]["messages"]["packExhausted"]["examples"]:
        assert list(validator.iter_errors(example["payload"])) == []
        notice = ExhaustedEvent.model_validate(example["payload"])
        assert notice.subject == str(notice.data.userPackId)


def test_low_notice_message_and_example(doc: dict[str, Any]) -> None:
    message = deref(doc, doc["channels"]["packEventsOut"]["messages"]["packLow"])
    assert message["name"] == "infinite.pack.low"
    assert message["contentType"] == CLOUDEVENTS
    assert deref(doc, message["payload"])["properties"]["type"]["const"] == "infinite.pack.low"
    validator = _validator("pack-low.schema.json")
    for example in message["examples"]:
        assert list(validator.iter_errors(example["payload"])) == []
        notice = LowEvent.model_validate(example["payload"])
        assert notice.subject == str(notice.data.userPackId)


def test_lapse_notice_message_and_example(doc: dict[str, Any]) -> None:
    message = deref(doc, doc["channels"]["packEventsOut"]["messages"]["trainingLapsed"])
    assert message["name"] == "infinite.training.lapsed"
    assert message["contentType"] == CLOUDEVENTS
    payload = deref(doc, message["payload"])
    assert payload["properties"]["type"]["const"] == "infinite.training.lapsed"
    validator = _validator("training-lapsed.schema.json")
    assert message["examples"]
    for example in message["examples"]:
        assert list(validator.iter_errors(example["payload"])) == []
        notice = LapsedEvent.model_validate(example["payload"])
        assert notice.subject == str(notice.data.userPackId)
        assert notice.time == notice.data.lapsedAt
