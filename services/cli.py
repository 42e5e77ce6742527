"""The `ledger` command: a thin dispatcher; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _infra(args: argparse.Namespace) -> int:
    from services.infra.commands import run_infra

    return run_infra(args)


def _migrate(args: argparse.Namespace) -> int:
    from services.store.migrate import run_migrate

    return run_migrate(args)


def _consume(args: argparse.Namespace) -> int:
    from services.consumer.run import run_consume

    return run_consume(args)


def _publish(args: argparse.Namespace) -> int:
    from services.publish import run_publish

    return run_publish(args)


def _dev(args: argparse.Namespace) -> int:
    from services.dev import run_dev

    return run_dev(args)


def _replay(args: argparse.Namespace) -> int:
    from services.replay.commands import run_replay

    return run_replay(args)


def _verify(args: argparse.Namespace) -> int:
    from services.replay.commands import run_verify

    return run_verify(args)


def _api(args: argparse.Namespace) -> int:
    from api.serve import run_api

    return run_api(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="INFINITE resource ledger")
    sub = parser.add_subparsers(dest="command", required=True)

    infra = sub.add_parser("infra", help="local Kafka and PostgreSQL without Docker")
    infra.add_argument("action", choices=["up", "down", "env", "status"])
    infra.set_defaults(handler=_infra)

    migrate = sub.add_parser("migrate", help="apply the database migrations (idempotent)")
    migrate.set_defaults(handler=_migrate)

    consume = sub.add_parser("consume", help="consume pack events into the ledger")
    consume.set_defaults(handler=_consume)

    publish = sub.add_parser("publish", help="publish events from a JSON-lines file")
    publish.add_argument("file", help="JSON lines, one event per line ('-' for stdin)")
    publish.add_argument(
        "--check", action="store_true", help="validate every line only; publish nothing"
    )
    publish.set_defaults(handler=_publish)

    dev = sub.add_parser("dev", help="run the whole platform locally (Ctrl-C stops it)")
    dev.add_argument("--demo", action="store_true", help="also run a simulated scheduler")
    dev.set_defaults(handler=_dev)

    replay = sub.add_parser(
        "replay", help="rebuild the read models from the ledger (or the ledger from Kafka)"
    )
    replay.add_argument(
        "--from-kafka",
        action="store_true",
        help="rebuild the ledger itself from the events topic's history into an empty, "
        "migrated database, then exit",
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument(
        "--work-mem",
        default="128MB",
        help="server memory per reading connection (4) to sort the ledger in (128MB)",
    )
    replay.add_argument(
        "--lock-timeout-ms",
        type=int,
        default=2000,
        help="longest wait for the read models' locks per swap attempt (2000)",
    )
    replay.set_defaults(handler=_replay)
    verify = sub.add_parser(
        "verify", help="compare the read models with the ledger; exit 1 on any difference"
    )
    verify.add_argument("--limit", type=int, default=20, help="differences to print (20)")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(handler=_verify)

    api = sub.add_parser("api", help="serve the read-only HTTP API")
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(handler=_api)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
