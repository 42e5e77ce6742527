"""The published JSON Schemas of the wire contract, generated from the pydantic models.

The files in `events/schema/` are what scheduler teams (and the AsyncAPI document) read;
they are generated here and a unit test keeps them equal to what this module produces,
so the models stay the single source of truth. Regenerate after changing the models:

    uv run python -m events.json_schema          # rewrite events/schema/*.json
    uv run python -m events.json_schema --check  # exit 1 if a file is stale

What JSON Schema cannot say, and only the consumer checks: `subject`, when present, must
equal `data.userPackId` (as decimal digits); digit-string ids must be below 2^63.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from events.envelope import ExhaustedEvent, PackEvent

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
INBOUND_FILE = "pack-event.schema.json"
EXHAUSTED_FILE = "pack-exhausted.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ENVELOPE_DOCS = {
    "specversion": 'CloudEvents version: always "1.0".',
    "id": (
        "Unique per fact across all producers (1-128 chars). The idempotency key: the same "
        "id delivered twice is one fact. Reuse it when you retry."
    ),
    "source": 'The producer, e.g. "scheduler/cluster-a".',
    "type": "The event type; selects the shape of `data`.",
    "time": (
        "RFC 3339 timestamp with an offset: when the fact happened. Durations are computed "
        "from these times, never from arrival time."
    ),
    "subject": "Optional: the userPackId as a string of digits; must equal data.userPackId.",
    "datacontenttype": 'Optional: "application/json".',
    "data": "The fact itself; see the definition for this type.",
}

_FIELD_DOCS: dict[str, dict[str, str]] = {
    "PurchasedEvent": _ENVELOPE_DOCS,
    "AdjustedEvent": _ENVELOPE_DOCS,
    "StartedEvent": _ENVELOPE_DOCS,
    "StoppedEvent": _ENVELOPE_DOCS,
    "PackPurchased": {
        "userPackId": "The pack. Also the Kafka record key (decimal digits).",
        "userId": "The pack's owner.",
        "userName": "Optional: the owner's display name.",
        "packName": "1-255 characters.",
        "packDurationType": "type.timing: a budget of seconds; type.activity: unlimited use.",
        "durationSeconds": "The budget in seconds (>= 0); required for type.timing.",
        "activityEndTime": "Optional, type.activity only: end of the unlimited period.",
        "buyDatetime": "Optional: when the pack was bought; defaults to the event's time.",
        "nodeList": "The machines the pack grants.",
    },
    "Node": {
        "nodeId": "The node.",
        "nodeName": "Display name (at most 255 characters).",
        "nodeType": "nodeType.master or nodeType.worker.",
        "cpuCount": "CPU cores (>= 0).",
        "gpuCount": "GPUs (>= 0).",
        "memorySize": "Memory size (>= 0), in the platform's unit.",
    },
    "PackAdjusted": {
        "userPackId": "The pack.",
        "deltaSeconds": "Seconds added (> 0) or taken away (< 0); never 0.",
        "reason": "Why: top-up, refund, compensation, ...",
    },
    "TrainingStarted": {
        "userPackId": "The pack the training consumes.",
        "trainId": "The training; its session closes at the stop with the same trainId.",
        "trainName": "Display name (at most 255 characters).",
        "userId": "Who runs the training.",
        "userName": "Display name of who runs it.",
    },
    "TrainingStopped": {
        "userPackId": "The pack.",
        "trainId": "The training whose open session this stop closes.",
        "reason": "Optional: completed, failed, cancelled, exhausted or any string.",
    },
    "PackExhausted": {
        "userPackId": "The timing pack whose remaining time reached 0.",
        "trainIds": "The trainings open on the pack at that moment: stop them.",
        "exhaustedAt": "When the remaining time reached 0 (event time).",
    },
}

_TYPE_DOCS = {
    "PurchasedEvent": "infinite.pack.purchased: a pack was bought (one per userPackId).",
    "AdjustedEvent": "infinite.pack.adjusted: seconds added to or taken from a timing pack.",
    "StartedEvent": "infinite.training.started: a training began consuming a pack.",
    "StoppedEvent": "infinite.training.stopped: a training stopped.",
}

_EXHAUSTED_DOCS = {
    "specversion": 'Always "1.0".',
    "id": ("Derived from the facts: a replay publishes the same id again. Consumers dedupe by it."),
    "source": 'Always "infinite/ledger".',
    "type": 'Always "infinite.pack.exhausted".',
    "time": "Same instant as data.exhaustedAt.",
    "subject": "The userPackId as a string of digits.",
    "datacontenttype": 'Always "application/json".',
    "data": "Which pack and trainings.",
}


def inbound_schema() -> dict[str, Any]:
    """The JSON Schema of one record value on `pack-events`."""
    generated = TypeAdapter(PackEvent).json_schema(mode="validation")
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"urn:infinite-ledger:schema:{INBOUND_FILE}",
        "title": "INFINITE pack event",
        "description": (
            "One record value on the Kafka topic pack-events: a CloudEvents 1.0 event in "
            "structured JSON mode (application/cloudevents+json, UTF-8). The record key is "
            "data.userPackId as decimal digits. Ids are positive integers below 2^63, sent as "
            "JSON numbers or strings of digits. Unknown CloudEvents extension attributes and "
            "unknown data fields are accepted and ignored. Not expressible here, checked by "
            "the consumer: subject, when present, equals data.userPackId."
        ),
        **generated,
    }
    _document(schema["$defs"], _FIELD_DOCS)
    for name, text in _TYPE_DOCS.items():
        schema["$defs"][name]["description"] = text
    return schema


def exhausted_schema() -> dict[str, Any]:
    """The JSON Schema of one record value on `pack-events.out` (the ledger's notices)."""
    generated = TypeAdapter(ExhaustedEvent).json_schema(mode="serialization")
    # The ledger always sends every attribute, defaults included.
    generated["required"] = list(generated["properties"])
    for name, text in _EXHAUSTED_DOCS.items():
        generated["properties"][name]["description"] = text
    _document(generated["$defs"], _FIELD_DOCS)
    _strip_titles(generated)
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": DIALECT,
        "$id": f"urn:infinite-ledger:schema:{EXHAUSTED_FILE}",
        "title": "INFINITE pack exhausted notice",
        "description": (
            "One record value on the Kafka topic pack-events.out: the ledger's CloudEvent "
            "infinite.pack.exhausted, published once per exhaustion when the open sessions of "
            "a timing pack drive its remaining time to 0, so that schedulers stop the "
            "trainings. The record key is data.userPackId as decimal digits. The id is stable "
            "across replays: dedupe by id."
        ),
        **generated,
    }


def _document(defs: dict[str, Any], docs: dict[str, dict[str, str]]) -> None:
    """Replace pydantic's generated property titles with descriptions."""
    for name, definition in defs.items():
        _strip_titles(definition)
        for field, text in docs.get(name, {}).items():
            prop = definition["properties"][field]
            prop.pop("description", None)
            prop["description"] = text


def _strip_titles(definition: dict[str, Any]) -> None:
    for prop in definition.get("properties", {}).values():
        prop.pop("title", None)


def render(schema: dict[str, Any]) -> str:
    """The exact text of a committed schema file."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> the text it must have."""
    return {
        INBOUND_FILE: render(inbound_schema()),
        EXHAUSTED_FILE: render(exhausted_schema()),
    }


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_files().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    stale = []
    for name, text in expected_files().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="generate the wire contract's JSON Schemas")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {SCHEMA_DIR / name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
