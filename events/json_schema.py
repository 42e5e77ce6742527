"""The published JSON Schemas of the wire contract, generated from the pydantic models.

The files in `events/schema/` are what scheduler teams (and the AsyncAPI document) read;
they are generated here and a unit test keeps them equal to what this module produces,
so the models stay the single source of truth. Regenerate after changing the models:

    uv run python -m events.json_schema          # rewrite events/schema/*.json
    uv run python -m events.json_schema --check  # exit 1 if a file is stale

What JSON Schema cannot say, and only the consumer checks: `subject`, when present, must
name `data.userPackId` (digits compared as numbers); digit-string ids must be below 2^63;
times must fall, in UTC, between 0001-01-02 and 9999-12-30 (events/times.py); a string
must not hold U+0000 (events/nul.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from events.envelope import ExhaustedEvent, LapsedEvent, LowEvent, PackEvent

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
INBOUND_FILE = "pack-event.schema.json"
EXHAUSTED_FILE = "pack-exhausted.schema.json"
LOW_FILE = "pack-low.schema.json"
LAPSED_FILE = "training-lapsed.schema.json"
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
        "from these times, never from arrival time. In UTC between 0001-01-02T00:00:00Z "
        "and 9999-12-30T23:59:59.999999Z (checked by the consumer); a leap second (:60) is "
        "read as 59.999999."
    ),
    "subject": (
        "Optional: the userPackId as a string of digits; must name data.userPackId "
        '(compared as numbers: "0076" names 76).'
    ),
    "datacontenttype": 'Optional: "application/json".',
    "data": "The fact itself; see the definition for this type.",
}

_FIELD_DOCS: dict[str, dict[str, str]] = {
    "PurchasedEvent": _ENVELOPE_DOCS,
    "AdjustedEvent": _ENVELOPE_DOCS,
    "StartedEvent": _ENVELOPE_DOCS,
    "HeartbeatEvent": _ENVELOPE_DOCS,
    "StoppedEvent": _ENVELOPE_DOCS,
    "PackPurchased": {
        "userPackId": "The pack. Also the Kafka record key (decimal digits).",
        "userId": "The pack's owner.",
        "userName": "Optional: the owner's display name (at most 255 characters).",
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
        "reason": "Why: top-up, refund, compensation, ... (at most 1000 characters).",
    },
    "TrainingStarted": {
        "userPackId": "The pack the training consumes.",
        "trainId": "The training; its session closes at the stop with the same trainId.",
        "trainName": "Display name (1-1000 characters).",
        "userId": "Who runs the training.",
        "userName": "Display name of who runs it (at most 255 characters).",
        "leaseSeconds": (
            "Optional: the session's lease, 1-86400 seconds. The session ends at start + "
            "leaseSeconds (reason leaseExpired) unless a heartbeat or the stop comes first; "
            "each heartbeat at time h moves the end to h + leaseSeconds. Without it, the "
            "ledger's LEDGER_DEFAULT_LEASE_SECONDS applies (none by default)."
        ),
    },
    "TrainingHeartbeat": {
        "userPackId": "The pack.",
        "trainId": (
            "The training still running at the event's time: its open session's lease is "
            "renewed (no effect on a session without a lease, or one already lapsed)."
        ),
    },
    "TrainingStopped": {
        "userPackId": "The pack.",
        "trainId": "The training whose open session this stop closes.",
        "reason": (
            "Optional: completed, failed, cancelled, exhausted or any string "
            "(at most 1000 characters)."
        ),
    },
    "PackExhausted": {
        "userPackId": "The timing pack whose remaining time reached 0.",
        "trainIds": "The trainings open on the pack at that moment: stop them.",
        "exhaustedAt": "When the remaining time reached 0 (event time).",
    },
    "PackLow": {
        "userPackId": "The timing pack whose remaining time fell to the threshold or below.",
        "thresholdSeconds": "The threshold of LEDGER_LOW_BALANCE_SECONDS that was crossed.",
        "crossedAt": (
            "When the remaining time first stood at thresholdSeconds or below (event time)."
        ),
        "trainIds": "The trainings open on the pack when the notice was recorded.",
        "exhaustsAt": (
            "When the open sessions, as they stood then, drive the remaining time to 0;"
            " null without an open session."
        ),
    },
    "TrainingLapsed": {
        "userPackId": "The pack the session consumed.",
        "trainId": "The training whose session lapsed: its scheduler sent no heartbeat in time.",
        "logId": (
            "The session's usage record (the API's logId; derived from the start event's id)."
            " Below 2^63: read it as a 64-bit integer."
        ),
        "lapsedAt": (
            "The session's lease end (event time): the session ended then, charged up to it,"
            " as if stopped with reason leaseExpired."
        ),
    },
}

_TYPE_DOCS = {
    "PurchasedEvent": "infinite.pack.purchased: a pack was bought (one per userPackId).",
    "AdjustedEvent": "infinite.pack.adjusted: seconds added to or taken from a timing pack.",
    "StartedEvent": "infinite.training.started: a training began consuming a pack.",
    "HeartbeatEvent": "infinite.training.heartbeat: a training is still running.",
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

_LOW_DOCS = {
    **_EXHAUSTED_DOCS,
    "type": 'Always "infinite.pack.low".',
    "time": "Same instant as data.crossedAt.",
    "data": "Which pack, which threshold, when, and the trainings running on it.",
}


_LAPSED_DOCS = {
    **_EXHAUSTED_DOCS,
    "type": 'Always "infinite.training.lapsed".',
    "time": "Same instant as data.lapsedAt.",
    "data": "Which pack, training and usage record, and when the session ended.",
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
            "unknown data fields are accepted and ignored. Counts are JSON integers (3600.0 "
            "is 3600). Not expressible here, checked by the consumer: subject, when present, "
            "names data.userPackId; digit-string ids are below 2^63; times fall, in UTC, "
            "between 0001-01-02 and 9999-12-30; no string holds U+0000."
        ),
        **generated,
    }
    _document(schema["$defs"], _FIELD_DOCS)
    for name, text in _TYPE_DOCS.items():
        schema["$defs"][name]["description"] = text
    return schema


def _notice_schema(
    model: type, file: str, docs: dict[str, str], title: str, description: str
) -> dict[str, Any]:
    """The JSON Schema of one kind of record value on `pack-events.out`."""
    generated = TypeAdapter(model).json_schema(mode="serialization")
    # The ledger always sends every attribute, defaults included.
    generated["required"] = list(generated["properties"])
    for name, text in docs.items():
        generated["properties"][name]["description"] = text
    _document(generated["$defs"], _FIELD_DOCS)
    _strip_titles(generated)
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": DIALECT,
        "$id": f"urn:infinite-ledger:schema:{file}",
        "title": title,
        "description": description,
        **generated,
    }


def exhausted_schema() -> dict[str, Any]:
    """The JSON Schema of an exhaustion notice on `pack-events.out`."""
    return _notice_schema(
        ExhaustedEvent,
        EXHAUSTED_FILE,
        _EXHAUSTED_DOCS,
        "INFINITE pack exhausted notice",
        "One record value on the Kafka topic pack-events.out: the ledger's CloudEvent "
        "infinite.pack.exhausted, published once per exhaustion when the open sessions of "
        "a timing pack drive its remaining time to 0, and once more for each training "
        "started on the pack after that exhaustion began, so that schedulers stop the "
        "trainings. The record key is data.userPackId as decimal digits. The id is stable "
        "across replays: dedupe by id.",
    )


def low_schema() -> dict[str, Any]:
    """The JSON Schema of a low-balance notice on `pack-events.out`."""
    return _notice_schema(
        LowEvent,
        LOW_FILE,
        _LOW_DOCS,
        "INFINITE pack low-balance notice",
        "One record value on the Kafka topic pack-events.out: the ledger's CloudEvent "
        "infinite.pack.low, published once per crossing when a timing pack's remaining "
        "time falls from above a threshold of LEDGER_LOW_BALANCE_SECONDS to it or below "
        "(running sessions or a negative adjustment); it is sent again only after the "
        "remaining time rose above the threshold. The record key is data.userPackId as "
        "decimal digits. The id is derived from (pack, threshold, crossedAt): a replay "
        "publishes the same id again; dedupe by id.",
    )


def lapsed_schema() -> dict[str, Any]:
    """The JSON Schema of a lapse notice on `pack-events.out`."""
    return _notice_schema(
        LapsedEvent,
        LAPSED_FILE,
        _LAPSED_DOCS,
        "INFINITE training lapsed notice",
        "One record value on the Kafka topic pack-events.out: the ledger's CloudEvent "
        "infinite.training.lapsed, published once per lapse when a session's lease "
        "(leaseSeconds on its start, renewed by heartbeats) ends before its stop: the "
        "session ended at its lease end, as if stopped with reason leaseExpired. The "
        "record key is data.userPackId as decimal digits. The id is derived from (pack, "
        "logId, lapsedAt): a replay publishes the same id again; dedupe by id.",
    )


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
        LOW_FILE: render(low_schema()),
        LAPSED_FILE: render(lapsed_schema()),
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
