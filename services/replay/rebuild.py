"""`ledger replay`: every read model rebuilt from the ledger, swapped in atomically.

1. Watermark: wait for the appends in flight, read the last position P (`watermark`).
2. Build `packs_next` / `usage_records_next` from every event up to P: the ledger
   streamed in (pack, position) order, folded pack by pack, written with COPY. Nobody
   reads these tables; the live ones keep serving.
3. Catch up, still off to the side: the packs that received events after P are re-folded
   into the fresh tables from all their events (repeated while many arrive).
4. Swap, in one transaction: lock the live tables against the consumers' writes
   (EXCLUSIVE: readers go on), re-fold the packs that received events since the last
   catch-up, then take the tables from the readers for an instant (ACCESS EXCLUSIVE),
   rename live -> `_old` and fresh -> live (tables and indexes), drop the old ones.
   A reader sees the old tables or the new ones, never a half-built one; a consumer
   transaction that waited for the lock goes on against the new tables.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Never

import orjson
import psycopg
from psycopg.types.json import set_json_dumps, set_json_loads
from tqdm import tqdm

from projections.terms import DEFAULT_TERMS, Terms
from services.replay.folding import FoldSettings, FoldWorkers, fold_packs, fold_parts
from services.replay.stream import Row, pack_inputs
from services.replay.writer import CopyWriter
from services.store import replay_sql as sql

log = logging.getLogger("ledger.replay")

SyncConn = psycopg.Connection[Row]
MAX_POSITION = 2**63 - 1


class SwapError(RuntimeError):
    """The read models' readers or writers kept their locks through every attempt."""


class ReplayRunning(RuntimeError):
    """Another `ledger replay` works on this database."""


@dataclass(slots=True)
class ReplayOptions:
    progress: bool = True
    work_mem: str = "128MB"  # per reading connection (4): the server sorts a part in it
    batch_size: int = 20_000  # rows per fetch
    parts: int = 4  # the ledger is sorted and read in this many parts
    workers: int = 2  # processes folding them (1: in this process)
    chunk_rows: int = 50_000  # usage rows per COPY statement
    lock_timeout_ms: int = 2000  # per swap attempt: readers wait at most this long
    swap_attempts: int = 10
    catch_up_rounds: int = 5
    terms: Terms = DEFAULT_TERMS  # the fold's settings: the consumer's (`Settings.terms`)


@dataclass(slots=True)
class ReplayReport:
    events: int = 0  # events folded by the build
    packs: int = 0  # packs in the new read model
    parked_packs: int = 0  # packs with events but no purchase yet
    usage_records: int = 0
    caught_up_packs: int = 0  # packs re-folded for events that arrived during the build
    build_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.build_seconds if self.build_seconds else 0.0


def connect(url: str, name: str = "ledger-replay") -> SyncConn:
    conn: SyncConn = psycopg.connect(url, autocommit=True, application_name=name)
    # The stream's times are read back as ISO 8601 text (the instants do not depend on the
    # zone; UTC keeps the text short and its offset whole).
    conn.execute("SET DateStyle = 'ISO, MDY'")
    conn.execute("SET TimeZone = 'UTC'")
    set_json_dumps(lambda obj: orjson.dumps(obj).decode(), conn)
    set_json_loads(orjson.loads, conn)
    return conn


def watermark(conn: SyncConn) -> int:
    """The last position; every event at or below it is committed or gone for good."""
    with conn.transaction():
        conn.execute(sql.LOCK_LEDGER)
        row = conn.execute(sql.LAST_POSITION).fetchone()
    assert row is not None
    return int(row[0])


def count_events(conn: SyncConn, after: int, upto: int) -> int:
    row = conn.execute(sql.COUNT_EVENTS, (after, upto)).fetchone()
    assert row is not None
    return int(row[0])


