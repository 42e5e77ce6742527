"""`ledger publish` without Kafka: validation, reporting, all-or-nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from services import publish as publish_module
from services.cli import main
from services.publish import check_lines
from tests.unit.contract_cases import ADJUSTED, EXAMPLES_FILE, STARTED, STOPPED, base


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event)


@pytest.fixture
def no_kafka(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail the test if anything tries to publish."""
    calls: list[Any] = []

    async def refuse(*args: Any) -> int:
        calls.append(args)
        raise AssertionError("nothing may be published")

    monkeypatch.setattr(publish_module, "publish_lines", refuse)
    return calls


def test_check_lines_numbers_lines_and_skips_blanks() -> None:
    good = _line(base(STARTED)).encode()
    naive = base(STOPPED) | {"time": "2024-05-01T10:00:00"}
    checked = check_lines(
        [b"", good, b"   ", b"not json", _line(naive).encode(), b"\t" + good + b"\r"]
    )
    assert [n for n, _ in checked.problems] == [4, 5]
    assert checked.problems[0][1].startswith("not valid JSON")
    assert checked.problems[1][1].startswith("time: ")
    assert checked.events == [good, good]
    assert checked.warnings == [
        (6, "id 'test/infinite.training.started/1' repeats line 2: the ledger keeps one fact")
    ]


def test_check_lines_strips_a_byte_order_mark() -> None:
    good = _line(base(ADJUSTED)).encode()
    assert check_lines([b"\xef\xbb\xbf" + good]).events == [good]


def test_bad_lines_are_all_reported_and_nothing_is_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_kafka: list[Any]
) -> None:
    bad_delta = base(ADJUSTED)
    bad_delta["data"]["deltaSeconds"] = 0
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join([_line(base(STARTED)), "[1, 2]", "", _line(bad_delta), _line(base(STOPPED))])
        + "\n"
    )
    assert main(["publish", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: not a CloudEvent" in err
    assert f"{path}:4: data: deltaSeconds must not be 0" in err
    assert ":1:" not in err and ":5:" not in err
    assert "2 invalid line(s); nothing was published" in err
    assert no_kafka == []


def test_check_flag_validates_only(capsys: pytest.CaptureFixture[str], no_kafka: list[Any]) -> None:
    assert main(["publish", "--check", str(EXAMPLES_FILE)]) == 0
    assert "8 valid event(s)" in capsys.readouterr().out
    assert no_kafka == []


def test_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_kafka: list[Any]
) -> None:
    assert main(["publish", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_empty_input_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_kafka: list[Any]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n  \n")))
    assert main(["publish", "-"]) == 0
    assert "no events in stdin" in capsys.readouterr().out


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What `ledger publish` hands to Kafka: (events, bootstrap, topic, mode) per call."""
    calls: list[Any] = []

    async def record(events: list[bytes], bootstrap: str, topic: str, mode: str) -> int:
        calls.append((list(events), bootstrap, topic, mode))
        return len(events)

    monkeypatch.setattr(publish_module, "publish_lines", record)
    return calls


def test_stdin_is_read_and_published_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sent: list[Any]
) -> None:

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-test:9092")
    monkeypatch.setenv("LEDGER_EVENTS_TOPIC", "events-under-test")
    publish_module.get_settings.cache_clear()
    try:
        lines = EXAMPLES_FILE.read_bytes()
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines)))
        assert main(["publish", "-"]) == 0
    finally:
        publish_module.get_settings.cache_clear()
    expected = [line.strip() for line in lines.splitlines() if line.strip()]
    assert sent == [(expected, "kafka-test:9092", "events-under-test", "structured")]
    assert "published 8 event(s) to events-under-test" in capsys.readouterr().out


def test_mode_binary_is_passed_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sent: list[Any]
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(_line(base(STARTED)) + "\n")
    assert main(["publish", "--mode", "binary", str(path)]) == 0
    assert [call[3] for call in sent] == ["binary"]
    assert "(binary content mode)" in capsys.readouterr().out


def test_mode_binary_refuses_what_headers_cannot_carry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_kafka: list[Any]
) -> None:
    # A structured event may carry an object-valued extension; binary headers cannot.
    event = {**base(STARTED), "tracing": {"span": 1}}
    path = tmp_path / "one.jsonl"
    path.write_text(_line(event) + "\n")
    assert main(["publish", str(path), "--check"]) == 0
    assert main(["publish", "--mode", "binary", str(path)]) == 1
    err = capsys.readouterr().err
    assert "one.jsonl:1: attribute 'tracing' is dict" in err
    assert no_kafka == []


def test_kafka_failure_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    publish_module.get_settings.cache_clear()
    path = tmp_path / "one.jsonl"
    path.write_text(_line(base(STARTED)) + "\n")
    try:
        assert main(["publish", str(path)]) == 1
    finally:
        publish_module.get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "Kafka at 127.0.0.1:1 failed" in err
    assert "publishing the file again is safe" in err
