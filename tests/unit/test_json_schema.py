"""The published JSON Schemas: never stale, and they agree with the consumer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from events import json_schema
from events.envelope import ExhaustedEvent, LapsedEvent, LowEvent
from events.payloads import PackExhausted, PackLow, TrainingLapsed
from projections import rules
from tests.unit.contract_cases import (
    ALL_CASES,
    Case,
    accepted_cases,
    example_lines,
    refused_cases,
)


def _load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((json_schema.SCHEMA_DIR / name).read_text("utf-8"))
    return schema


@pytest.fixture(scope="module")
def inbound() -> Draft202012Validator:
    schema = _load(json_schema.INBOUND_FILE)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def exhausted() -> Draft202012Validator:
    schema = _load(json_schema.EXHAUSTED_FILE)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize(
    "name",
    [
        json_schema.INBOUND_FILE,
        json_schema.EXHAUSTED_FILE,
        json_schema.LOW_FILE,
        json_schema.LAPSED_FILE,
    ],
)
def test_committed_file_equals_the_generator(name: str) -> None:
    committed = (json_schema.SCHEMA_DIR / name).read_text("utf-8")
    assert committed == json_schema.expected_files()[name], (
        f"events/schema/{name} is stale: run `uv run python -m events.json_schema`"
    )


def test_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    assert json_schema.stale_files(tmp_path) == [
        json_schema.INBOUND_FILE,
        json_schema.EXHAUSTED_FILE,
        json_schema.LOW_FILE,
        json_schema.LAPSED_FILE,
    ]
    json_schema.write_schemas(tmp_path)
    assert json_schema.stale_files(tmp_path) == []
    (tmp_path / json_schema.EXHAUSTED_FILE).write_text("{}\n", encoding="utf-8")
    assert json_schema.stale_files(tmp_path) == [json_schema.EXHAUSTED_FILE]
    assert json_schema.main(["--check"]) == 0  # the committed ones are fresh


def test_schema_metadata() -> None:
    schema = _load(json_schema.INBOUND_FILE)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and "pack-events" in schema["description"]
    assert {ref["$ref"] for ref in schema["oneOf"]} == {
        "#/$defs/PurchasedEvent",
        "#/$defs/AdjustedEvent",
        "#/$defs/StartedEvent",
        "#/$defs/HeartbeatEvent",
        "#/$defs/StoppedEvent",
    }
    for name in (
        "PurchasedEvent",
        "AdjustedEvent",
        "StartedEvent",
        "HeartbeatEvent",
        "StoppedEvent",
    ):
        definition = schema["$defs"][name]
        assert definition["description"].startswith("infinite.")
        for prop in definition["properties"].values():
            assert prop.get("description"), f"{name} has an undocumented property"
            assert "title" not in prop
    for name in ("PackPurchased", "PackAdjusted", "TrainingStarted", "TrainingStopped", "Node"):
        for field, prop in schema["$defs"][name]["properties"].items():
            assert prop.get("description"), f"{name}.{field} is undocumented"


def _verdict(validator: Draft202012Validator, case: Case) -> bool:
    assert case.value is not None
    return bool(validator.is_valid(json.loads(case.value)))


@pytest.mark.parametrize("case", accepted_cases(), ids=lambda c: c.label)
def test_schema_accepts_what_the_consumer_accepts(
    inbound: Draft202012Validator, case: Case
) -> None:
    assert case.schema_agrees
    errors = [e.message for e in inbound.iter_errors(json.loads(case.value or b""))]
    assert errors == []


@pytest.mark.parametrize(
    "case", [c for c in refused_cases() if c.schema_agrees], ids=lambda c: c.label
)
def test_schema_rejects_what_the_consumer_refuses(
    inbound: Draft202012Validator, case: Case
) -> None:
    assert not _verdict(inbound, case)


def test_known_differences_are_few_and_documented(inbound: Draft202012Validator) -> None:
    """Where only the consumer decides (subject match, huge digit strings, 12.0 as an id,
    the time range, U+0000), the schema is more lenient: it must accept these, so
    producers are not misled into thinking the schema checked them."""
    lenient = [c for c in ALL_CASES if not c.schema_agrees and _is_json(c.value)]
    assert lenient, "the table names the known differences"
    for case in lenient:
        assert _verdict(inbound, case), case.label
    kinds = {c.label.split(" ")[-1] for c in lenient}
    assert kinds <= {"matching", "zeros", "digits", "float", "range", "U+0000"}, kinds
    assert "subject" in json_schema.inbound_schema()["description"]


def _is_json(value: bytes | None) -> bool:
    try:
        json.loads(value or b"")
    except ValueError:
        return False
    return True


def test_schema_validates_the_published_examples(inbound: Draft202012Validator) -> None:
    for line in example_lines():
        errors = [e.message for e in inbound.iter_errors(json.loads(line))]
        assert errors == [], line


def test_exhausted_notice_from_the_model_validates(exhausted: Draft202012Validator) -> None:
    notice = ExhaustedEvent(
        id="exhausted-1001-1",
        time=datetime(2024, 5, 1, 12, tzinfo=UTC),
        subject="1001",
        data=PackExhausted(
            userPackId=1001,
            trainIds=[5001, 5002],
            exhaustedAt=datetime(2024, 5, 1, 12, tzinfo=UTC),
        ),
    )
    document = json.loads(notice.model_dump_json())
    assert list(exhausted.iter_errors(document)) == []
    assert set(document) == set(_load(json_schema.EXHAUSTED_FILE)["required"])
    assert document["data"]["trainIds"] == [5001, 5002]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "infinite.pack.purchased"),
        ("specversion", "0.3"),
        ("time", "2024-05-01T12:00:00"),
        ("subject", 1001),
    ],
)
def test_exhausted_schema_rejects_bad_notices(
    exhausted: Draft202012Validator, field: str, value: Any
) -> None:
    document = _notice()
    assert exhausted.is_valid(document)
    document[field] = value
    assert not exhausted.is_valid(document)


@pytest.mark.parametrize("missing", ["id", "source", "datacontenttype", "data"])
def test_exhausted_schema_requires_every_attribute(
    exhausted: Draft202012Validator, missing: str
) -> None:
    document = _notice()
    del document[missing]
    assert not exhausted.is_valid(document)


def test_exhausted_schema_requires_integer_train_ids(exhausted: Draft202012Validator) -> None:
    document = _notice()
    document["data"]["trainIds"] = ["5001"]
    assert not exhausted.is_valid(document)


def _notice() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "exhausted-1001-1",
        "source": "infinite/ledger",
        "type": "infinite.pack.exhausted",
        "time": "2024-05-01T12:00:00+00:00",
        "subject": "1001",
        "datacontenttype": "application/json",
        "data": {
            "userPackId": 1001,
            "trainIds": [5001],
            "exhaustedAt": "2024-05-01T12:00:00+00:00",
        },
    }


_KEYWORDS = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "examples", "default",
    "type", "const", "enum", "properties", "required", "additionalProperties", "items",
    "anyOf", "oneOf", "not", "if", "then", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "format", "discriminator",
}  # fmt: skip


def _keywords(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _keywords(sub, found)
            elif key not in ("discriminator", "examples", "default", "const", "enum"):
                _keywords(value, found)
    elif isinstance(node, list):
        for item in node:
            _keywords(item, found)
    return found


@pytest.mark.parametrize(
    "name",
    [
        json_schema.INBOUND_FILE,
        json_schema.EXHAUSTED_FILE,
        json_schema.LOW_FILE,
        json_schema.LAPSED_FILE,
    ],
)
def test_only_standard_keywords(name: str) -> None:
    """pydantic writes constraints it cannot map as unknown keys (`ge`, `le`), which every
    validator ignores: none may slip into the published files."""
    assert _keywords(_load(name), set()) <= _KEYWORDS


def test_low_notice_from_the_model_validates_and_the_schema_refuses_bad_ones() -> None:
    schema = _load(json_schema.LOW_FILE)
    Draft202012Validator.check_schema(schema)
    low = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    notice = LowEvent(
        id="low-1001-600-1",
        time=at,
        subject="1001",
        data=PackLow(
            userPackId=1001, thresholdSeconds=600, crossedAt=at, trainIds=[5001], exhaustsAt=None
        ),
    )
    document = json.loads(notice.model_dump_json())
    assert list(low.iter_errors(document)) == []
    assert set(document) == set(schema["required"])
    assert set(document["data"]) == set(schema["$defs"]["PackLow"]["required"])
    document["data"]["exhaustsAt"] = "2024-05-01T12:10:00+00:00"
    assert low.is_valid(document)
    for field, value in [("thresholdSeconds", 0), ("crossedAt", "noon"), ("trainIds", ["1"])]:
        broken = json.loads(json.dumps(document))
        broken["data"][field] = value
        assert not low.is_valid(broken), field
    assert not low.is_valid({**document, "type": "infinite.pack.exhausted"})


def test_lapse_notice_from_the_model_validates_and_the_schema_refuses_bad_ones() -> None:
    schema = _load(json_schema.LAPSED_FILE)
    Draft202012Validator.check_schema(schema)
    lapsed = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    log_id = 2**63 - 1  # a logId is a 63-bit hash: the schema must not cap it lower
    notice = LapsedEvent(
        id=rules.lapse_notice_id(1001, log_id, at),
        time=at,
        subject="1001",
        data=TrainingLapsed(userPackId=1001, trainId=5001, logId=log_id, lapsedAt=at),
    )
    document = json.loads(notice.model_dump_json())
    assert list(lapsed.iter_errors(document)) == []
    assert document["type"] == "infinite.training.lapsed"
    assert set(document) == set(schema["required"])
    assert set(document["data"]) == set(schema["$defs"]["TrainingLapsed"]["required"])
    for field, value in [("logId", 0), ("logId", "12"), ("lapsedAt", "noon"), ("trainId", None)]:
        broken = json.loads(json.dumps(document))
        broken["data"][field] = value
        assert not lapsed.is_valid(broken), field
    del document["data"]["logId"]
    assert not lapsed.is_valid(document)