def replay(url: str, options: ReplayOptions | None = None) -> ReplayReport:
    """Rebuild `packs` and `usage_records` from the ledger and swap them in."""
    options = options or ReplayOptions()
    report = ReplayReport()
    started = time.perf_counter()
    with connect(url) as control:
        row = control.execute(sql.TRY_REPLAY_LOCK).fetchone()
        if not (row and row[0]):
            raise ReplayRunning("another ledger replay is running on this database")
        for statement in sql.drop_leftovers():
            control.execute(statement)
        upto = watermark(control)
        total = count_events(control, 0, upto)
        build_started = time.perf_counter()
        build(url, upto, total, options, report)
        report.build_seconds = time.perf_counter() - build_started
        for table in sql.READ_MODELS:
            control.execute(f"ANALYZE {table}{sql.NEXT}")
        upto = _catch_up(control, upto, options, report)
        _swap(control, upto, options, report)
    report.seconds = time.perf_counter() - started
    return report


def build(url: str, upto: int, total: int, options: ReplayOptions, report: ReplayReport) -> None:
    """Fold every event up to `upto` into fresh `_next` tables (created, filled, indexed
    and committed in one transaction: an interrupted build leaves nothing behind)."""
    queries = sql.parts(sql.STEPS_UP_TO, upto, options.parts)
    settings = FoldSettings(options.work_mem, options.batch_size, options.chunk_rows, options.terms)
    with contextlib.ExitStack() as stack:
        workers = None
        if options.workers > 1:  # started first: forked before this process has threads
            workers = stack.enter_context(FoldWorkers(url, queries, settings, options.workers))
        writer_conn = stack.enter_context(connect(url, "ledger-replay-write"))
        bar = stack.enter_context(progress_bar(total, "replay", options.progress))
        stack.enter_context(writer_conn.transaction())
        restore = _create_next_tables(writer_conn)
        writer = CopyWriter(writer_conn)
        try:
            if workers is not None:
                counts = workers.collect(writer.put, bar.update)
            else:
                counts = fold_parts(url, queries, settings, writer.put, bar.update)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        for statement in restore:
            writer_conn.execute(statement)
    report.events += counts.events
    report.packs += counts.packs
    report.parked_packs += counts.parked_packs
    report.usage_records += counts.usage_records


def _create_next_tables(conn: SyncConn) -> list[str]:
    """Create the fresh tables without their keys and indexes; returns the statements that
    add them once the rows are in."""
    conn.execute(sql.create_next_tables())
    keys: list[str] = []
    indexes: list[str] = []
    for table in sql.READ_MODELS:
        fresh = f"{table}{sql.NEXT}"
        for name, definition in conn.execute(sql.TABLE_KEYS, (fresh,)).fetchall():
            keys.append(f"ALTER TABLE {fresh} ADD CONSTRAINT {name} {definition}")
            conn.execute(f"ALTER TABLE {fresh} DROP CONSTRAINT {name}")
        for name, definition in conn.execute(sql.TABLE_INDEX_DEFINITIONS, (fresh,)).fetchall():
            indexes.append(str(definition))
            conn.execute(f"DROP INDEX {name}")
    return keys + indexes


