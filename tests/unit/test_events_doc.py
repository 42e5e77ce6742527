"""docs/events.md: its JSON examples and the refusal reasons it quotes are real."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

from events.binary import structured_value
from events.envelope import LAPSED, STARTED, ExhaustedEvent, LapsedEvent, LowEvent
from events.parse import Refusal, parse_event
from events.publisher import check_value
from projections import rules
from tests.unit.contract_cases import ALL_CASES, EXAMPLES_FILE, REPO, base
from tests.unit.test_binary_mode import as_binary

DOC = REPO / "docs" / "events.md"


def _json_blocks() -> list[dict[str, object]]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)
    return [json.loads(block) for block in blocks]


def test_the_docs_json_examples_are_valid() -> None:
    blocks = _json_blocks()
    assert len(blocks) == 9
    notices = ("infinite.pack.exhausted", "infinite.pack.low", "infinite.training.lapsed")
    inbound = [b for b in blocks if b["type"] not in notices]
    for block in inbound:
        event = parse_event(json.dumps(block))
        assert not isinstance(event, Refusal), event.reason
    (notice,) = [b for b in blocks if b["type"] == "infinite.pack.exhausted"]
    ExhaustedEvent.model_validate(notice)
    schema = json.loads((REPO / "events/schema/pack-exhausted.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(notice)) == []
    (low,) = [b for b in blocks if b["type"] == "infinite.pack.low"]
    LowEvent.model_validate(low)
    schema = json.loads((REPO / "events/schema/pack-low.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(low)) == []
    (lapsed,) = [b for b in blocks if b["type"] == "infinite.training.lapsed"]
    lapse_notice = LapsedEvent.model_validate(lapsed)
    schema = json.loads((REPO / "events/schema/training-lapsed.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(lapsed)) == []
    # The example's id is the one the ledger derives from its facts.
    data = lapse_notice.data
    assert lapse_notice.id == rules.lapse_notice_id(data.userPackId, data.logId, data.lapsedAt)


def test_the_docs_examples_are_in_the_sample_file() -> None:
    """Every inbound example of the doc is a line of docs/examples/events.jsonl."""
    lines = [json.loads(line) for line in EXAMPLES_FILE.read_text().splitlines() if line]
    for block in _json_blocks():
        if block["type"] not in ("infinite.pack.exhausted", "infinite.pack.low", LAPSED):
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


def test_quoted_binary_mode_reasons_are_what_the_ledger_says() -> None:
    text = DOC.read_text("utf-8")
    section = text[text.index("### Binary content mode") : text.index("## 2.")]
    rows = re.findall(r"^\| (.+?) \| `([^`]+)` \|$", section, flags=re.M)
    quoted = {reason for _, reason in rows}
    assert len(quoted) == 5
    headers, value = as_binary({**base(STARTED), "datacontenttype": "application/json"})

    def reason(new_headers: list[tuple[str, bytes]], new_value: bytes | None = value) -> str:
        result = structured_value(new_headers, new_value)
        assert isinstance(result, Refusal)
        return result.reason

    def replaced(name: str, raw: bytes) -> list[tuple[str, bytes]]:
        return [(n, raw if n == name else v) for n, v in headers]

    produced = {
        reason(headers, b"purchased pack 1001"),
        reason(replaced("ce_source", b"\xffcluster")),
        reason(replaced("content-type", b"text/plain")),
        reason([*headers, ("ce_id", b"again")]),
        reason([*headers, ("ce_data", b"{}")]),
    }
    assert quoted == produced
