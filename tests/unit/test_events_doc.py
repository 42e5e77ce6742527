"""docs/events.md: its JSON examples and the refusal reasons it quotes are real."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

from events.envelope import ExhaustedEvent
from events.parse import Refusal, parse_event
from events.publisher import check_value
from tests.unit.contract_cases import ALL_CASES, EXAMPLES_FILE, REPO

DOC = REPO / "docs" / "events.md"


def _json_blocks() -> list[dict[str, object]]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)
    return [json.loads(block) for block in blocks]


def test_the_docs_json_examples_are_valid() -> None:
    blocks = _json_blocks()
    assert len(blocks) == 6
    inbound = [b for b in blocks if b["type"] != "infinite.pack.exhausted"]
    for block in inbound:
        event = parse_event(json.dumps(block))
        assert not isinstance(event, Refusal), event.reason
    (notice,) = [b for b in blocks if b["type"] == "infinite.pack.exhausted"]
    ExhaustedEvent.model_validate(notice)
    schema = json.loads((REPO / "events/schema/pack-exhausted.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(notice)) == []


def test_the_docs_examples_are_in_the_sample_file() -> None:
    """Every inbound example of the doc is a line of docs/examples/events.jsonl."""
    lines = [json.loads(line) for line in EXAMPLES_FILE.read_text().splitlines() if line]
    for block in _json_blocks():
        if block["type"] != "infinite.pack.exhausted":
            assert block in lines, block["id"]


def test_quoted_refusal_reasons_are_what_the_ledger_says() -> None:
    text = DOC.read_text("utf-8")
    section = text[text.index("## 6.") : text.index("## 7.")]
    rows = re.findall(r"^\| (.+?) \| `([^`]+)` \|$", section, flags=re.M)
    reasons = {r for _, r in rows if not r.startswith("ledger-") and r != "pack-events"}
    assert len(reasons) >= 12
    produced = {
        result.reason
        for case in ALL_CASES
        if isinstance(result := check_value(case.value or b""), Refusal)
    }
    produced.add(_refusal(b"purchased pack 1001"))
    missing = reasons - produced
    assert not missing, missing


def _refusal(value: bytes) -> str:
    result = parse_event(value)
    assert isinstance(result, Refusal)
    return result.reason


def test_doc_links_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+?)\)", DOC.read_text("utf-8")):
        if target.startswith("http"):
            continue
        assert (DOC.parent / target).resolve().exists(), target


def test_doc_is_next_to_its_examples() -> None:
    assert Path(EXAMPLES_FILE).parent.parent == DOC.parent