@contextmanager
def progress_bar(total: int, what: str, enabled: bool) -> Iterator[tqdm[Never]]:
    bar: tqdm[Never] = tqdm(
        total=total,
        desc=what,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=not enabled,
        mininterval=0.5,
        smoothing=0.05,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def refold_into_next(
    conn: SyncConn, pack_ids: list[int], upto: int, terms: Terms = DEFAULT_TERMS
) -> int:
    """Replace the fresh rows of `pack_ids` with a fold of all their events up to `upto`."""
    if not pack_ids:
        return 0
    rows = conn.execute(sql.PACK_STEPS_UP_TO, {"packs": pack_ids, "upto": upto}).fetchall()
    chunks: list[tuple[str, bytes]] = []
    fold_packs(
        pack_inputs([rows]),
        50_000,
        lambda *chunk: chunks.append(chunk),
        freeze=False,
        terms=terms,
    )
    conn.execute(sql.DELETE_NEXT_USAGE, (pack_ids,))
    conn.execute(sql.DELETE_NEXT_PACKS, (pack_ids,))
    for statement, data in chunks:
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.write(data)
    return len(pack_ids)


def _packs_since(conn: SyncConn, after: int, upto: int) -> list[int]:
    return [int(row[0]) for row in conn.execute(sql.PACKS_WITH_EVENTS, (after, upto))]


def _catch_up(conn: SyncConn, upto: int, options: ReplayOptions, report: ReplayReport) -> int:
    """Fold the events appended during the build into the fresh tables, off to the side,
    until few are left for the swap to do under its lock. Returns the new watermark."""
    for _ in range(options.catch_up_rounds):
        latest = watermark(conn)
        if latest == upto:
            break
        with conn.transaction():
            packs = _packs_since(conn, upto, latest)
            report.caught_up_packs += refold_into_next(conn, packs, latest, options.terms)
        log.info("caught up %d packs with events %d..%d", len(packs), upto + 1, latest)
        upto = latest
        if len(packs) < 1000:
            break
    return upto


def _swap(conn: SyncConn, upto: int, options: ReplayOptions, report: ReplayReport) -> None:
    delay = 0.2
    for attempt in range(1, options.swap_attempts + 1):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {int(options.lock_timeout_ms)}")
                # Consumers lock `packs` first, then `usage_records`: the same order here.
                conn.execute("LOCK TABLE packs IN EXCLUSIVE MODE")
                conn.execute("LOCK TABLE usage_records IN EXCLUSIVE MODE")
                packs = _packs_since(conn, upto, MAX_POSITION)
                report.caught_up_packs += refold_into_next(conn, packs, MAX_POSITION, options.terms)
                # Readers join usage_records to packs in that order: the same order here.
                conn.execute("LOCK TABLE usage_records IN ACCESS EXCLUSIVE MODE")
                conn.execute("LOCK TABLE packs IN ACCESS EXCLUSIVE MODE")
                for table in sql.READ_MODELS:
                    _replace(conn, table)
                counts = conn.execute(
                    "SELECT (SELECT count(*) FROM packs), (SELECT count(*) FROM usage_records)"
                ).fetchone()
            assert counts is not None
            report.packs, report.usage_records = int(counts[0]), int(counts[1])
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as error:
            log.warning("swap attempt %d: %s; retrying in %.1fs", attempt, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise SwapError(
        f"could not take the read models from their readers in {options.swap_attempts} "
        f"attempts of {options.lock_timeout_ms} ms; the fresh tables stay as "
        f"packs{sql.NEXT} / usage_records{sql.NEXT} until the next replay"
    )


def _index_names(conn: SyncConn, table: str) -> list[str]:
    return [str(row[0]) for row in conn.execute(sql.TABLE_INDEXES, (table,))]


def _replace(conn: SyncConn, table: str) -> None:
    """Inside the swap transaction: `table{NEXT}` becomes `table`, with its indexes named
    as the live ones were, and the privileges granted on the live table."""
    fresh, old = f"{table}{sql.NEXT}", f"{table}{sql.OLD}"
    for privilege, grantee, grantable in conn.execute(sql.TABLE_GRANTS, (table,)).fetchall():
        option = " WITH GRANT OPTION" if grantable else ""
        conn.execute(f"GRANT {privilege} ON {fresh} TO {grantee}{option}")
    live_indexes = _index_names(conn, table)
    conn.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name in live_indexes:
        if name.startswith(table):
            conn.execute(f"ALTER INDEX {name} RENAME TO {old}{name[len(table) :]}")
    conn.execute(f"ALTER TABLE {fresh} RENAME TO {table}")
    for name in _index_names(conn, table):
        if name.startswith(fresh):
            conn.execute(f"ALTER INDEX {name} RENAME TO {table}{name[len(fresh) :]}")
    conn.execute(f"DROP TABLE {old}")
