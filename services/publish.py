"""`ledger publish FILE`: publish pack events from a JSON-lines file.

One event per line (blank lines are skipped; '-' reads stdin). All or nothing: every
line is validated against the contract first, every bad line is reported with its
number and reason, and if any is bad nothing is published and the exit code is 1.
Otherwise the lines are published, exactly as written (structured mode), to the events topic
(`LEDGER_EVENTS_TOPIC`) on `KAFKA_BOOTSTRAP_SERVERS`, keyed by userPackId, in file
order. `--check` validates only. `--mode binary` sends them in CloudEvents binary
content mode (attributes as `ce_*` headers, `data` as the value) instead of structured.

If Kafka fails halfway, some events may already be published: run the same file again.
The ledger dedupes by event id, so a re-run never counts a fact twice.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from events.parse import Refusal
from events.publisher import EventPublisher, Mode, check_value
from services.settings import get_settings

CHUNK = 10_000
_BOM = b"\xef\xbb\xbf"


@dataclass
class Checked:
    """The outcome of validating a JSON-lines file."""

    events: list[bytes] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(line number, reason) of every refused line."""
    warnings: list[tuple[int, str]] = field(default_factory=list)


def check_lines(lines: Iterable[bytes], mode: Mode = "structured") -> Checked:
    """Validate every non-blank line (as it will be sent in `mode`); line numbers count
    from 1, blank lines included."""
    checked = Checked()
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.removeprefix(_BOM) if number == 1 else raw
        line = line.strip()
        if not line:
            continue
        result = check_value(line, mode)
        if isinstance(result, Refusal):
            checked.problems.append((number, result.reason))
            continue
        earlier = first_line_of.setdefault(result.id, number)
        if earlier != number:
            checked.warnings.append(
                (number, f"id {result.id!r} repeats line {earlier}: the ledger keeps one fact")
            )
        checked.events.append(line)
    return checked


def run_publish(args: argparse.Namespace) -> int:
    name: str = args.file
    check_only = bool(getattr(args, "check", False))
    mode: Mode = getattr(args, "mode", "structured")
    try:
        lines = _read(name)
    except OSError as error:
        print(f"ledger publish: cannot read {name}: {error.strerror or error}", file=sys.stderr)
        return 2
    label = "stdin" if name == "-" else name
    checked = check_lines(lines, mode)
    for number, reason in checked.warnings:
        print(f"{label}:{number}: warning: {reason}", file=sys.stderr)
    for number, reason in checked.problems:
        print(f"{label}:{number}: {reason}", file=sys.stderr)
    if checked.problems:
        print(
            f"ledger publish: {len(checked.problems)} invalid line(s); nothing was published",
            file=sys.stderr,
        )
        return 1
    count = len(checked.events)
    if check_only:
        print(f"{count} valid event(s) in {label}; nothing published (--check)")
        return 0
    if not checked.events:
        print(f"no events in {label}; nothing published")
        return 0
    settings = get_settings()
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.events_topic
    try:
        asyncio.run(publish_lines(checked.events, bootstrap, topic, mode))
    except (KafkaError, OSError) as error:
        print(
            f"ledger publish: Kafka at {bootstrap} failed: {error!r}; some events may be "
            "published already: publishing the file again is safe (ids are deduplicated)",
            file=sys.stderr,
        )
        return 1
    print(f"published {count} event(s) to {topic} at {bootstrap} ({mode} content mode)")
    return 0


async def publish_lines(
    events: Sequence[bytes], bootstrap: str, topic: str, mode: Mode = "structured"
) -> int:
    """Publish already validated JSON values in order, as records in `mode`; returns how
    many were acknowledged."""
    done = 0
    async with EventPublisher(bootstrap, topic, client_id="ledger-publish", mode=mode) as publisher:
        for start in range(0, len(events), CHUNK):
            done += len(await publisher.publish_many(events[start : start + CHUNK]))
    return done


def _read(name: str) -> list[bytes]:
    if name == "-":
        return sys.stdin.buffer.read().splitlines()
    with open(name, "rb") as handle:
        return handle.read().splitlines()
