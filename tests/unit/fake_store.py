"""An in-memory `BatchStore` (services/consumer/store_port.py): the consumer's batch
protocol unit-tested without PostgreSQL.

`FakeDatabase` is the shared server: the ledger (unique by event id, positions from a
sequence that a rollback does not give back, as PostgreSQL's), the packs' rows, the
usage records, refusals and stored offsets. A `FakeStore` is one connection to it; a
transaction works on the tables and puts them back as they were if it raises. Faults are
queued per call (`fail`), or come from the records (`poison`, `refusals_fail`).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from events.parse import parse_stored
from projections.state import LedgerEntry, PackState, detached
from services.consumer import failures
from services.consumer.plan import Plan, Refolded
from services.consumer.records import Place
from services.store.ledger_sql import RefusedRecord, StagedEvent
from tests.support.streams import usage_compared

T = TypeVar("T")


class LostRace(psycopg.errors.UniqueViolation):
    """The error PostgreSQL raises when another writer appended the same event id."""

    @property
    def diag(self) -> Any:
        class Diag:
            constraint_name = failures.EVENT_ID_KEY

        return Diag()


@dataclass
class Tables:
    ledger: dict[str, tuple[int, StagedEvent]] = field(default_factory=dict)
    packs: dict[int, tuple[int, int, int, list[int]]] = field(default_factory=dict)
    states: dict[int, PackState] = field(default_factory=dict)  # as stored (snapshots)
    usage: dict[int, Any] = field(default_factory=dict)
    refused: dict[tuple[str, int, int], RefusedRecord] = field(default_factory=dict)
    offsets: dict[Place, int] = field(default_factory=dict)


@dataclass
class FakeDatabase:
    tables: Tables = field(default_factory=Tables)
    next_position: int = 1
    faults: dict[str, list[BaseException]] = field(default_factory=lambda: defaultdict(list))
    poison: set[str] = field(default_factory=set)  # event ids whose append fails (content)
    refusals_fail: bool = False
    commits: int = 0
    rollbacks: int = 0
    calls: list[str] = field(default_factory=list)

    def fail(self, call: str, error: BaseException, times: int = 1) -> None:
        """The next `times` calls of `call` (a method of the store) raise `error`."""
        self.faults[call] += [error] * times

    def rows(self) -> tuple[dict[int, Any], dict[int, Any]]:
        """What `tests.support.streams.expected_rows` computes: per pack (granted,
        charged, open trainIds), per logId the usage record."""
        packs = {p: (g, c, sorted(o)) for p, (_, g, c, o) in self.tables.packs.items()}
        usage = {u.log_id: usage_compared(u) for u in self.tables.usage.values()}
        return packs, usage

    def event_count(self, pack_id: int) -> int:
        return self.tables.packs[pack_id][0]


class FakeStore:
    def __init__(self, db: FakeDatabase, group: str = "g") -> None:
        self.db = db
        self.resets = 0
        self.closed = False
        self.announced: list[list[int]] = []  # the packs each transaction announced

    backend_pid = None  # no database backend: nothing it announces is heard as its own

    def _call(self, name: str) -> None:
        self.db.calls.append(name)
        queued = self.db.faults.get(name)
        if queued:
            raise queued.pop(0)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[object]:
        self._call("transaction")
        before = copy.deepcopy(self.db.tables)
        try:
            yield None
        except BaseException:
            self.db.tables = before
            self.db.rollbacks += 1
            raise
        self.db.commits += 1

    async def lock_partitions(self, places: Sequence[Place]) -> None:
        self._call("lock_partitions")

    async def record_refusals(self, refused: Sequence[RefusedRecord]) -> None:
        self._call("record_refusals")
        if refused and self.db.refusals_fail:
            raise ValueError("the refusal cannot be stored")
        for r in refused:
            self.db.tables.refused[(r.kafka_topic, r.kafka_partition, r.kafka_offset)] = r

    async def claim_positions(self, staged: Sequence[StagedEvent]) -> list[tuple[int, StagedEvent]]:
        self._call("claim_positions")
        known = set(self.db.tables.ledger)
        numbered = []
        for event in staged:
            if event.event_id not in known:
                known.add(event.event_id)
                numbered.append((self.db.next_position, event))
                self.db.next_position += 1
        return numbered

    async def lock_versions(self, pack_ids: Sequence[int]) -> dict[int, int]:
        self._call("lock_versions")
        return {p: self.db.tables.packs[p][0] for p in pack_ids if p in self.db.tables.packs}

    async def load_states(self, pack_ids: Sequence[int]) -> dict[int, PackState]:
        self._call("load_states")
        stored = self.db.tables.states
        return {p: detached(stored[p]) for p in pack_ids if p in stored}

    def _entries(self) -> list[tuple[int, LedgerEntry]]:
        return [
            (event.user_pack_id, LedgerEntry(position, parse_stored(event.envelope)))
            for position, event in sorted(self.db.tables.ledger.values(), key=lambda r: r[0])
        ]

    async def load_tails(self, after: Mapping[int, int]) -> list[tuple[int, LedgerEntry]]:
        self._call("load_tails")
        return [(p, e) for p, e in self._entries() if p in after and e.position > after[p]]

    async def load_entries(
        self, pack_ids: Sequence[int], known: Mapping[int, LedgerEntry]
    ) -> dict[int, list[LedgerEntry]]:
        self._call("load_entries")
        entries: dict[int, list[LedgerEntry]] = defaultdict(list)
        for pack_id, entry in self._entries():
            if pack_id in pack_ids:
                entries[pack_id].append(known.get(entry.position, entry))
        return entries

    async def append_events(
        self, numbered: list[tuple[int, StagedEvent]], meanwhile: Callable[[], T]
    ) -> T:
        self._call("append_events")
        result = meanwhile()  # as PostgreSQL's COPY: the plan runs while rows go in
        for position, event in numbered:
            if event.event_id in self.db.tables.ledger:
                raise LostRace("duplicate key value violates unique constraint")
            if event.event_id in self.db.poison:
                raise ValueError(f"poison {event.event_id}")
            self.db.tables.ledger[event.event_id] = (position, event)
        return result

    def format(self, plan: Plan) -> object:
        return ("formatted", len(plan.dynamics), len(plan.new_usage), len(plan.closed_usage))

    def join(self, formatted: Sequence[object]) -> object:
        return ("joined", list(formatted))

    async def write_plan(self, plan: Plan, refolded: Refolded) -> None:
        self._call("write_plan")
        tables = self.db.tables
        for row in [*plan.dynamics, *refolded.pack_rows]:  # the columns compared
            tables.packs[row.user_pack_id] = (
                row.event_count,
                row.granted,
                row.charged,
                list(row.open_train_ids),
            )
        for log_id in [k for k, u in tables.usage.items() if u.user_pack_id in refolded.packs]:
            del tables.usage[log_id]
        for usage in [*plan.new_usage, *plan.closed_usage, *refolded.usage]:
            tables.usage[usage.log_id] = copy.copy(usage)
        for pack_id, state in {**plan.states, **refolded.states}.items():
            tables.states[pack_id] = detached(state)

    async def store_offsets(self, offsets: Mapping[Place, int]) -> None:
        self._call("store_offsets")
        self.db.tables.offsets.update(offsets)

    async def announce_changes(self, pack_ids: Iterable[int]) -> None:
        self._call("announce_changes")
        self.announced.append(sorted(pack_ids))

    async def load_offsets(self, topic: str) -> dict[Place, int]:
        self._call("load_offsets")
        return {place: o for place, o in self.db.tables.offsets.items() if place[0] == topic}

    async def reset(self) -> None:
        self.resets += 1

    async def close(self) -> None:
        self.closed = True
