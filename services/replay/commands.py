"""The `ledger replay` and `ledger verify` commands."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.logs import configure_logging
from services.settings import get_settings


def run_replay(args: argparse.Namespace) -> int:
    configure_logging()
    settings = get_settings()
    if args.from_kafka:
        from services.replay.from_kafka import NotEmptyError, TopicMissingError, rebuild_from_kafka

        try:
            kafka = asyncio.run(
                rebuild_from_kafka(
                    settings.psycopg_url,
                    settings.kafka_bootstrap_servers,
                    settings.events_topic,
                    settings.consumer_group,
                    batch_max_records=settings.batch_max_records,
                    progress=not args.no_progress,
                    terms=settings.terms,
                )
            )
        except (NotEmptyError, TopicMissingError) as error:
            print(f"ledger replay --from-kafka: {error}", file=sys.stderr)
            return 2
        print(
            f"rebuilt the ledger from {settings.events_topic}"
            f"{' (resumed)' if kafka.resumed else ''}: {kafka.records:,} records, "
            f"{kafka.appended:,} events appended, {kafka.duplicates:,} duplicates, "
            f"{kafka.refused:,} refused, in {kafka.seconds:.1f}s "
            f"({kafka.records_per_second:,.0f} records/s)"
        )
        return 0

    from services.replay.rebuild import ReplayOptions, ReplayRunning, SwapError, replay

    options = ReplayOptions(
        progress=not args.no_progress,
        work_mem=args.work_mem,
        lock_timeout_ms=args.lock_timeout_ms,
        terms=settings.terms,
    )
    try:
        report = replay(settings.psycopg_url, options)
    except (SwapError, ReplayRunning) as error:
        print(f"ledger replay: {error}", file=sys.stderr)
        return 1
    print(
        f"replayed {report.events:,} events in {report.build_seconds:.1f}s "
        f"({report.events_per_second:,.0f} events/s): {report.packs:,} packs, "
        f"{report.usage_records:,} usage records ({report.parked_packs:,} packs not purchased "
        f"yet, {report.caught_up_packs:,} re-folded for events appended meanwhile); "
        f"swapped in, {report.seconds:.1f}s in all"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    configure_logging()
    from services.replay.verify import verify

    settings = get_settings()
    report = verify(
        settings.psycopg_url,
        limit=args.limit,
        progress=not args.no_progress,
        terms=settings.terms,
    )
    print(report.summary())
    return 0 if report.clean else 1
