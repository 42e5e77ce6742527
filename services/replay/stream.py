"""Reading the ledger pack by pack, as fold input, with the database working alongside.

Threads fetch batches of rows from server-side cursors (psycopg's C loaders turn them
into Python values) while the caller folds the previous batch: the server sorts and
sends, the caller computes, at the same time. The ledger is read in parts (packs by their
id modulo the number of parts), each sorted by the server on its own: the first rows come
after sorting a part rather than the whole ledger, and the next part is sorted on
another connection while the caller folds the current one.

Events other than purchases arrive as `projections.fold.Step` tuples built from a few
fields the server takes out of the stored envelope: every stored envelope passed the
contract's validation when it was appended, so no need to validate it again, and building
one pydantic model per event would cost more than all the rest of the replay. Purchases
(one per pack) are parsed in full, exactly as the consumer parses them.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from events.parse import Refusal, parse_event
from projections.fold import ADJUST, HEARTBEAT, START, STOP, Step
from projections.state import LedgerEntry

Row = tuple[Any, ...]
PURCHASE = 0


@dataclass(slots=True)
class PackInput:
    """Everything the ledger holds for one pack, split as `fold_steps` takes it.

    `times` maps the id() of each start's and stop's time (the very objects the fold puts
    into the usage records) to the server's text of it, ready for COPY: formatting
    datetimes costs more than everything else done per usage record.
    """

    user_pack_id: int
    purchases: list[LedgerEntry] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    times: dict[int, str] = field(default_factory=dict)

    @property
    def event_count(self) -> int:
        return len(self.purchases) + len(self.steps)


class _End:
    """Marks the end of one query's rows."""


_END = _End()

Query = tuple[str, dict[str, Any]]


class _QueryThread:
    """Runs queries one after another on its own connection (one transaction, `settings`
    applied locally) and queues their rows in batches, a few batches ahead."""

    def __init__(
        self,
        conn: psycopg.Connection[Row],
        queries: list[Query],
        settings: list[str],
        batch_size: int,
        prefetch: int,
    ) -> None:
        self._conn = conn
        self._queries = queries
        self._settings = settings
        self._batch_size = batch_size
        self._queue: queue.Queue[list[Row] | BaseException | _End] = queue.Queue(prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a thread waiting for room in the queue
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._conn.transaction():
                for statement in self._settings:
                    self._conn.execute(statement.replace("SET ", "SET LOCAL ", 1))
                for number, (query, params) in enumerate(self._queries):
                    with self._conn.cursor(name=f"ledger_stream_{number}") as cur:
                        cur.execute(query, params)
                        while not self._stop.is_set():
                            rows = cur.fetchmany(self._batch_size)
                            if not rows:
                                break
                            self._put(rows)
                    self._put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)

    def _put(self, item: list[Row] | BaseException | _End) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next_query_rows(self) -> Iterator[list[Row]]:
        """The batches of the next query, up to its end."""
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def read_batches(
    conns: list[psycopg.Connection[Row]],
    queries: list[Query],
    *,
    settings: list[str],
    batch_size: int = 20_000,
    prefetch: int = 3,
) -> Iterator[list[Row]]:
    """The rows of `queries`, in that order, in batches.

    The queries are dealt to the connections in turn, each connection running its share
    in a thread: while the caller works through the rows of one query, the server already
    runs the next one (e.g. sorts its part of the ledger) on another connection.
    """
    threads = [
        _QueryThread(conn, queries[number :: len(conns)], settings, batch_size, prefetch)
        for number, conn in enumerate(conns)
    ]
    for thread in threads:
        thread.start()
    try:
        for number in range(len(queries)):
            yield from threads[number % len(threads)].next_query_rows()
    finally:
        for thread in threads:
            thread.stop()


def _integer(text: str) -> int:
    """A number the contract's validation accepted: `600`, or `600.0` (an integral float
    that pydantic's lax mode took as 600), or a digit string."""
    try:
        return int(text)
    except ValueError:
        return int(Decimal(text))


def _purchase_entry(position: int, envelope: str) -> LedgerEntry:
    event = parse_event(envelope)
    if isinstance(event, Refusal):
        raise ValueError(f"ledger entry {position} no longer parses: {event.reason}")
    return LedgerEntry(position, event)


def pack_inputs(
    batches: Iterable[list[Row]], on_batch: Callable[[int], object] | None = None
) -> Iterator[PackInput]:
    """Group rows of `replay_sql.STEPS_UP_TO` (ordered by pack, then position) by pack."""
    current = PackInput(0)
    integer = _integer
    parse_time = datetime.fromisoformat
    for rows in batches:
        for row in rows:
            pack_id, position, kind, text_time, event_id, number, text, user_id, name = row[:9]
            lease_text, raw = row[9], row[10]
            if current.user_pack_id != pack_id:
                if current.user_pack_id:
                    yield current
                current = PackInput(pack_id)
            at = parse_time(text_time)
            steps = current.steps
            if kind == START:
                current.times[id(at)] = text_time
                train = integer(number)
                lease = None if lease_text is None else integer(lease_text)
                user = integer(user_id)
                steps.append((at, position, START, event_id, train, text, user, name, lease))
            elif kind == STOP:
                current.times[id(at)] = text_time
                train = integer(number)
                steps.append((at, position, STOP, event_id, train, text, 0, None, None))
            elif kind == HEARTBEAT:
                train = integer(number)
                steps.append((at, position, HEARTBEAT, event_id, train, None, 0, None, None))
            elif kind == ADJUST:
                delta = integer(number)
                steps.append((at, position, ADJUST, event_id, delta, None, 0, None, None))
            elif kind == PURCHASE:
                current.purchases.append(_purchase_entry(position, raw))
            else:
                raise ValueError(f"ledger entry {position} has an unknown event type")
        if on_batch is not None:
            on_batch(len(rows))
    if current.user_pack_id:
        yield current
