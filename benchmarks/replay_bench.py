"""Replay benchmark: `ledger replay` over a ledger of a million events.

    uv run python benchmarks/replay_bench.py [--events 1020000] [--packs 20000] [--runs 3]
        [--database NAME] [--keep] [--verify] [--profile FILE]

1. Generates `--events` realistic events (benchmarks/consumer_bench.py's generator:
   purchases, top-ups, overlapping trainings starting and stopping; ~1% late, ~1%
   redelivered) and COPYs the distinct ones straight into `ledger_events` of a fresh,
   migrated database (not timed). `--database NAME` reuses a database a previous run
   kept (`--keep`) instead.
2. Times the replay in-process (`services.replay.rebuild.replay`), `--runs` times:
   events/s of the build (the ledger read, folded and written into the fresh tables,
   indexed and committed) and the whole run (with catch-up, ANALYZE and the swap).
3. `--verify` then checks the result with `ledger verify`'s pure fold;
   `--profile FILE` writes a cProfile of the last run (main process).

`--kafka EVENTS` measures `ledger replay --from-kafka` instead: publishes EVENTS events
of the same generator to a fresh topic and rebuilds a fresh database from it.

Needs the database of `ledger infra up` (or LEDGER_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import sys
import time
import uuid
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from consumer_bench import create_topic, make_events, publish  # a sibling script

from services.infra.testing import delete_topic, drop_database
from services.replay.from_kafka import rebuild_from_kafka
from services.replay.rebuild import ReplayOptions, ReplayReport, replay
from services.replay.verify import verify
from services.settings import get_settings
from services.store import copy_text
from services.store.migrate import migrate

COPY_LEDGER = """
COPY ledger_events (event_id, user_pack_id, event_type, event_time, source, envelope)
FROM STDIN
"""


def database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def populate(url: str, total: int, packs: int) -> int:
    """The distinct events of the generator, appended in arrival order; returns how many."""
    started = time.perf_counter()
    events = make_events(total, packs)
    print(f"generated {len(events):,} events in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    seen: set[str] = set()
    lines: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(COPY_LEDGER) as copy:
            for _, value in events:
                doc = orjson.loads(value)
                if doc["id"] in seen:
                    continue  # a redelivery: the ledger keeps the first one
                seen.add(doc["id"])
                lines.append(
                    "\t".join(
                        (
                            copy_text.text(doc["id"]),
                            str(doc["data"]["userPackId"]),
                            doc["type"],
                            doc["time"],
                            copy_text.text(doc["source"]),
                            copy_text.text(value.decode()),
                        )
                    )
                    + "\n"
                )
                if len(lines) == 50_000:
                    copy.write("".join(lines).encode())
                    lines = []
            copy.write("".join(lines).encode())
        cur.execute("VACUUM ANALYZE ledger_events")
    print(
        f"appended {len(seen):,} distinct events in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return len(seen)


def one_run(url: str, profile: str | None) -> ReplayReport:
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    report = replay(url, ReplayOptions(progress=False, terms=get_settings().terms))
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    print(
        f"  build {report.build_seconds:.2f}s: {report.events_per_second:,.0f} events/s; "
        f"in all {report.seconds:.2f}s: {report.events / report.seconds:,.0f} events/s "
        f"({report.packs:,} packs, {report.usage_records:,} usage records)",
        flush=True,
    )
    return report


async def from_kafka(total: int, packs: int) -> None:
    settings = get_settings()
    bootstrap, server = settings.kafka_bootstrap_servers, settings.psycopg_url
    run = uuid.uuid4().hex[:8]
    topic, name = f"replay-bench-{run}", f"replay_bench_kafka_{run}"
    await create_topic(bootstrap, topic)
    events = make_events(total, min(packs, max(1, total // 50)))
    took = await publish(bootstrap, topic, events)
    print(f"published {len(events):,} events to {topic} in {took:.1f}s", flush=True)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(server, name)
    try:
        migrate(url)
        report = await rebuild_from_kafka(
            url, bootstrap, topic, "ledger", batch_max_records=settings.batch_max_records,
            progress=False, terms=settings.terms,
        )  # fmt: skip
        print(
            f"--from-kafka: {report.records:,} records ({report.appended:,} appended, "
            f"{report.duplicates:,} duplicates) in {report.seconds:.1f}s: "
            f"{report.records_per_second:,.0f} records/s "
            f"(batches of up to {settings.batch_max_records:,})"
        )
    finally:
        drop_database(server, name)
        delete_topic(bootstrap, topic)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_020_000)
    parser.add_argument("--packs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="reuse this database (kept by --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--verify", action="store_true", help="then run ledger verify")
    parser.add_argument("--profile", help="write a cProfile of the last run here")
    parser.add_argument("--kafka", type=int, help="measure --from-kafka with this many events")
    args = parser.parse_args()
    if args.kafka:
        asyncio.run(from_kafka(args.kafka, args.packs))
        return

    server = get_settings().psycopg_url
    name = args.database or f"replay_bench_{uuid.uuid4().hex[:8]}"
    url = database_url(server, name)
    if not args.database:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        migrate(url)
    try:
        if not args.database:
            populate(url, args.events, args.packs)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
        events = int(row[0]) if row else 0
        print(f"replaying {events:,} ledger events ({args.runs} runs)", flush=True)
        reports = [
            one_run(url, args.profile if run == args.runs - 1 else None) for run in range(args.runs)
        ]
        rates = [report.events_per_second for report in reports]
        print(
            f"build rate: best {max(rates):,.0f}, median {statistics.median(rates):,.0f} events/s",
            flush=True,
        )
        if args.verify:
            started = time.perf_counter()
            checked = verify(url, progress=False, terms=get_settings().terms)
            print(f"verify ({time.perf_counter() - started:.1f}s): {checked.summary()}")
    finally:
        if args.keep or args.database:
            print(f"database kept: {name}")
        else:
            drop_database(server, name)


if __name__ == "__main__":
    main()
