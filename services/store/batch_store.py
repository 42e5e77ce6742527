"""The PostgreSQL adapter of the consumer's store port (`services/consumer/store_port.py`).

One connection (opened on first use, dropped by `reset` after an outage), in autocommit
mode: each batch is one explicit transaction. The statements are in `ledger_sql` and
`projection_sql`; this class only maps the port's calls onto them, and turns a plan's
rows into COPY text (`format`, called while planning: formatting is a good part of the
plan's time, and done then it overlaps the server's work on the batch before, or on the
ledger's COPY).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from events.parse import parse_stored
from projections.state import LedgerEntry, PackState
from services.consumer.plan import Plan, Refolded
from services.consumer.records import Place
from services.store import ledger_sql, live_sql, projection_sql
from services.store.connection import Conn, connect
from services.store.ledger_sql import RefusedRecord, StagedEvent

log = logging.getLogger("ledger.consumer")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CopyText:
    """A plan's rows as COPY text (`projection_sql`'s formats)."""

    dynamics: bytes = b""
    new_usage: bytes = b""
    closed_usage: bytes = b""


class PostgresBatchStore:
    def __init__(
        self,
        group: str,
        *,
        url: str | None = None,
        conn: Conn | None = None,
        application_name: str = "ledger-consume",
    ) -> None:
        """On `conn` as given (the caller owns it), or on a connection to `url` that the
        store opens and owns."""
        self._group = group
        self._url = url
        self._conn = conn
        self._application_name = application_name

    async def connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            if self._url is None:
                raise RuntimeError("the store's connection is closed")
            self._conn = await connect(self._url, application_name=self._application_name)
        return self._conn

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[object]:
        conn = await self.connection()
        async with conn.transaction() as tx:
            yield tx

    async def lock_partitions(self, places: Sequence[Place]) -> None:
        await ledger_sql.lock_partitions(await self.connection(), self._group, places)

    async def record_refusals(self, refused: Sequence[RefusedRecord]) -> None:
        await ledger_sql.record_refusals(await self.connection(), refused)

    async def claim_positions(self, staged: Sequence[StagedEvent]) -> list[tuple[int, StagedEvent]]:
        return await ledger_sql.claim_positions(await self.connection(), staged)

    async def lock_versions(self, pack_ids: Sequence[int]) -> dict[int, int]:
        return await projection_sql.lock_versions(await self.connection(), pack_ids)

    async def load_states(self, pack_ids: Sequence[int]) -> dict[int, PackState]:
        return await projection_sql.load_states(await self.connection(), pack_ids)

    async def load_tails(self, after: Mapping[int, int]) -> list[tuple[int, LedgerEntry]]:
        rows = await ledger_sql.load_pack_tails(await self.connection(), dict(after))
        return [(pack_id, LedgerEntry(pos, parse_stored(text))) for pack_id, pos, text in rows]

    async def load_entries(
        self, pack_ids: Sequence[int], known: Mapping[int, LedgerEntry]
    ) -> dict[int, list[LedgerEntry]]:
        # The batch's own entries are not sent back nor parsed again (envelope NULL).
        entries: dict[int, list[LedgerEntry]] = defaultdict(list)
        conn = await self.connection()
        for pack_id, position, text in await ledger_sql.load_pack_entries(
            conn, pack_ids, list(known)
        ):
            entry = known[position] if text is None else LedgerEntry(position, parse_stored(text))
            entries[pack_id].append(entry)
        return entries

    async def append_events(
        self, numbered: list[tuple[int, StagedEvent]], meanwhile: Callable[[], T]
    ) -> T:
        return await ledger_sql.copy_events(await self.connection(), numbered, meanwhile)

    def format(self, plan: Plan) -> CopyText:
        return CopyText(
            projection_sql.dynamics_lines(plan.dynamics),
            projection_sql.usage_lines(plan.new_usage),
            projection_sql.close_lines(plan.closed_usage),
        )

    def join(self, formatted: Sequence[object]) -> CopyText:
        texts = [text for text in formatted if isinstance(text, CopyText)]
        return CopyText(
            b"".join(t.dynamics for t in texts),
            b"".join(t.new_usage for t in texts),
            b"".join(t.closed_usage for t in texts),
        )

    async def write_plan(self, plan: Plan, refolded: Refolded) -> None:
        conn = await self.connection()
        text = plan.formatted if isinstance(plan.formatted, CopyText) else self.format(plan)
        await projection_sql.write_pack_dynamics(conn, text.dynamics)
        await projection_sql.write_packs(conn, refolded.pack_rows)
        new_lines = text.new_usage + projection_sql.usage_lines(refolded.usage)
        await projection_sql.write_usage(conn, refolded.packs, new_lines, text.closed_usage)

    async def store_offsets(self, offsets: Mapping[Place, int]) -> None:
        await ledger_sql.store_offsets(await self.connection(), self._group, dict(offsets))

    async def announce_changes(self, pack_ids: Iterable[int]) -> None:
        await live_sql.notify_changed(await self.connection(), pack_ids)

    async def load_offsets(self, topic: str) -> dict[Place, int]:
        return await ledger_sql.load_offsets(await self.connection(), self._group, topic)

    async def reset(self) -> None:
        conn = self._conn
        if self._url is None or conn is None:
            return  # not ours to drop
        self._conn = None
        try:
            await conn.close()
        except Exception:  # closing a broken connection may fail too
            log.debug("closing a broken connection failed", exc_info=True)

    async def close(self) -> None:
        await self.reset()
