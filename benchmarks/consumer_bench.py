"""Consumer benchmark: Kafka -> committed projections, against raw aiokafka, and delay.

    uv run python benchmarks/consumer_bench.py [--events 500000] [--packs 20000]

1. Publishes `--events` realistic events (purchases, top-ups, trainings starting and
   stopping on `--packs` packs, at most three at once per pack, in the last hours; ~1%
   late, ~1% redelivered; one pack in twenty small enough to run out) to a fresh
   4-partition topic.
2. Raw rate: a bare aiokafka consumer reads the whole topic (no processing).
3. Ledger rate: `ledger consume` (a real child process) on a fresh database, timed from
   its first committed batch to the moment every offset is committed.
4. Delay: publishes the histories' continuation at half the ledger rate for
   `--delay-seconds`, and measures for each
   event the time from publish to its offset being committed with the projections
   (p50/p99), polling the stored offsets every 10 ms. `--also-delay-at 4000,6000` does
   the same at fixed rates afterwards (the latency curve).
5. `--heartbeats`: all of the above once more on a heartbeat-heavy workload of the same
   size (`--events` events on `--packs` packs, its own topic and database): every
   running training sends an `infinite.training.heartbeat` every `--heartbeat-seconds`
   (event time) until it stops, and its start carries `leaseSeconds`. Both workloads'
   figures are printed side by side.

Needs the services of `ledger infra up` (or KAFKA_BOOTSTRAP_SERVERS / LEDGER_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from benchmarks.sink_ceiling import sink_ceiling
from services.settings import get_settings
from services.store.migrate import migrate

PARTITIONS = 4


MAX_OPEN_TRAININGS = 3
"""Trainings running at once on one pack (of one node): beyond it, the next is a stop."""


HEARTBEAT_SECONDS = 30
BENCH_LEASE_SECONDS = 86_400
"""The heartbeat workload's lease: the contract's longest. The histories end hours before
`now`, so a lease of twice the heartbeat period would have lapsed every session still
open at the end, and the run would measure the announcement of tens of thousands of
lapses (a backlog) besides the heartbeats; `--lease-seconds` chooses another."""


def make_events(
    total: int,
    packs: int,
    seed: int = 1,
    base: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    then: int = 0,
    heartbeat_seconds: float | None = None,
    lease_seconds: int = BENCH_LEASE_SECONDS,
) -> list[tuple[bytes, bytes]]:
    """`total` events (~1% of them late, ~1% redelivered), followed by `then` more that
    continue the same histories in order (the delay phase).

    With `heartbeat_seconds`, each start carries `leaseSeconds` and every open training
    heartbeats that often (event time) until its stop; the heartbeats count towards
    `total`. Without, the events are those of earlier runs (the same random draws)."""
    rng = random.Random(seed)
    beats = random.Random(seed + 1)  # the heartbeats' ids: the other draws stay as they were
    clock = {p: base + timedelta(seconds=p) for p in range(1, packs + 1)}
    open_trains: dict[int, list[int]] = {p: [] for p in range(1, packs + 1)}
    next_beat: dict[int, datetime] = {}  # trainId -> its next heartbeat
    period = timedelta(seconds=heartbeat_seconds or 0)
    out: list[tuple[bytes, bytes]] = []
    next_train = 1

    def heartbeats(pack: int, until: datetime) -> None:
        """The heartbeats of the pack's open trainings before `until`, in time order."""
        due = []
        for train in open_trains[pack]:
            while train in next_beat and next_beat[train] < until:  # not a start being made
                due.append((next_beat[train], train))
                next_beat[train] += period
        for at, train in sorted(due):
            event = {
                "specversion": "1.0",
                "id": uuid.UUID(int=beats.getrandbits(128)).hex,
                "source": "bench/scheduler",
                "type": "infinite.training.heartbeat",
                "time": at.isoformat(),
                "data": {"userPackId": pack, "trainId": train},
            }
            out.append((str(pack).encode(), json.dumps(event, separators=(",", ":")).encode()))

    def emit(pack: int, type_: str, data: dict[str, Any]) -> None:
        clock[pack] += timedelta(
            seconds=rng.randint(1, 120), microseconds=rng.randint(0, 10**6 - 1)
        )
        if heartbeat_seconds:
            heartbeats(pack, clock[pack])
            if type_ == "infinite.training.started":
                data = {**data, "leaseSeconds": lease_seconds}
                next_beat[data["trainId"]] = clock[pack] + period
        event = {
            "specversion": "1.0",
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "source": "bench/scheduler",
            "type": type_,
            "time": clock[pack].isoformat(),
            "data": {"userPackId": pack, **data},
        }
        out.append((str(pack).encode(), json.dumps(event, separators=(",", ":")).encode()))

    for pack in range(1, packs + 1):
        emit(
            pack,
            "infinite.pack.purchased",
            {
                "userId": 1000 + pack % 5000,
                "userName": "bench",
                "packName": f"pack {pack}",
                "packDurationType": "type.timing",
                # Most packs hold days of training; one in twenty only an hour, and
                # runs out (the simulated schedulers, unlike real ones, do not stop
                # their trainings when told, so a small pack would run out again and
                # again and announce it each time).
                "durationSeconds": (
                    rng.randint(3600, 7200) if rng.random() < 0.05 else rng.randint(10**6, 10**7)
                ),
                "nodeList": [
                    {
                        "nodeId": pack,
                        "nodeName": "gpu",
                        "nodeType": "nodeType.master",
                        "cpuCount": 8,
                        "gpuCount": 2,
                        "memorySize": 64,
                    }
                ],
            },
        )
    while len(out) < total + then:
        pack = rng.randint(1, packs)
        roll = rng.random()
        if roll < 0.05:
            emit(pack, "infinite.pack.adjusted", {"deltaSeconds": 600, "reason": "top-up"})
        elif (roll < 0.5 or not open_trains[pack]) and len(open_trains[pack]) < MAX_OPEN_TRAININGS:
            next_train += 1
            open_trains[pack].append(next_train)
            emit(
                pack,
                "infinite.training.started",
                {"trainId": next_train, "trainName": "job", "userId": 7, "userName": "bench"},
            )
        else:
            train = open_trains[pack][0]
            emit(pack, "infinite.training.stopped", {"trainId": train, "reason": "completed"})
            open_trains[pack].pop(0)
            next_beat.pop(train, None)
    out = out[: total + then]
    for i in range(packs, total - 1):  # ~1% late arrivals, ~1% redeliveries
        if rng.random() < 0.01:
            out[i], out[i + 1] = out[i + 1], out[i]
    for i in rng.sample(range(total), total // 100):
        out[i] = out[i - 1] if i else out[i]
    return out


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in events:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume_rate(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    seen = 0
    try:
        started = None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
        assert started is not None
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def committed(conn: psycopg.Connection[Any], group: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s",
        (group,),
    ).fetchone()
    return int(row[0]) if row else 0


def start_consumer(
    bootstrap: str, url: str, topic: str, group: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_EVENTS_TOPIC": topic,
        "LEDGER_CONSUMER_GROUP": group,
        "LEDGER_CONSUMER_METRICS_PORT": "0",
        "LEDGER_LOG_FORMAT": "text",
    }
    profile = os.environ.get("LEDGER_BENCH_PROFILE")  # a folder: cProfile each consumer
    python = [sys.executable]
    if profile:
        python += ["-m", "cProfile", "-o", str(Path(profile) / f"{log.stem}.prof")]
    return subprocess.Popen(
        [*python, "-m", "services.cli", "consume"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def ledger_rate(url: str, group: str, total: int) -> tuple[float, float]:
    """(events/s from first commit to last, seconds in all) while the consumer catches up."""
    started = time.perf_counter()
    # One connection for the whole wait: a new one every 50 ms costs the server more CPU
    # (fork and password authentication) than the query.
    with psycopg.connect(url, autocommit=True) as conn:
        return _wait_committed(conn, group, total, started)


def _wait_committed(
    conn: psycopg.Connection[Any], group: str, total: int, started: float
) -> tuple[float, float]:
    first = None
    first_count = 0
    while True:
        count = committed(conn, group)
        if first is None and count > 0:
            first, first_count = time.perf_counter(), count
        if count >= total:
            end = time.perf_counter()
            break
        time.sleep(0.05)
    assert first is not None
    rate = (total - first_count) / (end - first) if end > first else float("inf")
    return rate, end - started


async def measure_delay(
    bootstrap: str,
    url: str,
    topic: str,
    group: str,
    rate: float,
    seconds: float,
    events: list[tuple[bytes, bytes]],
) -> list[float]:
    """Publish at `rate`/s; per event, publish -> committed delay in seconds."""
    stored: list[tuple[float, dict[int, int]]] = []
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT kafka_partition, next_offset FROM consumer_offsets "
                    "WHERE consumer_group = %s AND kafka_topic = %s",
                    (group, topic),
                ).fetchall()
                stored.append((time.perf_counter(), {int(p): int(o) for p, o in rows}))
                time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, acks=1, max_batch_size=1 << 20
    )
    await producer.start()
    partitioner = DefaultPartitioner()
    partitions = sorted(await producer.partitions_for(topic))
    # Each tick's events go out as one record batch per partition (what a scheduler
    # publishing many events at once does): the producer's own CPU per event stays
    # small, since it shares the two cores with the consumer it measures.
    sent: list[tuple[float, int, Any, int]] = []  # (publish time, partition, future, index)
    count = int(rate * seconds)
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    began = time.perf_counter()
    for i in range(0, count, per_tick):
        batches: dict[int, Any] = {}
        indexes: dict[int, int] = {}
        at = time.perf_counter()
        for key, value in events[i : i + per_tick]:
            partition = partitioner(key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
                indexes[partition] = 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise RuntimeError("a tick's events exceed one record batch: raise max_batch_size")
            sent.append((at, partition, None, indexes[partition]))
            indexes[partition] += 1
        futures = {p: await producer.send_batch(b, topic, partition=p) for p, b in batches.items()}
        for n in range(len(sent) - sum(indexes.values()), len(sent)):
            at, partition, _, index = sent[n]
            sent[n] = (at, partition, futures[partition], index)
        target = began + (i + per_tick) / rate
        await asyncio.sleep(max(0.0, target - time.perf_counter()))
    metas = [
        (at, partition, (await future).offset + index) for at, partition, future, index in sent
    ]
    await producer.stop()
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if stored and all(stored[-1][1].get(p, 0) > offset for _, p, offset in metas[-50:]):
            break
        await asyncio.sleep(0.05)
    stop.set()
    poller.join()
    delays = []
    index = 0
    for at, partition, offset in sorted(metas, key=lambda x: x[0]):
        while index < len(stored) and stored[index][1].get(partition, 0) <= offset:
            index += 1
        j = index
        while j < len(stored) and stored[j][1].get(partition, 0) <= offset:
            j += 1
        if j < len(stored):
            delays.append(stored[j][0] - at)
    return delays


@dataclass
class Figures:
    """What one workload measured."""

    label: str
    events: int
    raw: float
    rate: float
    ceiling: float
    delays: list[tuple[float, float, float]]  # (rate, p50, p99)
    log: list[Path]


async def run_workload(
    label: str,
    args: argparse.Namespace,
    everything: list[tuple[bytes, bytes]],
) -> Figures:
    """Steps 1-4 of the module's docstring for one workload, on its own topic and database."""
    settings = get_settings()
    bootstrap = settings.kafka_bootstrap_servers
    run = uuid.uuid4().hex[:8]
    topic, group = f"bench-{run}", f"bench-{run}"
    events, continuation = everything[: args.events], everything[args.events :]
    print(f"--- {label}: {args.events:,} events on {args.packs:,} packs", flush=True)
    await create_topic(bootstrap, topic)
    took = await publish(bootstrap, topic, events)
    print(f"published in {took:.1f}s ({args.events / took:,.0f}/s)", flush=True)

    raw = await raw_consume_rate(bootstrap, topic, args.events)
    print(f"raw aiokafka consume: {raw:,.0f} events/s", flush=True)

    admin_url = settings.psycopg_url
    database = f"bench_{run}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    migrate(url)
    logs = [
        Path(tempfile.gettempdir()) / f"bench-consumer-{run}-{n}.log" for n in range(args.consumers)
    ]
    consumers = [start_consumer(bootstrap, url, topic, group, log) for log in logs]
    measured: list[tuple[float, float, float]] = []  # (rate, p50, p99)
    try:
        rate, total_s = ledger_rate(url, group, args.events)
        print(
            f"ledger consume: {rate:,.0f} events/s committed to projections "
            f"({total_s:.1f}s in all, incl. start-up)",
            flush=True,
        )
        with psycopg.connect(url, autocommit=True) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM ledger_events),"
                " (SELECT count(*) FROM packs),"
                " (SELECT count(*) FROM usage_records)"
            ).fetchone()
        print(
            f"ledger: {counts[0]:,} events, {counts[1]:,} packs, {counts[2]:,} usage records"
            if counts
            else "",
            flush=True,
        )

        half = rate / 2
        for delay_rate in [half, *args.also_delay_at]:
            more, continuation = (
                continuation[: int(delay_rate * args.delay_seconds)],
                continuation[int(delay_rate * args.delay_seconds) :],
            )
            delays = await measure_delay(
                bootstrap, url, topic, group, delay_rate, args.delay_seconds, more
            )
            delays.sort()
            p50 = statistics.median(delays)
            p99 = delays[int(len(delays) * 0.99) - 1]
            measured.append((delay_rate, p50, p99))
            print(
                f"delay at {delay_rate:,.0f} events/s over {len(delays):,} events: "
                f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
                flush=True,
            )
    finally:
        for consumer in consumers:
            consumer.terminate()
        for consumer in consumers:
            consumer.wait(timeout=30)
    # The sink's own ceiling: the same batches' statements, rows formatted beforehand.
    ceiling_db = f"bench_{run}_ceiling"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{ceiling_db}"')
    ceiling_url = admin_url.rsplit("/", 1)[0] + f"/{ceiling_db}"
    migrate(ceiling_url)
    ceiling = await sink_ceiling(ceiling_url, events, settings.batch_max_records)
    print(f"sink ceiling (PostgreSQL alone, rows formatted beforehand): {ceiling:,.0f} events/s")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'DROP DATABASE IF EXISTS "{ceiling_db}"')
    return Figures(label, args.events, raw, rate, ceiling, measured, logs)


