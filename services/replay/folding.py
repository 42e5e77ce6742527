"""The build's work: parts of the ledger read, folded pack by pack, turned into COPY data.

`fold_parts` does it for some parts on connections of its own and hands every chunk of
COPY data to `emit`. `run_workers` runs it in worker processes, one share of the parts
each, and brings their chunks back to the caller, the only one that writes: the fresh
tables are created, filled and indexed in one transaction of one connection, so that an
interrupted build leaves nothing behind. Folding is pure Python; two processes fold
twice as much as one, while the server sorts, sends and loads alongside.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from projections.fold import fold_steps
from projections.terms import DEFAULT_TERMS, Terms
from services.replay.rows import pack_line, usage_lines
from services.replay.stream import PackInput, Query, pack_inputs, read_batches
from services.store import replay_sql as sql

Emit = Callable[[str, bytes], object]


@dataclass(slots=True)
class FoldCounts:
    events: int = 0
    packs: int = 0
    parked_packs: int = 0
    usage_records: int = 0

    def add(self, other: FoldCounts) -> None:
        self.events += other.events
        self.packs += other.packs
        self.parked_packs += other.parked_packs
        self.usage_records += other.usage_records


@dataclass(frozen=True, slots=True)
class FoldSettings:
    work_mem: str
    batch_size: int
    chunk_rows: int
    terms: Terms = DEFAULT_TERMS  # the fold's own settings


def fold_packs(
    packs: Iterable[PackInput],
    chunk_rows: int,
    emit: Emit,
    *,
    freeze: bool = True,
    terms: Terms = DEFAULT_TERMS,
) -> FoldCounts:
    """Fold each pack; emit its rows as COPY data for the fresh tables, in chunks.

    `freeze`: rows written frozen, for tables created in the writer's transaction.
    """
    counts = FoldCounts()
    option = " WITH (FREEZE)" if freeze else ""
    copy_packs = sql.copy_packs() + option
    copy_usage = sql.copy_usage() + option
    pack_buffer: list[str] = []
    usage_buffer: list[str] = []
    for pack in packs:
        counts.events += pack.event_count
        result = fold_steps(pack.user_pack_id, pack.purchases, pack.steps, terms=terms)
        if result.state.purchase is None:
            counts.parked_packs += 1
            continue
        counts.packs += 1
        pack_buffer.append(pack_line(result))
        if result.records:
            counts.usage_records += len(result.records)
            usage_buffer += usage_lines(result, pack.times)
            if len(usage_buffer) >= chunk_rows:
                emit(copy_usage, "".join(usage_buffer).encode())
                usage_buffer = []
        if len(pack_buffer) >= chunk_rows // 4:
            emit(copy_packs, "".join(pack_buffer).encode())
            pack_buffer = []
    if usage_buffer:
        emit(copy_usage, "".join(usage_buffer).encode())
    if pack_buffer:
        emit(copy_packs, "".join(pack_buffer).encode())
    return counts


def fold_parts(
    url: str,
    queries: list[Query],
    settings: FoldSettings,
    emit: Emit,
    on_events: Callable[[int], object],
) -> FoldCounts:
    """Read `queries` (parts of the ledger) on two connections of its own and fold them."""
    from services.replay.rebuild import connect  # the connection settings of the replay

    with connect(url, "ledger-replay-read") as first, connect(url, "ledger-replay-read") as second:
        batches = read_batches(
            [first, second],
            queries,
            settings=sql.stream_settings(settings.work_mem),
            batch_size=settings.batch_size,
        )
        return fold_packs(
            pack_inputs(batches, on_events), settings.chunk_rows, emit, terms=settings.terms
        )


# Messages from a worker: ("copy", statement, data), ("events", count),
# ("done", FoldCounts) or ("failed", traceback text).
Message = tuple[Any, ...]


def _worker(url: str, queries: list[Query], settings: FoldSettings, out: Any) -> None:
    try:
        counts = fold_parts(
            url,
            queries,
            settings,
            lambda statement, data: out.put(("copy", statement, data)),
            lambda events: out.put(("events", events)),
        )
        out.put(("done", counts))
    except BaseException:
        out.put(("failed", traceback.format_exc()))


class WorkerFailed(RuntimeError):
    pass


class FoldWorkers:
    """`fold_parts` in `count` processes, the parts dealt in turn; `collect` hands their
    COPY data to `emit` in this process.

    Forked where the platform allows it (no start-up cost), before the caller starts any
    thread: a worker uses none of its parent's connections, only its own, and ends with
    `os._exit` like every multiprocessing child, closing nothing it inherited.
    """

    def __init__(self, url: str, queries: list[Query], settings: FoldSettings, count: int):
        methods = multiprocessing.get_all_start_methods()
        context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._out: Any = context.Queue(maxsize=4 * count)
        self._processes = [
            context.Process(
                target=_worker,
                args=(url, queries[number::count], settings, self._out),
                name=f"ledger-replay-fold-{number}",
                daemon=True,
            )
            for number in range(count)
        ]
        self._running = 0

    def __enter__(self) -> FoldWorkers:
        for process in self._processes:
            process.start()
        self._running = len(self._processes)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes:
            if self._running and process.is_alive():
                process.terminate()  # the caller failed: stop folding for nothing
            process.join()

    def collect(self, emit: Emit, on_events: Callable[[int], object]) -> FoldCounts:
        counts = FoldCounts()
        while self._running:
            try:
                message: Message = self._out.get(timeout=0.5)
            except queue.Empty:
                for process in self._processes:
                    if process.exitcode not in (None, 0):
                        raise WorkerFailed(
                            f"{process.name} ended with exit code {process.exitcode}"
                        ) from None
                continue
            kind = message[0]
            if kind == "copy":
                emit(message[1], message[2])
            elif kind == "events":
                on_events(message[1])
            elif kind == "done":
                counts.add(message[1])
                self._running -= 1
            else:
                raise WorkerFailed(f"a replay worker failed:\n{message[1]}")
        return counts
