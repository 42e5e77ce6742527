"""Commit pipeline benchmark: batches planned ahead vs planned in their transaction.

    uv run python benchmarks/pipeline_bench.py [--events 200000] [--packs 20000]
        [--more 60000] [--batches 2500,50000] [--rounds 2]

In one process, no Kafka: loads `--events` benchmark events (`consumer_bench.make_events`)
into a fresh database in batches of 50,000, then times `--more` events continuing the
same histories, in batches of each size of `--batches`, the way the consumer runs them:
each batch parsed while the previous one commits, then

- `ahead`: planned on what the batch in flight leaves (`services/consumer/ahead.py`),
  then committed;
- `inside`: committed and planned inside its transaction (the baseline).

Both modes alternate, `--rounds` times each, each on a fresh database. Prints the wall
time per event, the rate, the CPU per event of this process and of its database
backend, and the ratio of each `ahead` run to the `inside` median of the same size.

Needs a PostgreSQL server whose role may create databases (LEDGER_DATABASE_URL, else the
server of `ledger infra`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from benchmarks.consumer_bench import make_events
from services.consumer import collector
from services.consumer.ahead import NOTHING_IN_FLIGHT, Handoff, plan_ahead
from services.consumer.ingest import BatchOutcome, ingest_parsed
from services.consumer.parsing import parse_batch
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from services.settings import get_settings
from services.store.batch_store import PostgresBatchStore
from services.store.connection import connect
from services.store.migrate import migrate

LOAD_BATCH = 50_000


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(url: str, records: list[SourceRecord], loaded: int, size: int, mode: str) -> dict:
    conn, side = await connect(url), await connect(url)
    cache = StateCache()
    terms = get_settings().terms  # the fold's settings, as the consumer folds with them
    try:
        for start in range(0, loaded, LOAD_BATCH):
            batch = await parse_batch(records[start : min(start + LOAD_BATCH, loaded)])
            await ingest_parsed(conn, "bench", batch, cache, terms=terms)
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        backend = int(row[0])
        process0, backend0 = _process_cpu(), _backend_cpu(backend)
        started = time.perf_counter()
        in_flight: asyncio.Task[BatchOutcome] | None = None
        previous: Handoff | None = None
        for start in range(loaded, len(records), size):
            batch = await parse_batch(records[start : start + size])
            ahead = None
            if mode == "ahead":
                before = NOTHING_IN_FLIGHT if previous is None else await previous.wait()
                if before is not None:
                    ahead = await plan_ahead(
                        PostgresBatchStore("bench", conn=side), batch, before, cache, terms=terms
                    )
            if in_flight is not None:
                await in_flight
            if previous is not None and previous.void:
                ahead = None
            handoff = Handoff()
            in_flight = asyncio.create_task(
                ingest_parsed(conn, "bench", batch, cache, ahead, handoff, terms=terms)
            )
            previous = handoff
        if in_flight is not None:
            await in_flight
        seconds = time.perf_counter() - started
        events = len(records) - loaded
        return {
            "wall": seconds / events * 1e6,
            "rate": events / seconds,
            "python": (_process_cpu() - process0) / events * 1e6,
            "postgres": (_backend_cpu(backend) - backend0) / events * 1e6,
        }
    finally:
        await conn.close()
        await side.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--packs", type=int, default=20_000)
    parser.add_argument("--more", type=int, default=60_000)
    parser.add_argument(
        "--batches", type=lambda text: [int(n) for n in text.split(",")], default=[2500, 50000]
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # As `ledger consume` does (services/consumer/run.py, services/consumer/collector.py).
    collector.take_over()
    passes = asyncio.create_task(collector.collect_every(get_settings().gc_pass_seconds))
    admin = get_settings().psycopg_url
    events = make_events(
        args.events, args.packs, base=datetime.now(UTC) - timedelta(hours=6), then=args.more
    )
    records = [
        SourceRecord("bench", int(key) % 4, offset, key, value)
        for offset, (key, value) in enumerate(events)
    ]
    for size in args.batches:
        results: dict[str, list[dict]] = {"inside": [], "ahead": []}
        for _ in range(args.rounds):
            for mode in ("inside", "ahead"):
                name = f"pipeline_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(admin, autocommit=True) as c:
                    c.execute(f'CREATE DATABASE "{name}"')
                url = admin.rsplit("/", 1)[0] + "/" + name
                try:
                    migrate(url)
                    result = await run(url, records, args.events, size, mode)
                finally:
                    with psycopg.connect(admin, autocommit=True) as c:
                        c.execute(f'DROP DATABASE "{name}"')
                results[mode].append(result)
                print(
                    f"batches of {size:>6,}  {mode:6}  {result['wall']:6.1f} us/event wall "
                    f"({result['rate']:,.0f}/s); CPU per event: this process "
                    f"{result['python']:.1f} us, its backend {result['postgres']:.1f} us",
                    flush=True,
                )
        baseline = statistics.median(r["wall"] for r in results["inside"])
        for result in results["ahead"]:
            ratio = result["wall"] / baseline
            print(f"batches of {size:>6,}  ahead / inside (median): {ratio:.2f}")
    passes.cancel()


if __name__ == "__main__":
    asyncio.run(main())