def print_table(figures: list[Figures], consumers: int) -> None:
    """One column per workload: the same measures side by side."""
    print()
    print("| measure | " + " | ".join(f.label for f in figures) + " |")
    print("|---|" + "---|" * len(figures))

    def row(name: str, cells: list[str]) -> None:
        print(f"| {name} | " + " | ".join(cells) + " |")

    row("raw aiokafka consume", [f"{f.raw:,.0f} events/s" for f in figures])
    row(
        f"ledger consume x{consumers} (Kafka -> committed projections)",
        [f"{f.rate:,.0f} events/s" for f in figures],
    )
    row("ratio ledger / raw", [f"{f.rate / f.raw:.2f}" for f in figures])
    row(
        "sink ceiling (PostgreSQL alone, rows formatted beforehand)",
        [f"{f.ceiling:,.0f} events/s" for f in figures],
    )
    row("ratio ledger / sink ceiling", [f"{f.rate / f.ceiling:.2f}" for f in figures])
    for index in range(max(len(f.delays) for f in figures)):
        cells = []
        for f in figures:
            if index < len(f.delays):
                r, p50, p99 = f.delays[index]
                cells.append(f"{r:,.0f} events/s: {p50 * 1000:.0f} ms / {p99 * 1000:.0f} ms")
            else:
                cells.append("-")
        row(
            "delay p50 / p99 at " + ("half the ledger rate" if index == 0 else "a fixed rate"),
            cells,
        )
    for f in figures:
        print(f"consumer logs ({f.label}): {' '.join(map(str, f.log))}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--packs", type=int, default=20_000)
    parser.add_argument("--delay-seconds", type=float, default=20.0)
    parser.add_argument(
        "--consumers", type=int, default=1, help="`ledger consume` processes in the group"
    )
    parser.add_argument(
        "--history-days",
        type=float,
        default=0.0,
        help="how many days before the last 6 hours the events begin (0: a live stream)",
    )
    parser.add_argument(
        "--also-delay-at",
        type=lambda text: [float(rate) for rate in text.split(",") if rate],
        default=[],
        metavar="RATE,RATE",
        help="also measure the delay at these fixed rates (events/s), after the half rate",
    )
    parser.add_argument(
        "--heartbeats",
        action="store_true",
        help="also run a heartbeat-heavy workload of the same size, figures side by side",
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=HEARTBEAT_SECONDS,
        help="event-time period of each running training's heartbeats (--heartbeats)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=BENCH_LEASE_SECONDS,
        help="leaseSeconds on the heartbeat workload's starts (1-86400)",
    )
    args = parser.parse_args()

    print(f"generating {args.events:,} events on {args.packs:,} packs ...", flush=True)
    # Event times of a live platform: the last hours, so that exhaustions fall due as the
    # stream goes (a history from long ago would make every pack's exhaustion overdue and
    # add a backlog of thousands of notices to publish: --history-days measures that).
    now = datetime.now(UTC).replace(microsecond=0)
    history_start = now - timedelta(days=args.history_days, hours=6)
    # The delay phase continues the same histories (enough for 25,000 events/s).
    needed = int((25_000 / 2 + sum(args.also_delay_at)) * args.delay_seconds)
    workloads = [("no heartbeats", None)]
    if args.heartbeats:
        label = f"heartbeats every {args.heartbeat_seconds:g} s, lease {args.lease_seconds} s"
        workloads.append((label, args.heartbeat_seconds))
    figures = []
    for label, heartbeat_seconds in workloads:
        everything = make_events(
            args.events,
            args.packs,
            base=history_start,
            then=needed,
            heartbeat_seconds=heartbeat_seconds,
            lease_seconds=args.lease_seconds,
        )
        if heartbeat_seconds:
            beats = sum(b'"infinite.training.heartbeat"' in value for _, value in everything)
            print(f"{label}: {beats / len(everything):.0%} of the events are heartbeats")
        figures.append(await run_workload(label, args, everything))
    print_table(figures, args.consumers)


if __name__ == "__main__":
    asyncio.run(main())
