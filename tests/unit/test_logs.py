"""The structured log format: one JSON object per line, extras and errors included."""

from __future__ import annotations

import json
import logging

from services.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {
            "name": "ledger.consumer",
            "levelname": "WARNING",
            "levelno": 30,
            "msg": "refused %s",
            "args": ("p/0@5",),
        }
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_line_is_a_json_object_with_the_message_and_extras() -> None:
    line = JsonFormatter().format(_record(request_id="r-1"))
    doc = json.loads(line)
    assert doc["level"] == "WARNING"
    assert doc["logger"] == "ledger.consumer"
    assert doc["msg"] == "refused p/0@5"
    assert doc["request_id"] == "r-1"
    assert doc["ts"].endswith("+00:00")
    assert "\n" not in line


def test_an_exception_travels_inside_the_object() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in doc["exc"]
